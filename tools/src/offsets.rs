//! Where a consumer starts: `--from beginning|end|OFFSET|@EPOCH_MS|RFC3339`,
//! turned into one offset per partition with ListOffsets where needed.
//!
//! A time finds, per partition, the first record whose timestamp is at or after
//! it (ListOffsets by timestamp, KIP-79); a partition with no such record starts
//! at its end, as Kafka's consumers do when `offsetsForTimes` finds nothing.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::ListOffsetsRequest;

use crate::client::broker_error;
use crate::leaders::{Leaders, TopicLayout};

/// ListOffsets' special timestamps: the log start offset and the log end offset.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// Where to start reading each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// The log start offset.
    Beginning,
    /// The log end offset: only records produced from now on.
    End,
    /// This offset in every partition read.
    Offset(i64),
    /// The first record at or after this time (ms since the Unix epoch).
    Time(i64),
}

/// Parses `--from`: `beginning`, `end`, an offset (digits), `@` and epoch
/// milliseconds, or an RFC 3339 date-time such as `2026-11-21T09:30:00Z`.
pub fn parse_start_position(text: &str) -> Result<StartPosition, String> {
    match text {
        "beginning" | "earliest" => return Ok(StartPosition::Beginning),
        "end" | "latest" => return Ok(StartPosition::End),
        _ => {}
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(StartPosition::Offset)
            .map_err(|_| format!("offset {text} is too large"));
    }
    if let Some(millis) = text.strip_prefix('@') {
        return millis
            .parse::<i64>()
            .ok()
            .filter(|&ms| ms >= 0)
            .map(StartPosition::Time)
            .ok_or_else(|| format!("expected @ and milliseconds since the epoch, got {text:?}"));
    }
    parse_rfc3339(text).map(StartPosition::Time).ok_or_else(|| {
        format!(
            "expected beginning, end, an offset, @EPOCH_MS or an RFC 3339 time (2026-11-21T09:30:00Z), got {text:?}"
        )
    })
}

/// The offset to start at in each of `partitions`.
pub fn resolve(
    leaders: &mut Leaders,
    layout: &TopicLayout,
    partitions: &[i32],
    from: StartPosition,
) -> Result<BTreeMap<i32, i64>> {
    let timestamp = match from {
        StartPosition::Offset(offset) => {
            return Ok(partitions.iter().map(|&p| (p, offset)).collect());
        }
        StartPosition::Beginning => EARLIEST,
        StartPosition::End => LATEST,
        StartPosition::Time(ms) => ms,
    };
    let mut offsets = list_offsets(leaders, layout, partitions, timestamp)?;
    // No record at or after the time: start at the end.
    let past_the_end: Vec<i32> = offsets
        .iter()
        .filter(|(_, &offset)| offset < 0)
        .map(|(&p, _)| p)
        .collect();
    if !past_the_end.is_empty() {
        offsets.extend(list_offsets(leaders, layout, &past_the_end, LATEST)?);
    }
    Ok(offsets)
}

/// One ListOffsets query per leader for `timestamp` in each of `partitions`.
/// For a time with no record at or after it the offset is -1.
pub fn list_offsets(
    leaders: &mut Leaders,
    layout: &TopicLayout,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &partition in partitions {
        by_leader
            .entry(layout.leader(partition)?)
            .or_default()
            .push(partition);
    }
    let mut offsets = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(layout.topic_name())
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response = leaders.client(leader)?.send(&request)?;
        for answer in response.topics.iter().flat_map(|t| &t.partitions) {
            broker_error(answer.error_code, None).with_context(|| {
                format!(
                    "listing offsets of {} partition {}",
                    layout.name, answer.partition_index
                )
            })?;
            offsets.insert(answer.partition_index, answer.offset);
        }
        if let Some(missing) = partitions.iter().find(|p| !offsets.contains_key(p)) {
            bail!("the broker's ListOffsets answer lacks partition {missing}");
        }
    }
    Ok(offsets)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → milliseconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let separators_ok =
        bytes[4] == b'-' && bytes[7] == b'-' && bytes[13] == b':' && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits, padded; finer digits are dropped.
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = rest.get(1..)?;
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let zone_hours: i64 = zone[..2].parse().ok()?;
            let zone_minutes: i64 = zone[3..].parse().ok()?;
            if zone_hours > 23 || zone_minutes > 59 {
                return None;
            }
            sign * (zone_hours * 60 + zone_minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`: eras of 400 years, March-based years so leap days fall last).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_become_epoch_milliseconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        // 2000-03-01: after a leap day in a year divisible by 400.
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            parse_rfc3339("2026-11-21T09:30:00.25Z"),
            Some(1_795_253_400_250)
        );
        // The same instant written with an offset.
        assert_eq!(
            parse_rfc3339("2026-11-21T10:30:00.250+01:00"),
            Some(1_795_253_400_250)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T04:00:00.250123-05:30"),
            Some(1_795_253_400_250)
        );
        for bad in [
            "2026-11-21",
            "2026-11-21T09:30:00",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T09:30:00.Z",
            "2026-11-21T09:30:00+0100",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn start_positions() {
        assert_eq!(
            parse_start_position("beginning"),
            Ok(StartPosition::Beginning)
        );
        assert_eq!(parse_start_position("end"), Ok(StartPosition::End));
        assert_eq!(parse_start_position("42"), Ok(StartPosition::Offset(42)));
        assert_eq!(
            parse_start_position("@1700000000000"),
            Ok(StartPosition::Time(1_700_000_000_000))
        );
        assert_eq!(
            parse_start_position("1970-01-01T00:00:01Z"),
            Ok(StartPosition::Time(1000))
        );
        for bad in ["", "-1", "@", "@-5", "soon", "99999999999999999999"] {
            assert!(parse_start_position(bad).is_err(), "{bad}");
        }
    }
}
