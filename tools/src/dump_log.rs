//! `strata dump-log`: what a segment file holds, printed line by line in the
//! format of Kafka's `kafka-dump-log.sh`, so that people (and scripts) that know
//! Kafka's tool can read it.
//!
//! * `.log` — one line per record batch (`baseOffset: ... isvalid: ...`), and with
//!   `--records` (Kafka: `--print-data-log`) one `| offset: ...` line per record,
//!   decoded by the `kafka-protocol` crate.
//! * `.index` — `offset: N position: P` per entry; `.timeindex` —
//!   `timestamp: T offset: N`. Both stop at the zero-filled tail that
//!   preallocation leaves in an active segment's index.
//!
//! A damaged file is a finding, not a failure: batches with a bad CRC print
//! `isvalid: false`, and a torn or corrupt tail gets one line saying where and
//! why, after everything valid before it; the exit code stays 0. A path that
//! cannot be read (missing, a directory, not a segment file) is one `error:` line
//! on stderr and makes the exit code 1; the other paths are still dumped.
//!
//! The walking and validation is the storage crate's ([`strata_storage::inspect`]);
//! this module only formats.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};
use strata_storage::batch::{BatchHeader, TimestampType};
use strata_storage::inspect::{
    base_offset_from_file_name, InspectError, LogBatch, LogBatches, OffsetIndexEntries,
    SegmentFileKind, TimeIndexEntries,
};

#[derive(clap::Args)]
pub struct DumpLogArgs {
    /// Segment files to dump: NNNNNNNNNNNNNNNNNNNN.log, .index or .timeindex.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also decode every record of a .log file: offset, timestamp, key and value
    /// sizes, sequence, header keys, key and payload (as UTF-8, control characters
    /// escaped).
    #[arg(long, visible_alias = "print-data-log")]
    records: bool,
}

/// Why one path could not be dumped.
enum Failure {
    /// The input: a path that is missing, unreadable or not a segment file.
    Input(String),
    /// Writing to stdout failed (e.g. a closed pipe).
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Output(error)
    }
}

impl From<InspectError> for Failure {
    fn from(error: InspectError) -> Failure {
        // InspectError's message already names the path and the cause.
        Failure::Input(error.to_string())
    }
}

/// Dumps every path; exit code 1 if any of them could not be read.
pub fn run(args: &DumpLogArgs) -> ExitCode {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut failed = false;
    for path in &args.paths {
        let result = dump_file(path, args.records, &mut out);
        if let Err(Failure::Input(message)) = &result {
            // Keep stdout and stderr in order when both go to a terminal.
            if out.flush().is_err() {
                return ExitCode::FAILURE;
            }
            eprintln!("error: {message}");
            failed = true;
        } else if let Err(Failure::Output(error)) = result {
            return output_failed(&error);
        }
    }
    if let Err(error) = out.flush() {
        return output_failed(&error);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `strata dump-log ... | head` closes the pipe early: that is not an error.
fn output_failed(error: &io::Error) -> ExitCode {
    if error.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: writing to stdout: {error}");
    ExitCode::FAILURE
}

fn dump_file(path: &Path, records: bool, out: &mut impl Write) -> Result<(), Failure> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| Failure::Input(format!("cannot read {}: {error}", path.display())))?;
    if metadata.is_dir() {
        return Err(Failure::Input(format!(
            "{} is a directory; give its segment files (NNNNNNNNNNNNNNNNNNNN.log, .index, .timeindex)",
            path.display()
        )));
    }
    let kind = SegmentFileKind::of(path).ok_or_else(|| {
        Failure::Input(format!(
            "{} is not a segment file (expected .log, .index or .timeindex)",
            path.display()
        ))
    })?;
    match kind {
        SegmentFileKind::Log => dump_segment(path, records, out),
        SegmentFileKind::OffsetIndex => {
            let entries = OffsetIndexEntries::open(path, index_base_offset(path)?)?;
            writeln!(out, "Dumping {}", path.display())?;
            for entry in entries {
                match entry {
                    Ok(entry) => {
                        writeln!(out, "offset: {} position: {}", entry.offset, entry.position)?
                    }
                    Err(error) => return report_stop(error, None, out),
                }
            }
            Ok(())
        }
        SegmentFileKind::TimeIndex => {
            let entries = TimeIndexEntries::open(path, index_base_offset(path)?)?;
            writeln!(out, "Dumping {}", path.display())?;
            for entry in entries {
                match entry {
                    Ok(entry) => writeln!(
                        out,
                        "timestamp: {} offset: {}",
                        entry.timestamp, entry.offset
                    )?,
                    Err(error) => return report_stop(error, None, out),
                }
            }
            Ok(())
        }
    }
}

/// Index entries store offsets relative to the segment's base offset, which only
/// the file name tells.
fn index_base_offset(path: &Path) -> Result<i64, Failure> {
    base_offset_from_file_name(path).ok_or_else(|| {
        Failure::Input(format!(
            "{}: index entries are relative to the segment's base offset, which the file \
             name must give as 20 digits (e.g. 00000000000000000000.index)",
            path.display()
        ))
    })
}

