//! Constants of the edge → cloud uplink contract.

/// Path of the cloud's ingest endpoint.
pub const INGEST_PATH: &str = "/api/v1/ingest";

/// Media type of an encoded batch (see `docs/specs/wire-format.md`).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.dcmms.batch";

/// Media type of every error body the cloud returns (RFC 9457).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Builds the bearer credential a gateway presents: `<gateway_id>.<secret>`.
pub fn gateway_credential(gateway_id: &str, secret: &str) -> String {
    format!("{gateway_id}.{secret}")
}

/// Splits a gateway credential into gateway id and secret.
///
/// The secret is everything after the last `.`, so gateway ids may contain dots.
pub fn split_gateway_credential(credential: &str) -> Option<(&str, &str)> {
    let (id, secret) = credential.rsplit_once('.')?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_round_trips_with_dotted_gateway_ids() {
        let c = gateway_credential("site.a.gw1", "s3cret");
        assert_eq!(split_gateway_credential(&c), Some(("site.a.gw1", "s3cret")));
    }

    #[test]
    fn credential_without_separator_or_parts_is_rejected() {
        assert_eq!(split_gateway_credential("nodot"), None);
        assert_eq!(split_gateway_credential(".secret"), None);
        assert_eq!(split_gateway_credential("gw."), None);
    }
}
