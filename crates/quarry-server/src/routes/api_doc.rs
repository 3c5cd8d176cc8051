//! The OpenAPI 3.1 document of the HTTP API ([`openapi`]), derived by utoipa from the handlers'
//! `#[utoipa::path]` attributes and the `ToSchema` types they take and answer. It is served at
//! `GET /openapi.json` and committed as `docs/openapi.json`; a test fails when the two differ
//! (`QUARRY_BLESS=1 cargo test -p quarry-server openapi` writes the file anew).

use super::{
    collections, docs, documents, embeddings, eval, jobs, playground, probes, query, snapshots,
    tasks,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The bearer scheme of every `/v1` route: an API key or a JWT, both as `Authorization: Bearer`.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`[[auth.keys]]`) or a JWT (`[auth.jwt]`), as \
                         `Authorization: Bearer TOKEN`. Without authentication configured, \
                         every caller is the local admin and no token is needed. The role each \
                         route needs (reader < writer < admin) is in its 403 answer.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The errors every `/v1` route can answer whatever it does, written once here instead of in
/// each handler's `responses(...)`: 401 (authentication), 500, 503 (`cancelled` at shutdown, and
/// `busy` or `embedding_unavailable` where a route says) and 504 (the request timeout). A route
/// that states one of them itself keeps its own description.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let common = [
            (
                "401",
                "`unauthorized`: no token, or a token that is not valid",
            ),
            (
                "500",
                "`internal`: a server fault (the log has it under the request id)",
            ),
            (
                "503",
                "`cancelled`: the server is stopping; or `busy`, `embedding_unavailable` where \
                 the route says",
            ),
            (
                "504",
                "`timeout`: the request ran past `server.request_timeout_ms`",
            ),
        ];
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (status, description) in common {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// `POST /v1/snapshots` takes an empty body (the default name): its body is optional, which
/// utoipa's `request_body` attribute cannot say.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let op = doc
            .paths
            .paths
            .get_mut("/v1/snapshots")
            .and_then(|item| item.post.as_mut());
        if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// A query needs its text, except `mode: vector` with a `vector` (`QueryRequest::options`): the
/// derived `QueryRequest` schema, with that requirement added as an `anyOf`.
struct QueryNeedsText;

impl Modify for QueryNeedsText {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{
            AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
        };
        let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(RefOr::T(Schema::Object(derived))) = schemas.get("QueryRequest").cloned() else {
            return;
        };
        let text = ObjectBuilder::new()
            .property("query", ObjectBuilder::new().schema_type(Type::String))
            .required("query");
        let by_vector = ObjectBuilder::new()
            .property(
                "mode",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["vector"])),
            )
            .property(
                "vector",
                ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Number)),
            )
            .required("mode")
            .required("vector");
        let description = derived.description.clone();
        let schema = AllOfBuilder::new()
            .description(description)
            .item(derived)
            .item(AnyOfBuilder::new().item(text).item(by_vector))
            .into();
        schemas.insert("QueryRequest".into(), schema);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "quarry",
        description = "The HTTP API of quarry, a retrieval engine: BM25 and vector search over \
                       collections of documents, with access control, embedding versions, \
                       re-index jobs and evaluation. docs/http-api.md describes every route.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&Bearer, &OptionalBodies, &QueryNeedsText, &CommonErrors),
    paths(
        playground::page,
        docs::page,
        docs::spec,
        probes::healthz,
        probes::readyz,
        probes::metrics,
        collections::list,
        collections::stats,
        collections::create,
        collections::patch,
        collections::delete,
        collections::versions,
        query::query,
        query::batch,
        documents::list,
        documents::get,
        documents::upsert,
        documents::delete,
        tasks::get,
        embeddings::embeddings,
        embeddings::models,
        embeddings::model,
        eval::list_golden,
        eval::put_golden,
        eval::delete_golden,
        eval::run,
        eval::runs,
        eval::compare,
        eval::report,
        jobs::reindex,
        jobs::list,
        jobs::get,
        jobs::cancel,
        jobs::activate,
        jobs::retire,
        snapshots::create,
    ),
    tags(
        (name = "collections", description = "collections and their stats"),
        (name = "query", description = "search"),
        (name = "documents", description = "documents, and writes sent with wait=false"),
        (name = "embeddings", description = "OpenAI-compatible embeddings and models"),
        (name = "versions", description = "embedding versions"),
        (name = "jobs", description = "re-index, re-chunk and requantize jobs"),
        (name = "eval", description = "golden sets and evaluation runs"),
        (name = "snapshots", description = "backups while serving"),
        (name = "probes", description = "health, readiness and metrics (open)"),
        (name = "pages", description = "pages and this document (open)"),
    ),
)]
struct ApiDoc;

/// The OpenAPI document of the whole API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as committed in `docs/openapi.json`: pretty JSON and a final newline.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::openapi_json;
    use std::path::Path;

    /// `docs/openapi.json` is what the handlers generate; `QUARRY_BLESS=1` writes it anew.
    #[test]
    fn openapi_json_is_the_committed_docs_openapi_json() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let generated = openapi_json();
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == generated {
            return;
        }
        if std::env::var_os("QUARRY_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, &generated).expect("write docs/openapi.json");
            return;
        }
        panic!(
            "docs/openapi.json is not the OpenAPI document the handlers generate; regenerate it \
             with `QUARRY_BLESS=1 cargo test -p quarry-server openapi` and commit it"
        );
    }

    /// The names of the properties a schema gives an object, through `$ref` and `allOf`.
    fn properties(doc: &serde_json::Value, schema: &serde_json::Value) -> Vec<String> {
        if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
            let name = r.trim_start_matches("#/components/schemas/");
            return properties(doc, &doc["components"]["schemas"][name]);
        }
        let mut names: Vec<String> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for part in schema
            .get("allOf")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            names.extend(properties(doc, part));
        }
        names.sort();
        names
    }

    /// A job as the API serialises it has exactly the fields the document gives `JobView`.
    #[test]
    fn a_served_job_has_exactly_the_documented_fields() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap();
        let stored = r#"{"id":"j1","kind":"reindex","collection":"c","state":"running",
            "params":{"embedder":"b"},"processed":10,"total":40,"embedded":10,"cache_hits":0,
            "tokens":700,"error":null,"result":null,"cancel_requested":false,"created_at":100,
            "started_at":100,"updated_at":105}"#;
        let job: quarry_index::catalog::Job = serde_json::from_str(stored).unwrap();
        let served = crate::views::job(&job);
        let mut keys: Vec<String> = served.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let documented = properties(&doc, &doc["components"]["schemas"]["JobView"]);
        assert_eq!(keys, documented);
        assert!(documented.contains(&"tokens_per_s".to_owned()));
    }
}
