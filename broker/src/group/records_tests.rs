//! Tests of the `__consumer_offsets` codec. Byte vectors for the versions we
//! only read are built field by field from Kafka's schemas with [`Fixture`],
//! so they do not depend on the encoder under test.

use super::*;
use proptest::prelude::*;

/// Builds a record byte by byte, one schema field per call.
#[derive(Default)]
struct Fixture(Vec<u8>);

impl Fixture {
    fn int16(mut self, value: i16) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn int32(mut self, value: i32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    fn int64(mut self, value: i64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
    /// STRING: INT16 length, then UTF-8.
    fn string(self, value: &str) -> Self {
        let length = i16::try_from(value.len()).expect("fixture strings are short");
        self.int16(length).raw(value.as_bytes())
    }
    /// NULLABLE_STRING null.
    fn null_string(self) -> Self {
        self.int16(-1)
    }
    /// BYTES: INT32 length, then the bytes.
    fn bytes(self, value: &[u8]) -> Self {
        let length = i32::try_from(value.len()).expect("fixture bytes are short");
        self.int32(length).raw(value)
    }
    /// COMPACT_STRING with fewer than 127 bytes: a one-byte varint of
    /// length + 1, then UTF-8.
    fn compact_string(self, value: &str) -> Self {
        let length_plus_one = u8::try_from(value.len() + 1).expect("fixture strings are short");
        assert!(length_plus_one < 0x80, "one-byte varint");
        self.raw(&[length_plus_one]).raw(value.as_bytes())
    }
    /// COMPACT_NULLABLE_STRING null: varint 0.
    fn compact_null(self) -> Self {
        self.raw(&[0])
    }
    fn compact_bytes(self, value: &[u8]) -> Self {
        let length_plus_one = u8::try_from(value.len() + 1).expect("fixture bytes are short");
        assert!(length_plus_one < 0x80, "one-byte varint");
        self.raw(&[length_plus_one]).raw(value)
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn build(self) -> Vec<u8> {
        self.0
    }
}

fn offset_key() -> OffsetsKey {
    OffsetsKey::Offset {
        group: "payments".to_owned(),
        topic: "orders".to_owned(),
        partition: 7,
    }
}

fn static_member() -> MemberValue {
    MemberValue {
        member_id: "consumer-1-1b2c".to_owned(),
        group_instance_id: Some("instance-a".to_owned()),
        client_id: "consumer-1".to_owned(),
        client_host: "/10.0.0.1".to_owned(),
        rebalance_timeout_ms: 300_000,
        session_timeout_ms: 45_000,
        subscription: Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6]),
        assignment: Bytes::from_static(&[0, 1, 0, 0, 0, 0]),
    }
}

fn dynamic_member() -> MemberValue {
    MemberValue {
        member_id: "consumer-2-9f8e".to_owned(),
        group_instance_id: None,
        client_id: "consumer-2".to_owned(),
        client_host: "/10.0.0.2".to_owned(),
        rebalance_timeout_ms: 60_000,
        session_timeout_ms: 10_000,
        subscription: Bytes::new(),
        assignment: Bytes::from_static(b"x"),
    }
}

fn stable_group() -> GroupValue {
    GroupValue {
        protocol_type: "consumer".to_owned(),
        generation: 12,
        protocol: Some("range".to_owned()),
        leader: Some("consumer-1-1b2c".to_owned()),
        current_state_timestamp_ms: 1_700_000_000_000,
        members: vec![static_member(), dynamic_member()],
    }
}

/// Asserts that `decode` finds each of `cases` malformed.
fn assert_all_malformed<T: std::fmt::Debug>(
    cases: Vec<Vec<u8>>,
    decode: impl Fn(&[u8]) -> Result<T, RecordError>,
) {
    for bytes in cases {
        let decoded = decode(&bytes);
        assert!(
            matches!(decoded, Err(RecordError::Malformed(_))),
            "{bytes:?}: {decoded:?}"
        );
    }
}

// ---- keys ----

#[test]
fn offset_key_is_written_as_version_1_and_round_trips() {
    let bytes = encode_key(&offset_key()).unwrap();
    let expected = Fixture::default()
        .int16(1)
        .string("payments")
        .string("orders")
        .int32(7)
        .build();
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(decode_key(&bytes), Ok(offset_key()));
}

#[test]
fn group_key_is_written_as_version_2_and_round_trips() {
    let key = OffsetsKey::Group {
        group: "payments".to_owned(),
    };
    let bytes = encode_key(&key).unwrap();
    let expected = Fixture::default().int16(2).string("payments").build();
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(decode_key(&bytes), Ok(key));
}

#[test]
fn key_version_0_decodes_as_an_offset_key() {
    let bytes = Fixture::default()
        .int16(0)
        .string("payments")
        .string("orders")
        .int32(7)
        .build();
    assert_eq!(decode_key(&bytes), Ok(offset_key()));
}

#[test]
fn key_versions_of_other_records_are_unknown_not_malformed() {
    for version in [3, 4, 5, 1000, -1] {
        // Whatever follows, the version alone decides.
        let bytes = Fixture::default().int16(version).string("payments").build();
        assert_eq!(
            decode_key(&bytes),
            Err(RecordError::UnknownKeyVersion(version))
        );
    }
}

#[test]
fn keys_that_break_the_schema_are_malformed() {
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        Fixture::default().int16(1).string("payments").build(),
        Fixture::default().int16(2).string("g").raw(&[0]).build(),
        Fixture::default().int16(2).null_string().build(),
        Fixture::default().int16(2).int16(-2).build(),
        Fixture::default()
            .int16(2)
            .int16(2)
            .raw(&[0xc3, 0x28])
            .build(),
        Fixture::default().int16(2).int16(5).raw(b"abc").build(),
    ];
    assert_all_malformed(cases, decode_key);
}

