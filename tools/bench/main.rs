//! `bench`: an end-to-end load generator that drives a Kafka-compatible broker with
//! librdkafka (the rdkafka crate), as a real client would. `tools/bench.sh` runs it
//! against a fresh `strata serve`; the results go to docs/benchmarks.md.
//!
//! - produce: sends N messages of S bytes (one fixed pseudo-random payload, so neither
//!   the client nor the broker spends time generating data) round-robin over all
//!   partitions, waits for every delivery report and fails if any delivery failed.
//! - consume: assign()s every partition from the beginning (no consumer group: nothing
//!   is joined or committed) and reads until N messages have arrived.
//!
//! - group: M consumers subscribe together in one new consumer group (auto commit
//!   on) and read until N messages have arrived between them; prints the time from
//!   subscribe to each member's first message and the group's throughput.
//!
//! Each phase prints one line: `produce: N msgs, S bytes each, P partitions: X msgs/s,
//! Y MB/s (T s)`, where MB is 10^6 bytes of message payload (keys and headers: none).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Upper bound for metadata, admin and flush calls; only there so that a broken broker
/// fails the run instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The consumer gives up when no message arrives for this long.
const CONSUME_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(about = "librdkafka produce/consume throughput benchmark")]
struct Args {
    /// host:port of the broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "strata-bench")]
    topic: String,
    /// Number of messages to produce and/or consume.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Payload size of each message in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Partition count used when the topic has to be created (replication factor 1).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// Producer compression.type: none, gzip, snappy, lz4 or zstd (as built into rdkafka).
    #[arg(long, default_value = "none")]
    compression: String,
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Extra librdkafka property for the producer, `key=value` (repeatable).
    #[arg(long = "producer-config", value_name = "KEY=VALUE")]
    producer_config: Vec<String>,
    /// Members of the consumer group in --mode group.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Extra librdkafka property for the consumer, `key=value` (repeatable).
    #[arg(long = "consumer-config", value_name = "KEY=VALUE")]
    consumer_config: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Produce,
    Consume,
    Both,
    /// Produce, then consume with a subscribe-style consumer group.
    Group,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.messages == 0 || args.size == 0 || args.partitions < 1 {
        bail!("--messages, --size and --partitions must be at least 1");
    }
    create_topic_if_missing(&args)?;
    if args.mode != Mode::Consume {
        let (partitions, elapsed) = produce(&args)?;
        report("produce", &args, partitions, elapsed);
    }
    match args.mode {
        Mode::Produce => {}
        Mode::Group => {
            let (partitions, elapsed) = consume_in_group(&args)?;
            report("group consume", &args, partitions, elapsed);
        }
        Mode::Consume | Mode::Both => {
            let (partitions, elapsed) = consume(&args)?;
            report("consume", &args, partitions, elapsed);
        }
    }
    Ok(())
}

fn report(phase: &str, args: &Args, partitions: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let messages_per_second = args.messages as f64 / seconds;
    let megabytes_per_second = messages_per_second * args.size as f64 / 1e6;
    println!(
        "{phase}: {} msgs, {} bytes each, {partitions} partitions: {messages_per_second:.0} msgs/s, \
         {megabytes_per_second:.1} MB/s ({seconds:.2} s)",
        args.messages, args.size
    );
}

fn client_config(args: &Args) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("broker.address.family", "v4");
    config
}

/// Applies `key=value` overrides given on the command line.
fn apply_overrides(config: &mut ClientConfig, overrides: &[String]) -> Result<()> {
    for entry in overrides {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("expected key=value, got {entry:?}");
        };
        config.set(key, value);
    }
    Ok(())
}

/// Creates the topic with `--partitions` partitions; an existing topic is kept as is.
fn create_topic_if_missing(args: &Args) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(args)
        .create()
        .context("create the admin client")?;
    let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // The admin future is driven by rdkafka's own thread; any executor can wait on it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start a tokio runtime for the admin call")?;
    let results = runtime
        .block_on(admin.create_topics([&topic], &options))
        .context("CreateTopics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name} failed: {code}"),
        }
    }
    Ok(())
}

/// The partition count of the topic as the broker reports it.
fn partition_count<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<usize> {
    let metadata = client
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("fetch metadata of topic {topic}"))?;
    let Some(topic_metadata) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("the broker returned no metadata for topic {topic}");
    };
    if let Some(error) = topic_metadata.error() {
        bail!("metadata of topic {topic}: error {error:?}");
    }
    match topic_metadata.partitions().len() {
        0 => bail!("topic {topic} has no partitions"),
        count => Ok(count),
    }
}

/// Counts failed deliveries; librdkafka reports them only through this callback.
#[derive(Default)]
struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((error, _)) => {
                // Print only the first few: a broken broker fails every message.
                if self.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("delivery failed: {error}");
                }
                0
            }
        };
    }
}

