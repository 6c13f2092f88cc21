//! [`Clerk`]: the client of a raftkv cluster. Finds the leader, caches it, follows leader
//! hints, rotates through the servers on errors with capped backoff, and tags every
//! write with (client id, sequence number) so that retries are applied exactly once.

use crate::error::{ClerkError, ErrorKind};
use crate::leader::LeaderCache;
use crate::retry::Retry;
use crate::session::Session;
use bytes::Bytes;
use parking_lot::Mutex;
use proto::kv::{
    change_membership_request, write_request::Op, Append, Cas, ChangeMembershipRequest, Delete,
    ErrorCode, GetRequest, KvError, KvServiceClient, Put, ReadMode, Register, StatusRequest,
    StatusResponse, TransferLeaderRequest, WriteRequest, WriteResponse,
};
use rpc_framework::{CallOptions, Channel, ChannelConfig, RpcError};
use std::sync::Arc;
use std::time::Duration;

/// Settings of a [`Clerk`].
#[derive(Clone, Debug)]
pub struct ClerkConfig {
    /// `host:port` of every server.
    pub endpoints: Vec<String>,
    /// Give up on an operation after this long. `None` (the default): keep retrying until
    /// it succeeds, as 6.824's clerk does.
    pub op_timeout: Option<Duration>,
    /// Deadline of one attempt against one server.
    pub attempt_timeout: Duration,
    /// First pause after every server failed once.
    pub backoff_min: Duration,
    /// Longest pause between rounds.
    pub backoff_max: Duration,
    /// How reads confirm leadership (ReadIndex by default; see [`ReadMode`]).
    pub read_mode: ReadMode,
    /// Connection settings.
    pub channel: ChannelConfig,
}

impl ClerkConfig {
    /// Defaults for these endpoints.
    pub fn new(endpoints: Vec<String>) -> ClerkConfig {
        ClerkConfig {
            endpoints,
            op_timeout: None,
            attempt_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(500),
            read_mode: ReadMode::ReadIndex,
            channel: ChannelConfig::default(),
        }
    }
}

/// A thread-safe client of a raftkv cluster. Cloning shares the connections, the leader
/// cache and the session; many threads may run operations on one clerk concurrently.
#[derive(Clone, Debug)]
pub struct Clerk {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClerkConfig,
    servers: Vec<KvServiceClient>,
    leader: LeaderCache,
    /// The current session, registered with the cluster before the first write (thesis
    /// 6.3). Dropped when the servers say it expired (the next write registers a new
    /// one); operations in flight keep the one they started with.
    session: Mutex<Option<Arc<Session>>>,
    /// Held while registering, so concurrent first writes register once.
    registering: Mutex<()>,
}

/// Where the next attempt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The leader cache now points at the hinted leader.
    Hinted,
    /// Move on to the next server.
    Rotate,
    /// Same server, after a pause (it asked us to retry).
    PauseSame,
}

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    /// Try again (maybe elsewhere); `may_have_executed` says if this attempt might have
    /// taken effect.
    Again {
        may_have_executed: bool,
        next: Next,
    },
    Fail(ClerkError),
}

impl Clerk {
    /// A clerk for the cluster at `config.endpoints`. Connections open lazily.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`] when no endpoint is given.
    pub fn new(config: ClerkConfig) -> Result<Clerk, ClerkError> {
        if config.endpoints.is_empty() {
            return Err(ClerkError::new(
                ErrorKind::Unavailable,
                true,
                "no endpoints given",
            ));
        }
        let servers = config
            .endpoints
            .iter()
            .map(|e| KvServiceClient::new(Channel::new(e.clone(), config.channel.clone())))
            .collect();
        let leader = LeaderCache::new(config.endpoints.clone());
        Ok(Clerk {
            inner: Arc::new(Inner {
                config,
                servers,
                leader,
                session: Mutex::new(None),
                registering: Mutex::new(()),
            }),
        })
    }

    /// This clerk's session id (assigned by the cluster at its first write; 0 before).
    pub fn client_id(&self) -> u64 {
        self.inner
            .session
            .lock()
            .as_ref()
            .map_or(0, |s| s.client_id)
    }

