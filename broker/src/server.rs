//! The listener: accepts connections, runs the broker's periodic work, and
//! shuts everything down cleanly when asked.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Broker, Endpoint};
use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// How often `flush.ms` deadlines are checked.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often recovery points are written (Kafka's
/// `log.flush.offset.checkpoint.interval.ms` default).
const RECOVERY_POINT_INTERVAL: Duration = Duration::from_secs(60);

/// What `strata serve` was asked to do.
pub struct ServerOptions {
    pub listen: SocketAddr,
    /// The address given to clients in metadata; the bound address if unset.
    pub advertise: Option<(String, u16)>,
    pub data_dir: PathBuf,
    pub config: BrokerConfig,
    /// Where to serve `/metrics` and `/health`; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The bound controller listener of a node of several voters.
    pub controller_listener: Option<std::net::TcpListener>,
}

/// A bound, opened broker, ready to serve.
pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
}

impl Server {
    /// Binds the listener, then opens (and if needed recovers) the data dir.
    pub async fn bind(options: ServerOptions) -> Result<Server, BrokerError> {
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| BrokerError::io(format!("binding {}", options.listen), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| BrokerError::io("reading the bound address", e))?;
        let metrics_listener = match options.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| {
                BrokerError::io(format!("binding the metrics endpoint {address}"), e)
            })?),
            None => None,
        };
        let (host, port) = options
            .advertise
            .unwrap_or_else(|| (local.ip().to_string(), local.port()));
        let endpoint = Endpoint {
            host,
            port: i32::from(port),
        };
        let data_dir = options.data_dir;
        let config = options.config;
        let controller = options.controller_listener;
        // Opening runs recovery: blocking file work, off the async threads.
        let broker = tokio::task::spawn_blocking(move || {
            Broker::open_node(config, &data_dir, endpoint, controller)
        })
        .await
        .map_err(|e| BrokerError::Config(format!("opening the broker panicked: {e}")))??;
        Ok(Server {
            broker,
            listener,
            metrics_listener,
        })
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, BrokerError> {
        self.metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
            .map_err(|e| BrokerError::io("reading the metrics endpoint's address", e))
    }

    pub fn local_addr(&self) -> Result<SocketAddr, BrokerError> {
        self.listener
            .local_addr()
            .map_err(|e| BrokerError::io("reading the bound address", e))
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` completes, then closes connections and shuts
    /// the broker down cleanly (flush, recovery points, clean marker).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        self.broker.groups.start_timers();
        let (stop, stopped) = watch::channel(false);
        let background = tokio::spawn(periodic_work(self.broker.clone(), stopped.clone()));
        // Answers until the broker is shut down, /health with 503 meanwhile.
        let metrics = self.metrics_listener.map(|listener| {
            tokio::spawn(crate::metrics::http::serve(
                listener,
                self.broker.clone(),
                stopped.clone(),
            ))
        });
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(crate::connection::serve(
                            self.broker.clone(),
                            stream,
                            stopped.clone(),
                        ));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: keep serving.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down");
        let _ = stop.send(true);
        // Parked JoinGroup/SyncGroup requests are answered now, so that their
        // connections can close at once.
        self.broker.groups.shutdown();
        drop(self.listener);
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        let _ = background.await;
        let broker = self.broker;
        let result = tokio::task::spawn_blocking(move || broker.shutdown())
            .await
            .map_err(|e| BrokerError::Config(format!("shutdown panicked: {e}")))?;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        result
    }
}

/// Every `broker.heartbeat.interval.ms`: this broker's heartbeat to the
/// controller and, on the active controller, the fencing it calls for.
async fn heartbeats(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let interval = Duration::from_millis(broker.config().broker_heartbeat_interval_ms());
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        session_timeout_ms = broker.config().broker_session_timeout_ms(),
        "heartbeats to the controller"
    );
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.lifecycle_tick()).await;
            }
            _ = stopped.changed() => return,
        }
    }
}

/// Where a broker is reached (its first listener in the metadata), for the
/// replica fetchers. Holds the broker weakly: the fetchers must not keep it.
fn broker_address(broker: &Arc<Broker>) -> Arc<dyn Fn(i32) -> Option<String> + Send + Sync> {
    let weak = Arc::downgrade(broker);
    Arc::new(move |id| {
        let image = weak.upgrade()?.image();
        let endpoint = image.broker(id)?.endpoints.first()?.clone();
        Some(format!("{}:{}", endpoint.host, endpoint.port))
    })
}

/// Writes the ISR changes the partitions this broker leads propose, one at a
/// time, as they come.
async fn isr_changes(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let Some(mut proposals) = broker.take_isr_proposals() else {
        return;
    };
    loop {
        tokio::select! {
            proposal = proposals.recv() => {
                let Some(proposal) = proposal else { return };
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.alter_isr(&proposal)).await;
            }
            _ = stopped.changed() => return,
        }
    }
}

/// `flush.ms` checks, recovery-point checkpoints, retention, offset expiry,
/// followers' lag, and the log cleaner.
async fn periodic_work(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    // Its own task: a cleaning may take long and must not delay flushes.
    let cleaner = tokio::spawn(crate::cleaner::run(broker.clone(), stopped.clone()));
    // Its own task too: heartbeats must not wait behind a retention pass.
    let lifecycle = tokio::spawn(heartbeats(broker.clone(), stopped.clone()));
    let isr = tokio::spawn(isr_changes(broker.clone(), stopped.clone()));
    let fetchers = tokio::spawn(crate::replication::fetcher::run(
        broker.partitions.fetchers(),
        broker_address(&broker),
        stopped.clone(),
    ));
    // Kafka checks followers' lag every half replica.lag.time.max.ms.
    let lag_interval =
        Duration::from_millis((broker.config().replica_lag_time_max_ms() / 2).max(1) as u64);
    let mut lag_tick = tokio::time::interval(lag_interval);
    let mut flush_tick = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    let mut checkpoint_tick = tokio::time::interval(RECOVERY_POINT_INTERVAL);
    // The registry keeps the value at least 1.
    let retention_interval =
        Duration::from_millis(broker.config().log_retention_check_interval_ms().max(1) as u64);
    let mut retention_tick = tokio::time::interval(retention_interval);
    let offsets_interval =
        Duration::from_millis(broker.config().offsets_retention_check_interval_ms().max(1) as u64);
    // Not at once: the first pass comes one interval after start, as in Kafka.
    let mut offsets_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + offsets_interval,
        offsets_interval,
    );
    loop {
        tokio::select! {
            _ = retention_tick.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.partitions.apply_retention()).await;
            }
            _ = offsets_tick.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    broker.groups.expire_offsets(crate::clock::now_ms())
                }).await;
            }
            _ = lag_tick.tick() => {
                let broker = broker.clone();
                let now = crate::clock::now_ms();
                let _ = tokio::task::spawn_blocking(move || broker.partitions.tick_replicas(now)).await;
            }
            _ = flush_tick.tick() => {
                let broker = broker.clone();
                let _ = tokio::task::spawn_blocking(move || broker.partitions.flush_due_logs()).await;
            }
            _ = checkpoint_tick.tick() => {
                let broker = broker.clone();
                let result = tokio::task::spawn_blocking(move || broker.partitions.write_checkpoints()).await;
                if let Ok(Err(error)) = result {
                    tracing::error!(%error, "could not write recovery points");
                }
            }
            _ = stopped.changed() => {
                // Shutdown flushes the logs after this returns: no swap may be running.
                let _ = cleaner.await;
                let _ = lifecycle.await;
                let _ = isr.await;
                let _ = fetchers.await;
                return;
            }
        }
    }
}
