//! `POST /v1/collections/{c}/documents` (upsert a batch) and `DELETE .../documents/{id}`.

use super::{Shared, blocking};
use crate::error::ApiError;
use crate::extract::JsonBody;
use axum::Json;
use axum::extract::{Path, State};
use quarry_index::{Change, IngestOptions, IngestSummary, ingest_records};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub documents: Vec<serde_json::Value>,
}

pub async fn upsert(
    State(state): State<Shared>,
    Path(collection): Path<String>,
    JsonBody(req): JsonBody<UpsertRequest>,
) -> Result<Json<IngestSummary>, ApiError> {
    if req.documents.is_empty() {
        return Err(ApiError::new(
            "invalid_request",
            "`documents` is empty; send at least one document",
        ));
    }
    let opts = IngestOptions {
        collection,
        ..state.options.ingest.clone()
    };
    let summary =
        blocking(move || Ok(ingest_records(&state.engine, req.documents, &opts, "api")?)).await?;
    Ok(Json(summary))
}

pub async fn delete(
    State(state): State<Shared>,
    Path((collection, doc_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        state.engine.collection(&collection)?;
        let stats = state
            .engine
            .apply(&collection, vec![Change::Delete(doc_id.clone())])?;
        if stats.deleted == 0 {
            return Err(ApiError::new(
                "document_not_found",
                format!("document `{doc_id}` not found in `{collection}`"),
            ));
        }
        Ok(Json(
            serde_json::json!({"deleted": doc_id, "generation": stats.generation}),
        ))
    })
    .await
}
