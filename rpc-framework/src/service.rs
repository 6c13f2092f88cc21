//! What a server hosts: the `Service` trait, the `Responder` a handler completes (from any
//! thread, at any later time), its typed wrapper `Reply<T>` used by generated code, and the
//! registry the `Provider` dispatches through.
//!
//! Invariant: every request dispatched to a handler gets exactly one reply. `respond`
//! consumes the responder; dropping it unanswered sends `Code::Internal`.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::server::connection::ConnShared;
use crate::Status;

/// A protobuf service hosted by a `Provider`. Generated `<Name>Server` adapters implement
/// it; hand-written implementations work on raw bytes.
///
/// # Correctness
/// - `call` must eventually complete the `Responder` exactly once (`respond` consumes it;
///   dropping it answers `Code::Internal`).
/// - For services registered with `Provider::register_inline`, `call` runs on the event-loop
///   thread and must return quickly without blocking; it may keep the responder and
///   complete it later from another thread.
pub trait Service: Send + Sync + 'static {
    /// Fully-qualified service name, e.g. `"raftkv.kv.KvService"`.
    fn name(&self) -> &'static str;
    /// Method names as written in the `.proto` file. Calls to other names are answered with
    /// `Code::Unimplemented` before `call` is reached.
    fn methods(&self) -> &'static [&'static str];
    /// Handles one request; `method` is one of `methods()`.
    fn call(&self, method: &str, request: Bytes, responder: Responder);
}

type ReplyCallback = Box<dyn FnOnce(Result<Bytes, Status>) + Send + 'static>;

enum ResponderTarget {
    /// `charge`: the request's bytes charged to the memory budget until the reply.
    Connection {
        conn: Arc<ConnShared>,
        request_id: u64,
        charge: usize,
    },
    Callback(ReplyCallback),
    /// A one-way call: the result is not sent; a failure is logged.
    OneWay {
        conn: Arc<ConnShared>,
        charge: usize,
    },
}

/// The one-shot reply slot of one request. `Send + 'static`: complete it from any thread.
pub struct Responder {
    target: Option<ResponderTarget>,
}

impl Responder {
    /// A responder that hands the reply to `callback` instead of a connection: for testing
    /// services, or calling them in-process.
    pub fn from_fn(callback: impl FnOnce(Result<Bytes, Status>) + Send + 'static) -> Responder {
        Responder {
            target: Some(ResponderTarget::Callback(Box::new(callback))),
        }
    }

    pub(crate) fn for_connection(
        conn: Arc<ConnShared>,
        request_id: u64,
        charge: usize,
    ) -> Responder {
        Responder {
            target: Some(ResponderTarget::Connection {
                conn,
                request_id,
                charge,
            }),
        }
    }

    pub(crate) fn for_one_way(conn: Arc<ConnShared>, charge: usize) -> Responder {
        Responder {
            target: Some(ResponderTarget::OneWay { conn, charge }),
        }
    }

    /// Marks the connection this request arrived on as a priority connection, for a
    /// handler that has verified who is calling (e.g. a cluster peer whose cluster id and
    /// settings match): from now on it does not count toward
    /// `ProviderConfig::max_connections`, is never closed for idleness nor evicted to make
    /// room for a newcomer, and may use the reserved part of the memory budget, so a flood
    /// of ordinary clients cannot starve it. At most `max_priority_connections` are
    /// promoted; beyond that (or for an in-process responder) this does nothing.
    pub fn promote_connection(&self) {
        if let Some(
            ResponderTarget::Connection { conn, .. } | ResponderTarget::OneWay { conn, .. },
        ) = &self.target
        {
            conn.request_promotion();
        }
    }

    /// Sends the reply: an encoded response body, or an error status.
    pub fn respond(mut self, result: Result<Bytes, Status>) {
        match self.target.take() {
            Some(ResponderTarget::Connection {
                conn,
                request_id,
                charge,
            }) => {
                crate::reply_batch::enlist(&conn);
                conn.send_reply_bytes(request_id, charge, result);
            }
            Some(ResponderTarget::Callback(callback)) => callback(result),
            Some(ResponderTarget::OneWay { conn, charge }) => {
                conn.finish_one_way(charge, result.err())
            }
            None => {}
        }
    }

    /// Sends the reply, encoding `message` straight into the outgoing frame.
    pub fn respond_message<M: Message>(mut self, result: Result<M, Status>) {
        match self.target.take() {
            Some(ResponderTarget::Connection {
                conn,
                request_id,
                charge,
            }) => {
                crate::reply_batch::enlist(&conn);
                conn.send_reply_message(request_id, charge, result);
            }
            Some(ResponderTarget::Callback(callback)) => {
                callback(result.map(|message| Bytes::from(message.encode_to_vec())));
            }
            Some(ResponderTarget::OneWay { conn, charge }) => {
                conn.finish_one_way(charge, result.err())
            }
            None => {}
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.target.is_some() {
            let status = Status::internal("the handler dropped its responder without replying");
            Responder {
                target: self.target.take(),
            }
            .respond(Err(status));
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Some(ResponderTarget::Connection { request_id, .. }) => format!("request {request_id}"),
            Some(ResponderTarget::Callback(_)) => "callback".to_owned(),
            Some(ResponderTarget::OneWay { .. }) => "one-way".to_owned(),
            None => "done".to_owned(),
        };
        f.debug_struct("Responder")
            .field("target", &target)
            .finish()
    }
}

/// A typed `Responder`: what generated server traits hand to each method.
pub struct Reply<T: Message> {
    responder: Responder,
    _response: PhantomData<fn(T)>,
}

impl<T: Message> Reply<T> {
    /// Wraps a responder (generated code does this).
    pub fn new(responder: Responder) -> Reply<T> {
        Reply {
            responder,
            _response: PhantomData,
        }
    }

