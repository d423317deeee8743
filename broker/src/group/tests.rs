//! The group state machine driven with a fake clock: every time below is a
//! plain number of milliseconds passed in by the test.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn config(initial_delay_ms: i64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupConfig::default()
    }
}

fn protocols(client: &str, names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|name| Protocol {
            name: (*name).to_owned(),
            metadata: Bytes::from(format!("{client}/{name}")),
        })
        .collect()
}

fn join_request(member_id: &str, client: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        client_id: client.to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_owned(),
        protocols: protocols(client, &["range", "roundrobin"]),
        require_known_member_id: true,
    }
}

fn sync_request(member_id: &str, generation_id: i32) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".to_owned()),
        protocol_name: None,
        assignments: Vec::new(),
    }
}

fn now<T: std::fmt::Debug>(reply: Reply<T>) -> T {
    match reply {
        Reply::Now(response) => response,
        Reply::Parked { member_id } => panic!("expected an answer, {member_id} was parked"),
    }
}

fn parked<T: std::fmt::Debug>(reply: Reply<T>) -> String {
    match reply {
        Reply::Parked { member_id } => member_id,
        Reply::Now(response) => panic!("expected to be parked, got {response:?}"),
    }
}

/// The KIP-394 round trip: MEMBER_ID_REQUIRED, then the join with the id.
fn join_with_id(
    group: &mut Group,
    now_ms: i64,
    request: JoinRequest,
) -> (String, Outcome<Reply<JoinResponse>>) {
    let first = now(group.join(now_ms, request.clone()).reply);
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    let member_id = first.member_id;
    let outcome = group.join(
        now_ms,
        JoinRequest {
            member_id: member_id.clone(),
            ..request
        },
    );
    (member_id, outcome)
}

fn join_responses(deliveries: &[Delivery]) -> Vec<(String, JoinResponse)> {
    deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Join {
                member_id,
                response,
            } => Some((member_id.clone(), response.clone())),
            Delivery::Sync { .. } => None,
        })
        .collect()
}

fn sync_responses(deliveries: &[Delivery]) -> Vec<(String, SyncResponse)> {
    deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Sync {
                member_id,
                response,
            } => Some((member_id.clone(), response.clone())),
            Delivery::Join { .. } => None,
        })
        .collect()
}

fn assignment_for(member_id: &str) -> Bytes {
    Bytes::from(format!("assignment-of-{member_id}"))
}

/// When [`stable_group`] is done.
const STABLE_AT: i64 = 6_000;

/// Members `clients` join at time 0 (a brand-new group, initial delay 3000 ms:
/// a second member extends it to 6000); the first is the leader and assigns
/// everyone; returns the member ids in join order, with the group Stable at
/// generation 1 at [`STABLE_AT`].
fn stable_group(clients: &[&str]) -> (Group, Vec<String>) {
    let mut group = Group::new("g", config(3_000));
    let mut ids = Vec::new();
    for client in clients {
        let (id, outcome) = join_with_id(&mut group, 0, join_request("", client));
        parked(outcome.reply);
        ids.push(id);
    }
    let mut deliveries = group.tick(3_000).deliveries;
    deliveries.extend(group.tick(STABLE_AT).deliveries);
    assert_eq!(join_responses(&deliveries).len(), clients.len());
    for follower in &ids[1..] {
        parked(group.sync(STABLE_AT, sync_request(follower, 1)).reply);
    }
    let mut leader_sync = sync_request(&ids[0], 1);
    leader_sync.assignments = ids
        .iter()
        .map(|id| (id.clone(), assignment_for(id)))
        .collect();
    let outcome = group.sync(STABLE_AT, leader_sync);
    assert_eq!(now(outcome.reply).assignment, assignment_for(&ids[0]));
    assert_eq!(group.state(), GroupState::Stable);
    (group, ids)
}

