//! etcd as a `clerk::loadgen::LoadTarget`: one `etcd-client` connection per target, driven
//! by blocking on a shared tokio runtime from the engine's client threads. Also finds the
//! leader's client endpoint so the load can go where raftkv's clerk sends it.
//!
//! Invariant: every `EtcdTarget` has exactly one endpoint, so it is exactly one HTTP/2
//! connection; the engine's clients multiplex over those, as etcd's own benchmark tool
//! does with its `--conns`.

use clerk::loadgen::LoadTarget;
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};
use std::time::Duration;
use tokio::runtime::Handle;

/// One connection to one etcd member.
pub struct EtcdTarget {
    kv: KvClient,
    runtime: Handle,
    serializable: bool,
}

impl EtcdTarget {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:32379`).
    pub fn connect(
        runtime: &Handle,
        endpoint: &str,
        serializable: bool,
    ) -> Result<EtcdTarget, String> {
        let client = runtime
            .block_on(Client::connect([endpoint], Some(connect_options())))
            .map_err(|e| format!("{endpoint}: {e}"))?;
        Ok(EtcdTarget {
            kv: client.kv_client(),
            runtime: runtime.clone(),
            serializable,
        })
    }
}

fn connect_options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10))
}

impl LoadTarget for EtcdTarget {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut kv = self.kv.clone();
        self.runtime
            .block_on(kv.put(key, value, None))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut kv = self.kv.clone();
        let options = self
            .serializable
            .then(|| GetOptions::new().with_serializable());
        let resp = self
            .runtime
            .block_on(kv.get(key, options))
            .map_err(|e| e.to_string())?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }
}

/// The client endpoint of the current leader, asking each member for its status.
pub fn find_leader(runtime: &Handle, endpoints: &[String]) -> Result<String, String> {
    let mut last_error = String::from("no endpoints");
    for endpoint in endpoints {
        let status = runtime.block_on(async {
            let mut client = Client::connect([endpoint], Some(connect_options())).await?;
            client.status().await
        });
        match status {
            Ok(s) => {
                let me = s.header().map_or(0, |h| h.member_id());
                if me != 0 && me == s.leader() {
                    return Ok(endpoint.clone());
                }
            }
            Err(e) => last_error = format!("{endpoint}: {e}"),
        }
    }
    Err(format!("no member says it is the leader ({last_error})"))
}