// ---- offset values ----

fn offset_value(expire_timestamp_ms: Option<i64>, leader_epoch: i32) -> OffsetValue {
    OffsetValue {
        offset: 4_096,
        leader_epoch,
        metadata: "checkpoint 3".to_owned(),
        commit_timestamp_ms: 1_700_000_000_123,
        expire_timestamp_ms,
    }
}

#[test]
fn offset_value_without_expiry_is_written_as_version_3_and_round_trips() {
    let value = offset_value(None, 5);
    let bytes = encode_offset_value(&value).unwrap();
    let expected = Fixture::default()
        .int16(3)
        .int64(4_096)
        .int32(5)
        .string("checkpoint 3")
        .int64(1_700_000_000_123)
        .build();
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(decode_offset_value(&bytes), Ok(value));
}

#[test]
fn offset_value_with_expiry_is_written_as_version_1_and_round_trips() {
    let value = offset_value(Some(1_700_086_400_123), -1);
    let bytes = encode_offset_value(&value).unwrap();
    let expected = Fixture::default()
        .int16(1)
        .int64(4_096)
        .string("checkpoint 3")
        .int64(1_700_000_000_123)
        .int64(1_700_086_400_123)
        .build();
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(decode_offset_value(&bytes), Ok(value));
}

#[test]
fn version_1_cannot_carry_a_leader_epoch() {
    let bytes = encode_offset_value(&offset_value(Some(1), 5)).unwrap();
    let decoded = decode_offset_value(&bytes).expect("valid encoding");
    assert_eq!(decoded.leader_epoch, -1);
}

#[test]
fn offset_value_version_0_decodes() {
    let bytes = Fixture::default()
        .int16(0)
        .int64(4_096)
        .string("checkpoint 3")
        .int64(1_700_000_000_123)
        .build();
    assert_eq!(decode_offset_value(&bytes), Ok(offset_value(None, -1)));
}

