//! Helpers for tests of several brokers: a cluster whose links can be cut,
//! waiting for a condition, and what one broker says about a topic's
//! partitions (leaders, in-sync replicas, log end offsets).

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;

use super::*;

/// Polls `condition` until it holds (60 s at most).
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// What one broker's Metadata says: broker ids, and each partition's leader.
pub fn view(bootstrap: &str, topic: &str) -> (BTreeSet<i32>, BTreeMap<i32, i32>) {
    let client: BaseConsumer = client_config(bootstrap).create().expect("client");
    let Ok(metadata) = client.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Default::default();
    };
    let brokers = metadata.brokers().iter().map(|b| b.id()).collect();
    let leaders = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| (p.id(), p.leader())))
        .collect();
    (brokers, leaders)
}

/// The partitions of `topic` as one broker's Metadata (v9) describes them.
pub fn partitions_of(
    bootstrap: &str,
    topic: &str,
) -> Vec<kafka_protocol::messages::metadata_response::MetadataResponsePartition> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
    let request =
        MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(topic.to_string().into())))]));
    let response: MetadataResponse =
        RawClient::connect(bootstrap).request(ApiKey::Metadata, 9, &request);
    response
        .topics
        .into_iter()
        .next()
        .map(|t| t.partitions)
        .unwrap_or_default()
}

/// The log end offset one broker's `/metrics` reports for a partition of
/// `topic` (only a broker holding a replica reports it).
pub fn log_end_offset(broker: &Broker, topic: &str, partition: i32) -> Option<f64> {
    partition_sample(broker, "strata_partition_log_end_offset", topic, partition)
}

/// The log start offset one broker's `/metrics` reports for a partition.
pub fn log_start_offset(broker: &Broker, topic: &str, partition: i32) -> Option<f64> {
    partition_sample(
        broker,
        "strata_partition_log_start_offset",
        topic,
        partition,
    )
}

fn partition_sample(broker: &Broker, metric: &str, topic: &str, partition: i32) -> Option<f64> {
    let text = get_ok(&broker.metrics_address(), "/metrics");
    sample(
        &text,
        &format!("{metric}{{topic=\"{topic}\",partition=\"{partition}\"}}"),
    )
}

/// A partition's in-sync replicas as one broker's Metadata says.
pub fn in_sync_replicas(bootstrap: &str, topic: &str, partition: i32) -> Vec<i32> {
    partitions_of(bootstrap, topic)
        .iter()
        .find(|p| p.partition_index == partition)
        .map(|p| p.isr_nodes.iter().map(|id| id.0).collect())
        .unwrap_or_default()
}

/// Short heartbeats and session timeout: a killed broker is fenced (and its
/// partitions led elsewhere) within 1.5 s; and a replica fetcher whose fetch
/// went unanswered (bytes lost in a network cut) reconnects after 3 s.
pub const FAST_FENCING: [&str; 3] = [
    "broker.heartbeat.interval.ms=100",
    "broker.session.timeout.ms=1500",
    "replica.socket.timeout.ms=3000",
];

/// Adds [`FAST_FENCING`] to every node's settings.
pub fn with_fast_fencing(mut settings: Vec<Vec<String>>) -> Vec<Vec<String>> {
    for node in &mut settings {
        node.extend(FAST_FENCING.iter().map(|s| s.to_string()));
    }
    settings
}

/// Three combined nodes (with [`FAST_FENCING`]) that reach each other only
/// through fault-injecting proxies on loopback: one per pair of nodes for
/// the controller channel, and one in front of each node's client listener
/// (its advertised address, so clients and followers fetching from it go
/// through it too). Ports are fixed, so a node restarts behind the same
/// proxies.
pub struct ProxiedCluster {
    pub brokers: Vec<Broker>,
    /// controller[a][b]: how node a+1 reaches node b+1's controller listener.
    controller: Vec<Vec<Option<FaultProxy>>>,
    /// client[b]: how everyone else reaches node b+1.
    client: Vec<FaultProxy>,
}