#[test]
fn single_member_becomes_stable_after_the_initial_delay() {
    let mut group = Group::new("g", config(3_000));
    let (id, outcome) = join_with_id(&mut group, 100, join_request("", "c1"));
    assert_eq!(parked(outcome.reply), id);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.next_deadline(), Some(3_100));

    assert!(group.tick(3_099).deliveries.is_empty());
    let outcome = group.tick(3_100);
    let joins = join_responses(&outcome.deliveries);
    assert_eq!(joins.len(), 1);
    let (member_id, response) = &joins[0];
    assert_eq!(member_id, &id);
    assert_eq!(response.error, None);
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.leader, id);
    assert_eq!(response.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.members.len(), 1);
    assert_eq!(response.members[0].metadata, Bytes::from("c1/range"));
    assert_eq!(group.state(), GroupState::CompletingRebalance);

    let mut sync = sync_request(&id, 1);
    sync.assignments = vec![(id.clone(), assignment_for(&id))];
    let outcome = group.sync(3_200, sync);
    assert!(outcome.persist, "the assignment is group metadata to store");
    let response = now(outcome.reply);
    assert_eq!(response.error, None);
    assert_eq!(response.assignment, assignment_for(&id));
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn zero_initial_delay_answers_a_lone_member_at_once() {
    let mut group = Group::new("g", config(0));
    let (id, outcome) = join_with_id(&mut group, 5, join_request("", "c1"));
    let response = now(outcome.reply);
    assert_eq!(response.error, None);
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.leader, id);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_extends_while_members_keep_joining() {
    let mut group = Group::new("g", config(3_000));
    let (a, _) = join_with_id(&mut group, 0, join_request("", "a"));
    let (b, _) = join_with_id(&mut group, 1_000, join_request("", "b"));
    // B arrived during the delay: another delay from its end.
    assert!(group.tick(3_000).deliveries.is_empty());
    assert_eq!(group.next_deadline(), Some(6_000));
    let joins = join_responses(&group.tick(6_000).deliveries);
    let ids: Vec<&str> = joins.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    assert!(joins
        .iter()
        .all(|(_, r)| r.generation_id == 1 && r.leader == a));
}

#[test]
fn initial_delay_extensions_stop_at_the_rebalance_timeout() {
    let mut group = Group::new("g", config(3_000));
    let short = |client| JoinRequest {
        rebalance_timeout_ms: 4_000,
        ..join_request("", client)
    };
    join_with_id(&mut group, 0, short("a"));
    join_with_id(&mut group, 1_000, short("b"));
    assert!(group.tick(3_000).deliveries.is_empty());
    assert_eq!(group.next_deadline(), Some(4_000));
    assert_eq!(join_responses(&group.tick(4_000).deliveries).len(), 2);
}

#[test]
fn three_members_leader_gets_metadata_followers_get_assignments() {
    let mut group = Group::new("g", config(3_000));
    let mut ids = Vec::new();
    for client in ["a", "b", "c"] {
        let (id, outcome) = join_with_id(&mut group, 10, join_request("", client));
        parked(outcome.reply);
        ids.push(id);
    }
    // The later joiners extend the initial delay once: 3010 → 6010.
    assert!(group.tick(3_010).deliveries.is_empty());
    let joins = join_responses(&group.tick(6_010).deliveries);
    assert_eq!(joins.len(), 3);
    for (member_id, response) in &joins {
        assert_eq!(response.generation_id, 1);
        assert_eq!(response.leader, ids[0]);
        if *member_id == ids[0] {
            let listed: Vec<(&str, &[u8])> = response
                .members
                .iter()
                .map(|m| (m.member_id.as_str(), m.metadata.as_ref()))
                .collect();
            assert_eq!(
                listed,
                [
                    (ids[0].as_str(), b"a/range".as_slice()),
                    (ids[1].as_str(), b"b/range".as_slice()),
                    (ids[2].as_str(), b"c/range".as_slice()),
                ]
            );
        } else {
            assert!(response.members.is_empty(), "followers get no member list");
        }
    }

    // Followers sync first and wait for the leader.
    assert_eq!(
        parked(group.sync(6_020, sync_request(&ids[1], 1)).reply),
        ids[1]
    );
    assert_eq!(
        parked(group.sync(6_020, sync_request(&ids[2], 1)).reply),
        ids[2]
    );
    let mut leader_sync = sync_request(&ids[0], 1);
    leader_sync.assignments = ids
        .iter()
        .map(|id| (id.clone(), assignment_for(id)))
        .collect();
    let outcome = group.sync(6_030, leader_sync);
    assert_eq!(now(outcome.reply).assignment, assignment_for(&ids[0]));
    let syncs = sync_responses(&outcome.deliveries);
    assert_eq!(syncs.len(), 2);
    for (member_id, response) in syncs {
        assert_eq!(response.error, None);
        assert_eq!(response.assignment, assignment_for(&member_id));
    }
    assert_eq!(group.state(), GroupState::Stable);
    // A follower that syncs late gets its assignment at once.
    assert_eq!(
        now(group.sync(6_040, sync_request(&ids[1], 1)).reply).assignment,
        assignment_for(&ids[1])
    );
}

