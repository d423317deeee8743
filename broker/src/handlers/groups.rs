//! The group membership APIs: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, ListGroups, DescribeGroups, DeleteGroups. The
//! coordinator does the work; these turn wire messages into its requests
//! and its answers back into wire messages, version by version.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{live_brokers, LiveBroker};
use super::str_bytes;
use crate::broker::Broker;
use crate::group::{self, GroupState, LeaveMember, Protocol};

/// FindCoordinator `key_type` of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator `key_type` of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// DescribeGroups `authorized_operations` when the client did not ask for them.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// What a group allows without an authorizer: READ (3), DELETE (6) and
/// DESCRIBE (8), as bits of Kafka's AclOperation codes.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// FindCoordinator: on a single broker this broker coordinates every
/// group. The first lookup creates `__consumer_offsets`, as in Kafka.
/// Transactions are not implemented, so their coordinator is not available.
/// The broker that leads the group's `__consumer_offsets` partition, as
/// the metadata says (COORDINATOR_NOT_AVAILABLE while it is not a live broker).
fn group_coordinator(
    broker: &Broker,
    topic: &crate::partitions::Topic,
    group_id: &str,
) -> Result<LiveBroker, ResponseError> {
    let index = crate::group::partition_for(group_id, topic.partition_count());
    let image = broker.image();
    let leader = image
        .topic_by_id(topic.id())
        .and_then(|t| t.partitions.get(&index))
        .map(|p| p.leader);
    live_brokers(&image)
        .into_iter()
        .find(|b| Some(b.id) == leader)
        .ok_or(ResponseError::CoordinatorNotAvailable)
}

/// NOT_COORDINATOR when this broker does not lead the group's
/// `__consumer_offsets` partition (the client asks FindCoordinator again),
/// COORDINATOR_LOAD_IN_PROGRESS while it has just become its leader and has
/// not loaded its groups yet (the client retries).
pub(super) fn wrong_coordinator(broker: &Broker, group_id: &str) -> Option<ResponseError> {
    let topic = broker.topic(crate::coordinator::OFFSETS_TOPIC)?;
    let index = crate::group::partition_for(group_id, topic.partition_count());
    if !topic.partition(index).is_some_and(|p| p.is_leader()) {
        return Some(ResponseError::NotCoordinator);
    }
    (!broker.groups.is_loaded(index)).then_some(ResponseError::CoordinatorLoadInProgress)
}

pub fn find_coordinator(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let find = |key: StrBytes| -> Coordinator {
        let found = match request.key_type {
            KEY_TYPE_GROUP => broker
                .offsets_topic()
                .map_err(|e| e.code)
                .and_then(|topic| group_coordinator(broker, &topic, &key)),
            KEY_TYPE_TRANSACTION => Err(ResponseError::CoordinatorNotAvailable),
            _ => Err(ResponseError::InvalidRequest),
        };
        let coordinator = Coordinator::default().with_key(key);
        match found {
            Ok(leader) => coordinator
                .with_node_id(leader.id.into())
                .with_host(str_bytes(leader.host))
                .with_port(leader.port),
            Err(error) => coordinator
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(error.to_string())))
                .with_node_id((-1).into())
                .with_port(-1),
        }
    };
    let response = FindCoordinatorResponse::default();
    if version >= 4 {
        let coordinators = request.coordinator_keys.iter().cloned().map(find).collect();
        return response.with_coordinators(coordinators);
    }
    let found = find(request.key.clone());
    let response = response
        .with_error_code(found.error_code)
        .with_node_id(found.node_id)
        .with_host(found.host)
        .with_port(found.port);
    if version >= 1 {
        response.with_error_message(found.error_message)
    } else {
        response
    }
}

pub async fn join_group(
    broker: &Arc<Broker>,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let response = if group_id.is_empty() {
        group::JoinResponse::error(ResponseError::InvalidGroupId, member_id)
    } else if let Some(error) = wrong_coordinator(broker, &group_id) {
        group::JoinResponse::error(error, member_id)
    } else {
        let join = group::JoinRequest {
            member_id,
            group_instance_id: request.group_instance_id.map(|id| id.to_string()),
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout: the session timeout stands in, as in Kafka.
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| Protocol {
                    name: p.name.to_string(),
                    metadata: p.metadata,
                })
                .collect(),
            require_known_member_id: version >= 4,
        };
        broker.groups.join(&group_id, join).await
    };
    let members = response
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(str_bytes))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(error_code(response.error))
        .with_generation_id(response.generation_id)
        .with_protocol_type(response.protocol_type.map(str_bytes))
        .with_protocol_name(response.protocol_name.map(str_bytes))
        .with_leader(str_bytes(response.leader))
        .with_member_id(str_bytes(response.member_id))
        .with_members(members)
}