#[test]
fn offset_value_version_2_decodes() {
    let bytes = Fixture::default()
        .int16(2)
        .int64(4_096)
        .string("checkpoint 3")
        .int64(1_700_000_000_123)
        .build();
    assert_eq!(decode_offset_value(&bytes), Ok(offset_value(None, -1)));
}

#[test]
fn offset_value_version_4_is_flexible() {
    let bytes = Fixture::default()
        .int16(4)
        .int64(4_096)
        .int32(5)
        .compact_string("checkpoint 3")
        .int64(1_700_000_000_123)
        .raw(&[0]) // no tagged fields
        .build();
    assert_eq!(decode_offset_value(&bytes), Ok(offset_value(None, 5)));
}

#[test]
fn offset_value_version_4_skips_unknown_tagged_fields() {
    let bytes = Fixture::default()
        .int16(4)
        .int64(4_096)
        .int32(5)
        .compact_string("checkpoint 3")
        .int64(1_700_000_000_123)
        // two tagged fields: tag 0 with 3 bytes, tag 200 (two-byte varint) empty
        .raw(&[2, 0, 3, 0xaa, 0xbb, 0xcc, 0xc8, 0x01, 0])
        .build();
    assert_eq!(decode_offset_value(&bytes), Ok(offset_value(None, 5)));
}

#[test]
fn offset_value_versions_outside_0_to_4_are_unknown() {
    for version in [5, 6, -1] {
        let bytes = Fixture::default().int16(version).int64(0).build();
        assert_eq!(
            decode_offset_value(&bytes),
            Err(RecordError::UnknownValueVersion(version))
        );
    }
}

#[test]
fn offset_values_that_break_the_schema_are_malformed() {
    let complete_v3 = encode_offset_value(&offset_value(None, 5)).unwrap();
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 3],
        complete_v3[..complete_v3.len() - 1].to_vec(),
        Fixture::default().raw(&complete_v3).raw(&[0]).build(),
        // metadata is not nullable
        Fixture::default()
            .int16(3)
            .int64(1)
            .int32(0)
            .null_string()
            .int64(0)
            .build(),
        // v4: missing the tagged-field section
        Fixture::default()
            .int16(4)
            .int64(1)
            .int32(0)
            .compact_string("")
            .int64(0)
            .build(),
        // v4: a tagged field longer than what is left
        Fixture::default()
            .int16(4)
            .int64(1)
            .int32(0)
            .compact_string("")
            .int64(0)
            .raw(&[1, 0, 5, 0])
            .build(),
        // v4: a varint that never ends
        Fixture::default()
            .int16(4)
            .int64(1)
            .int32(0)
            .raw(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
            .build(),
        // v4: a varint beyond 32 bits
        Fixture::default()
            .int16(4)
            .int64(1)
            .int32(0)
            .raw(&[0xff, 0xff, 0xff, 0xff, 0x1f])
            .build(),
    ];
    assert_all_malformed(cases, decode_offset_value);
}

// ---- group values ----

#[test]
fn group_value_is_written_as_version_3_and_round_trips() {
    let value = stable_group();
    let bytes = encode_group_value(&value).unwrap();
    let member = static_member();
    let other = dynamic_member();
    let expected = Fixture::default()
        .int16(3)
        .string("consumer")
        .int32(12)
        .string("range")
        .string("consumer-1-1b2c")
        .int64(1_700_000_000_000)
        .int32(2)
        .string(&member.member_id)
        .string("instance-a")
        .string(&member.client_id)
        .string(&member.client_host)
        .int32(300_000)
        .int32(45_000)
        .bytes(&member.subscription)
        .bytes(&member.assignment)
        .string(&other.member_id)
        .null_string()
        .string(&other.client_id)
        .string(&other.client_host)
        .int32(60_000)
        .int32(10_000)
        .bytes(&other.subscription)
        .bytes(&other.assignment)
        .build();
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(decode_group_value(&bytes), Ok(value));
}