/// A corrupt tail becomes a line of output (the dump did its job); an I/O error
/// part-way is a failure. `file_len` lets the line say how much was left unread.
fn report_stop(
    error: InspectError,
    file_len: Option<u64>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match error {
        InspectError::Corrupt {
            position, reason, ..
        } => {
            let left = file_len
                .map(|len| format!("; {} bytes from there are not dumped", len - position))
                .unwrap_or_default();
            writeln!(out, "Corrupt tail at position {position}: {reason}{left}")?;
            Ok(())
        }
        error @ InspectError::Io { .. } => Err(error.into()),
    }
}

fn dump_segment(path: &Path, records: bool, out: &mut impl Write) -> Result<(), Failure> {
    let batches = LogBatches::open(path)?;
    let file_len = batches.file_len();
    writeln!(out, "Dumping {}", path.display())?;
    if let Some(base_offset) = base_offset_from_file_name(path) {
        writeln!(out, "Log starting offset: {base_offset}")?;
    }
    for batch in batches {
        match batch {
            Ok(batch) => {
                print_batch(&batch, out)?;
                if records {
                    print_records(batch, out)?;
                }
            }
            Err(error) => return report_stop(error, Some(file_len), out),
        }
    }
    Ok(())
}

fn print_batch(batch: &LogBatch, out: &mut impl Write) -> io::Result<()> {
    let header = &batch.header;
    writeln!(
        out,
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} \
         producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} \
         isControl: {} position: {} {}: {} size: {} magic: {} compresscodec: {} crc: {} \
         isvalid: {}",
        header.base_offset,
        header.last_offset(),
        header.record_count,
        header.base_sequence,
        sequence_at(header, header.last_offset_delta),
        header.producer_id,
        header.producer_epoch,
        header.partition_leader_epoch,
        header.is_transactional(),
        header.is_control(),
        batch.position,
        timestamp_label(header),
        header.max_timestamp,
        batch.bytes.len(),
        header.magic,
        codec_name(header.compression()),
        header.crc,
        batch.is_valid(),
    )
}

fn print_records(batch: LogBatch, out: &mut impl Write) -> io::Result<()> {
    let header = batch.header;
    let decoded = match RecordBatchDecoder::decode(&mut Bytes::from(batch.bytes)) {
        Ok(decoded) => decoded,
        Err(error) => return writeln!(out, "| records not decoded: {error}"),
    };
    for record in &decoded.records {
        print_record(&header, record, out)?;
    }
    Ok(())
}

fn print_record(header: &BatchHeader, record: &Record, out: &mut impl Write) -> io::Result<()> {
    // LogAppendTime: every record carries the batch's maxTimestamp, as Kafka reads it.
    let timestamp = match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => record.timestamp,
    };
    let delta = i32::try_from(record.offset - header.base_offset).unwrap_or(-1);
    let header_keys: Vec<&str> = record.headers.keys().map(|key| key.as_str()).collect();
    write!(
        out,
        "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}]",
        record.offset,
        timestamp_label(header),
        timestamp,
        size_or_null(record.key.as_ref()),
        size_or_null(record.value.as_ref()),
        sequence_at(header, delta),
        header_keys.join(","),
    )?;
    if let Some(key) = &record.key {
        write!(out, " key: {}", printable(key))?;
    }
    if let Some(value) = &record.value {
        write!(out, " payload: {}", printable(value))?;
    }
    writeln!(out)
}

/// Kafka's field label for a timestamp: the timestamp type's name.
fn timestamp_label(header: &BatchHeader) -> &'static str {
    match header.timestamp_type() {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// The sequence number of the record `delta` offsets into the batch: -1 for a
/// batch without sequences, else counted from the base sequence and wrapping to 0
/// after `i32::MAX`, as Kafka's idempotent producers number them.
fn sequence_at(header: &BatchHeader, delta: i32) -> i64 {
    if header.base_sequence < 0 || delta < 0 {
        return -1;
    }
    (i64::from(header.base_sequence) + i64::from(delta)) % (i64::from(i32::MAX) + 1)
}

fn codec_name(codec: i16) -> String {
    match codec {
        0 => "none".to_string(),
        1 => "gzip".to_string(),
        2 => "snappy".to_string(),
        3 => "lz4".to_string(),
        4 => "zstd".to_string(),
        other => format!("unknown({other})"),
    }
}

/// Kafka prints -1 for an absent key or value.
fn size_or_null(bytes: Option<&Bytes>) -> i64 {
    bytes.map_or(-1, |bytes| bytes.len() as i64)
}

/// Bytes as UTF-8 (invalid sequences replaced), with control characters escaped
/// so that one record stays one line.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_follow_kafka_numbering() {
        let mut header = BatchHeader::parse(&[0u8; 61]).expect("61 bytes");
        header.base_sequence = -1;
        assert_eq!(sequence_at(&header, 4), -1);
        header.base_sequence = 10;
        assert_eq!(sequence_at(&header, 4), 14);
        header.base_sequence = i32::MAX - 1;
        assert_eq!(sequence_at(&header, 3), 1, "wraps to 0 after i32::MAX");
    }

    #[test]
    fn payloads_stay_on_one_line() {
        assert_eq!(printable(b"a\nb\tc"), "a\\nb\\tc");
        assert_eq!(printable(&[0x66, 0xff, 0x6f]), "f\u{fffd}o");
        assert_eq!(printable("héllo".as_bytes()), "héllo");
    }
}
