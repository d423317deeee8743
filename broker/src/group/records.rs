//! The records of Kafka's internal topic `__consumer_offsets`: their keys and
//! values, as bytes and back.
//!
//! Kafka keeps committed offsets and classic group metadata in this compacted
//! topic, and a coordinator rebuilds its state by replaying it. Reading and
//! writing the same bytes as Kafka lets operators' tools (for example
//! `kafka-console-consumer --formatter ...OffsetsMessageFormatter`) read our
//! topic, and keeps a data directory meaningful to both.
//!
//! Every key and value starts with an INT16 version; the rest follows the
//! schemas in Kafka's `group-coordinator/src/main/resources/common/message/`:
//!
//! | record | versions | layout |
//! |---|---|---|
//! | key 0, 1 | `OffsetCommitKey` | group, topic, partition |
//! | key 2 | `GroupMetadataKey` | group |
//! | key 3+ | other coordinators' records (KIP-848 consumer groups, share groups, ...) | [`RecordError::UnknownKeyVersion`] |
//! | [`OffsetValue`] 0–4 | `OffsetCommitValue` | 4 is flexible (KIP-915) |
//! | [`GroupValue`] 0–4 | `GroupMetadataValue` | 4 is flexible (KIP-915) |
//!
//! In Kafka 4 the key's INT16 is really a record *type* (the schema's
//! `apiKey`): OffsetCommitKey is type 1 (0 is its legacy spelling) and
//! GroupMetadataKey type 2, each with a single non-flexible layout. Reading it
//! as a version gives the same bytes.
//!
//! A null value is a tombstone; the caller handles it before calling here.
//!
//! The primitives (fixed-width big-endian integers, INT16/INT32-length strings
//! and bytes, and for flexible versions unsigned-varint lengths and tagged
//! fields) are written out in [`wire`] below, not taken from the
//! `kafka-protocol` crate: its `Encoder`/`Decoder` traits are `pub(crate)` in
//! 0.18, so code outside the crate cannot call them.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a key or value from `__consumer_offsets` could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The key's version is one this codec does not know: Kafka 4 writes
    /// versions 3 and up for records of the new consumer-group protocol
    /// (KIP-848), share groups and others. A loader that only rebuilds classic
    /// groups and offsets skips such records.
    #[error("unknown __consumer_offsets key version {0}")]
    UnknownKeyVersion(i16),
    /// The value's version is outside the range its schema defines (0–4).
    #[error("unknown __consumer_offsets value version {0}")]
    UnknownValueVersion(i16),
    /// The bytes do not follow the schema: truncated, a negative length, a
    /// string that is not UTF-8, bytes left over after the last field, ...
    #[error("malformed __consumer_offsets record: {0}")]
    Malformed(String),
    /// A field too long for its length prefix (INT16 for strings): such a
    /// record cannot be written, so the request that carries it is refused.
    #[error("{field} of {length} bytes is longer than a __consumer_offsets record allows ({max})")]
    TooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
}

/// The key of a `__consumer_offsets` record: which offset or which group the
/// value describes. Compaction keeps the latest value per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    /// The committed offset of one partition for one group (key versions 0
    /// and 1, `OffsetCommitKey`).
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// The membership and generation of one classic group (key version 2,
    /// `GroupMetadataKey`).
    Group { group: String },
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the group will consume from the partition.
    pub offset: i64,
    /// The leader epoch of the record before `offset` (KIP-320), -1 if the
    /// client did not send one or the version (0–2) cannot carry it.
    pub leader_epoch: i32,
    /// Free-form metadata the client committed along with the offset.
    pub metadata: String,
    /// When the broker accepted the commit.
    pub commit_timestamp_ms: i64,
    /// When the offset expires. Only version 1 carries it: it was the
    /// per-commit retention time of OffsetCommit v2–v4 requests, which KIP-211
    /// replaced with expiry measured from when the group became empty.
    pub expire_timestamp_ms: Option<i64>,
}

/// A classic group's state at the end of a rebalance (`GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// The kind of group, `consumer` for Kafka consumers, `connect` for
    /// Connect workers. Empty for a group that only commits offsets.
    pub protocol_type: String,
    /// The generation the group reached.
    pub generation: i32,
    /// The assignment protocol chosen for this generation, none when empty.
    pub protocol: Option<String>,
    /// The member that computes the assignment, none when empty.
    pub leader: Option<String>,
    /// When the group entered its current state (versions 2+), -1 if unknown;
    /// an empty group's offsets expire relative to it (KIP-211).
    pub current_state_timestamp_ms: i64,
    /// The members of this generation.
    pub members: Vec<MemberValue>,
}

