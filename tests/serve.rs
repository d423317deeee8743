//! `strata serve` as an operator starts and stops it: a Kafka-style `--config` file with
//! `--set` overrides on top, dynamic broker configs over both, a bad value refused at
//! start, SIGINT as a clean stop, and topic ids that stay the same across the admin APIs.

mod common;

use std::process::{Command, Stdio};

use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AlterConfig, ResourceSpecifier};
use rdkafka::topic_partition_list::Offset;

fn describe(admin: &TestAdmin, resource: ResourceSpecifier<'_>) -> rdkafka::admin::ConfigResource {
    let mut results = block_on(admin.describe_configs([&resource], &admin_options()))
        .expect("DescribeConfigs request");
    results
        .remove(0)
        .unwrap_or_else(|code| panic!("DescribeConfigs failed: {code:?}"))
}

/// A described config's value and source (rdkafka's `ConfigSource` is neither `Clone`
/// nor `PartialEq`, so the source is compared by name).
fn entry(resource: &rdkafka::admin::ConfigResource, name: &str) -> (Option<String>, String) {
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} is described"));
    (entry.value.clone(), format!("{:?}", entry.source))
}

#[test]
fn config_file_sets_broker_defaults_and_set_overrides_it() {
    let root = tempfile::Builder::new()
        .prefix("strata-e2e-config-")
        .tempdir()
        .expect("temp dir");
    let config_path = root.path().join("broker.properties");
    std::fs::write(
        &config_path,
        "# Kafka property names, as in server.properties\n\
         num.partitions=3\n\
         auto.create.topics.enable = true\n\
         log.segment.bytes=2097152\n\
         log.retention.ms=3600000\n\
         message.max.bytes=500000\n\
         some.future.kafka.property=1\n",
    )
    .expect("write the config file");
    let config_arg = config_path.to_str().expect("utf-8 path").to_string();
    let broker = Broker::start_with_args(root, &["num.partitions=4"], &["--config", &config_arg]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);

    // --set wins over the file: auto-created topics get 4 partitions, not 3.
    let topic = unique_topic("configured");
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "c", 1);
    wait_for_topic(&bootstrap, &topic, 4);

    let broker_resource = describe(&admin, ResourceSpecifier::Broker(1));
    assert_eq!(
        entry(&broker_resource, "log.segment.bytes"),
        (Some("2097152".into()), "StaticBroker".to_string())
    );
    assert_eq!(
        entry(&broker_resource, "num.partitions").0.as_deref(),
        Some("4")
    );

    // A topic without overrides inherits the broker's settings through their synonyms.
    let topic_resource = describe(&admin, ResourceSpecifier::Topic(&topic));
    assert_eq!(
        entry(&topic_resource, "segment.bytes"),
        (Some("2097152".into()), "StaticBroker".to_string())
    );
    assert_eq!(
        entry(&topic_resource, "retention.ms").0.as_deref(),
        Some("3600000")
    );
    assert_eq!(
        entry(&topic_resource, "max.message.bytes").0.as_deref(),
        Some("500000")
    );
    // An unknown property is accepted with a warning, not silently.
    assert!(
        broker.stderr().contains("some.future.kafka.property"),
        "a warning names the unknown property\n{}",
        broker.stderr_tail()
    );
}

