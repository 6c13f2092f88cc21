//! [`ReplyBatch`]: replies completed by one thread in a burst leave with one syscall per
//! connection instead of one per reply.
//!
//! A thread that answers many calls at once (an applier finishing a batch of writes,
//! say) begins a `ReplyBatch`; every reply it sends through a [`crate::Responder`] while
//! the batch lives is queued on its connection, whose writer stays corked until the batch
//! is dropped, which flushes each touched connection once. Batches are per thread and
//! nest (an inner batch joins the outer one).
//!
//! Invariant: every writer this thread corked is uncorked when the outermost batch ends,
//! so no reply can stay queued (a writer corked by someone else, the event loop, is
//! flushed by its own uncork as before: corking is only ever a delay).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::server::connection::ConnShared;

thread_local! {
    /// The connections corked by this thread's open batch; `None` when no batch is open.
    static CORKED: RefCell<Option<Vec<Arc<ConnShared>>>> = const { RefCell::new(None) };
}

/// Holds back this thread's replies until dropped; see the module docs.
#[derive(Debug)]
#[must_use = "replies are flushed when the batch is dropped"]
pub struct ReplyBatch {
    /// Whether this is the outermost batch (the one that flushes).
    outermost: bool,
    /// A batch belongs to the thread that began it.
    _not_send: PhantomData<std::rc::Rc<()>>,
}

impl ReplyBatch {
    /// Begins batching the replies this thread sends.
    pub fn begin() -> ReplyBatch {
        let outermost = CORKED.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = Some(Vec::new());
                true
            } else {
                false
            }
        });
        ReplyBatch {
            outermost,
            _not_send: PhantomData,
        }
    }
}

impl Drop for ReplyBatch {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        let corked = CORKED.with(|c| c.borrow_mut().take()).unwrap_or_default();
        for conn in corked {
            conn.writer.uncork();
        }
    }
}

/// Called before a reply is sent on `conn`: inside a batch, corks the connection's writer
/// (once per batch) so the reply waits for the batch's end.
pub(crate) fn enlist(conn: &Arc<ConnShared>) {
    CORKED.with(|c| {
        if let Some(list) = c.borrow_mut().as_mut() {
            if !list.iter().any(|other| Arc::ptr_eq(other, conn)) {
                conn.writer.cork();
                list.push(conn.clone());
            }
        }
    });
}