/// One member of a classic group (`MemberMetadata` in `GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    /// The id the coordinator gave the member.
    pub member_id: String,
    /// The static member's `group.instance.id` (KIP-345, versions 3+).
    pub group_instance_id: Option<String>,
    /// The client id the member joined with.
    pub client_id: String,
    /// The address the member joined from.
    pub client_host: String,
    /// How long a rebalance waits for this member to rejoin. Version 0 has no
    /// such field; Kafka reads it as the session timeout, and so do we.
    pub rebalance_timeout_ms: i32,
    /// How long the member may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (opaque to the broker).
    pub subscription: Bytes,
    /// The assignment the leader gave the member (opaque to the broker).
    pub assignment: Bytes,
}

/// The key version written for offset commits. Versions 0 and 1 share a
/// layout; current Kafka writes 1, and Kafka 4 calls it record type 1.
const OFFSET_KEY_VERSION: i16 = 1;
/// The key version of group metadata.
const GROUP_KEY_VERSION: i16 = 2;
/// The highest value version of either schema.
const MAX_VALUE_VERSION: i16 = 4;
/// The first flexible value version of either schema (KIP-915).
const FIRST_FLEXIBLE_VERSION: i16 = 4;

/// Encodes a key: offset keys as version 1, group keys as version 2.
/// A group id or topic longer than `i16::MAX` bytes, which the key's INT16
/// length cannot express, is [`RecordError::TooLong`].
pub fn encode_key(key: &OffsetsKey) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::new();
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            buf.put_i16(OFFSET_KEY_VERSION);
            wire::put_string(&mut buf, "group id", group)?;
            wire::put_string(&mut buf, "topic", topic)?;
            buf.put_i32(*partition);
        }
        OffsetsKey::Group { group } => {
            buf.put_i16(GROUP_KEY_VERSION);
            wire::put_string(&mut buf, "group id", group)?;
        }
    }
    Ok(buf.freeze())
}

/// Decodes a key of any version Kafka writes for classic groups and offsets.
/// Other versions give [`RecordError::UnknownKeyVersion`], for the caller to
/// skip.
pub fn decode_key(bytes: &[u8]) -> Result<OffsetsKey, RecordError> {
    let mut reader = wire::Reader::new(bytes);
    let version = reader.i16("key version")?;
    let key = match version {
        0 | 1 => OffsetsKey::Offset {
            group: reader.string("group", false)?,
            topic: reader.string("topic", false)?,
            partition: reader.i32("partition")?,
        },
        2 => OffsetsKey::Group {
            group: reader.string("group", false)?,
        },
        other => return Err(RecordError::UnknownKeyVersion(other)),
    };
    reader.finish()?;
    Ok(key)
}

/// Encodes a committed offset: as version 1 when it carries an expire
/// timestamp, the only version that can; otherwise as version 3, what Kafka
/// 2.1 through 3.x write. Version 4 is flexible and only readable by Kafka 3.5
/// and later (KIP-915), so 3 keeps the topic readable by every Kafka since
/// 2.1. Version 1 has no leader epoch: it is dropped.
/// Metadata longer than `i16::MAX` bytes is [`RecordError::TooLong`]
/// (whatever `offset.metadata.max.bytes` allows).
pub fn encode_offset_value(value: &OffsetValue) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::new();
    match value.expire_timestamp_ms {
        Some(expire_timestamp_ms) => {
            buf.put_i16(1);
            buf.put_i64(value.offset);
            wire::put_string(&mut buf, "offset metadata", &value.metadata)?;
            buf.put_i64(value.commit_timestamp_ms);
            buf.put_i64(expire_timestamp_ms);
        }
        None => {
            buf.put_i16(3);
            buf.put_i64(value.offset);
            buf.put_i32(value.leader_epoch);
            wire::put_string(&mut buf, "offset metadata", &value.metadata)?;
            buf.put_i64(value.commit_timestamp_ms);
        }
    }
    Ok(buf.freeze())
}

