//! DescribeCluster (KIP-700): the brokers and the controller; from v2
//! (KIP-1073) the fenced brokers too when asked, marked as such.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::metadata::{live_brokers, registered_brokers};
use super::str_bytes;
use crate::broker::Broker;

/// Endpoint type 1 asks for brokers; 2 (controllers, v1+) gets Kafka's
/// UNSUPPORTED_ENDPOINT_TYPE, since Strata has no separate controller
/// listener.
pub fn describe(broker: &Broker, request: &DescribeClusterRequest) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default().with_endpoint_type(1);
    if request.endpoint_type != 1 {
        return response
            .with_error_code(kafka_protocol::error::ResponseError::UnsupportedEndpointType.code())
            .with_endpoint_type(request.endpoint_type);
    }
    let image = broker.image();
    let brokers = if request.include_fenced_brokers {
        registered_brokers(&image)
    } else {
        live_brokers(&image)
    };
    response
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(
            brokers
                .into_iter()
                .map(|live| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(live.id))
                        .with_host(str_bytes(live.host))
                        .with_port(live.port)
                        .with_rack(live.rack.map(str_bytes))
                        .with_is_fenced(live.fenced)
                })
                .collect(),
        )
}
