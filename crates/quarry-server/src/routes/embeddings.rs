//! `POST /v1/embeddings`: OpenAI-compatible embeddings with the server's default embedder (the
//! local model unless configured otherwise), so any OpenAI client, or another quarry, can use this
//! one as its embedding provider; and `GET /v1/models`, `GET /v1/models/{id}`, the model it serves.
//!
//! Token-id arrays (OpenAI's `input: [[1, 2, …]]`) are refused: a client that sends them counted
//! tokens with its own tokenizer (LangChain's `OpenAIEmbeddings` uses tiktoken's), whose ids mean
//! other words in the local model's vocabulary, so decoding them would embed the wrong text
//! without an error.

use super::common::blocking;
use super::state::Shared;
use super::wire::{
    Embedding, EmbeddingItem, EmbeddingsAnswer, Model, ModelDetails, ModelList, Usage,
};
use crate::auth::{Caller, role};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::State;
use quarry_core::InputKind;

/// Most inputs in one request (OpenAI's limit).
pub(super) const MAX_INPUTS: usize = 2048;

/// `input` as the OpenAPI document states it: the texts to embed.
pub(super) struct EmbeddingsInput;

impl utoipa::PartialSchema for EmbeddingsInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let text = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
        };
        OneOfBuilder::new()
            .description(Some("a text, or 1 to 2048 texts; none may be empty"))
            .item(text())
            .item(
                ArrayBuilder::new()
                    .items(text())
                    .min_items(Some(1))
                    .max_items(Some(MAX_INPUTS)),
            )
            .into()
    }
}

impl utoipa::ToSchema for EmbeddingsInput {}