/// Decodes a committed offset of any version, 0 to 4.
pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut reader = wire::Reader::new(bytes);
    let version = value_version(&mut reader)?;
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let offset = reader.i64("offset")?;
    let leader_epoch = if version >= 3 {
        reader.i32("leader epoch")?
    } else {
        -1
    };
    let metadata = reader.string("metadata", flexible)?;
    let commit_timestamp_ms = reader.i64("commit timestamp")?;
    let expire_timestamp_ms = if version == 1 {
        Some(reader.i64("expire timestamp")?)
    } else {
        None
    };
    if flexible {
        reader.skip_tagged_fields()?;
    }
    reader.finish()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

/// Encodes a group's metadata as version 3: the first version with
/// `group_instance_id`, readable by every Kafka since 2.3, and not yet
/// flexible (version 4 needs Kafka 3.5, KIP-915).
/// A string longer than `i16::MAX` bytes (flexible requests can carry
/// them), or bytes or a member list longer than `i32::MAX`, is
/// [`RecordError::TooLong`].
pub fn encode_group_value(value: &GroupValue) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::new();
    buf.put_i16(3);
    wire::put_string(&mut buf, "protocol type", &value.protocol_type)?;
    buf.put_i32(value.generation);
    wire::put_nullable_string(&mut buf, "protocol", value.protocol.as_deref())?;
    wire::put_nullable_string(&mut buf, "leader", value.leader.as_deref())?;
    buf.put_i64(value.current_state_timestamp_ms);
    wire::put_array_len(&mut buf, "members", value.members.len())?;
    for member in &value.members {
        wire::put_string(&mut buf, "member id", &member.member_id)?;
        let instance = member.group_instance_id.as_deref();
        wire::put_nullable_string(&mut buf, "group instance id", instance)?;
        wire::put_string(&mut buf, "client id", &member.client_id)?;
        wire::put_string(&mut buf, "client host", &member.client_host)?;
        buf.put_i32(member.rebalance_timeout_ms);
        buf.put_i32(member.session_timeout_ms);
        wire::put_bytes(&mut buf, "subscription", &member.subscription)?;
        wire::put_bytes(&mut buf, "assignment", &member.assignment)?;
    }
    Ok(buf.freeze())
}

/// Decodes a group's metadata of any version, 0 to 4.
pub fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let mut reader = wire::Reader::new(bytes);
    let version = value_version(&mut reader)?;
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let protocol_type = reader.string("protocol type", flexible)?;
    let generation = reader.i32("generation")?;
    let protocol = reader.nullable_string("protocol", flexible)?;
    let leader = reader.nullable_string("leader", flexible)?;
    let current_state_timestamp_ms = if version >= 2 {
        reader.i64("current state timestamp")?
    } else {
        -1
    };
    let member_count = reader.array_len("members", flexible)?;
    // No capacity from the count: it comes from the input and could be huge.
    // Each member takes bytes, so a bogus count fails on truncation instead.
    let mut members = Vec::new();
    for _ in 0..member_count {
        members.push(decode_member(&mut reader, version, flexible)?);
    }
    if flexible {
        reader.skip_tagged_fields()?;
    }
    reader.finish()?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

/// Decodes one `MemberMetadata` of a group value of `version`.
fn decode_member(
    reader: &mut wire::Reader<'_>,
    version: i16,
    flexible: bool,
) -> Result<MemberValue, RecordError> {
    let member_id = reader.string("member id", flexible)?;
    let group_instance_id = if version >= 3 {
        reader.nullable_string("group instance id", flexible)?
    } else {
        None
    };
    let client_id = reader.string("client id", flexible)?;
    let client_host = reader.string("client host", flexible)?;
    let rebalance_timeout_ms = if version >= 1 {
        Some(reader.i32("rebalance timeout")?)
    } else {
        None
    };
    let session_timeout_ms = reader.i32("session timeout")?;
    let subscription = reader.bytes("subscription", flexible)?;
    let assignment = reader.bytes("assignment", flexible)?;
    if flexible {
        reader.skip_tagged_fields()?;
    }
    Ok(MemberValue {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
        session_timeout_ms,
        subscription,
        assignment,
    })
}

/// Reads a value's version and checks it is one the schemas define.
fn value_version(reader: &mut wire::Reader<'_>) -> Result<i16, RecordError> {
    match reader.i16("value version")? {
        version @ 0..=MAX_VALUE_VERSION => Ok(version),
        other => Err(RecordError::UnknownValueVersion(other)),
    }
}

