//! Per-API request metrics: how many requests of each API and version, how
//! long they took, and which error codes their responses carried.
//!
//! Series are created on first use (so only APIs clients actually call show
//! up) and their handles cached in arrays indexed by API key and version:
//! after the first request of a kind, counting one is an atomic add and a
//! histogram observation, with no label hashing.

use std::sync::OnceLock;
use std::time::Instant;

use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{ApiName, ErrorName};

/// API keys below this get cached handles (Kafka's keys run to about 90).
const API_SLOTS: usize = 128;
/// Versions below this get cached handles (no API is past version 20 yet).
const VERSION_SLOTS: usize = 32;

/// Upper bounds of the latency buckets, in seconds: from 100 µs (an
/// ApiVersions on loopback) to 30 s (a fetch's `max_wait_ms` is usually at
/// most a few seconds; anything slower lands in +Inf).
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: ApiName,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiVersionLabels {
    api: ApiName,
    version: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    api: ApiName,
    error: ErrorName,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The request families and the cached handles into them.
pub struct RequestMetrics {
    requests: Family<ApiVersionLabels, Counter>,
    latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    errors: Family<ApiErrorLabels, Counter>,
    /// `requests` handles at `api_key * VERSION_SLOTS + version`.
    cached_requests: Box<[OnceLock<Counter>]>,
    /// `latency` handles at `api_key`.
    cached_latency: Box<[OnceLock<Histogram>]>,
}

impl RequestMetrics {
    pub(super) fn register(registry: &mut Registry) -> RequestMetrics {
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests handled, per API and API version",
            requests.clone(),
        );
        let latency = Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a request's turn to be handled until its response was written to the socket, per API (a fetch's long-poll wait included)",
            Unit::Seconds,
            latency.clone(),
        );
        let errors = Family::default();
        registry.register(
            "request_errors",
            "Error codes in responses, per API and error: top-level codes and each topic's, partition's or resource's",
            errors.clone(),
        );
        RequestMetrics {
            requests,
            latency,
            errors,
            cached_requests: (0..API_SLOTS * VERSION_SLOTS)
                .map(|_| OnceLock::new())
                .collect(),
            cached_latency: (0..API_SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts a request and starts its latency timer, which records when
    /// dropped (after the response was written, or when the connection
    /// gives up on it).
    pub fn start(&self, api_key: ApiKey, version: i16) -> RequestTimer<'_> {
        let api = api_key as i16;
        let slot = usize::try_from(api)
            .ok()
            .filter(|&api| api < API_SLOTS)
            .zip(usize::try_from(version).ok().filter(|&v| v < VERSION_SLOTS));
        let labels = || ApiVersionLabels {
            api: ApiName(api),
            version,
        };
        match slot {
            Some((api_slot, version_slot)) => {
                self.cached_requests[api_slot * VERSION_SLOTS + version_slot]
                    .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                    .inc();
                let latency = self.cached_latency[api_slot].get_or_init(|| {
                    self.latency
                        .get_or_create(&ApiLabels { api: ApiName(api) })
                        .clone()
                });
                RequestTimer {
                    latency: Some(latency),
                    started: Instant::now(),
                }
            }
            // Outside the arrays (a future API): counted the slow way, not timed.
            None => {
                self.requests.get_or_create(&labels()).inc();
                RequestTimer {
                    latency: None,
                    started: Instant::now(),
                }
            }
        }
    }

    /// Counts every non-zero error code in a response.
    pub fn count_errors(&self, api_key: ApiKey, response: &ResponseKind) {
        visit_error_codes(response, |code| self.count_error(api_key, code));
    }

    /// [`RequestMetrics::count_errors`] for a fetch response, which the
    /// handlers encode without wrapping it in a [`ResponseKind`].
    pub fn count_fetch_errors(&self, response: &FetchResponse) {
        visit_fetch(response, &mut |code| self.count_error(ApiKey::Fetch, code));
    }

    fn count_error(&self, api_key: ApiKey, code: i16) {
        if code != 0 {
            self.errors
                .get_or_create(&ApiErrorLabels {
                    api: ApiName(api_key as i16),
                    error: ErrorName(code),
                })
                .inc();
        }
    }
}

/// Records a request's latency when dropped.
#[derive(Debug)]
pub struct RequestTimer<'a> {
    latency: Option<&'a Histogram>,
    started: Instant,
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        if let Some(latency) = self.latency {
            latency.observe(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Calls `visit` with every error code of a response: the top-level one and
/// those of each topic, partition, resource or member the response lists.
/// Zeros are passed too; the caller skips them. A new API needs an arm here,
/// or its errors go uncounted.
fn visit_error_codes(response: &ResponseKind, mut visit: impl FnMut(i16)) {
    match response {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| visit(p.error_code)),
        ResponseKind::Fetch(r) => visit_fetch(r, &mut visit),
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| visit(p.error_code)),
        ResponseKind::Metadata(r) => {
            visit(r.error_code);
            for topic in &r.topics {
                visit(topic.error_code);
                topic.partitions.iter().for_each(|p| visit(p.error_code));
            }
        }
        ResponseKind::ApiVersions(r) => visit(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| visit(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| visit(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| visit(t.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| visit(t.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|t| visit(t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|t| visit(t.error_code))
        }
        ResponseKind::InitProducerId(r) => visit(r.error_code),
        ResponseKind::DescribeCluster(r) => visit(r.error_code),
        ResponseKind::DescribeLogDirs(r) => {
            visit(r.error_code);
            r.results.iter().for_each(|d| visit(d.error_code));
        }
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| visit(p.error_code)),
        // The consumer-group APIs, ready for their handlers.
        ResponseKind::FindCoordinator(r) => {
            visit(r.error_code);
            r.coordinators.iter().for_each(|c| visit(c.error_code));
        }
        ResponseKind::JoinGroup(r) => visit(r.error_code),
        ResponseKind::SyncGroup(r) => visit(r.error_code),
        ResponseKind::Heartbeat(r) => visit(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            visit(r.error_code);
            r.members.iter().for_each(|m| visit(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| visit(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            visit(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| visit(p.error_code));
            for group in &r.groups {
                visit(group.error_code);
                group
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| visit(p.error_code));
            }
        }
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| visit(g.error_code)),
        ResponseKind::ListGroups(r) => visit(r.error_code),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| visit(g.error_code)),
        ResponseKind::ElectLeaders(r) => {
            visit(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| visit(p.error_code));
        }
        ResponseKind::DescribeQuorum(r) => {
            visit(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| visit(p.error_code));
        }
        _ => {}
    }
}

fn visit_fetch(response: &FetchResponse, visit: &mut impl FnMut(i16)) {
    visit(response.error_code);
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .for_each(|p| visit(p.error_code));
}