#[test]
fn heartbeat_during_rebalance_is_rebalance_in_progress() {
    let (mut group, ids) = stable_group(&["a"]);
    assert_eq!(group.heartbeat(7_000, &ids[0], None, 1).reply, None);
    let (_b, outcome) = join_with_id(&mut group, 7_000, join_request("", "b"));
    parked(outcome.reply);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(7_100, &ids[0], None, 1).reply,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        now(group.sync(7_100, sync_request(&ids[0], 1)).reply).error,
        Some(ResponseError::RebalanceInProgress)
    );
}

/// The sequence of the kafka-python stall (issue: "a consumer-group member
/// stalls until its session expires"): the lone leader rejoins by itself and
/// completes a generation alone, syncs, and a second member joins 2 ms later.
/// Every request of the leader is answered at once, and its next heartbeat
/// says REBALANCE_IN_PROGRESS, so nothing on the coordinator's side waits for
/// the session timeout: the member that stalled had stopped sending.
#[test]
fn a_lone_leader_rejoin_then_a_new_member_is_answered_at_every_step() {
    let mut group = Group::new("g", config(0));
    let (a, outcome) = join_with_id(&mut group, 0, join_request("", "a"));
    assert_eq!(now(outcome.reply).generation_id, 1);
    now(group.sync(4, sync_request(&a, 1)).reply);
    // The leader rejoins alone (its metadata changed): generation 2 at once.
    let rejoin = now(group.join(106, join_request(&a, "a")).reply);
    assert_eq!((rejoin.error, rejoin.generation_id), (None, 2));
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    let synced = now(group.sync(108, sync_request(&a, 2)).reply);
    assert_eq!(synced.error, None);
    assert_eq!(group.state(), GroupState::Stable);
    // The second member, 2 ms after the leader's SyncGroup.
    let (b, outcome) = join_with_id(&mut group, 110, join_request("", "b"));
    parked(outcome.reply);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(3_108, &a, None, 2).reply,
        Some(ResponseError::RebalanceInProgress)
    );
    let outcome = group.join(3_110, join_request(&a, "a"));
    let leader = now(outcome.reply);
    assert_eq!((leader.error, leader.generation_id), (None, 3));
    assert_eq!(leader.members.len(), 2);
    let joined = join_responses(&outcome.deliveries);
    assert_eq!(joined.len(), 1, "the parked join of {b} is answered");
    assert_eq!(
        (joined[0].0.as_str(), joined[0].1.generation_id),
        (b.as_str(), 3)
    );
}

#[test]
fn stale_generation_is_illegal_generation() {
    let (mut group, ids) = stable_group(&["a"]);
    assert_eq!(
        group.heartbeat(7_000, &ids[0], None, 0).reply,
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        now(group.sync(7_000, sync_request(&ids[0], 7)).reply).error,
        Some(ResponseError::IllegalGeneration)
    );
}