/// The `__consumer_offsets` partition that holds `group_id`'s records, and
/// whose leader is therefore the group's coordinator: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`. `hashCode` is Java's
/// `String.hashCode`, over UTF-16 code units; `Utils.abs` is `Math.abs`
/// except that `Integer.MIN_VALUE` maps to 0 (where `Math.abs` would stay
/// negative).
///
/// # Panics
/// If `partitions` is not positive; it is the offsets topic's partition
/// count, which configuration validation keeps at 1 or more.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "__consumer_offsets has at least one partition, got {partitions}"
    );
    let hash = group_id.encode_utf16().fold(0_i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let kafka_abs = if hash == i32::MIN { 0 } else { hash.abs() };
    kafka_abs % partitions
}

/// The primitive encodings the schemas are built from, as Kafka's protocol
/// guide defines them: big-endian fixed-width integers; STRING and
/// NULLABLE_STRING with an INT16 length (-1 for null), BYTES and ARRAY with
/// an INT32 length; and in flexible versions COMPACT_* forms whose length is
/// an unsigned varint of length + 1 (0 for null), with a tagged-field section
/// closing each structure.
mod wire {
    use super::RecordError;
    use bytes::{BufMut, Bytes, BytesMut};

    fn too_long(field: &'static str, length: usize, max: usize) -> RecordError {
        RecordError::TooLong { field, length, max }
    }

    /// Writes a STRING.
    pub(super) fn put_string(
        buf: &mut BytesMut,
        field: &'static str,
        value: &str,
    ) -> Result<(), RecordError> {
        let length = i16::try_from(value.len())
            .map_err(|_| too_long(field, value.len(), i16::MAX as usize))?;
        buf.put_i16(length);
        buf.put_slice(value.as_bytes());
        Ok(())
    }

    /// Writes a NULLABLE_STRING.
    pub(super) fn put_nullable_string(
        buf: &mut BytesMut,
        field: &'static str,
        value: Option<&str>,
    ) -> Result<(), RecordError> {
        match value {
            Some(value) => put_string(buf, field, value),
            None => {
                buf.put_i16(-1);
                Ok(())
            }
        }
    }

    /// Writes BYTES.
    pub(super) fn put_bytes(
        buf: &mut BytesMut,
        field: &'static str,
        value: &[u8],
    ) -> Result<(), RecordError> {
        let length = i32::try_from(value.len())
            .map_err(|_| too_long(field, value.len(), i32::MAX as usize))?;
        buf.put_i32(length);
        buf.put_slice(value);
        Ok(())
    }

    /// Writes an ARRAY's length.
    pub(super) fn put_array_len(
        buf: &mut BytesMut,
        field: &'static str,
        length: usize,
    ) -> Result<(), RecordError> {
        let length =
            i32::try_from(length).map_err(|_| too_long(field, length, i32::MAX as usize))?;
        buf.put_i32(length);
        Ok(())
    }

    /// Reads primitives off the front of a byte slice. Every read checks the
    /// length first, so no input can make it panic.
    pub(super) struct Reader<'a> {
        remaining: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub(super) fn new(bytes: &'a [u8]) -> Self {
            Reader { remaining: bytes }
        }

        pub(super) fn i16(&mut self, field: &str) -> Result<i16, RecordError> {
            self.array(field).map(i16::from_be_bytes)
        }

        pub(super) fn i32(&mut self, field: &str) -> Result<i32, RecordError> {
            self.array(field).map(i32::from_be_bytes)
        }

        pub(super) fn i64(&mut self, field: &str) -> Result<i64, RecordError> {
            self.array(field).map(i64::from_be_bytes)
        }

        /// Reads a STRING, or a COMPACT_STRING if `flexible`.
        pub(super) fn string(
            &mut self,
            field: &str,
            flexible: bool,
        ) -> Result<String, RecordError> {
            self.nullable_string(field, flexible)?
                .ok_or_else(|| malformed(field, "null where the schema does not allow it"))
        }

