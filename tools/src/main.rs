//! The `strata` binary. `strata serve` runs a broker; operator and client
//! subcommands join it as they are built.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use strata_broker::config::listeners::{Listener, NodeRoles};
use strata_broker::{BrokerConfig, Server, ServerOptions};

#[derive(Parser)]
#[command(name = "strata", version, about = "A Kafka-compatible streaming log")]
struct Cli {
    /// HOST:PORT of a Kafka-compatible broker, for the client commands.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker.
    ///
    /// Example: strata serve --data-dir /var/lib/strata --set num.partitions=3
    Serve(ServeArgs),
    /// Print the record batches of segment files, or the entries of their indexes,
    /// as Kafka's kafka-dump-log.sh does.
    ///
    /// Example: strata dump-log --records strata-data/orders-0/00000000000000000000.log
    DumpLog(dump_log::DumpLogArgs),
    /// Create, list, describe, delete and reconfigure topics.
    ///
    /// Example: strata topic create orders --partitions 3 --bootstrap 127.0.0.1:9092
    Topic(topic::TopicArgs),
    /// Show the cluster: its id, controller and brokers.
    ///
    /// Example: strata cluster info --bootstrap 127.0.0.1:9092
    Cluster(cluster::ClusterArgs),
    /// Write records to a topic, one per line of stdin (or --file).
    ///
    /// Example: strata produce orders --key-separator : --header source=cli < orders.txt
    Produce(produce::ProduceArgs),
    /// Print a topic's records, one per line (or as JSON with --json); with
    /// --group as a member of a consumer group that commits its offsets.
    ///
    /// Example: strata consume orders --from beginning --count 10 --print-key
    Consume(consume::ConsumeArgs),
    /// List, describe and delete consumer groups; reset their committed offsets.
    ///
    /// Example: strata group describe billing
    Group(group::GroupArgs),
    /// Measure produce or consume throughput and latency.
    ///
    /// Example: strata perf produce bench --num-records 1000000 --record-size 100 --json
    Perf(perf::PerfArgs),
    /// Run a local cluster of several nodes (child processes) to try things on.
    DevCluster(dev_cluster::DevClusterArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to accept Kafka clients on (port 0 picks a free port); overrides the
    /// `listeners` property. Default: `listeners`' client listener, else 127.0.0.1:9092.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address to serve Prometheus metrics (/metrics) and health checks (/health) on
    /// (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9644")]
    metrics_listen: SocketAddr,
    /// HOST:PORT given to clients in metadata; overrides `advertised.listeners`.
    /// Default: the bound address.
    #[arg(long)]
    advertise: Option<String>,
    /// Where logs and metadata live; defaults to ./strata-data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A Kafka-style properties file (e.g. num.partitions=3).
    #[arg(long)]
    config: Option<PathBuf>,
    /// One property override, KEY=VALUE; may be repeated. Applied after --config.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

mod alloc;
mod client;
mod cluster;
mod consume;
mod coordinator;
mod dev_cluster;
mod dump_log;
mod fetcher;
mod group;
mod group_member;
mod leaders;
mod offsets;
mod partitioner;
mod perf;
mod produce;
mod topic;

/// See `alloc.rs`: keeps a hostile element count in a request from aborting
/// the process through one giant allocation.
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

/// The embedded default data directory, relative to where strata runs.
const DEFAULT_DATA_DIR: &str = "strata-data";

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // openraft narrates every vote at INFO; the quorum logs
                // its leadership changes itself.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args).map(|()| ExitCode::SUCCESS),
        Command::DumpLog(args) => Ok(dump_log::run(&args)),
        Command::Topic(args) => Ok(topic::run(&cli.bootstrap, &args)),
        Command::Cluster(args) => Ok(cluster::run(&cli.bootstrap, &args)),
        Command::Produce(args) => Ok(produce::run(&cli.bootstrap, &args)),
        Command::Consume(args) => Ok(consume::run(&cli.bootstrap, &args)),
        Command::Group(args) => Ok(group::run(&cli.bootstrap, &args)),
        Command::Perf(args) => Ok(perf::run(&cli.bootstrap, &args)),
        Command::DevCluster(args) => dev_cluster::run(&args).map(|()| ExitCode::SUCCESS),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let config =
        BrokerConfig::load(args.config.as_deref(), &args.set).context("invalid configuration")?;
    let roles = NodeRoles::from_config(&config).context("invalid configuration")?;
    if let Err(reason) = roles.check_supported(config.node_id()) {
        bail!("{reason}");
    }
    let client_listener = roles.client_listeners().first().copied().cloned();
    let listen = match (args.listen, &client_listener) {
        (Some(listen), _) => listen,
        (None, Some(listener)) => resolve_listener(listener)?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 9092)),
    };
    // Bound before the data directory is opened: a node of several voters
    // waits there for the others, which must reach it meanwhile.
    let controller_listener = match roles.controller_listener() {
        // Several voters talk on it; a broker-only node is sent the log there.
        Some(listener) if roles.voters.len() > 1 || !roles.controller => {
            let address = resolve_listener(listener)?;
            let bound = std::net::TcpListener::bind(address)
                .with_context(|| format!("binding the controller listener {listener}"))?;
            tracing::info!(address = %bound.local_addr()?, "controller listener bound");
            Some(bound)
        }
        Some(listener) => {
            tracing::info!(%listener, "controller listener not bound: a quorum of one has no controller traffic");
            None
        }
        None => None,
    };
    let advertise = match args.advertise.as_deref() {
        Some(text) => Some(parse_host_port(text)?),
        None => client_listener
            .and_then(|l| roles.advertised_for(&l.name).cloned())
            .filter(|a| !a.host.is_empty())
            .map(|a| (a.host, a.port)),
    };
    let data_dir = args
        .data_dir
        .or_else(|| explicit_log_dir(&config))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let open_files = raise_open_file_limit();
    // Segment files share a bounded cache; the rest is for client connections.
    let segment_files = (open_files / 4).clamp(64, strata_storage::DEFAULT_OPEN_FILE_LIMIT as u64);
    strata_storage::set_open_file_limit(segment_files as usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(ServerOptions {
            listen,
            advertise,
            data_dir,
            config,
            metrics_listen: Some(args.metrics_listen),
            controller_listener,
        })
        .await?;
        let bound = server.local_addr()?;
        let stop = shutdown_signal()?;
        if let Some(metrics) = server.metrics_addr()? {
            // Before the `listening on` line, so whoever waits for that one
            // has seen this one too.
            println!("metrics listening on {metrics}");
            tracing::info!(%metrics, "serving /metrics and /health");
        }
        // The line scripts and tests wait for.
        println!("listening on {bound}");
        tracing::info!(%bound, "strata is serving");
        server.run(stop).await?;
        Ok(())
    })
}