#[test]
fn empty_group_round_trips() {
    let value = GroupValue {
        protocol_type: String::new(),
        generation: 3,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: -1,
        members: Vec::new(),
    };
    let bytes = encode_group_value(&value).unwrap();
    assert_eq!(decode_group_value(&bytes), Ok(value));
}

/// A version 0 or 1 value of a one-member group, without the v2+ timestamp
/// and the v3+ group instance id.
fn old_group_value(version: i16) -> Vec<u8> {
    let fixture = Fixture::default()
        .int16(version)
        .string("consumer")
        .int32(12)
        .string("range")
        .string("consumer-2-9f8e")
        .int32(1)
        .string("consumer-2-9f8e")
        .string("consumer-2")
        .string("/10.0.0.2");
    let fixture = if version >= 1 {
        fixture.int32(60_000)
    } else {
        fixture
    };
    fixture.int32(10_000).bytes(&[]).bytes(b"x").build()
}

#[test]
fn group_value_version_0_takes_the_session_timeout_as_rebalance_timeout() {
    let decoded = decode_group_value(&old_group_value(0)).expect("valid v0");
    assert_eq!(decoded.current_state_timestamp_ms, -1);
    assert_eq!(
        decoded.members,
        vec![MemberValue {
            rebalance_timeout_ms: 10_000,
            ..dynamic_member()
        }]
    );
}

#[test]
fn group_value_version_1_decodes() {
    let decoded = decode_group_value(&old_group_value(1)).expect("valid v1");
    assert_eq!(
        decoded,
        GroupValue {
            current_state_timestamp_ms: -1,
            leader: Some("consumer-2-9f8e".to_owned()),
            members: vec![dynamic_member()],
            ..stable_group()
        }
    );
}

#[test]
fn group_value_version_2_decodes() {
    let bytes = Fixture::default()
        .int16(2)
        .string("consumer")
        .int32(12)
        .null_string()
        .null_string()
        .int64(1_700_000_000_000)
        .int32(1)
        .string("consumer-2-9f8e")
        .string("consumer-2")
        .string("/10.0.0.2")
        .int32(60_000)
        .int32(10_000)
        .bytes(&[])
        .bytes(b"x")
        .build();
    assert_eq!(
        decode_group_value(&bytes),
        Ok(GroupValue {
            protocol: None,
            leader: None,
            members: vec![dynamic_member()],
            ..stable_group()
        })
    );
}

#[test]
fn group_value_version_4_is_flexible() {
    let member = static_member();
    let bytes = Fixture::default()
        .int16(4)
        .compact_string("consumer")
        .int32(12)
        .compact_string("range")
        .compact_null()
        .int64(1_700_000_000_000)
        .raw(&[3]) // two members, as a compact array
        .compact_string(&member.member_id)
        .compact_string("instance-a")
        .compact_string(&member.client_id)
        .compact_string(&member.client_host)
        .int32(300_000)
        .int32(45_000)
        .compact_bytes(&member.subscription)
        .compact_bytes(&member.assignment)
        .raw(&[1, 7, 1, 0xee]) // one unknown tagged field on the member
        .compact_string("consumer-2-9f8e")
        .compact_null()
        .compact_string("consumer-2")
        .compact_string("/10.0.0.2")
        .int32(60_000)
        .int32(10_000)
        .compact_bytes(&[])
        .compact_bytes(b"x")
        .raw(&[0]) // no tagged fields on the member
        .raw(&[1, 0, 2, 0xab, 0xcd]) // one unknown tagged field on the group
        .build();
    assert_eq!(
        decode_group_value(&bytes),
        Ok(GroupValue {
            leader: None,
            ..stable_group()
        })
    );
}

