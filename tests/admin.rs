//! The admin API through librdkafka's admin client: create, describe, alter, grow and
//! delete topics; auto-creation on produce.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::BaseConsumer;
use rdkafka::types::RDKafkaErrorCode;
use strata_protocol::kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use strata_protocol::kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey,
};
use strata_protocol::kafka_protocol::protocol::StrBytes;

fn describe_topic(admin: &TestAdmin, topic: &str) -> rdkafka::admin::ConfigResource {
    let mut results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()))
            .expect("DescribeConfigs request");
    assert_eq!(results.len(), 1, "one resource described");
    results
        .remove(0)
        .unwrap_or_else(|code| panic!("DescribeConfigs for topic {topic} failed: {code:?}"))
}

fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let client: BaseConsumer = client_config(bootstrap).create().expect("client");
    let metadata = client
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
}

#[test]
fn create_topic_with_partitions_and_configs_then_describe() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);
    let topic = unique_topic("created");

    let new_topic = NewTopic::new(&topic, 4, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("cleanup.policy", "compact");
    let results = block_on(admin.create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(topic.clone())], "CreateTopics result");
    wait_for_topic(&bootstrap, &topic, 4);

    let resource = describe_topic(&admin, &topic);
    let retention = resource
        .get("retention.ms")
        .expect("retention.ms described");
    assert_eq!(
        retention.value.as_deref(),
        Some("3600000"),
        "retention.ms value"
    );
    assert_eq!(
        retention.source,
        ConfigSource::DynamicTopic,
        "a config set at creation is a dynamic topic config"
    );
    assert!(!retention.is_default, "retention.ms is not the default");
    let cleanup = resource
        .get("cleanup.policy")
        .expect("cleanup.policy described");
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    assert_eq!(cleanup.source, ConfigSource::DynamicTopic);

    let segment = resource
        .get("segment.bytes")
        .expect("segment.bytes described");
    assert_eq!(
        segment.value.as_deref(),
        Some("1073741824"),
        "segment.bytes default value (Kafka's default)"
    );
    assert_eq!(
        segment.source,
        ConfigSource::Default,
        "an unset config comes from the default"
    );
    assert!(segment.is_default, "segment.bytes is_default");
    let max_message = resource
        .get("max.message.bytes")
        .expect("max.message.bytes described");
    assert_eq!(max_message.value.as_deref(), Some("1048588"));

    // Creating the same topic again fails with TOPIC_ALREADY_EXISTS (36).
    let again = block_on(admin.create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics request");
    assert_eq!(
        again,
        vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
    );
}

#[test]
fn create_partitions_grows_a_topic_and_new_partitions_work() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);
    let topic = unique_topic("grow");
    create_topic(&bootstrap, &topic, 2);

    let results =
        block_on(admin.create_partitions([&NewPartitions::new(&topic, 5)], &admin_options()))
            .expect("CreatePartitions request");
    assert_eq!(results, vec![Ok(topic.clone())], "CreatePartitions result");
    wait_for_topic(&bootstrap, &topic, 5);

    // Shrinking is refused (INVALID_PARTITIONS, 37).
    let results =
        block_on(admin.create_partitions([&NewPartitions::new(&topic, 3)], &admin_options()))
            .expect("CreatePartitions request");
    assert_eq!(
        results,
        vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]
    );
    assert_eq!(partition_count(&bootstrap, &topic), Some(5));

    // A new partition accepts and serves messages.
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic, 4, "new-partition", 20);
    let received = consume_partition(&bootstrap, &topic, 4, values.len());
    assert_values_in_order(&received, &values);
}

#[test]
fn alter_configs_changes_describe_and_replaces_the_set() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);
    let topic = unique_topic("alter");
    create_topic_with(
        &bootstrap,
        &topic,
        1,
        &[
            ("retention.ms", "3600000"),
            ("max.message.bytes", "2000000"),
        ],
    );

    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "7200000");
    let results =
        block_on(admin.alter_configs([&alter], &admin_options())).expect("AlterConfigs request");
    assert_eq!(results.len(), 1);
    assert!(results[0].is_ok(), "AlterConfigs result: {:?}", results[0]);

    let resource = describe_topic(&admin, &topic);
    let retention = resource
        .get("retention.ms")
        .expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("7200000"), "altered value");
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    // AlterConfigs (the non-incremental API) replaces the whole set of topic overrides,
    // so max.message.bytes goes back to its default, as in Kafka.
    let max_message = resource
        .get("max.message.bytes")
        .expect("max.message.bytes described");
    assert_eq!(
        max_message.value.as_deref(),
        Some("1048588"),
        "AlterConfigs replaces all overrides: max.message.bytes back to default"
    );
    assert_eq!(max_message.source, ConfigSource::Default);

    // An unknown config name is refused (INVALID_CONFIG, 40) and changes nothing.
    // rust-rdkafka 0.39's alter_configs drops per-resource errors (it reports every
    // resource as Ok), so the error code is checked on the wire.
    let mut raw = RawClient::connect(&bootstrap);
    let request =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("no.such.config"))
                .with_value(Some(StrBytes::from_static_str("1")))])]);
    let response: AlterConfigsResponse = raw.request(ApiKey::AlterConfigs, 2, &request);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(
        response.responses[0].error_code, 40,
        "INVALID_CONFIG for an unknown config name: {:?}",
        response.responses[0]
    );
    let resource = describe_topic(&admin, &topic);
    assert_eq!(
        resource
            .get("retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("7200000")
    );
}

