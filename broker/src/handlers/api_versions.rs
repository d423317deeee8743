//! ApiVersions: what this broker speaks (KIP-35, KIP-511).

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

/// Lists the supported APIs. The client's software name and version
/// (KIP-511, v3+) are logged for diagnosis.
///
/// Feature fields stay at their defaults so the encoder writes no tagged
/// fields: librdkafka before 2.2 mis-parses ApiVersions responses that carry
/// them.
pub fn handle(request: &ApiVersionsRequest) -> ApiVersionsResponse {
    if !request.client_software_name.is_empty() {
        tracing::debug!(
            client = %request.client_software_name.as_str(),
            version = %request.client_software_version.as_str(),
            "ApiVersions"
        );
    }
    ApiVersionsResponse::default().with_api_keys(super::supported_versions())
}