/// Sends `--messages` messages round-robin over the partitions and waits for every
/// delivery report. Returns the partition count and the time from the first send to the
/// last delivery report.
fn produce(args: &Args) -> Result<(usize, Duration)> {
    let mut config = client_config(args);
    config
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        // librdkafka caps a batch at min(batch.size, message.max.bytes): ~1 MB.
        .set("batch.size", "1000000")
        .set("batch.num.messages", "1000000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "60000");
    apply_overrides(&mut config, &args.producer_config)?;
    let producer: BaseProducer<DeliveryCounter> = config
        .create_with_context(DeliveryCounter::default())
        .context("create the producer")?;
    let partitions = partition_count(producer.client(), &args.topic)?;
    let payload = payload(args.size);

    let start = Instant::now();
    for i in 0..args.messages {
        let partition = (i % partitions as u64) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(&args.topic)
            .partition(partition)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // The local queue is full: serve delivery reports until there is room.
                    record = returned;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("send failed: {error}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(TIMEOUT).context("flush the producer")?;
    let elapsed = start.elapsed();

    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 || delivered != args.messages {
        bail!(
            "produce: {delivered} of {} messages delivered, {failed} failed",
            args.messages
        );
    }
    Ok((partitions, elapsed))
}

/// Reads `--messages` messages from the beginning of every partition. Returns the
/// partition count and the time from assign() to the last message.
fn consume(args: &Args) -> Result<(usize, Duration)> {
    let mut config = client_config(args);
    config
        // librdkafka wants a group.id even for assign(); no group is joined and nothing is
        // committed.
        .set("group.id", "strata-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // When its local queue is full (queued.min.messages, 100k), librdkafka postpones
        // the next fetch by fetch.queue.backoff.ms, 1 s by default: with 100 B messages
        // the consumer then mostly waits on itself (~35 MB/s instead of ~200 MB/s here).
        .set("fetch.queue.backoff.ms", "10");
    apply_overrides(&mut config, &args.consumer_config)?;
    let consumer: BaseConsumer = config.create().context("create the consumer")?;
    let partitions = partition_count(consumer.client(), &args.topic)?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let partition = i32::try_from(partition).context("partition number")?;
        assignment
            .add_partition_offset(&args.topic, partition, Offset::Beginning)
            .context("build the assignment")?;
    }

    let start = Instant::now();
    consumer.assign(&assignment).context("assign")?;
    let mut received = 0u64;
    let mut wrong_size = 0u64;
    let mut last_progress = Instant::now();
    while received < args.messages {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                received += 1;
                if message.payload_len() != args.size {
                    wrong_size += 1;
                }
                last_progress = Instant::now();
            }
            Some(Err(error)) => bail!("consume failed after {received} messages: {error}"),
            None if last_progress.elapsed() > CONSUME_IDLE_TIMEOUT => bail!(
                "consume: no message for {CONSUME_IDLE_TIMEOUT:?} after {received} of {} messages",
                args.messages
            ),
            None => {}
        }
    }
    let elapsed = start.elapsed();
    if wrong_size > 0 {
        bail!(
            "consume: {wrong_size} messages did not have {} bytes",
            args.size
        );
    }
    Ok((partitions, elapsed))
}

/// `--members` consumers subscribe at the same moment in a new group; returns
/// when they have received `--messages` between them. Prints each member's
/// time from subscribe to its first message. The throughput counts from the
/// subscribe, so it includes the rebalance.
fn consume_in_group(args: &Args) -> Result<(usize, Duration)> {
    let group = format!("{}-group", args.topic);
    let mut config = client_config(args);
    config
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.queue.backoff.ms", "10");
    apply_overrides(&mut config, &args.consumer_config)?;
    let consumers: Vec<BaseConsumer> = (0..args.members.max(1))
        .map(|_| config.create().context("create a group consumer"))
        .collect::<Result<_>>()?;
    let partitions = partition_count(consumers[0].client(), &args.topic)?;
    let received = AtomicU64::new(0);
    let start = Instant::now();
    let firsts: Vec<Result<Option<Duration>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = consumers
            .iter()
            .map(|consumer| {
                let received = &received;
                scope.spawn(move || -> Result<Option<Duration>> {
                    consumer.subscribe(&[&args.topic]).context("subscribe")?;
                    let mut first = None;
                    let mut last_progress = Instant::now();
                    while received.load(Ordering::Relaxed) < args.messages {
                        match consumer.poll(Duration::from_millis(50)) {
                            Some(Ok(_)) => {
                                first.get_or_insert_with(|| start.elapsed());
                                received.fetch_add(1, Ordering::Relaxed);
                                last_progress = Instant::now();
                            }
                            Some(Err(error)) => bail!("group consume failed: {error}"),
                            None if last_progress.elapsed() > CONSUME_IDLE_TIMEOUT => {
                                bail!("group consume: no message for {CONSUME_IDLE_TIMEOUT:?}")
                            }
                            None => {}
                        }
                    }
                    Ok(first)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a consumer thread panicked"))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let firsts = firsts.into_iter().collect::<Result<Vec<_>>>()?;
    let shown: Vec<String> = firsts
        .iter()
        .map(|f| f.map_or("none".to_string(), |d| format!("{} ms", d.as_millis())))
        .collect();
    println!(
        "group: {} members, subscribe to first message: {}",
        consumers.len(),
        shown.join(", ")
    );
    Ok((partitions, elapsed))
}

/// `size` bytes from a fixed-seed xorshift generator: incompressible enough that
/// --compression does real work, and identical in every run.
fn payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}