impl ProxiedCluster {
    pub fn start() -> ProxiedCluster {
        let ports = free_ports(6);
        let (controller_ports, client_ports) = ports.split_at(3);
        let controller: Vec<Vec<Option<FaultProxy>>> = (0..3)
            .map(|a| {
                (0..3)
                    .map(|b| (a != b).then(|| FaultProxy::start(controller_ports[b])))
                    .collect()
            })
            .collect();
        let client: Vec<FaultProxy> = client_ports.iter().map(|p| FaultProxy::start(*p)).collect();
        let mut settings = cluster_settings_via(controller_ports, |node, voter| match &controller
            [node - 1][voter - 1]
        {
            Some(proxy) => format!("127.0.0.1:{}", proxy.port),
            None => format!("127.0.0.1:{}", controller_ports[voter - 1]),
        });
        for (i, node) in settings.iter_mut().enumerate() {
            for setting in node.iter_mut() {
                if setting.starts_with("listeners=") {
                    *setting = format!(
                        "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                        client_ports[i], controller_ports[i]
                    );
                }
            }
            node.push(format!(
                "advertised.listeners=PLAINTEXT://127.0.0.1:{}",
                client[i].port
            ));
        }
        let brokers = Broker::start_together(&with_fast_fencing(settings));
        ProxiedCluster {
            brokers,
            controller,
            client,
        }
    }

    /// How clients reach node `index + 1` (through its proxy).
    pub fn address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.client[index].port)
    }

    /// Every node's proxied address, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        (0..self.client.len())
            .map(|i| self.address(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts node `index + 1` off from everyone: no byte reaches it or leaves
    /// it through any proxy (a direct connection to its own port still
    /// works).
    pub fn cut_off(&self, index: usize) {
        self.client[index].black_hole();
        for other in (0..self.client.len()).filter(|o| *o != index) {
            for (a, b) in [(index, other), (other, index)] {
                self.controller[a][b].as_ref().unwrap().black_hole();
            }
        }
    }

    /// Heals every link.
    pub fn heal(&self) {
        for proxy in self
            .controller
            .iter()
            .flatten()
            .flatten()
            .chain(&self.client)
        {
            proxy.heal();
        }
    }
}

/// The group's coordinator as the broker at `bootstrap` says (FindCoordinator
/// v1), or the error code it answers with.
pub fn find_coordinator(bootstrap: &str, group: &str) -> Result<i32, i16> {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    let mut client = RawClient::connect(bootstrap);
    let request = FindCoordinatorRequest::default().with_key(
        kafka_protocol::protocol::StrBytes::from_string(group.to_string()),
    );
    let response: FindCoordinatorResponse = client.request(ApiKey::FindCoordinator, 1, &request);
    match response.error_code {
        0 => Ok(response.node_id.0),
        error => Err(error),
    }
}

/// The group's coordinator, which the broker at `bootstrap` must know.
pub fn coordinator_of(bootstrap: &str, group: &str) -> i32 {
    find_coordinator(bootstrap, group)
        .unwrap_or_else(|error| panic!("FindCoordinator for {group}: error {error}"))
}

/// The settings of broker-only node `node_id`, following the voters that
/// `voter` (one voter's settings) names, its controller listener on `port`.
pub fn broker_only_settings(voter: &[String], node_id: i32, port: u16) -> Vec<String> {
    let voters = voter
        .iter()
        .find(|s| s.starts_with("controller.quorum.voters="))
        .expect("a voter's settings")
        .clone();
    vec![
        format!("node.id={node_id}"),
        "process.roles=broker".to_string(),
        voters,
        format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
        "controller.listener.names=CONTROLLER".to_string(),
    ]
}

/// Three voters (1, 2, 3) and a broker-only node 4, with [`FAST_FENCING`]
/// and `extra` settings: two brokers can be down while the quorum stays.
pub fn four_nodes(extra: &[&str]) -> Vec<Broker> {
    let ports = free_ports(4);
    let mut settings = cluster_settings_via(&ports[..3], |_, voter| {
        format!("127.0.0.1:{}", ports[voter - 1])
    });
    settings.push(broker_only_settings(&settings[0], 4, ports[3]));
    let mut settings = with_fast_fencing(settings);
    for node in &mut settings {
        node.extend(extra.iter().map(|s| s.to_string()));
    }
    let mut brokers = Broker::start_together(&settings[..3]);
    brokers.extend(Broker::start_together(&settings[3..]));
    brokers
}