#[test]
fn group_value_versions_outside_0_to_4_are_unknown() {
    for version in [5, i16::MAX, -1] {
        let bytes = Fixture::default().int16(version).build();
        assert_eq!(
            decode_group_value(&bytes),
            Err(RecordError::UnknownValueVersion(version))
        );
    }
}

#[test]
fn group_values_that_break_the_schema_are_malformed() {
    let header = || {
        Fixture::default()
            .int16(3)
            .string("consumer")
            .int32(1)
            .null_string()
            .null_string()
            .int64(-1)
    };
    let cases: Vec<Vec<u8>> = vec![
        // null member array
        header().int32(-1).build(),
        // negative member count
        header().int32(-5).build(),
        // a count far beyond the bytes present
        header().int32(i32::MAX).build(),
        // protocol type is not nullable
        Fixture::default().int16(3).null_string().build(),
        // a member whose subscription is null
        header()
            .int32(1)
            .string("m")
            .null_string()
            .string("c")
            .string("h")
            .int32(1)
            .int32(1)
            .int32(-1)
            .build(),
        // v4 null compact array
        Fixture::default()
            .int16(4)
            .compact_string("consumer")
            .int32(1)
            .compact_null()
            .compact_null()
            .int64(-1)
            .raw(&[0, 0])
            .build(),
    ];
    assert_all_malformed(cases, decode_group_value);
}

// ---- partition_for ----

#[test]
fn partition_for_follows_java_string_hash_code() {
    // "".hashCode() == 0
    assert_eq!(partition_for("", 50), 0);
    // "a".hashCode() == 97
    assert_eq!(partition_for("a", 50), 97 % 50);
    assert_eq!(partition_for("a", 1), 0);
    // "group".hashCode() == ((((103*31+114)*31+111)*31+117)*31+112) == 98629247
    assert_eq!(partition_for("group", 50), 98_629_247 % 50);
    assert_eq!(partition_for("group", 1000), 98_629_247 % 1000);
}

#[test]
fn partition_for_hashes_utf16_code_units() {
    // 'é' is U+00E9, one code unit: 233.
    assert_eq!(partition_for("é", 50), 233 % 50);
    // U+1F600 is the surrogate pair D83D DE00: 0xD83D * 31 + 0xDE00 == 1772899,
    // not its code point 0x1F600 and not its four UTF-8 bytes.
    assert_eq!(partition_for("😀", 50), 1_772_899 % 50);
}

#[test]
fn partition_for_takes_the_absolute_value_of_negative_hashes() {
    // "my-group".hashCode() == -1906497762; Utils.abs gives 1906497762, and
    // 1906497762 % 50 == 12 (masking the sign bit would give 36 instead).
    assert_eq!(partition_for("my-group", 50), 12);
    // "grüppe".hashCode() == -1233264812 -> 1233264812 % 50 == 12.
    assert_eq!(partition_for("grüppe", 50), 12);
}

#[test]
fn partition_for_maps_integer_min_value_to_partition_0() {
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Utils.abs
    // maps to 0 (Math.abs would leave it negative).
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(partition_for("polygenelubricants", 7), 0);
}

// ---- properties ----

fn any_string() -> impl Strategy<Value = String> {
    ".{0,12}"
}

fn any_member() -> impl Strategy<Value = MemberValue> {
    (
        any_string(),
        proptest::option::of(any_string()),
        any_string(),
        any_string(),
        any::<i32>(),
        any::<i32>(),
        proptest::collection::vec(any::<u8>(), 0..16),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(
            |(
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            )| MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: Bytes::from(subscription),
                assignment: Bytes::from(assignment),
            },
        )
}

fn any_group() -> impl Strategy<Value = GroupValue> {
    (
        any_string(),
        any::<i32>(),
        proptest::option::of(any_string()),
        proptest::option::of(any_string()),
        any::<i64>(),
        proptest::collection::vec(any_member(), 0..4),
    )
        .prop_map(
            |(protocol_type, generation, protocol, leader, current_state_timestamp_ms, members)| {
                GroupValue {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp_ms,
                    members,
                }
            },
        )
}