/// Raises the soft limit on open file descriptors to the hard limit, as Kafka's
/// operations guide asks of operators (a broker holds a descriptor per connection,
/// plus segment files), and returns the soft limit in force. A failure only costs
/// head room, so it is logged, not fatal.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read RLIMIT_NOFILE");
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one `rlimit` we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "raised the open file limit"
            );
            limit = raised;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), soft = limit.rlim_cur, "cannot raise the open file limit");
        }
    }
    limit.rlim_cur
}

/// `log.dirs` (or `log.dir`) when the configuration sets it. Kafka's own
/// default (/tmp/kafka-logs) is not used: Strata keeps data beside itself
/// unless told otherwise. Only the first directory is used for now.
fn explicit_log_dir(config: &BrokerConfig) -> Option<PathBuf> {
    let dirs = config.get("log.dirs").or_else(|| config.get("log.dir"))?;
    dirs.split(',')
        .map(str::trim)
        .find(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The address to bind for a `listeners` entry: an empty host is every
/// interface, as in Kafka; a name is resolved.
fn resolve_listener(listener: &Listener) -> Result<SocketAddr> {
    if listener.host.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], listener.port)));
    }
    (listener.host.as_str(), listener.port)
        .to_socket_addrs()
        .with_context(|| format!("listeners: cannot resolve {listener}"))?
        .next()
        .with_context(|| format!("listeners: {listener} resolves to no address"))
}

fn parse_host_port(text: &str) -> Result<(String, u16)> {
    let Some((host, port)) = text.rsplit_once(':') else {
        bail!("--advertise takes HOST:PORT, got {text:?}");
    };
    let port = port
        .parse()
        .with_context(|| format!("--advertise port in {text:?}"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// A future that completes on SIGINT or SIGTERM. The handlers are in place
/// when this returns (not when the future is first polled), so a signal
/// that comes right after the `listening on` line is not lost to the
/// default action. Must be called within a runtime.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
