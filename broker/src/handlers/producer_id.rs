//! InitProducerId for idempotent producers (KIP-98), with epoch bumps
//! (KIP-360). Transactions are not implemented yet.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

/// Hands out a new producer id at epoch 0, or, when the client names its
/// current id and epoch (v3+, after a sequence error), the same id at the
/// next epoch; a new id once the epoch would overflow. A transactional id
/// gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED — a fatal error for the
/// client, which is right while Strata has no transaction coordinator.
pub fn init(broker: &Broker, request: &InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    let bump = *request.producer_id >= 0 && request.producer_epoch >= 0;
    if bump && request.producer_epoch < i16::MAX - 1 {
        return response
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match broker.allocate_producer_id() {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => response.with_error_code(error.code()),
    }
}
