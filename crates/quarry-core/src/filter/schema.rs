//! The OpenAPI schema of the JSON filter language ([`FilterSchema`], named `Filter`): what
//! `Filter::parse` accepts, written out by hand since the parser reads a `serde_json::Value`.
//!
//! `{}` (everything); `{"and": [F, …]}` and `{"or": [F, …]}` (1 or more filters, the only key of
//! their object); `{"not": F}`; or a leaf: `field` (a non-empty string) with one condition, `eq`,
//! `in` (1 to 1024 values), `exists` (a boolean) or a range of at most one lower (`gt`, `gte`) and
//! one upper (`lt`, `lte`) bound. Values are strings, numbers or booleans. A filter nests at most
//! 32 levels and has at most 1024 parts, which a schema does not say; the parser's 400 does.

use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

/// Stands for a query's `filter` in the OpenAPI document (`Filter`, and `FilterValue` for its
/// literals).
pub struct FilterSchema;

/// Most values of one `in` (the parser's `MAX_IN`).
const MAX_IN: usize = 1024;

fn filter_ref() -> Ref {
    Ref::from_schema_name("Filter")
}

fn value_ref() -> Ref {
    Ref::from_schema_name("FilterValue")
}

/// An object with exactly the one key `op`, holding `value`.
fn only_key(op: &str, value: impl Into<RefOr<Schema>>, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property(op, value)
        .required(op)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

fn closed() -> Option<AdditionalProperties<Schema>> {
    Some(AdditionalProperties::FreeForm(false))
}

impl utoipa::PartialSchema for FilterSchema {
    fn schema() -> RefOr<Schema> {
        let list = |op| {
            only_key(
                op,
                ArrayBuilder::new().items(filter_ref()).min_items(Some(1)),
                if op == "and" {
                    "every filter matches"
                } else {
                    "at least one filter matches"
                },
            )
        };
        let leaf = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "a field and one condition: eq, in, exists, or a range (gt or gte, lt or lte)",
            ))
            .property(
                "field",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .description(Some(
                        "a metadata field (nested keys joined by `.`) or a built-in field",
                    )),
            )
            .required("field")
            .property("eq", value_ref())
            .property(
                "in",
                ArrayBuilder::new()
                    .items(value_ref())
                    .min_items(Some(1))
                    .max_items(Some(MAX_IN)),
            )
            .property("gt", value_ref())
            .property("gte", value_ref())
            .property("lt", value_ref())
            .property("lte", value_ref())
            .property("exists", ObjectBuilder::new().schema_type(Type::Boolean))
            .min_properties(Some(2))
            .additional_properties(closed());
        let all = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("`{}`: every document"))
            .max_properties(Some(0));
        AnyOfBuilder::new()
            .description(Some(
                "A metadata filter (docs/query.md, \"Filters\"): {}, and, or, not, or a leaf.",
            ))
            .item(all)
            .item(list("and"))
            .item(list("or"))
            .item(only_key("not", filter_ref(), "the filter does not match"))
            .item(leaf)
            .into()
    }
}

impl utoipa::ToSchema for FilterSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Filter".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        let value = ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![
                Type::String,
                Type::Number,
                Type::Boolean,
            ]))
            .description(Some(
                "a literal: a string (a date when it reads as RFC 3339 or YYYY-MM-DD), a number or a boolean",
            ));
        schemas.push(("FilterValue".into(), value.into()));
    }
}