#[test]
fn unknown_member_is_unknown_member_id() {
    let (mut group, _) = stable_group(&["a"]);
    assert_eq!(
        group.heartbeat(7_000, "nobody", None, 1).reply,
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        now(group.sync(7_000, sync_request("nobody", 1)).reply).error,
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        now(group.join(7_000, join_request("nobody", "x")).reply).error,
        Some(ResponseError::UnknownMemberId)
    );
    let leave = LeaveMember {
        member_id: "nobody".to_owned(),
        group_instance_id: None,
    };
    let response = group.leave(7_000, vec![leave.clone()]).reply;
    assert_eq!(response.error, None);
    assert_eq!(
        response.members,
        [(leave, Some(ResponseError::UnknownMemberId))]
    );
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn inconsistent_protocol_type_or_no_common_protocol() {
    let mut empty = Group::new("g", config(0));
    let no_protocols = JoinRequest {
        protocols: Vec::new(),
        ..join_request("", "x")
    };
    assert_eq!(
        now(empty.join(0, no_protocols).reply).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );

    let (mut group, _) = stable_group(&["a"]);
    let wrong_type = JoinRequest {
        protocol_type: "connect".to_owned(),
        ..join_request("", "x")
    };
    assert_eq!(
        now(group.join(7_000, wrong_type).reply).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let nothing_in_common = JoinRequest {
        protocols: protocols("x", &["sticky"]),
        ..join_request("", "x")
    };
    assert_eq!(
        now(group.join(7_000, nothing_in_common).reply).error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn protocol_is_chosen_by_the_members_votes() {
    let mut group = Group::new("g", config(3_000));
    let prefer = |client: &str, names: &[&str]| JoinRequest {
        protocols: protocols(client, names),
        ..join_request("", client)
    };
    join_with_id(&mut group, 0, prefer("a", &["range", "roundrobin"]));
    join_with_id(
        &mut group,
        0,
        prefer("b", &["roundrobin", "range", "sticky"]),
    );
    join_with_id(
        &mut group,
        0,
        prefer("c", &["sticky", "roundrobin", "range"]),
    );
    // sticky is not supported by a; b and c vote roundrobin, a votes range.
    group.tick(3_000);
    let joins = join_responses(&group.tick(6_000).deliveries);
    assert!(joins
        .iter()
        .all(|(_, r)| r.protocol_name.as_deref() == Some("roundrobin")));
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let (mut group, ids) = stable_group(&["a", "b"]);
    let (a, b) = (&ids[0], &ids[1]);
    // a keeps heartbeating; b goes silent after its sync.
    assert_eq!(group.heartbeat(12_000, a, None, 1).reply, None);
    assert_eq!(
        group.next_deadline(),
        Some(STABLE_AT + i64::from(SESSION_MS))
    );
    group.tick(16_000);
    assert!(group.member(b).is_none(), "b's session expired");
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(16_100, a, None, 1).reply,
        Some(ResponseError::RebalanceInProgress)
    );
    // a, the only member left, rejoins: the rebalance completes at once.
    let response = now(group.join(16_200, join_request(a, "a")).reply);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.leader, *a);
    assert_eq!(response.members.len(), 1);
}

#[test]
fn leave_triggers_a_rebalance() {
    let (mut group, ids) = stable_group(&["a", "b"]);
    let leave = LeaveMember {
        member_id: ids[1].clone(),
        group_instance_id: None,
    };
    let response = group.leave(7_000, vec![leave.clone()]).reply;
    assert_eq!(response.members, [(leave, None)]);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let response = now(group.join(7_100, join_request(&ids[0], "a")).reply);
    assert_eq!(response.generation_id, 2);
    assert_eq!(group.members().count(), 1);
}

#[test]
fn last_member_leaving_empties_the_group() {
    let (mut group, ids) = stable_group(&["a"]);
    let outcome = group.leave(
        7_000,
        vec![LeaveMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
        }],
    );
    assert!(outcome.persist, "an Empty group's new generation is stored");
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.generation_id(), 2);
    assert_eq!(group.protocol_name(), None);
    assert_eq!(group.protocol_type(), Some("consumer"));
    assert_eq!(group.next_deadline(), None);
}