/// Dynamic broker configs (AlterConfigs on the broker resource, as Kafka's
/// `kafka-configs.sh --entity-type brokers --alter` sends them) win over the static
/// file, reach topics without overrides at once, survive a restart (they are in the
/// metadata log), and a property that needs a restart is refused.
#[test]
fn dynamic_broker_configs_override_the_file_and_survive_a_restart() {
    let mut broker = Broker::start(&["log.retention.ms=3600000"]);
    let admin = admin_client(&broker.bootstrap());
    let topic = unique_topic("dynamic");
    create_topic_with(&broker.bootstrap(), &topic, 1, &[]);

    let alter = AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "60000");
    let results = block_on(admin.alter_configs([&alter], &admin_options())).expect("AlterConfigs");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let expect_dynamic = |admin: &TestAdmin| {
        let resource = describe(admin, ResourceSpecifier::Broker(1));
        assert_eq!(
            entry(&resource, "log.retention.ms"),
            (Some("60000".into()), "DynamicBroker".to_string())
        );
        let resource = describe(admin, ResourceSpecifier::Topic(&topic));
        assert_eq!(
            entry(&resource, "retention.ms"),
            (Some("60000".into()), "DynamicBroker".to_string()),
            "a topic without an override follows the new default"
        );
    };
    expect_dynamic(&admin);

    // num.partitions needs a restart in Kafka (read-only): refused with
    // INVALID_REQUEST, nothing changes. (Sent on the wire: the rdkafka crate
    // drops AlterConfigs' per-resource errors.)
    let refused: IncrementalAlterConfigsResponse = RawClient::connect(&broker.bootstrap()).request(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("1"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("num.partitions"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("5")))]),
        ]),
    );
    let result = &refused.responses[0];
    assert_eq!(result.error_code, 42, "INVALID_REQUEST: {result:?}");
    assert!(
        result
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("Cannot update these configs dynamically")),
        "{result:?}"
    );
    expect_dynamic(&admin);

    // The cluster-wide default (resource ""), which neither rdkafka nor
    // kafka-python can name: below this broker's own value, above the file.
    let mut client = RawClient::connect(&broker.bootstrap());
    let set_default: IncrementalAlterConfigsResponse = client.request(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str(""))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("log.retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("120000"))),
                    AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("log.segment.bytes"))
                        .with_value(Some(StrBytes::from_static_str("5000000"))),
                ]),
        ]),
    );
    assert_eq!(set_default.responses[0].error_code, 0, "{set_default:?}");
    let defaults: DescribeConfigsResponse = client.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configuration_keys(None)]),
    );
    let listed: Vec<(&str, Option<&str>, i8)> = defaults.results[0]
        .configs
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_deref(), c.config_source))
        .collect();
    assert_eq!(
        listed,
        [
            ("log.retention.ms", Some("120000"), 3),
            ("log.segment.bytes", Some("5000000"), 3)
        ],
        "the default resource lists only the dynamic defaults"
    );
    let topic_resource = describe(&admin, ResourceSpecifier::Topic(&topic));
    assert_eq!(
        entry(&topic_resource, "segment.bytes"),
        (Some("5000000".into()), "DynamicDefaultBroker".to_string())
    );
    expect_dynamic(&admin);

    // Another broker's id, or one no broker has: INVALID_REQUEST, as Kafka
    // answers a broker resource sent to the wrong broker.
    let described: DescribeConfigsResponse = client.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("99"))
            .with_configuration_keys(None)]),
    );
    let altered: IncrementalAlterConfigsResponse = client.request(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("99"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("log.retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1")))]),
        ]),
    );
    let answers = [
        (
            described.results[0].error_code,
            described.results[0].error_message.clone(),
        ),
        (
            altered.responses[0].error_code,
            altered.responses[0].error_message.clone(),
        ),
    ];
    for (code, message) in answers {
        assert_eq!(code, 42, "INVALID_REQUEST: {message:?}");
        assert!(
            message.is_some_and(|m| m.contains("Unexpected broker id, expected 1 but received 99"))
        );
    }
    expect_dynamic(&admin);

    broker.stop_sigterm();
    broker.restart();
    expect_dynamic(&admin_client(&broker.bootstrap()));
}

/// Runs `strata serve ARGS` on a fresh data directory, expecting it to refuse
/// to start: it exits non-zero on its own and never listens. Returns stderr.
fn refused_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let status = wait_with_timeout(&mut child, TIMEOUT).expect("strata exits on its own");
    let output = child.wait_with_output().expect("collect output");
    assert!(!status.success(), "{args:?} must not start a broker");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening on"),
        "nothing listens for {args:?}"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_invalid_config_value_stops_the_start_with_a_clear_error() {
    let stderr = refused_start(&["--listen", "127.0.0.1:0", "--set", "num.partitions=many"]);
    assert!(
        stderr.contains("num.partitions"),
        "the error names the key: {stderr}"
    );
}

