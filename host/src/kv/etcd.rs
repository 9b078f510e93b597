//! The shared store: etcd v3, for state several hosts agree on (overlay
//! networks, their addresses and endpoints). Versions are etcd's revisions:
//! a key's version is its `mod_revision`, and compare-and-swap is one
//! transaction comparing it, so hosts never hand out the same thing twice.
//!
//! netsh's calls are synchronous and may come from inside its own tokio
//! runtime, so the client lives on a private runtime and each call is
//! driven from a scoped thread.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use super::{Entry, KvStore, check_value};
use crate::error::{CapError, CapResult};

/// How long connecting to an endpoint, and then each request, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After etcd failed to answer, how long later calls fail at once instead
/// of waiting again (a run rolling back, say).
const QUIET: Duration = Duration::from_secs(30);

/// etcd at `etcd://HOST:PORT[,HOST:PORT...]`.
pub struct Etcd {
    url: String,
    endpoints: Vec<String>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    client: OnceLock<Client>,
    /// When etcd last failed to answer in time.
    silent_since: Mutex<Option<Instant>>,
}

/// The client's runtime may be dropped from inside netsh's own (the agent
/// ends): shut it down without blocking there.
impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("url", &self.url).finish_non_exhaustive()
    }
}

/// The endpoints of an `etcd://HOST:PORT[,HOST:PORT...]` URL, as `http://` addresses.
pub fn endpoints(url: &str) -> CapResult<Vec<String>> {
    let bad =
        |why: &str| CapError::Invalid(format!("key-value store {url:?}: {why}; use etcd://HOST:2379[,HOST:2379...]"));
    let rest = url.strip_prefix("etcd://").ok_or_else(|| bad("not an etcd:// URL"))?;
    let hosts: Vec<&str> = rest.trim_end_matches('/').split(',').collect();
    if hosts.iter().any(|h| h.is_empty() || h.contains('/') || h.contains('@')) {
        return Err(bad("each endpoint must be HOST or HOST:PORT"));
    }
    Ok(hosts
        .iter()
        .map(|h| if h.contains(':') && !h.ends_with(']') { format!("http://{h}") } else { format!("http://{h}:2379") })
        .collect())
}