pub async fn sync_group(broker: &Arc<Broker>, request: SyncGroupRequest) -> SyncGroupResponse {
    let group_id = request.group_id.to_string();
    let response = if group_id.is_empty() {
        group::SyncResponse::error(ResponseError::InvalidGroupId)
    } else if let Some(error) = wrong_coordinator(broker, &group_id) {
        group::SyncResponse::error(error)
    } else {
        let sync = group::SyncRequest {
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.map(|id| id.to_string()),
            generation_id: request.generation_id,
            protocol_type: request.protocol_type.map(|p| p.to_string()),
            protocol_name: request.protocol_name.map(|p| p.to_string()),
            assignments: request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        let response = broker.groups.sync(&group_id, sync).await;
        // The assignment goes out once the group's record holding it is
        // replicated; Kafka answers REBALANCE_IN_PROGRESS when that times out.
        if response.error.is_none() && !broker.group_writes_replicated(&group_id).await {
            group::SyncResponse::error(ResponseError::RebalanceInProgress)
        } else {
            response
        }
    };
    SyncGroupResponse::default()
        .with_error_code(error_code(response.error))
        .with_protocol_type(response.protocol_type.map(str_bytes))
        .with_protocol_name(response.protocol_name.map(str_bytes))
        .with_assignment(response.assignment)
}

pub fn heartbeat(broker: &Arc<Broker>, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    let error = if group_id.is_empty() {
        Some(ResponseError::InvalidGroupId)
    } else if let Some(error) = wrong_coordinator(broker, &group_id) {
        Some(error)
    } else {
        broker.groups.heartbeat(
            &group_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.generation_id,
        )
    };
    HeartbeatResponse::default().with_error_code(error_code(error))
}

/// LeaveGroup: v0–v2 name one member; v3+ a batch (KIP-345), each with its
/// own result. For a v0–v2 request the member's error is the response's.
pub fn leave_group(
    broker: &Arc<Broker>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
    let leaving: Vec<LeaveMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    if group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ResponseError::InvalidGroupId.code());
    }
    if let Some(error) = wrong_coordinator(broker, &group_id) {
        return LeaveGroupResponse::default().with_error_code(error.code());
    }
    let left = broker.groups.leave(&group_id, leaving);
    if version < 3 {
        let error = left
            .error
            .or_else(|| left.members.first().and_then(|(_, e)| *e));
        return LeaveGroupResponse::default().with_error_code(error_code(error));
    }
    let members = left
        .members
        .into_iter()
        .map(|(member, error)| {
            MemberResponse::default()
                .with_member_id(str_bytes(member.member_id))
                .with_group_instance_id(member.group_instance_id.map(str_bytes))
                .with_error_code(error_code(error))
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(error_code(left.error))
        .with_members(members)
}

/// ListGroups with the v4 state filter (case-insensitive, as Kafka) and the
/// v5 type filter (every group here is "classic").
pub fn list_groups(broker: &Broker, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.to_lowercase())
        .collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let groups = broker
        .groups
        .group_ids()
        .into_iter()
        .filter_map(|group_id| {
            broker.groups.with_group(&group_id, |entry| {
                let state = entry.group.state().as_str();
                (states.is_empty() || states.contains(&state.to_lowercase())).then(|| {
                    ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(group_id.clone())))
                        .with_protocol_type(str_bytes(
                            entry.group.protocol_type().unwrap_or_default(),
                        ))
                        .with_group_state(str_bytes(state))
                        .with_group_type(str_bytes("classic"))
                })
            })?
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups. A group that does not exist is described as Dead with no
/// members, as Kafka does (no error before v6, GROUP_ID_NOT_FOUND from v6). `authorized_operations` stays at
/// INT32_MIN unless asked for: kafka-python rejects anything else.
pub fn describe_groups(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = if request.include_authorized_operations && version >= 3 {
        GROUP_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let id = group_id.to_string();
            let described = DescribedGroup::default()
                .with_group_id(group_id)
                .with_authorized_operations(operations);
            broker
                .groups
                .with_group(&id, |entry| describe(&entry.group, version))
                .map(|(state, protocol_type, protocol, members)| {
                    described
                        .clone()
                        .with_group_state(str_bytes(state))
                        .with_protocol_type(str_bytes(protocol_type))
                        .with_protocol_data(str_bytes(protocol))
                        .with_members(members)
                })
                .unwrap_or_else(|| {
                    let dead = described
                        .clone()
                        .with_group_state(str_bytes(GroupState::Dead.as_str()));
                    if version >= 6 {
                        // KIP-1043: v6 says so instead of describing a Dead group.
                        dead.with_error_code(ResponseError::GroupIdNotFound.code())
                            .with_error_message(Some(str_bytes(format!("Group {id} not found."))))
                    } else {
                        dead
                    }
                })
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// State, protocol type, protocol and members of a group. Member metadata
/// and assignments are shown only once the group is Stable (Kafka's rule:
/// before that they may be of an older generation).
fn describe(
    group: &group::Group,
    version: i16,
) -> (String, String, String, Vec<DescribedGroupMember>) {
    let stable = group.state() == GroupState::Stable;
    let protocol = group.protocol_name().unwrap_or_default().to_string();
    let members = group
        .members()
        .map(|member| {
            let described = DescribedGroupMember::default()
                .with_member_id(str_bytes(member.member_id.clone()))
                .with_client_id(str_bytes(member.client_id.clone()))
                .with_client_host(str_bytes(member.client_host.clone()));
            let described = if version >= 4 {
                described.with_group_instance_id(member.group_instance_id.clone().map(str_bytes))
            } else {
                described
            };
            if stable {
                described
                    .with_member_metadata(member.metadata(&protocol).cloned().unwrap_or_default())
                    .with_member_assignment(member.assignment.clone())
            } else {
                described
            }
        })
        .collect();
    let protocol_data = if stable { protocol } else { String::new() };
    (
        group.state().as_str().to_string(),
        group.protocol_type().unwrap_or_default().to_string(),
        protocol_data,
        members,
    )
}

/// DeleteGroups: each group separately; only Empty groups can be deleted.
/// Like DescribeGroups and the offset APIs, it takes the empty group id as
/// an ordinary one, as Kafka does for old clients.
pub fn delete_groups(broker: &Arc<Broker>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|group_id| {
            let id = group_id.to_string();
            let error = broker.groups.delete(&id).err();
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error_code(error))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

fn error_code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}
