//! `strata consume TOPIC`: read partitions from a start position and print one
//! line per record on stdout — the value, optionally preceded by timestamp,
//! partition:offset, headers and key (tab-separated), or one JSON object.
//!
//! Without `--group` this is an assign-style consumer: it chooses its
//! partitions itself and commits nothing. With `--group` the records come from
//! a consumer group membership ([`crate::group_member`]), which commits. Either
//! way the printing loop here reads from a [`RecordSource`].

use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use kafka_protocol::records::{Record, TimestampType};
use serde_json::{json, Value};

use crate::client::finish;
use crate::fetcher::Fetcher;
use crate::group_member::GroupConsumer;
use crate::leaders::{Leaders, TopicLayout};
use crate::offsets::{parse_start_position, resolve, StartPosition};

/// The longest one Fetch waits for new records before the loop looks at the clock.
const POLL_WAIT: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// Where to start: beginning, end, an OFFSET (in every partition read),
    /// @EPOCH_MS, or an RFC 3339 time such as 2026-11-21T09:30:00Z (each
    /// partition from its first record at or after that time).
    /// With --group, only for partitions the group has no committed offset for.
    #[arg(long, value_name = "POSITION", default_value = "end", value_parser = parse_start_position)]
    from: StartPosition,
    /// Read only this partition (default: all partitions).
    #[arg(long, value_name = "N")]
    partition: Option<i32>,
    /// Join this consumer group: read the partitions it assigns, resume from
    /// its committed offsets, commit every 5 s and on exit.
    #[arg(long, value_name = "GROUP", conflicts_with = "partition")]
    group: Option<String>,
    /// Stop after this many records (exit code 1 if --timeout-ms passes first).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Stop once no record arrived for this long (default: wait for ever; Ctrl-C stops).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Print the key before the value ("null" when there is none).
    #[arg(long)]
    print_key: bool,
    /// Print the headers as KEY=VALUE,KEY=VALUE before the key.
    #[arg(long)]
    print_headers: bool,
    /// Print the timestamp (ms since the epoch) first.
    #[arg(long)]
    print_timestamp: bool,
    /// Print PARTITION:OFFSET after the timestamp.
    #[arg(long)]
    print_offset: bool,
    /// Print one JSON object per record: topic, partition, offset, timestamp,
    /// timestamp_type, key, value and headers ([{"key", "value"}]). Keys and
    /// values are UTF-8 strings when they are valid UTF-8, otherwise base64 with
    /// a sibling "key_encoding"/"value_encoding": "base64"; absent ones are null.
    #[arg(long, conflicts_with_all = ["print_key", "print_headers", "print_timestamp", "print_offset"])]
    json: bool,
}

/// Runs `strata consume`: records on stdout, a summary or the error on stderr.
pub fn run(bootstrap: &str, args: &ConsumeArgs) -> ExitCode {
    finish(execute(bootstrap, args).map(|summary| {
        eprintln!("{summary}");
        String::new()
    }))
}

/// Where `consume` gets its records: fixed partitions, or a group's assignment.
pub trait RecordSource {
    /// The next records, waiting up to `max_wait` for some.
    fn fetch(&mut self, max_wait: Duration) -> Result<Vec<(i32, Record)>>;
    /// The record at `offset` of `partition` was printed.
    fn printed(&mut self, _partition: i32, _offset: i64) {}
    /// Whether the user asked to stop (Ctrl-C) and the source lets the loop end cleanly.
    fn interrupted(&self) -> bool {
        false
    }
    /// Consumption ended (also after an error): commit and leave, for a group.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

impl RecordSource for Fetcher<'_> {
    fn fetch(&mut self, max_wait: Duration) -> Result<Vec<(i32, Record)>> {
        Ok(Fetcher::fetch(self, max_wait)?.records)
    }
}

fn execute(bootstrap: &str, args: &ConsumeArgs) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    let layout = TopicLayout::fetch(&mut client, &args.topic)?;
    if let Some(group) = &args.group {
        let mut member = GroupConsumer::join(client, &layout, group, args.from)?;
        let result = print_records(args, &layout.name, &mut member);
        let closed = member.close();
        return result.and_then(|summary| closed.map(|()| summary));
    }
    let partitions: Vec<i32> = match args.partition {
        Some(partition) => {
            layout.leader(partition)?;
            vec![partition]
        }
        None => layout.leaders.keys().copied().collect(),
    };
    let mut leaders = Leaders::new(&layout);
    let positions = resolve(&mut leaders, &layout, &partitions, args.from)?;
    let mut fetcher = Fetcher::new(&layout, leaders, positions);
    print_records(args, &layout.name, &mut fetcher)
}

