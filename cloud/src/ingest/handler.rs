//! `POST /api/v1/ingest`.

use super::{StoreError, StoreOutcome, store_batch_with};
use crate::gateways;
use crate::http::AppState;
use crate::http::problem::{AppError, Problem};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use dcmms_shared::api::BATCH_CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    /// Committed by this request.
    Stored,
    /// Committed earlier; this request wrote nothing.
    Duplicate,
}

/// Acknowledgement of a batch. Sent only once the batch is committed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IngestAck {
    pub gateway_id: String,
    /// The batch covers `first_sequence..=sequence`.
    pub first_sequence: u64,
    pub sequence: u64,
    pub status: IngestStatus,
    /// Samples written by this request (0 for a duplicate).
    pub samples: usize,
}

/// Accepts one encoded batch from an authenticated gateway.
#[utoipa::path(
    post,
    path = "/api/v1/ingest",
    tag = "ingest",
    request_body(content = Vec<u8>, content_type = "application/vnd.dcmms.batch",
        description = "One batch in the dCMMS wire format (docs/specs/wire-format.md)"),
    responses(
        (status = 200, description = "Committed, now or by an earlier request", body = IngestAck),
        (status = 400, description = "Malformed batch", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong gateway credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Batch names another gateway", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The sequence range partially overlaps a stored batch; nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong content type", body = Problem, content_type = "application/problem+json"),
    ),
    security(("gateway_credential" = []))
)]
pub async fn ingest(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IngestAck>, AppError> {
    let t = std::time::Instant::now();
    let gateway_id = match gateways::from_headers(&st.db, &headers).await {
        Ok(g) => g,
        Err(e) => {
            st.metrics.ingest_rejected("unauthorized");
            return Err(e);
        }
    };
    let t = super::phases::record(super::phases::Phase::Auth, t);
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.split(';').next().map(str::trim) != Some(BATCH_CONTENT_TYPE) {
        st.metrics.ingest_rejected("media_type");
        return Err(AppError::UnsupportedMediaType {
            detail: format!("expected Content-Type {BATCH_CONTENT_TYPE}, got {ctype:?}"),
        });
    }
    let batch = dcmms_shared::wire::decode(&body).map_err(|e| {
        st.metrics.ingest_rejected("malformed");
        tracing::warn!(gateway = %gateway_id, error = %e, "malformed batch");
        AppError::MalformedBody {
            detail: e.to_string(),
        }
    })?;
    super::phases::record(super::phases::Phase::Decode, t);
    if batch.gateway_id != gateway_id {
        st.metrics.ingest_rejected("forbidden");
        return Err(AppError::Forbidden {
            detail: format!(
                "credential is for gateway {gateway_id:?} but the batch names {:?}",
                batch.gateway_id
            ),
        });
    }
    let outcome = store_batch_with(&st.db, &st.caches, &batch)
        .await
        .map_err(|e| match e {
            StoreError::Db(e) => AppError::from(e),
            e @ StoreError::SequenceConflict { .. } => {
                st.metrics.ingest_rejected("conflict");
                tracing::warn!(gateway = %gateway_id, error = %e, "sequence conflict");
                AppError::SequenceConflict {
                    detail: e.to_string(),
                }
            }
            e => {
                st.metrics.ingest_rejected("malformed");
                AppError::MalformedBody {
                    detail: e.to_string(),
                }
            }
        })?;
    let (status, samples) = match outcome {
        StoreOutcome::Stored { samples } => {
            // Committed: let the alarm evaluator look at it (never waited on).
            st.caches.alarm_wake.notify_one();
            (IngestStatus::Stored, samples)
        }
        StoreOutcome::Duplicate => (IngestStatus::Duplicate, 0),
    };
    st.metrics.ingest_accepted(status, samples);
    tracing::debug!(gateway = %gateway_id, sequence = batch.sequence, ?status, samples, "batch ingested");
    Ok(Json(IngestAck {
        gateway_id,
        first_sequence: batch.first_sequence,
        sequence: batch.sequence,
        status,
        samples,
    }))
}