    /// Reads `key` (linearizable, confirmed as `ClerkConfig::read_mode` says). `Ok(None)`
    /// when absent.
    ///
    /// # Errors
    /// [`ClerkError`]; reads never take effect, so errors are always `definite`.
    pub fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, ClerkError> {
        let mut request = GetRequest {
            key: key.into(),
            ..GetRequest::default()
        };
        request.set_mode(self.inner.config.read_mode);
        self.run(|client, options| match client.get(&request, options) {
            Ok(resp) => match resp.error {
                Some(e) if e.code != ErrorCode::Ok as i32 => self.on_kv_error(&e, false),
                _ => Attempt::Done(resp.found.then_some(resp.value)),
            },
            Err(e) => Self::on_rpc_error(&e, false),
        })
        .map_err(|mut e| {
            e.definite = true;
            e
        })
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// [`ClerkError`], saying whether the write may have happened.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), ClerkError> {
        self.write(Op::Put(Put {
            key: key.into(),
            value: value.into(),
        }))
        .map(|_| ())
    }

    /// Appends `value` to the value of `key` (absent counts as empty).
    ///
    /// # Errors
    /// [`ClerkError`], saying whether the write may have happened.
    pub fn append(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), ClerkError> {
        self.write(Op::Append(Append {
            key: key.into(),
            value: value.into(),
        }))
        .map(|_| ())
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// # Errors
    /// [`ClerkError`], saying whether the delete may have happened.
    pub fn delete(&self, key: impl Into<Bytes>) -> Result<bool, ClerkError> {
        self.write(Op::Delete(Delete { key: key.into() }))
            .map(|r| r.swapped)
    }

    /// Sets `key` to `new_value` if its value equals `expected` (empty `expected`: the key
    /// must be absent). Returns whether the swap happened.
    ///
    /// # Errors
    /// [`ClerkError`], saying whether the swap may have happened.
    pub fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: impl Into<Bytes>,
        new_value: impl Into<Bytes>,
    ) -> Result<bool, ClerkError> {
        let op = Op::Cas(Cas {
            key: key.into(),
            expected: expected.into(),
            new_value: new_value.into(),
        });
        self.write(op).map(|r| r.swapped)
    }

    /// Hands leadership to voter `to` and waits until it leads (a server reports itself
    /// leader with that id), within the clerk's operation timeout (10 s without one).
    /// Returns the term it leads in.
    ///
    /// # Errors
    /// `InvalidArgument` when `to` is not another voter; `Unavailable` when no leader
    /// answered; `Timeout` when `to` did not take over in time (the transfer may still
    /// complete, or the old leader resumed: check `status`).
    pub fn transfer_leader(&self, to: u64) -> Result<u64, ClerkError> {
        let deadline = self.deadline();
        let request = TransferLeaderRequest { to };
        self.at_leader(deadline, "the transfer", |server, options| {
            server
                .transfer_leader(&request, options)
                .map(|r| r.error.map_or(Ok(()), Err))
        })?;
        self.wait_for_status(
            deadline,
            || format!("node {to} did not take over in time"),
            |statuses| {
                statuses
                    .iter()
                    .find(|s| s.id == to && s.role == "leader")
                    .map(|s| s.term)
            },
        )
    }