fn any_offset() -> impl Strategy<Value = OffsetValue> {
    (
        any::<i64>(),
        any::<i32>(),
        any_string(),
        any::<i64>(),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms)| {
                OffsetValue {
                    offset,
                    // Version 1, the only one with an expiry, has no epoch.
                    leader_epoch: if expire_timestamp_ms.is_some() {
                        -1
                    } else {
                        leader_epoch
                    },
                    metadata,
                    commit_timestamp_ms,
                    expire_timestamp_ms,
                }
            },
        )
}

fn any_key() -> impl Strategy<Value = OffsetsKey> {
    prop_oneof![
        (any_string(), any_string(), any::<i32>()).prop_map(|(group, topic, partition)| {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            }
        }),
        any_string().prop_map(|group| OffsetsKey::Group { group }),
    ]
}

proptest! {
    #[test]
    fn every_encoding_round_trips(
        key in any_key(),
        offset in any_offset(),
        group in any_group(),
    ) {
        prop_assert_eq!(decode_key(&encode_key(&key).unwrap()), Ok(key));
        prop_assert_eq!(decode_offset_value(&encode_offset_value(&offset).unwrap()), Ok(offset));
        prop_assert_eq!(decode_group_value(&encode_group_value(&group).unwrap()), Ok(group));
    }

    #[test]
    fn every_truncation_of_a_valid_record_is_an_error(
        key in any_key(),
        offset in any_offset(),
        group in any_group(),
        cut in any::<prop::sample::Index>(),
    ) {
        let key = encode_key(&key).unwrap();
        let offset = encode_offset_value(&offset).unwrap();
        let group = encode_group_value(&group).unwrap();
        prop_assert!(decode_key(&key[..cut.index(key.len())]).is_err());
        prop_assert!(decode_offset_value(&offset[..cut.index(offset.len())]).is_err());
        prop_assert!(decode_group_value(&group[..cut.index(group.len())]).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_key(&bytes);
        let _ = decode_offset_value(&bytes);
        let _ = decode_group_value(&bytes);
    }

    /// Random bytes behind a valid version reach deeper into each schema than
    /// fully random bytes, whose first two bytes are rarely a known version.
    #[test]
    fn random_bodies_of_every_version_never_panic(
        version in -1_i16..6,
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = version.to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let _ = decode_key(&bytes);
        let _ = decode_offset_value(&bytes);
        let _ = decode_group_value(&bytes);
    }

    /// Flipping one byte of a valid record may give another valid record or
    /// an error, never a panic.
    #[test]
    fn corrupted_records_never_panic(
        group in any_group(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = encode_group_value(&group).unwrap().to_vec();
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let _ = decode_group_value(&bytes);
        bytes[0] = 0;
        bytes[1] = 4;
        let _ = decode_group_value(&bytes);
    }
}

/// Strings a record's INT16 length cannot express (flexible requests carry
/// longer ones) are refused as errors, never a panic.
#[test]
fn fields_too_long_for_a_record_are_errors() {
    let long = "g".repeat(40_000);
    let key = OffsetsKey::Group {
        group: long.clone(),
    };
    assert_eq!(
        encode_key(&key).unwrap_err(),
        RecordError::TooLong {
            field: "group id",
            length: 40_000,
            max: 32_767
        }
    );
    let mut group = stable_group();
    group.members[0].client_id = long.clone();
    assert!(matches!(
        encode_group_value(&group),
        Err(RecordError::TooLong {
            field: "client id",
            ..
        })
    ));
    let value = OffsetValue {
        offset: 1,
        leader_epoch: -1,
        metadata: long,
        commit_timestamp_ms: 0,
        expire_timestamp_ms: None,
    };
    assert!(encode_offset_value(&value).is_err());
}