impl Etcd {
    /// A store for `url`; nothing is contacted until the first call.
    pub fn new(url: &str) -> CapResult<Etcd> {
        let endpoints = endpoints(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("netsh-etcd")
            .enable_all()
            .build()
            .map_err(|e| CapError::Failed(format!("key-value store {url}: cannot start its client: {e}")))?;
        Ok(Etcd {
            url: url.to_string(),
            endpoints,
            runtime: Some(runtime),
            client: OnceLock::new(),
            silent_since: Mutex::new(None),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until the store is dropped")
    }

    fn error(&self, e: etcd_client::Error) -> CapError {
        let detail = match &e {
            etcd_client::Error::TransportError(_) | etcd_client::Error::GRpcStatus(_) => {
                if unreachable(&e) {
                    self.fell_silent();
                }
                format!("{e}; is etcd running and reachable at {}?", self.endpoints.join(", "))
            }
            _ => e.to_string(),
        };
        CapError::Failed(format!("key-value store {}: {detail}", self.url))
    }

    /// Run `call` with a connected client, on the store's runtime.
    fn with<T: Send>(&self, call: impl AsyncFnOnce(Client) -> Result<T, etcd_client::Error> + Send) -> CapResult<T> {
        let silent = self.silent_since.lock().unwrap_or_else(|p| p.into_inner()).filter(|t| t.elapsed() < QUIET);
        if let Some(since) = silent {
            return Err(CapError::Failed(format!(
                "key-value store {}: {} did not answer {}s ago; not waiting again",
                self.url,
                self.endpoints.join(", "),
                since.elapsed().as_secs()
            )));
        }
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                self.runtime().block_on(async {
                    let client = match self.client.get() {
                        Some(c) => c.clone(),
                        None => {
                            let options = ConnectOptions::new()
                                .with_connect_timeout(CONNECT_TIMEOUT)
                                // Past ours, so a request that hangs is reported by `unreachable`.
                                .with_timeout(REQUEST_TIMEOUT + Duration::from_secs(1));
                            let connect = Client::connect(&self.endpoints, Some(options));
                            let client = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                                .await
                                .map_err(|_| CapError::Failed(self.no_answer(CONNECT_TIMEOUT)))?
                                .map_err(|e| self.error(e))?;
                            self.client.get_or_init(|| client).clone()
                        }
                    };
                    tokio::time::timeout(REQUEST_TIMEOUT, call(client))
                        .await
                        .map_err(|_| CapError::Unanswered(self.no_answer(REQUEST_TIMEOUT)))?
                        .map_err(|e| self.error(e))
                })
            });
            worker
                .join()
                .unwrap_or_else(|_| Err(CapError::Failed(format!("key-value store {}: client panicked", self.url))))
        })
    }

    /// Watch the keys under `prefix`: every batch of changes calls
    /// `notify`, and so does every (re)connection, since changes may have
    /// been missed meanwhile. Runs on the store's runtime until `notify`
    /// returns false; connection errors are reported on stderr and retried
    /// every second.
    pub fn watch(&self, prefix: &str, notify: impl Fn() -> bool + Send + Sync + 'static) {
        let (url, endpoints, prefix) = (self.url.clone(), self.endpoints.clone(), prefix.to_string());
        self.runtime().spawn(async move {
            loop {
                let watched = async {
                    let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
                    let mut client = Client::connect(&endpoints, Some(options)).await?;
                    let mut stream = client.watch(prefix.as_str(), Some(WatchOptions::new().with_prefix())).await?;
                    if !notify() {
                        return Ok(false);
                    }
                    while let Some(reply) = stream.message().await? {
                        if !reply.events().is_empty() && !notify() {
                            return Ok(false);
                        }
                    }
                    Ok::<bool, etcd_client::Error>(true)
                };
                match watched.await {
                    Ok(false) => return,
                    Ok(true) => eprintln!("netsh: watching {url}: the stream ended; watching again"),
                    Err(e) => eprintln!("netsh: watching {url} ({}): {e}; retrying in 1 s", endpoints.join(", ")),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Remember for [`QUIET`] that etcd did not answer.
    fn fell_silent(&self) {
        *self.silent_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// What to say when etcd gave no answer within `waited`; remembers the
    /// silence for [`QUIET`].
    fn no_answer(&self, waited: Duration) -> String {
        self.fell_silent();
        format!(
            "key-value store {}: no answer from {} within {}s; is etcd running there?",
            self.url,
            self.endpoints.join(", "),
            waited.as_secs()
        )
    }
}

/// Whether an error says etcd could not be reached (not that it refused one
/// request): the transport failed, or gRPC's Cancelled (1),
/// DeadlineExceeded (4) or Unavailable (14).
fn unreachable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(status.code() as i32, 1 | 4 | 14),
        _ => false,
    }
}

fn entry(kv: &etcd_client::KeyValue) -> Option<Entry> {
    Some(Entry {
        key: kv.key_str().ok()?.to_string(),
        value: kv.value_str().ok()?.to_string(),
        version: u64::try_from(kv.mod_revision()).ok()?,
    })
}

/// A version as etcd's signed revision.
fn etcd_revision(version: u64) -> CapResult<i64> {
    i64::try_from(version).map_err(|_| CapError::Invalid(format!("version {version} is too large")))
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0))
}

impl KvStore for Etcd {
    fn get(&self, key: &str) -> CapResult<Option<Entry>> {
        self.with(async |mut kv| Ok(kv.get(key, None).await?.kvs().first().and_then(entry)))
    }

    fn list(&self, prefix: &str) -> CapResult<Vec<Entry>> {
        self.with(async |mut kv| {
            let reply = match prefix {
                // An empty prefix is every key: etcd spells that as the range from "\0".
                "" => kv.get("\0", Some(GetOptions::new().with_from_key())).await?,
                _ => kv.get(prefix, Some(GetOptions::new().with_prefix())).await?,
            };
            Ok(reply.kvs().iter().filter_map(entry).collect())
        })
    }

    fn put(&self, key: &str, value: &str) -> CapResult<u64> {
        check_value(key, value)?;
        self.with(async |mut kv| Ok(revision(kv.put(key, value, None).await?.header())))
    }

    fn put_lease(&self, key: &str, value: &str, ttl: Duration) -> CapResult<u64> {
        check_value(key, value)?;
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.with(async |mut client| {
            let lease = client.lease_grant(ttl, None).await?;
            let options = PutOptions::new().with_lease(lease.id());
            Ok(revision(client.put(key, value, Some(options)).await?.header()))
        })
    }

    fn create(&self, key: &str, value: &str) -> CapResult<Option<u64>> {
        self.swap(key, 0, value)
    }

    fn swap(&self, key: &str, version: u64, value: &str) -> CapResult<Option<u64>> {
        check_value(key, value)?;
        let version = etcd_revision(version)?;
        let condition = match version {
            0 => Compare::create_revision(key, CompareOp::Equal, 0),
            v => Compare::mod_revision(key, CompareOp::Equal, v),
        };
        let txn = Txn::new().when([condition]).and_then([TxnOp::put(key, value, None)]);
        self.with(async |mut kv| {
            let reply = kv.txn(txn).await?;
            Ok(reply.succeeded().then(|| revision(reply.header())))
        })
    }

    fn delete(&self, key: &str) -> CapResult<bool> {
        self.with(async |mut kv| Ok(kv.delete(key, None).await?.deleted() > 0))
    }

    fn delete_at(&self, key: &str, version: u64) -> CapResult<bool> {
        let version = etcd_revision(version)?;
        let condition = Compare::mod_revision(key, CompareOp::Equal, version);
        let txn = Txn::new().when([condition]).and_then([TxnOp::delete(key, None)]);
        self.with(async |mut kv| Ok(kv.txn(txn).await?.succeeded()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(endpoints("etcd://10.0.0.1:2379").unwrap(), ["http://10.0.0.1:2379"]);
        assert_eq!(endpoints("etcd://a,b:2400").unwrap(), ["http://a:2379", "http://b:2400"]);
        for bad in ["http://a:2379", "etcd://", "etcd://a,,b", "etcd://u@a", "etcd://a/x"] {
            assert!(endpoints(bad).is_err(), "{bad}");
        }
    }
}