#[test]
fn members_that_do_not_rejoin_in_time_are_dropped() {
    let (mut group, ids) = stable_group(&["a", "b"]);
    // The leader rejoining starts a rebalance; b keeps heartbeating but never rejoins.
    parked(group.join(7_000, join_request(&ids[0], "a")).reply);
    assert_eq!(
        group.heartbeat(8_000, &ids[1], None, 1).reply,
        Some(ResponseError::RebalanceInProgress)
    );
    let outcome = group.tick(7_000 + i64::from(REBALANCE_MS));
    let joins = join_responses(&outcome.deliveries);
    assert_eq!(joins.len(), 1);
    assert_eq!(joins[0].1.generation_id, 2);
    assert_eq!(
        group.heartbeat(37_001, &ids[1], None, 2).reply,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_join_during_completing_rebalance_fails_waiting_syncs() {
    let mut group = Group::new("g", config(0));
    let (a, outcome) = join_with_id(&mut group, 0, join_request("", "a"));
    now(outcome.reply);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    // b's arrival voids generation 1 before a (its leader) syncs.
    let (_b, outcome) = join_with_id(&mut group, 10, join_request("", "b"));
    parked(outcome.reply);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        now(group.sync(20, sync_request(&a, 1)).reply).error,
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn member_id_required_flow() {
    let mut group = Group::new("g", config(3_000));
    let first = now(group.join(0, join_request("", "client-1")).reply);
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(first.member_id.starts_with("client-1-"));
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(
        group.pending_member_ids().collect::<Vec<_>>(),
        [first.member_id.as_str()]
    );

    let outcome = group.join(50, join_request(&first.member_id, "client-1"));
    assert_eq!(parked(outcome.reply), first.member_id);
    assert_eq!(group.pending_member_ids().count(), 0);
    assert!(group.member(&first.member_id).is_some());

    // An id that is never used expires with the session timeout.
    let other = now(group.join(100, join_request("", "client-2")).reply);
    assert_eq!(other.error, Some(ResponseError::MemberIdRequired));
    group.tick(100 + i64::from(SESSION_MS));
    assert_eq!(group.pending_member_ids().count(), 0);
    assert_eq!(
        now(group
            .join(20_000, join_request(&other.member_id, "client-2"))
            .reply)
        .error,
        Some(ResponseError::UnknownMemberId)
    );

    // JoinGroup before v4 joins at once with a generated id.
    let old_client = JoinRequest {
        require_known_member_id: false,
        ..join_request("", "old")
    };
    let id = parked(group.join(20_000, old_client).reply);
    assert!(id.starts_with("old-"));
}

fn static_request(member_id: &str, client: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_owned()),
        ..join_request(member_id, client)
    }
}

#[test]
fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
    let mut group = Group::new("g", config(3_000));
    // Static members need no KIP-394 round trip.
    let a = parked(group.join(0, static_request("", "a", "instance-a")).reply);
    let b = parked(group.join(0, static_request("", "b", "instance-b")).reply);
    group.tick(3_000);
    group.tick(6_000);
    let mut followers_sync = sync_request(&b, 1);
    followers_sync.group_instance_id = Some("instance-b".to_owned());
    parked(group.sync(6_000, followers_sync).reply);
    let mut leader_sync = sync_request(&a, 1);
    leader_sync.group_instance_id = Some("instance-a".to_owned());
    leader_sync.assignments = vec![
        (a.clone(), assignment_for(&a)),
        (b.clone(), assignment_for(&b)),
    ];
    group.sync(6_000, leader_sync);
    assert_eq!(group.state(), GroupState::Stable);

    // b restarts: it comes back without its member id.
    let outcome = group.join(8_000, static_request("", "b", "instance-b"));
    assert!(outcome.persist, "the new member id is stored");
    let response = now(outcome.reply);
    assert_eq!(response.error, None);
    let new_b = response.member_id;
    assert_ne!(new_b, b);
    assert_eq!(response.generation_id, 1, "no new generation");
    assert_eq!(response.leader, a);
    assert_eq!(group.state(), GroupState::Stable);

    let mut sync = sync_request(&new_b, 1);
    sync.group_instance_id = Some("instance-b".to_owned());
    assert_eq!(
        now(group.sync(8_100, sync).reply).assignment,
        assignment_for(&b)
    );
    // The old incarnation is fenced; the other member never noticed.
    assert_eq!(
        group.heartbeat(8_200, &b, Some("instance-b"), 1).reply,
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        group.heartbeat(8_200, &a, Some("instance-a"), 1).reply,
        None
    );
}