        /// Reads a NULLABLE_STRING, or a COMPACT_NULLABLE_STRING if `flexible`.
        pub(super) fn nullable_string(
            &mut self,
            field: &str,
            flexible: bool,
        ) -> Result<Option<String>, RecordError> {
            let length = if flexible {
                self.compact_length(field)?
            } else {
                match self.i16(field)? {
                    -1 => None,
                    length => Some(
                        usize::try_from(length)
                            .map_err(|_| malformed(field, "negative string length"))?,
                    ),
                }
            };
            let Some(length) = length else {
                return Ok(None);
            };
            let bytes = self.take(length, field)?;
            let string =
                std::str::from_utf8(bytes).map_err(|_| malformed(field, "string is not UTF-8"))?;
            Ok(Some(string.to_owned()))
        }

        /// Reads BYTES, or COMPACT_BYTES if `flexible`; null is malformed.
        pub(super) fn bytes(&mut self, field: &str, flexible: bool) -> Result<Bytes, RecordError> {
            let length = if flexible {
                self.compact_length(field)?
            } else {
                self.i32_length(field)?
            };
            let length = length
                .ok_or_else(|| malformed(field, "null where the schema does not allow it"))?;
            Ok(Bytes::copy_from_slice(self.take(length, field)?))
        }

        /// Reads an ARRAY's length, or a COMPACT_ARRAY's if `flexible`; a null
        /// array is malformed.
        pub(super) fn array_len(
            &mut self,
            field: &str,
            flexible: bool,
        ) -> Result<usize, RecordError> {
            let length = if flexible {
                self.compact_length(field)?
            } else {
                self.i32_length(field)?
            };
            length.ok_or_else(|| malformed(field, "null where the schema does not allow it"))
        }

        /// Skips a flexible structure's tagged-field section: a count, then
        /// that many (tag, size, bytes). None of these schemas defines a
        /// tagged field yet, so every one is unknown and skipped.
        pub(super) fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
            let count = self.unsigned_varint("tagged fields")?;
            for _ in 0..count {
                self.unsigned_varint("tagged field tag")?;
                let size = self.unsigned_varint("tagged field size")?;
                self.take(to_usize(size), "tagged field")?;
            }
            Ok(())
        }

        /// Checks that nothing is left after the last field.
        pub(super) fn finish(self) -> Result<(), RecordError> {
            if self.remaining.is_empty() {
                Ok(())
            } else {
                Err(RecordError::Malformed(format!(
                    "{} bytes after the last field",
                    self.remaining.len()
                )))
            }
        }

        /// An INT32 length, -1 meaning null.
        fn i32_length(&mut self, field: &str) -> Result<Option<usize>, RecordError> {
            match self.i32(field)? {
                -1 => Ok(None),
                length => usize::try_from(length)
                    .map(Some)
                    .map_err(|_| malformed(field, "negative length")),
            }
        }

        /// A compact length: an unsigned varint of length + 1, 0 meaning null.
        fn compact_length(&mut self, field: &str) -> Result<Option<usize>, RecordError> {
            let encoded = self.unsigned_varint(field)?;
            Ok(encoded.checked_sub(1).map(to_usize))
        }

        /// An unsigned varint: seven bits a byte, least significant group
        /// first, the high bit set on every byte but the last; at most five
        /// bytes for a 32-bit value.
        fn unsigned_varint(&mut self, field: &str) -> Result<u32, RecordError> {
            let mut value: u32 = 0;
            for index in 0..5 {
                let [byte] = self.array(field)?;
                let bits = u32::from(byte & 0x7f);
                if index == 4 && bits > 0x0f {
                    return Err(malformed(field, "varint overflows 32 bits"));
                }
                value |= bits << (7 * index);
                if byte & 0x80 == 0 {
                    return Ok(value);
                }
            }
            Err(malformed(field, "varint longer than five bytes"))
        }

        fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], RecordError> {
            if length > self.remaining.len() {
                return Err(truncated(field));
            }
            let (taken, rest) = self.remaining.split_at(length);
            self.remaining = rest;
            Ok(taken)
        }

        fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], RecordError> {
            let (taken, rest) = self
                .remaining
                .split_first_chunk::<N>()
                .ok_or_else(|| truncated(field))?;
            self.remaining = rest;
            Ok(*taken)
        }
    }

    fn to_usize(value: u32) -> usize {
        usize::try_from(value).expect("Strata runs on targets where usize holds a u32")
    }

    fn truncated(field: &str) -> RecordError {
        RecordError::Malformed(format!("truncated in {field}"))
    }

    fn malformed(field: &str, problem: &str) -> RecordError {
        RecordError::Malformed(format!("{field}: {problem}"))
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