/// The reading loop: records from `source` to stdout until --count, the idle
/// --timeout-ms, Ctrl-C (a group member) or a closed stdout.
fn print_records(args: &ConsumeArgs, topic: &str, source: &mut dyn RecordSource) -> Result<String> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    'reading: while !source.interrupted() {
        let wait = match idle_limit {
            Some(limit) => limit.saturating_sub(last_record.elapsed()).min(POLL_WAIT),
            None => POLL_WAIT,
        };
        let records = source.fetch(wait)?;
        if !records.is_empty() {
            last_record = Instant::now();
        }
        for (partition, record) in &records {
            let line = if args.json {
                json_line(topic, *partition, record)
            } else {
                plain_line(args, *partition, record)
            };
            if let Err(error) = out.write_all(&line) {
                return stdout_closed(error, consumed, topic);
            }
            source.printed(*partition, record.offset);
            consumed += 1;
            if args.count == Some(consumed) {
                break 'reading;
            }
        }
        if let Err(error) = out.flush() {
            return stdout_closed(error, consumed, topic);
        }
        if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
            if let Some(count) = args.count {
                bail!(
                    "no record for {} ms after {consumed} of {count} records from {topic}",
                    idle_limit.unwrap_or_default().as_millis(),
                );
            }
            break;
        }
    }
    if let Err(error) = out.flush() {
        return stdout_closed(error, consumed, topic);
    }
    Ok(format!("consumed {consumed} records from {topic}"))
}

/// A reader that went away (`strata consume ... | head`) ends the command
/// normally; any other write error is one.
fn stdout_closed(error: std::io::Error, consumed: u64, topic: &str) -> Result<String> {
    if error.kind() == ErrorKind::BrokenPipe {
        return Ok(format!(
            "consumed {consumed} records from {topic} (output closed)"
        ));
    }
    Err(error).context("writing to stdout")
}

/// The selected fields, tab-separated, then the value; bytes as they are.
fn plain_line(args: &ConsumeArgs, partition: i32, record: &Record) -> Vec<u8> {
    let mut line = Vec::new();
    if args.print_timestamp {
        line.extend_from_slice(format!("{}\t", record.timestamp).as_bytes());
    }
    if args.print_offset {
        line.extend_from_slice(format!("{partition}:{}\t", record.offset).as_bytes());
    }
    if args.print_headers {
        for (i, (key, value)) in record.headers.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(key.as_bytes());
            line.push(b'=');
            line.extend_from_slice(value.as_deref().unwrap_or(b"null"));
        }
        line.push(b'\t');
    }
    if args.print_key {
        line.extend_from_slice(record.key.as_deref().unwrap_or(b"null"));
        line.push(b'\t');
    }
    line.extend_from_slice(record.value.as_deref().unwrap_or(b"null"));
    line.push(b'\n');
    line
}

/// One JSON object and a newline.
fn json_line(topic: &str, partition: i32, record: &Record) -> Vec<u8> {
    let mut object = json!({
        "topic": topic,
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestamp_type": match record.timestamp_type {
            TimestampType::Creation => "CreateTime",
            TimestampType::LogAppend => "LogAppendTime",
        },
    });
    let map = object.as_object_mut().expect("built as an object above");
    insert_bytes(map, "key", record.key.as_ref());
    insert_bytes(map, "value", record.value.as_ref());
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|(key, value)| {
            let mut header = serde_json::Map::new();
            header.insert("key".to_string(), Value::from(key.as_str()));
            insert_bytes(&mut header, "value", value.as_ref());
            Value::Object(header)
        })
        .collect();
    map.insert("headers".to_string(), Value::Array(headers));
    let mut line = object.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// `name`: the bytes as a string when UTF-8, else base64 plus `name_encoding`.
fn insert_bytes(map: &mut serde_json::Map<String, Value>, name: &str, bytes: Option<&Bytes>) {
    let value = match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::from(text),
            Err(_) => {
                map.insert(format!("{name}_encoding"), Value::from("base64"));
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        },
    };
    map.insert(name.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::produce::new_record;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn json_marks_base64_and_keeps_nulls() {
        let mut headers = IndexMap::new();
        headers.insert(
            StrBytes::from_static_str("h"),
            Some(Bytes::from_static(b"v")),
        );
        headers.insert(
            StrBytes::from_static_str("bin"),
            Some(Bytes::from_static(&[0xff, 0])),
        );
        headers.insert(StrBytes::from_static_str("none"), None);
        let mut record = new_record(None, Some(Bytes::from_static(&[0xff])), headers, 7);
        record.offset = 3;
        let line = json_line("t", 1, &record);
        let parsed: Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "topic": "t", "partition": 1, "offset": 3, "timestamp": 7,
                "timestamp_type": "CreateTime",
                "key": null,
                "value": "/w==", "value_encoding": "base64",
                "headers": [
                    {"key": "h", "value": "v"},
                    {"key": "bin", "value": "/wA=", "value_encoding": "base64"},
                    {"key": "none", "value": null},
                ],
            })
        );
        assert_eq!(line.last(), Some(&b'\n'));
    }
}