/// Kafka's single-node KRaft properties (a combined node that is the only
/// controller voter, with a controller listener) start a working broker on
/// the client listener of `listeners`.
#[test]
fn kafka_s_single_node_kraft_properties_start_a_broker() {
    let broker = Broker::start(&[
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.voters=1@127.0.0.1:9093",
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:9093",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
    ]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("kraft-properties");
    let producer: rdkafka::producer::BaseProducer =
        producer_config(&bootstrap).create().expect("producer");
    producer
        .send(rdkafka::producer::BaseRecord::<(), str>::to(&topic).payload("hello"))
        .expect("queued");
    producer.flush(TIMEOUT).expect("delivered");
    let metadata = producer
        .client()
        .fetch_metadata(Some(&topic), TIMEOUT)
        .expect("metadata");
    let brokers = metadata.brokers();
    assert_eq!(brokers.len(), 1);
    assert_eq!(
        format!("{}:{}", brokers[0].host(), brokers[0].port()),
        bootstrap,
        "the bound client listener is advertised"
    );
    assert!(
        broker.stderr().contains("controller listener not bound"),
        "{}",
        broker.stderr_tail()
    );
}

/// A configuration this release cannot honour is refused at start with one
/// line saying why, instead of a broker that would pretend to be it.
#[test]
fn a_cluster_configuration_is_refused_with_the_reason() {
    for (args, expected) in [
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--set",
                "controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095",
            ],
            "needs its controller listener",
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--set", "process.roles=broker"],
            "process.roles=broker",
        ),
        (
            vec!["--set", "listeners=SSL://127.0.0.1:0"],
            "only PLAINTEXT",
        ),
    ] {
        let stderr = refused_start(&args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn sigint_stops_cleanly_and_the_data_is_served_after_restart() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("sigint");
    create_topic(&broker.bootstrap(), &topic, 1);
    let producer = create_producer(producer_config(&broker.bootstrap()).set("acks", "all"));
    let values = produce_numbered(&producer, &topic, 0, "kept", 50);
    drop(producer);

    broker.stop_sigint();
    assert!(
        broker.data_dir().join(".kafka_cleanshutdown").exists(),
        "a clean stop leaves the clean-shutdown marker"
    );
    broker.restart();
    let consumer = assigned_consumer(&broker.bootstrap(), &topic, &[(0, Offset::Beginning)]);
    let received = consume_n(&consumer, values.len());
    assert_values_in_order(&received, &values);
}

#[test]
fn topic_ids_agree_across_create_metadata_and_delete() {
    let broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let name = unique_topic("ids");
    let topic_name = || TopicName(StrBytes::from_string(name.clone()));

    let created: CreateTopicsResponse = client.request(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name())
                .with_num_partitions(2)
                .with_replication_factor(1)]),
    );
    let result = &created.topics[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    assert!(
        !result.topic_id.is_nil(),
        "CreateTopics v7 returns the topic id"
    );
    assert_eq!(result.num_partitions, 2);
    let topic_id = result.topic_id;

    let metadata = |client: &mut RawClient| -> MetadataResponse {
        client.request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name()))
            ])),
        )
    };
    let described = metadata(&mut client);
    assert_eq!(described.topics[0].error_code, 0);
    assert_eq!(
        described.topics[0].topic_id, topic_id,
        "same id in Metadata"
    );
    assert_eq!(described.topics[0].partitions.len(), 2);

    let deleted: DeleteTopicsResponse = client.request(
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![DeleteTopicState::default().with_topic_id(topic_id)]),
    );
    assert_eq!(
        deleted.responses[0].error_code, 0,
        "{:?}",
        deleted.responses[0]
    );
    assert_eq!(
        deleted.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some(name.as_str()),
        "deleting by id names the topic"
    );
    assert_eq!(
        metadata(&mut client).topics[0].error_code,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION once deleted"
    );
}