    /// Replies with `response`.
    pub fn ok(self, response: T) {
        self.responder.respond_message(Ok::<T, Status>(response));
    }

    /// Replies with an error status.
    pub fn err(self, status: Status) {
        self.responder.respond_message::<T>(Err(status));
    }

    /// Replies with either.
    pub fn send(self, result: Result<T, Status>) {
        self.responder.respond_message(result);
    }

    /// See [`Responder::promote_connection`].
    pub fn promote_connection(&self) {
        self.responder.promote_connection();
    }

    /// The untyped responder underneath.
    pub fn into_responder(self) -> Responder {
        self.responder
    }
}

impl<T: Message> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("responder", &self.responder)
            .finish()
    }
}

/// A registered service and how its handlers run.
#[derive(Clone)]
pub(crate) struct RegisteredService {
    pub(crate) service: Arc<dyn Service>,
    /// Run `call` on the event-loop thread instead of the worker pool.
    pub(crate) inline: bool,
}

/// Where a request goes, or why it goes nowhere.
pub(crate) enum Route<'a> {
    Found(&'a RegisteredService),
    Unimplemented(Status),
}

/// Service name -> service. Built before `serve`, read-only afterwards.
#[derive(Clone, Default)]
pub(crate) struct ServiceRegistry {
    services: HashMap<String, RegisteredService>,
}

impl ServiceRegistry {
    /// Adds a service; a later registration under the same name replaces the earlier one.
    pub(crate) fn insert(&mut self, service: Arc<dyn Service>, inline: bool) {
        let name = service.name().to_owned();
        let replaced = self
            .services
            .insert(name.clone(), RegisteredService { service, inline });
        if replaced.is_some() {
            tracing::warn!(service = %name, "service registered twice; the later one wins");
        }
    }

    /// Finds the handler for `service`/`method`.
    pub(crate) fn route(&self, service: &str, method: &str) -> Route<'_> {
        match self.services.get(service) {
            None => Route::Unimplemented(Status::unimplemented(format!(
                "unknown service {service:?}"
            ))),
            Some(entry) if !entry.service.methods().contains(&method) => Route::Unimplemented(
                Status::unimplemented(format!("unknown method {method:?} of service {service:?}")),
            ),
            Some(entry) => Route::Found(entry),
        }
    }

    /// Whether any service runs on the worker pool (else no pool is started).
    pub(crate) fn has_pooled_services(&self) -> bool {
        self.services.values().any(|entry| !entry.inline)
    }

    fn names(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }
}

impl fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    struct Upper;
    impl Service for Upper {
        fn name(&self) -> &'static str {
            "test.Upper"
        }
        fn methods(&self) -> &'static [&'static str] {
            &["Shout", "Forget"]
        }
        fn call(&self, method: &str, request: Bytes, responder: Responder) {
            if method == "Shout" {
                responder.respond(Ok(Bytes::from(request.to_ascii_uppercase())));
            }
            // "Forget" drops the responder.
        }
    }

    type ReplySlot = Arc<Mutex<Option<Result<Bytes, Status>>>>;

    fn capture() -> (Responder, ReplySlot) {
        let slot = Arc::new(Mutex::new(None));
        let sink = slot.clone();
        (Responder::from_fn(move |r| *sink.lock() = Some(r)), slot)
    }

    #[test]
    fn registry_routes_known_methods_and_rejects_others() {
        let mut registry = ServiceRegistry::default();
        registry.insert(Arc::new(Upper), false);
        assert!(matches!(
            registry.route("test.Upper", "Shout"),
            Route::Found(_)
        ));
        for (service, method) in [("test.Upper", "Whisper"), ("test.Lower", "Shout")] {
            match registry.route(service, method) {
                Route::Unimplemented(status) => assert_eq!(status.code, crate::Code::Unimplemented),
                Route::Found(_) => panic!("{service}/{method} should be unimplemented"),
            }
        }
    }

    #[test]
    fn responder_delivers_the_reply_once() {
        let (responder, slot) = capture();
        Upper.call("Shout", Bytes::from_static(b"hi"), responder);
        assert_eq!(slot.lock().take(), Some(Ok(Bytes::from_static(b"HI"))));
    }

    #[test]
    fn dropped_responder_answers_internal() {
        let (responder, slot) = capture();
        Upper.call("Forget", Bytes::new(), responder);
        let reply = slot.lock().take().unwrap();
        assert_eq!(reply.unwrap_err().code, crate::Code::Internal);
    }

    #[test]
    fn typed_reply_encodes_the_message() {
        let (responder, slot) = capture();
        let header = crate::frame::RpcHeader::response(5);
        Reply::new(responder).ok(header.clone());
        let bytes = slot.lock().take().unwrap().unwrap();
        assert_eq!(crate::frame::RpcHeader::decode(bytes).unwrap(), header);
    }
}