    /// Sends an administrative request to each server in turn until one (the leader)
    /// takes it, rounds apart by the minimum backoff, until `deadline`. `call` returns the
    /// server's answer: its value, or the `KvError` it refused with.
    ///
    /// # Errors
    /// `InvalidArgument` at once when a server refuses the request as invalid;
    /// `Unavailable` when no server took it by `deadline`.
    fn at_leader<T>(
        &self,
        deadline: std::time::Instant,
        what: &str,
        call: impl Fn(&KvServiceClient, &CallOptions) -> Result<Result<T, KvError>, RpcError>,
    ) -> Result<T, ClerkError> {
        let options = CallOptions {
            timeout: Some(self.inner.config.attempt_timeout),
        };
        loop {
            let mut refused = None;
            for server in &self.inner.servers {
                match call(server, &options) {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(e)) if e.code() == ErrorCode::InvalidArgument => {
                        return Err(ClerkError::new(ErrorKind::InvalidArgument, true, e.message));
                    }
                    Ok(Err(e)) => refused = Some(e.message),
                    Err(e) => refused = Some(e.to_string()),
                }
            }
            if std::time::Instant::now() >= deadline {
                let why = refused.unwrap_or_default();
                return Err(ClerkError::new(
                    ErrorKind::Unavailable,
                    true,
                    format!("no leader took {what}: {why}"),
                ));
            }
            std::thread::sleep(self.inner.config.backoff_min);
        }
    }

    /// Polls every server's status until `done` finds what it waits for in the answers,
    /// or `deadline` passes (`Timeout`, with `late`'s message: the awaited state may
    /// still come).
    fn wait_for_status<T>(
        &self,
        deadline: std::time::Instant,
        late: impl Fn() -> String,
        mut done: impl FnMut(&[StatusResponse]) -> Option<T>,
    ) -> Result<T, ClerkError> {
        loop {
            let statuses: Vec<StatusResponse> = self
                .status_all()
                .into_iter()
                .filter_map(|(_, s)| s.ok())
                .collect();
            if let Some(value) = done(&statuses) {
                return Ok(value);
            }
            if std::time::Instant::now() >= deadline {
                return Err(ClerkError::new(ErrorKind::Timeout, false, late()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The status of the node that leads (its configuration is the cluster's), if one
    /// answers.
    pub fn leader_status(&self) -> Option<StatusResponse> {
        let statuses: Vec<StatusResponse> = self
            .status_all()
            .into_iter()
            .filter_map(|(_, s)| s.ok())
            .collect();
        leader_of(&statuses).cloned()
    }

    /// Removes voter or learner `id` from the configuration and waits until the leader
    /// has applied the change; returns the leader's status then. The leader itself is
    /// removed after it handed leadership to another voter (a leader does not remove
    /// itself). `expected_index` (0 = any) is the configuration index the caller saw.
    ///
    /// # Errors
    /// `InvalidArgument` when the change is refused (not a member, the last voter, a stale
    /// `expected_index`, another change pending); `Unavailable` when no leader answered;
    /// `Timeout` when the change was not applied in time (it may still be).
    pub fn remove_member(
        &self,
        id: u64,
        expected_index: u64,
    ) -> Result<StatusResponse, ClerkError> {
        let deadline = self.deadline();
        let leader = self
            .leader_status()
            .ok_or_else(|| ClerkError::new(ErrorKind::Unavailable, true, "no leader answered"))?;
        if leader.id == id {
            let other = leader
                .voters
                .iter()
                .copied()
                .find(|v| *v != id)
                .ok_or_else(|| {
                    ClerkError::new(
                        ErrorKind::InvalidArgument,
                        true,
                        "cannot remove the last voter",
                    )
                })?;
            self.transfer_leader(other)?;
        }
        let request = ChangeMembershipRequest {
            changes: vec![change_membership_request::Change {
                kind: change_membership_request::Kind::Remove as i32,
                node_id: id,
            }],
            joint: false,
            expected_index,
        };
        let index = self.at_leader(deadline, "the change", |server, options| {
            server
                .change_membership(&request, options)
                .map(|r| r.error.map_or(Ok(r.index), Err))
        })?;
        self.wait_for_status(
            deadline,
            || format!("the change at index {index} was not applied in time"),
            |statuses| {
                leader_of(statuses)
                    .filter(|s| s.config_index >= index && s.voters_outgoing.is_empty())
                    .cloned()
            },
        )
    }

    /// When an operation started now must give up.
    fn deadline(&self) -> std::time::Instant {
        std::time::Instant::now()
            + self
                .inner
                .config
                .op_timeout
                .unwrap_or(Duration::from_secs(10))
    }

    /// Asks every server for its status, in endpoint order.
    pub fn status_all(&self) -> Vec<(String, Result<StatusResponse, RpcError>)> {
        let options = CallOptions {
            timeout: Some(self.inner.config.attempt_timeout),
        };
        self.inner
            .servers
            .iter()
            .zip(&self.inner.config.endpoints)
            .map(|(client, endpoint)| {
                (endpoint.clone(), client.status(&StatusRequest {}, &options))
            })
            .collect()
    }

    /// Runs a write in the clerk's session, registering one first if needed. A write
    /// refused because the session is unknown to the cluster (evicted) is retried once in
    /// a new session when no attempt of it can have been applied; otherwise its outcome is
    /// unknown and the error says so.
    fn write(&self, op: Op) -> Result<WriteResponse, ClerkError> {
        let mut renewed = false;
        loop {
            let session = self.session()?;
            let result = self.write_in(&session, &op);
            match result {
                Err(e) if e.kind == ErrorKind::SessionExpired => {
                    self.forget_session(&session);
                    if e.definite && !renewed {
                        renewed = true;
                        continue;
                    }
                    return Err(e);
                }
                other => return other,
            }
        }
    }

    fn write_in(&self, session: &Session, op: &Op) -> Result<WriteResponse, ClerkError> {
        let seq = session.begin();
        let result = self.run(|client, options| {
            let request = WriteRequest {
                client_id: session.client_id,
                seq,
                first_unacked_seq: session.first_unacked(),
                op: Some(op.clone()),
            };
            self.write_attempt(client, &request, options)
        });
        session.end(seq);
        result
    }

    /// One attempt of a write (a Register included) at `client`.
    fn write_attempt(
        &self,
        client: &KvServiceClient,
        request: &WriteRequest,
        options: &CallOptions,
    ) -> Attempt<WriteResponse> {
        match client.write(request, options) {
            Ok(resp) => match &resp.error {
                Some(e) if e.code != ErrorCode::Ok as i32 => self.on_kv_error(e, true),
                _ => Attempt::Done(resp),
            },
            Err(e) => Self::on_rpc_error(&e, true),
        }
    }

    /// The current session, registering a new one with the cluster if there is none.
    fn session(&self) -> Result<Arc<Session>, ClerkError> {
        if let Some(session) = self.inner.session.lock().clone() {
            return Ok(session);
        }
        let _registering = self.inner.registering.lock();
        if let Some(session) = self.inner.session.lock().clone() {
            return Ok(session); // another thread registered meanwhile
        }
        let register = WriteRequest {
            op: Some(Op::Register(Register {})),
            ..WriteRequest::default()
        };
        let response =
            self.run(|client, options| self.write_attempt(client, &register, options))?;
        let session = Arc::new(Session::with_id(response.client_id));
        tracing::debug!(client = response.client_id, "session registered");
        *self.inner.session.lock() = Some(session.clone());
        Ok(session)
    }

    /// Drops `expired` if it is still the current session.
    fn forget_session(&self, expired: &Arc<Session>) {
        let mut current = self.inner.session.lock();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, expired)) {
            *current = None;
            tracing::info!(
                old = expired.client_id,
                "session expired; the next write registers anew"
            );
        }
    }

    /// The retry loop shared by every operation.
    fn run<T>(
        &self,
        mut attempt: impl FnMut(&KvServiceClient, &CallOptions) -> Attempt<T>,
    ) -> Result<T, ClerkError> {
        let c = &self.inner.config;
        let mut retry = Retry::new(
            c.op_timeout,
            c.backoff_min,
            c.backoff_max,
            self.inner.servers.len(),
        );
        let mut may_have_executed = false;
        loop {
            let server = self.inner.leader.current();
            let options = CallOptions {
                timeout: Some(retry.attempt_timeout(c.attempt_timeout)),
            };
            match attempt(&self.inner.servers[server], &options) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(mut e) => {
                    e.definite &= !may_have_executed;
                    return Err(e);
                }
                Attempt::Again {
                    may_have_executed: maybe,
                    next,
                } => {
                    may_have_executed |= maybe;
                    match next {
                        // A hint counts towards the round too: during an election two
                        // servers may point at each other.
                        Next::Hinted => retry.failed(),
                        Next::Rotate => {
                            self.inner.leader.rotate_from(server);
                            retry.failed();
                        }
                        Next::PauseSame => retry.pause(),
                    }
                }
            }
            if retry.expired() {
                let message = "operation timed out before a leader answered";
                return Err(ClerkError::new(
                    ErrorKind::Timeout,
                    !may_have_executed,
                    message,
                ));
            }
        }
    }

    fn on_kv_error<T>(&self, e: &KvError, is_write: bool) -> Attempt<T> {
        let code = ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unavailable);
        match code {
            ErrorCode::Ok => Attempt::Again {
                may_have_executed: false,
                next: Next::PauseSame,
            },
            ErrorCode::NotLeader => {
                let next = if self.inner.leader.follow_hint(&e.leader_addr) {
                    Next::Hinted
                } else {
                    Next::Rotate
                };
                Attempt::Again {
                    may_have_executed: false,
                    next,
                }
            }
            ErrorCode::LeadershipLost | ErrorCode::Timeout => Attempt::Again {
                may_have_executed: is_write,
                next: Next::Rotate,
            },
            ErrorCode::Retry => Attempt::Again {
                may_have_executed: false,
                next: Next::PauseSame,
            },
            ErrorCode::Unavailable => Attempt::Again {
                may_have_executed: false,
                next: Next::Rotate,
            },
            ErrorCode::InvalidArgument => Attempt::Fail(ClerkError::new(
                ErrorKind::InvalidArgument,
                true,
                e.message.clone(),
            )),
            // This attempt was refused unapplied; `run` makes the error indefinite if an
            // earlier attempt may have been applied.
            ErrorCode::SessionExpired => Attempt::Fail(ClerkError::new(
                ErrorKind::SessionExpired,
                true,
                e.message.clone(),
            )),
        }
    }

    fn on_rpc_error<T>(e: &RpcError, is_write: bool) -> Attempt<T> {
        tracing::debug!(error = %e, "attempt failed");
        Attempt::Again {
            may_have_executed: is_write && e.may_have_executed(),
            next: Next::Rotate,
        }
    }
}

/// The status of the newest leader among `statuses`.
fn leader_of(statuses: &[StatusResponse]) -> Option<&StatusResponse> {
    statuses
        .iter()
        .filter(|s| s.role == "leader")
        .max_by_key(|s| s.term)
}
