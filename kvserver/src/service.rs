//! The KV service (generated trait `proto::kv::KvService`) on top of [`KvServer`].
//! Registered inline on the Provider: handlers validate, hand work to Raft and return.
//! Validation, not-leader and overload errors are answered at once on the event loop (so
//! are Raft's `Busy`/`Stopped` refusals, whose callbacks run on the caller's thread);
//! everything else is answered later from the Raft driver thread or the applier thread.

use crate::command;
use crate::server::{get_error, write_error, KvServer};
use crate::waiters::ReadReply;
use proto::kv::{
    ChangeMembershipRequest, ChangeMembershipResponse, ErrorCode, GetRequest, GetResponse,
    ReadMode, StatusRequest, StatusResponse, TransferLeaderRequest, TransferLeaderResponse,
    WriteRequest, WriteResponse,
};
use raft::core::membership::{MemberChange, MembershipChange, Transition};
use rpc_framework::Reply;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The KV service of one node.
#[derive(Debug, Clone)]
pub struct KvServiceImpl {
    server: Arc<KvServer>,
}

impl KvServiceImpl {
    /// Serves `server`.
    pub fn new(server: Arc<KvServer>) -> Self {
        KvServiceImpl { server }
    }
}

impl proto::kv::KvService for KvServiceImpl {
    fn get(&self, request: GetRequest, reply: Reply<GetResponse>) {
        let s = &self.server;
        if request.key.len() > s.config.limits.max_key_bytes {
            let msg = format!(
                "key of {} bytes exceeds {}",
                request.key.len(),
                s.config.limits.max_key_bytes
            );
            return reply.ok(get_error(crate::waiters::kv_error(
                ErrorCode::InvalidArgument,
                msg,
            )));
        }
        if !s.node.state().is_leader {
            return reply.ok(get_error(s.not_leader(None)));
        }
        if s.reads_in_flight.load(Ordering::Relaxed) >= s.config.max_pending_reads {
            let error =
                crate::waiters::kv_error(ErrorCode::Unavailable, "too many reads in flight; retry");
            return reply.ok(get_error(error));
        }
        let reply = ReadReply::new(reply, s.reads_in_flight.clone());
        let server = s.clone();
        let mode = match request.mode() {
            ReadMode::ReadIndex => raft::node::ReadMode::ReadIndex,
            ReadMode::Lease => raft::node::ReadMode::Lease,
        };
        s.node.read_with(mode, move |result| match result {
            Ok(index) => server.serve_read_at(index, request.key, reply),
            Err(e) => reply.ok(get_error(server.node_error(e))),
        });
    }

    fn write(&self, request: WriteRequest, reply: Reply<WriteResponse>) {
        let s = &self.server;
        // Leadership first: only the leader's limits are the cluster's (a node configured
        // differently is rejected by its peers and never leads), so a follower redirects
        // instead of refusing a write the cluster would accept.
        if !s.node.state().is_leader {
            return reply.ok(WriteResponse {
                error: s.not_leader(None),
                swapped: false,
                client_id: 0,
            });
        }
        if let Err(error) = s.config.limits.validate_write(&request) {
            return reply.ok(WriteResponse {
                error: Some(error),
                swapped: false,
                client_id: 0,
            });
        }
        if s.waiters.pending_writes() >= s.config.max_pending_writes {
            return reply.ok(write_error(
                ErrorCode::Unavailable,
                "too many writes in flight; retry",
            ));
        }
        let server = s.clone();
        s.node.start_with(
            command::encode(&command::from_request(&request)),
            move |result| match result {
                Ok((index, term)) => server.wait_for_write(index, term, reply),
                Err(e) => reply.ok(WriteResponse {
                    error: server.node_error(e),
                    swapped: false,
                    client_id: 0,
                }),
            },
        );
    }

    fn status(&self, _request: StatusRequest, reply: Reply<StatusResponse>) {
        reply.ok(self.server.status());
    }

    fn transfer_leader(
        &self,
        request: TransferLeaderRequest,
        reply: Reply<TransferLeaderResponse>,
    ) {
        let s = &self.server;
        if !s.node.state().is_leader {
            return reply.ok(TransferLeaderResponse {
                error: s.not_leader(None),
            });
        }
        let to = raft::NodeId(request.to);
        let status = s.node.status();
        if to == status.id || !status.membership.is_voter(to) {
            let error = crate::waiters::kv_error(
                ErrorCode::InvalidArgument,
                format!(
                    "node {} is not another voter ({})",
                    request.to, status.membership
                ),
            );
            return reply.ok(TransferLeaderResponse { error });
        }
        let server = s.clone();
        s.node.transfer_leader_with(to, move |result| {
            reply.ok(TransferLeaderResponse {
                error: result.err().and_then(|e| server.node_error(e)),
            });
        });
    }

    fn change_membership(
        &self,
        request: ChangeMembershipRequest,
        reply: Reply<ChangeMembershipResponse>,
    ) {
        let s = &self.server;
        if !s.node.state().is_leader {
            return reply.ok(ChangeMembershipResponse {
                error: s.not_leader(None),
                index: 0,
            });
        }
        let change = match membership_change(&request) {
            Ok(change) => change,
            Err(message) => {
                return reply.ok(ChangeMembershipResponse {
                    error: crate::waiters::kv_error(ErrorCode::InvalidArgument, message),
                    index: 0,
                })
            }
        };
        let server = s.clone();
        s.node
            .propose_membership_with(change, move |result| match result {
                Ok((index, _)) => reply.ok(ChangeMembershipResponse {
                    error: None,
                    index: index.0,
                }),
                Err(e) => reply.ok(ChangeMembershipResponse {
                    error: server.node_error(e),
                    index: 0,
                }),
            });
    }
}

/// The Raft change a request asks for.
fn membership_change(request: &ChangeMembershipRequest) -> Result<MembershipChange, String> {
    use proto::kv::change_membership_request::Kind;
    if request.changes.is_empty() {
        return Err("no change asked".into());
    }
    let changes = request
        .changes
        .iter()
        .map(|c| {
            if c.node_id == 0 {
                return Err("node id 0".to_string());
            }
            let id = raft::NodeId(c.node_id);
            match Kind::try_from(c.kind) {
                Ok(Kind::AddVoter) => Ok(MemberChange::AddVoter(id)),
                Ok(Kind::AddLearner) => Ok(MemberChange::AddLearner(id)),
                Ok(Kind::Remove) => Ok(MemberChange::Remove(id)),
                Err(_) => Err(format!("unknown change kind {}", c.kind)),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    let transition = if request.joint {
        Transition::EnterJoint { auto_leave: true }
    } else {
        Transition::Simple
    };
    Ok(MembershipChange {
        transition,
        changes,
        expected_index: raft::LogIndex(request.expected_index),
        context: bytes::Bytes::new(),
    })
}
