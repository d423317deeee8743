//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and
//! brokers. A broker resource is this broker's id or "" (the cluster-wide
//! default); its dynamic configs are kept in the metadata log and layered
//! over the static configuration, as in Kafka.

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
use crate::metadata::ConfigResource;

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
                            &broker.config(),
                            &topic.stored.configs,
                            keys,
                            request.include_synonyms,
                            request.include_documentation,
                        )
                    })
                    .ok_or_else(|| ApiError::from(ResponseError::UnknownTopicOrPartition)),
                BROKER => check_broker_name(broker, &resource.resource_name).map(|()| {
                    let describe = if resource.resource_name.is_empty() {
                        config::describe_broker_defaults
                    } else {
                        config::describe_broker
                    };
                    describe(
                        &broker.config(),
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
            let outcome = alter_resource(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |_, _| {
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
            let outcome = alter_resource(
                broker,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |current, kind| {
                    let apply = match kind {
                        Kind::Topic => config::apply_incremental,
                        Kind::Broker => config::apply_incremental_broker,
                    };
                    let mut overrides = current.clone();
                    for entry in &resource.configs {
                        apply(
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

/// Which kind of resource an alter names.
#[derive(Clone, Copy)]
enum Kind {
    Topic,
    Broker,
}

/// The part both alter forms share: resolve the resource, compute the new
/// overrides from the current ones, validate them, then store and apply them
/// unless only validating.
fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    next: impl FnOnce(&BTreeMap<String, String>, Kind) -> Result<BTreeMap<String, String>, ApiError>,
) -> Result<(), ApiError> {
    match resource_type {
        TOPIC => {
            let topic = broker
                .topic(name)
                .ok_or(ResponseError::UnknownTopicOrPartition)?;
            let overrides = next(&topic.stored.configs, Kind::Topic)?;
            config::validate_topic_configs(&overrides)
                .map_err(|e| invalid_config(e.to_string()))?;
            if validate_only {
                return Ok(());
            }
            broker.set_topic_configs(name, overrides)
        }
        BROKER => {
            check_broker_name(broker, name)?;
            let current = broker
                .image()
                .configs(&ConfigResource::Broker(name.to_string()));
            let overrides = next(&current, Kind::Broker)?;
            for (key, value) in &overrides {
                config::validate_dynamic_broker_config(key, value)
                    .map_err(|e| ApiError::new(config_error_code(&e), e.to_string()))?;
            }
            if validate_only {
                return Ok(());
            }
            broker.set_broker_configs(name, overrides)
        }
        other => Err(unsupported_resource(other)),
    }
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