#[test]
fn delete_topic_removes_it_from_metadata() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);
    let topic = unique_topic("deleted");
    create_topic(&bootstrap, &topic, 2);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "doomed", 10);
    drop(producer);

    let results =
        block_on(admin.delete_topics(&[&topic], &admin_options())).expect("DeleteTopics request");
    assert_eq!(results, vec![Ok(topic.clone())], "DeleteTopics result");

    let deadline = Instant::now() + TIMEOUT;
    while partition_count(&bootstrap, &topic).is_some() {
        assert!(Instant::now() < deadline, "topic {topic} still in metadata");
        thread::sleep(Duration::from_millis(100));
    }
    // Its data directories are gone eventually too.
    let deadline = Instant::now() + TIMEOUT;
    while broker.partition_dir(&topic, 0).exists() || broker.partition_dir(&topic, 1).exists() {
        assert!(
            Instant::now() < deadline,
            "partition directories of deleted topic {topic} still exist"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // Deleting it again: UNKNOWN_TOPIC_OR_PARTITION (3).
    let results =
        block_on(admin.delete_topics(&[&topic], &admin_options())).expect("DeleteTopics request");
    assert_eq!(
        results,
        vec![Err((
            topic.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // A topic with the same name can be created again, empty.
    create_topic(&bootstrap, &topic, 1);
    assert_eq!(
        high_watermark(&bootstrap, &topic, 0),
        0,
        "recreated topic is empty"
    );
}

#[test]
fn producing_to_an_unknown_topic_auto_creates_it() {
    let broker = Broker::start(&["auto.create.topics.enable=true", "num.partitions=2"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("auto");
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic, 0, "auto", 10);
    assert_eq!(
        partition_count(&bootstrap, &topic),
        Some(2),
        "num.partitions=2"
    );
    let received = consume_partition(&bootstrap, &topic, 0, values.len());
    assert_values_in_order(&received, &values);
}

#[test]
fn auto_create_is_on_by_default_as_in_kafka() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("auto-default");
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic, 0, "auto", 3);
    assert_eq!(
        partition_count(&bootstrap, &topic),
        Some(1),
        "num.partitions defaults to 1"
    );
    let received = consume_partition(&bootstrap, &topic, 0, values.len());
    assert_values_in_order(&received, &values);
}

#[test]
fn auto_create_disabled_leaves_unknown_topics_unknown() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("no-auto");
    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    let metadata = client
        .fetch_metadata(Some(&topic), TIMEOUT)
        .expect("metadata");
    let entry = metadata.topics().iter().find(|t| t.name() == topic);
    assert!(
        !entry.is_some_and(|t| t.error().is_none()),
        "unknown topic reported without error: {:?}",
        entry.map(|t| t.partitions().len())
    );
    assert_eq!(partition_count(&bootstrap, &topic), None);
}

#[test]
fn create_topic_validation_errors_match_kafka() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);
    let create = |new_topic: NewTopic<'_>| {
        block_on(admin.create_topics([&new_topic], &admin_options())).expect("CreateTopics request")
    };

    let name = unique_topic("rf3");
    assert_eq!(
        create(NewTopic::new(&name, 1, TopicReplication::Fixed(3))),
        vec![Err((
            name.clone(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))],
        "replication factor 3 on a single broker"
    );
    let name = unique_topic("unknown-config");
    assert_eq!(
        create(NewTopic::new(&name, 1, TopicReplication::Fixed(1)).set("no.such.config", "1")),
        vec![Err((name.clone(), RDKafkaErrorCode::InvalidConfig))],
        "an unknown topic config"
    );
    let name = unique_topic("bad-value");
    assert_eq!(
        create(NewTopic::new(&name, 1, TopicReplication::Fixed(1)).set("retention.ms", "soon")),
        vec![Err((name.clone(), RDKafkaErrorCode::InvalidConfig))],
        "a non-numeric retention.ms"
    );
    let name = unique_topic("bad-policy");
    assert_eq!(
        create(
            NewTopic::new(&name, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "forever")
        ),
        vec![Err((name.clone(), RDKafkaErrorCode::InvalidConfig))],
        "an invalid cleanup.policy"
    );
    // None of them exists afterwards.
    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    let metadata = client.fetch_metadata(None, TIMEOUT).expect("metadata");
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("rf3")
            || n.starts_with("unknown-config")
            || n.starts_with("bad-value")
            || n.starts_with("bad-policy")),
        "a refused topic was created: {names:?}"
    );

    // validate_only checks without creating.
    let name = unique_topic("validate-only");
    let results = block_on(admin.create_topics(
        [&NewTopic::new(&name, 2, TopicReplication::Fixed(1))],
        &admin_options().validate_only(true),
    ))
    .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(name.clone())], "validate_only result");
    assert_eq!(
        partition_count(&bootstrap, &name),
        None,
        "validate_only created the topic"
    );
}