#[test]
fn static_leader_restart_is_told_the_old_leader_id() {
    let mut group = Group::new("g", config(0));
    let a = now(group.join(0, static_request("", "a", "instance-a")).reply).member_id;
    let mut sync = sync_request(&a, 1);
    sync.group_instance_id = Some("instance-a".to_owned());
    sync.assignments = vec![(a.clone(), assignment_for(&a))];
    group.sync(0, sync);

    let response = now(group
        .join(1_000, static_request("", "a", "instance-a"))
        .reply);
    // The restarted leader must not think it leads: a Stable group would not
    // pass on an assignment it computed.
    assert_eq!(response.leader, a);
    assert_ne!(response.member_id, a);
    assert_eq!(group.leader_id(), Some(response.member_id.as_str()));
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn group_max_size_turns_away_extra_members() {
    let mut group = Group::new(
        "g",
        GroupConfig {
            max_size: 1,
            ..config(0)
        },
    );
    let (_a, outcome) = join_with_id(&mut group, 0, join_request("", "a"));
    now(outcome.reply);
    // Checked before KIP-394 hands out an id.
    let outcome = group.join(10, join_request("", "b"));
    assert_eq!(
        now(outcome.reply).error,
        Some(ResponseError::GroupMaxSizeReached)
    );
}

#[test]
fn delete_only_an_empty_group() {
    let (mut group, _) = stable_group(&["a"]);
    assert_eq!(group.delete().reply, Err(ResponseError::NonEmptyGroup));
    let mut empty = Group::new("g", config(0));
    assert_eq!(empty.delete().reply, Ok(()));
    assert_eq!(empty.state(), GroupState::Dead);
    assert_eq!(
        now(empty.join(0, join_request("", "a")).reply).error,
        Some(ResponseError::CoordinatorNotAvailable)
    );
}

#[test]
fn members_that_never_sync_are_dropped_at_the_rebalance_timeout() {
    let mut group = Group::new("g", config(3_000));
    let (a, _) = join_with_id(&mut group, 0, join_request("", "a"));
    let (b, _) = join_with_id(&mut group, 0, join_request("", "b"));
    group.tick(3_000);
    group.tick(STABLE_AT);
    let mut leader_sync = sync_request(&a, 1);
    leader_sync.assignments = vec![(a.clone(), assignment_for(&a))];
    now(group.sync(STABLE_AT, leader_sync).reply);
    assert_eq!(group.state(), GroupState::Stable);
    // b stays alive by heartbeating but never asks for its assignment.
    for at in [14_000, 22_000, 30_000, 35_000] {
        assert_eq!(group.heartbeat(at, &b, None, 1).reply, None);
        assert_eq!(group.heartbeat(at, &a, None, 1).reply, None);
    }
    group.tick(STABLE_AT + i64::from(REBALANCE_MS));
    assert!(group.member(&b).is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn unloading_answers_parked_requests_with_not_coordinator() {
    let mut group = Group::new("g", config(3_000));
    let (a, _) = join_with_id(&mut group, 0, join_request("", "a"));
    let outcome = group.unload(ResponseError::NotCoordinator);
    let joins = join_responses(&outcome.deliveries);
    assert_eq!(joins.len(), 1);
    assert_eq!(joins[0].0, a);
    assert_eq!(joins[0].1.error, Some(ResponseError::NotCoordinator));
    assert_eq!(group.state(), GroupState::Dead);
}

#[test]
fn a_stored_group_loads_stable_with_its_members_and_assignments() {
    let (group, ids) = stable_group(&["c1", "c2"]);
    let value = group.to_value(1_234);
    assert_eq!(value.generation, 1);
    assert_eq!(value.protocol.as_deref(), Some("range"));
    assert_eq!(value.leader.as_deref(), Some(ids[0].as_str()));
    assert_eq!(value.current_state_timestamp_ms, 1_234);
    assert_eq!(value.members.len(), 2);
    assert_eq!(value.members[1].subscription, Bytes::from("c2/range"));
    assert_eq!(value.members[1].assignment, assignment_for(&ids[1]));

    // Loaded on another clock: sessions start at the load.
    let mut loaded = Group::from_value("g", config(3_000), 50_000, &value);
    assert_eq!(loaded.state(), GroupState::Stable);
    assert_eq!(loaded.generation_id(), 1);
    assert_eq!(loaded.leader_id(), Some(ids[0].as_str()));
    assert_eq!(loaded.next_deadline(), Some(50_000 + i64::from(SESSION_MS)));
    assert_eq!(loaded.heartbeat(50_100, &ids[1], None, 1).reply, None);
    let response = now(loaded.sync(50_200, sync_request(&ids[1], 1)).reply);
    assert_eq!(response.assignment, assignment_for(&ids[1]));
    assert_eq!(
        loaded.to_value(1_234),
        value,
        "nothing lost in a round trip"
    );

    let empty = GroupValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: -1,
        members: Vec::new(),
    };
    let loaded = Group::from_value("g", config(0), 0, &empty);
    assert_eq!(loaded.state(), GroupState::Empty);
    assert_eq!(loaded.generation_id(), 4);
    assert_eq!(loaded.protocol_type(), Some("consumer"));
}

#[test]
fn offset_commits_follow_the_members_and_generation() {
    let (mut group, ids) = stable_group(&["c1", "c2"]);
    let commit = |group: &mut Group, member: &str, generation: i32| {
        group
            .validate_offset_commit(STABLE_AT + 100, member, None, generation)
            .reply
    };
    assert_eq!(commit(&mut group, &ids[0], 1), Ok(()));
    assert_eq!(
        commit(&mut group, &ids[0], 0),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        commit(&mut group, "stranger", 1),
        Err(ResponseError::UnknownMemberId)
    );
    // Without member id and generation: only for a group without members.
    assert_eq!(
        commit(&mut group, "", -1),
        Err(ResponseError::UnknownMemberId)
    );
    // A commit keeps the session alive like a heartbeat.
    let before = group.member(&ids[1]).map(|m| m.session_deadline_ms);
    assert_eq!(commit(&mut group, &ids[1], 1), Ok(()));
    assert!(group.member(&ids[1]).map(|m| m.session_deadline_ms) > before);

    // While a rebalance is prepared, members of the last generation may commit.
    let newcomer = join_with_id(&mut group, STABLE_AT + 200, join_request("", "c3")).0;
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(commit(&mut group, &ids[0], 1), Ok(()));
    // Between the join answers and the assignment they may not.
    parked(
        group
            .join(STABLE_AT + 300, join_request(&ids[0], "c1"))
            .reply,
    );
    // The last to rejoin completes the join phase and is answered at once.
    let rejoined = now(group
        .join(STABLE_AT + 300, join_request(&ids[1], "c2"))
        .reply);
    assert_eq!(rejoined.generation_id, 2);
    assert!(group.member(&newcomer).is_some());
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(
        commit(&mut group, &ids[0], 2),
        Err(ResponseError::RebalanceInProgress)
    );

    let mut empty = Group::new("g", config(0));
    assert_eq!(commit(&mut empty, "", -1), Ok(()));
}
