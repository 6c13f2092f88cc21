//! Which connections make way: the rules that keep a flood of hostile or forgotten
//! connections from locking out the ones that matter. PURE: the event loop passes a view
//! of each connection and the time; nothing here touches a socket.
//!
//! - An ordinary connection that sent nothing for `idle_timeout` and has no call in
//!   progress is closed (a client that wants it again reconnects).
//! - Any connection that has held a partly received frame for `partial_frame_timeout` is
//!   closed (a sender that stalls mid-frame holds budget and must not hold it forever).
//! - When the ordinary-connection limit is reached, or the process runs out of file
//!   descriptors, a newcomer is still let in: the ordinary connection heard from least
//!   recently is closed to make room. Refusing the newcomer instead (what we did before)
//!   lets whoever opened sockets first lock everyone else out, including a restarted peer.
//! - Priority connections (promoted by a handler that verified the caller, see
//!   `Responder::promote_connection`) are never idle-closed or evicted.

use std::time::{Duration, Instant};

/// What admission needs to know of one connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionView {
    pub(crate) token: usize,
    pub(crate) priority: bool,
    pub(crate) pending_calls: usize,
    pub(crate) last_received: Instant,
    pub(crate) partial_frame_since: Option<Instant>,
}

/// The timeouts (`None`: never).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) idle: Option<Duration>,
    pub(crate) partial_frame: Option<Duration>,
}

/// Why `view` must be closed now, if it must.
pub(crate) fn expiry(view: &ConnectionView, now: Instant, timeouts: Timeouts) -> Option<String> {
    if let (Some(since), Some(limit)) = (view.partial_frame_since, timeouts.partial_frame) {
        let waited = now.saturating_duration_since(since);
        if waited >= limit {
            return Some(format!(
                "a frame has been partly received for {waited:?} (limit {limit:?})"
            ));
        }
    }
    let idle = now.saturating_duration_since(view.last_received);
    match timeouts.idle {
        Some(limit) if !view.priority && view.pending_calls == 0 && idle >= limit => Some(format!(
            "idle for {idle:?} with no call in progress (limit {limit:?})"
        )),
        _ => None,
    }
}

/// The ordinary connection to close to make room for a newcomer: the one heard from least
/// recently, preferring those with no call in progress (closing one loses no reply); of
/// equals, the oldest (tokens grow with acceptance).
pub(crate) fn eviction_victim(views: impl Iterator<Item = ConnectionView>) -> Option<usize> {
    views
        .filter(|view| !view.priority)
        .min_by_key(|view| (view.pending_calls > 0, view.last_received, view.token))
        .map(|view| view.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn view(token: usize, last_received: Instant) -> ConnectionView {
        ConnectionView {
            token,
            priority: false,
            pending_calls: 0,
            last_received,
            partial_frame_since: None,
        }
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            idle: Some(10 * SECOND),
            partial_frame: Some(3 * SECOND),
        }
    }

    #[test]
    fn idle_ordinary_connections_expire_unless_busy_or_priority() {
        let start = Instant::now();
        let later = start + 10 * SECOND;
        let idle = view(1, start);
        assert!(expiry(&idle, start + 9 * SECOND, timeouts()).is_none());
        assert!(expiry(&idle, later, timeouts()).is_some());
        let busy = ConnectionView {
            pending_calls: 1,
            ..idle
        };
        assert!(expiry(&busy, later, timeouts()).is_none());
        let peer = ConnectionView {
            priority: true,
            ..idle
        };
        assert!(expiry(&peer, later, timeouts()).is_none());
    }

    #[test]
    fn a_stalled_partial_frame_expires_for_every_class() {
        let start = Instant::now();
        let stalled = ConnectionView {
            priority: true,
            partial_frame_since: Some(start),
            ..view(1, start)
        };
        assert!(expiry(&stalled, start + 2 * SECOND, timeouts()).is_none());
        assert!(expiry(&stalled, start + 3 * SECOND, timeouts()).is_some());
        let never = Timeouts {
            idle: None,
            partial_frame: None,
        };
        assert!(expiry(&stalled, start + 1000 * SECOND, never).is_none());
    }

    #[test]
    fn the_victim_is_the_quietest_ordinary_connection_without_calls() {
        let start = Instant::now();
        let views = [
            ConnectionView {
                priority: true,
                ..view(1, start)
            },
            ConnectionView {
                pending_calls: 3,
                ..view(2, start + SECOND)
            },
            view(3, start + 5 * SECOND),
            view(4, start + 2 * SECOND),
        ];
        assert_eq!(eviction_victim(views.into_iter()), Some(4));
        assert_eq!(eviction_victim(views[..2].iter().copied()), Some(2));
        assert_eq!(eviction_victim(views[..1].iter().copied()), None);
    }
}