/// `encoding_format` as the OpenAPI document states it.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // a schema only: `encoding_format` is read as a string
pub(super) enum EncodingFormat {
    Float,
    Base64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(super) enum Input {
    One(String),
    Many(Vec<String>),
    /// Token ids, refused (see the module doc): parsed only to tell them from a malformed input.
    Tokens(#[allow(dead_code)] Vec<u32>),
    ManyTokens(#[allow(dead_code)] Vec<Vec<u32>>),
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub(super) struct EmbeddingsRequest {
    /// A string, or an array of 1 to 2048 strings, none empty (token-id arrays are refused).
    #[schema(value_type = EmbeddingsInput)]
    pub input: serde_json::Value,
    pub model: String,
    /// `float` (the default) or `base64`.
    #[serde(default)]
    #[schema(value_type = Option<EncodingFormat>)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Accepted and ignored, as OpenAI does.
    #[serde(default, rename = "user")]
    pub _user: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/embeddings",
    operation_id = "create_embeddings",
    tag = "embeddings",
    summary = "OpenAI-compatible embeddings with the server's default embedder",
    request_body = EmbeddingsRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the vectors", body = super::wire::EmbeddingsAnswer),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`model_not_found`: `model` is not served here", body = crate::error::ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over `server.body_limit_bytes`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn embeddings(
    _caller: Caller<role::Reader>,
    State(state): State<Shared>,
    JsonBody(req): JsonBody<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsAnswer>, ApiError> {
    let bad = |m: String| ApiError::new("invalid_request", m);
    let bad = |m: String| bad(m).on("input");
    let inputs = match serde_json::from_value::<Input>(req.input) {
        Ok(Input::One(s)) => vec![s],
        Ok(Input::Many(v)) => v,
        Ok(Input::Tokens(_) | Input::ManyTokens(_)) => {
            return Err(bad(
                "`input` holds token ids; send the texts instead: token ids from another \
                 tokenizer would embed other words (with LangChain's OpenAIEmbeddings, set \
                 check_embedding_ctx_length=False)"
                    .into(),
            ));
        }
        Err(_) => {
            return Err(bad("`input` must be a string or an array of strings".into()));
        }
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Err(bad(format!(
            "`input` holds {} strings; send 1 to {MAX_INPUTS}",
            inputs.len()
        )));
    }
    if let Some(i) = inputs.iter().position(|s| s.is_empty()) {
        return Err(bad(format!(
            "`input[{i}]` is empty; every input must have text"
        )));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::new(
                "invalid_request",
                format!("`encoding_format` {other:?}: use \"float\" or \"base64\""),
            )
            .on("encoding_format"));
        }
    };
    let engine = state.engine.clone();
    let (model, data, tokens) = blocking(move || {
        let embedder = engine.default_embedder()?.ok_or_else(|| {
            ApiError::new(
                "embedding_unavailable",
                "this server has no embedder (embedder = \"none\"); configure one to serve /v1/embeddings",
            )
        })?;
        let spec = embedder.spec();
        if req.model != spec.model && req.model != engine.options().embedder {
            return Err(ApiError::new(
                "model_not_found",
                format!(
                    "model {:?} is not served here; use {:?}",
                    req.model, spec.model
                ),
            )
            .on("model"));
        }
        if let Some(d) = req.dimensions
            && d != spec.dimensions
        {
            return Err(ApiError::new(
                "invalid_request",
                format!(
                    "`dimensions` {d}: {} produces {} dimensions",
                    spec.model, spec.dimensions
                ),
            )
            .on("dimensions"));
        }
        let texts: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let (vectors, tokens) = embedder
            .embed_counted(&texts, InputKind::Document)
            .map_err(|e| ApiError::new("embedding_unavailable", e.to_string()))?;
        Ok((spec.model.clone(), vectors, tokens.unwrap_or(0)))
    })
    .await?;
    let data = data
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Embedding::Base64(encode_base64(&bytes))
            } else {
                Embedding::Float(v)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let tokens = tokens as u64;
    Ok(Json(EmbeddingsAnswer {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// `GET /v1/models`: the model `/v1/embeddings` serves (none when the server has no embedder),
/// as OpenAI lists models, with quarry's details (the embedder's configured name, dimensions,
/// token limit and fingerprint) under `quarry`.
#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "list_models",
    tag = "embeddings",
    summary = "The model /v1/embeddings serves",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the model (none without an embedder)", body = super::wire::ModelList),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn models(
    _caller: Caller<role::Reader>,
    State(state): State<Shared>,
) -> Result<Json<ModelList>, ApiError> {
    let data: Vec<Model> = served_model(&state).await?.into_iter().collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// `GET /v1/models/{id}`: that model, by its name or the embedder's configured name.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    operation_id = "get_model",
    tag = "embeddings",
    summary = "The model, by its name or its embedder's name",
    params(("id" = String, Path, description = "the model's name or its embedder's configured name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the model", body = super::wire::Model),
        (status = 400, description = "`invalid_request` or `invalid_json`: a value the route does not take (the message names it)", body = crate::error::ErrorBody),
        (status = 404, description = "`model_not_found`", body = crate::error::ErrorBody),
    )
)]
pub(super) async fn model(
    _caller: Caller<role::Reader>,
    State(state): State<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Model>, ApiError> {
    match served_model(&state).await? {
        Some(m) if m.id == id || m.quarry.embedder == id => Ok(Json(m)),
        _ => Err(ApiError::new(
            "model_not_found",
            format!("model {id:?} is not served here; GET /v1/models lists the one that is"),
        )
        .on("model")),
    }
}

/// The model object of the server's default embedder, `None` without one.
async fn served_model(state: &Shared) -> Result<Option<Model>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        let Some(embedder) = engine.default_embedder()? else {
            return Ok(None);
        };
        let spec = embedder.spec();
        Ok(Some(Model {
            id: spec.model.clone(),
            object: "model",
            created: 0,
            owned_by: "quarry",
            quarry: ModelDetails {
                embedder: engine.options().embedder.clone(),
                provider: spec.provider.clone(),
                dimensions: spec.dimensions,
                max_tokens: spec.max_tokens,
                fingerprint: embedder.fingerprint().to_string(),
            },
        }))
    })
    .await
}

/// Standard base64 with padding (RFC 4648), as OpenAI's `encoding_format: "base64"`.
pub(super) fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_base64(input.as_bytes()), want);
        }
    }
}
