//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and
//! describing the broker's static configuration).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::config;
use crate::error::{error_fields, ApiError};

/// ConfigResource types (KIP-133).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub fn describe(broker: &Broker, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .map(|keys| keys.iter().map(|k| k.to_string()).collect());
            let keys = keys.as_deref();
            let outcome = match resource.resource_type {
                TOPIC => broker
                    .topic(&resource.resource_name)
                    .map(|topic| {
                        config::describe_topic(
                            &broker.config,
                            &topic.stored.configs,
                            keys,
                            request.include_synonyms,
                            request.include_documentation,
                        )
                    })
                    .ok_or_else(|| ApiError::from(ResponseError::UnknownTopicOrPartition)),
                BROKER => check_broker_name(broker, &resource.resource_name).map(|()| {
                    config::describe_broker(
                        &broker.config,
                        keys,
                        request.include_synonyms,
                        request.include_documentation,
                    )
                }),
                other => Err(unsupported_resource(other)),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(configs) => result.with_configs(configs),
                Err(error) => result
                    .with_error_code(error.code())
                    .with_error_message(error.message_str()),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// AlterConfigs (the legacy whole-set form): a topic's overrides become
/// exactly the given set.
pub fn alter(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let outcome = alter_topic(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |_| {
                    let mut overrides = BTreeMap::new();
                    for entry in &resource.configs {
                        let value = entry.value.as_ref().ok_or_else(|| {
                            invalid_config(format!(
                                "Null value not supported for: {}",
                                entry.name.as_str()
                            ))
                        })?;
                        overrides.insert(entry.name.to_string(), value.to_string());
                    }
                    Ok(overrides)
                },
            );
            let (error_code, error_message) = error_fields(&outcome);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND, SUBTRACT per key.
pub fn incremental_alter(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let outcome = alter_topic(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |current| {
                    let mut overrides = current.clone();
                    for entry in &resource.configs {
                        config::apply_incremental(
                            &mut overrides,
                            entry.config_operation,
                            entry.name.as_str(),
                            entry.value.as_deref(),
                        )
                        .map_err(|e| ApiError::new(config_error_code(&e), e.to_string()))?;
                    }
                    Ok(overrides)
                },
            );
            let (error_code, error_message) = error_fields(&outcome);
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The part both alter forms share: resolve the resource, compute the new
/// overrides from the current ones, validate them, then store and apply them
/// unless only validating.
fn alter_topic(
    broker: &Broker,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    next: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
) -> Result<(), ApiError> {
    match resource_type {
        TOPIC => {}
        BROKER => {
            check_broker_name(broker, name)?;
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Strata does not support dynamic broker configs yet; set them in --config or --set",
            ));
        }
        other => return Err(unsupported_resource(other)),
    }
    let topic = broker
        .topic(name)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let overrides = next(&topic.stored.configs)?;
    config::validate_topic_configs(&overrides).map_err(|e| invalid_config(e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    broker.set_topic_configs(name, overrides)
}

/// A broker resource names this broker's id, or is empty for the
/// cluster-wide default.
fn check_broker_name(broker: &Broker, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name == broker.node_id.to_string() {
        Ok(())
    } else {
        Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} but received {name}",
                broker.node_id
            ),
        ))
    }
}

fn unsupported_resource(resource_type: i8) -> ApiError {
    ApiError::new(
        ResponseError::InvalidRequest,
        format!("Unsupported resource type {resource_type}"),
    )
}

fn invalid_config(message: String) -> ApiError {
    ApiError::new(ResponseError::InvalidConfig, message)
}

fn config_error_code(error: &config::ConfigError) -> ResponseError {
    ResponseError::try_from_code(error.kafka_error_code()).unwrap_or(ResponseError::InvalidConfig)
}
