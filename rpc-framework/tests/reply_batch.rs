//! `ReplyBatch`: replies completed inside a batch wait for its end, then all arrive; nested
//! batches flush once, when the outermost ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use bytes::Bytes;
use rpc_framework::{CallOptions, ProviderConfig, ReplyBatch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use util::{channel_to, start_probe_server, wait_for, SERVICE};

#[test]
fn replies_sent_inside_a_batch_leave_when_it_ends() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channels = [channel_to(&server), channel_to(&server)];
    let answered = Arc::new(AtomicUsize::new(0));
    for (i, channel) in channels.iter().enumerate() {
        for j in 0..5 {
            let answered = answered.clone();
            let body = Bytes::from(format!("{i}-{j}"));
            let expected = body.clone();
            channel.call_async(SERVICE, "Hold", body, &CallOptions::default(), move |r| {
                assert_eq!(r.unwrap(), expected);
                answered.fetch_add(1, Ordering::SeqCst);
            });
        }
    }
    control.wait_held(10);
    let outer = ReplyBatch::begin();
    {
        let _inner = ReplyBatch::begin();
        control.release_held();
    }
    // Both connections are corked until the outermost batch ends: nothing was written.
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "a reply left before the batch ended"
    );
    drop(outer);
    wait_for("every reply to arrive", || {
        answered.load(Ordering::SeqCst) == 10
    });
    // Outside a batch, replies leave at once again.
    let reply = channels[0]
        .call(
            SERVICE,
            "Echo",
            Bytes::from_static(b"after"),
            &CallOptions::default(),
        )
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"after"));
    server.shutdown();
}
