//! The typed RPC interfaces of the end-to-end tests (crates/appipc-cli/tests/rpc_typed.rs) and
//! their implementation, served by the `rpc-probe` binary inside an app container.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use appipc::rpc::{CallContext, CallResult, Fault, ObjectRef};
use serde::{Deserialize, Serialize};

/// An enum of every shape serde has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Kind {
    /// Unit variant.
    Unit,
    /// Newtype variant.
    Newtype(u32),
    /// Tuple variant.
    Tuple(i16, String),
    /// Struct variant.
    Struct {
        /// A float.
        x: f32,
    },
}

/// A value of every kind of argument: integers of each width and sign, floats, text, bytes,
/// options, lists, maps, tuples, enums, nesting, unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Everything {
    pub flag: bool,
    pub small: i8,
    pub word: u16,
    pub signed: i32,
    pub big: u64,
    pub negative: i64,
    pub real: f64,
    pub text: String,
    #[serde(with = "serde_bytes_compat")]
    pub bytes: Vec<u8>,
    pub maybe: Option<String>,
    pub nothing: Option<u8>,
    pub list: Vec<u32>,
    pub map: BTreeMap<String, i64>,
    pub pair: (u8, String),
    pub kinds: Vec<Kind>,
    pub nested: Vec<Option<Vec<Kind>>>,
    pub unit: (),
}

/// Bytes as a CBOR byte string (`serde_bytes` without the dependency).
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl Everything {
    /// A value with something in every field.
    pub fn sample() -> Everything {
        Everything {
            flag: true,
            small: -128,
            word: 65535,
            signed: i32::MIN,
            big: u64::MAX,
            negative: -1,
            real: -0.5e300,
            text: "grüße, 世界".into(),
            bytes: (0..=255).collect(),
            maybe: Some(String::new()),
            nothing: None,
            list: vec![0, 1, 4_000_000_000],
            map: [("a".to_owned(), 1), ("".to_owned(), i64::MIN)].into_iter().collect(),
            pair: (7, "seven".into()),
            kinds: vec![
                Kind::Unit,
                Kind::Newtype(9),
                Kind::Tuple(-3, "t".into()),
                Kind::Struct { x: 1.5 },
            ],
            nested: vec![None, Some(vec![]), Some(vec![Kind::Unit])],
            unit: (),
        }
    }
}

/// The endpoint interface of the probe server.
#[appipc::interface(uuid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", version = "1.2")]
pub trait Probe {
    /// Gives back what it got.
    async fn echo(&self, cx: &CallContext, value: Everything) -> CallResult<Everything>;
    /// a + b, or a fault on overflow.
    async fn add(&self, cx: &CallContext, a: i64, b: i64) -> CallResult<i64>;
    /// Who called, as the broker attested: "PFN container BOOL caps N" ("-" unpackaged).
    async fn whoami(&self, cx: &CallContext) -> CallResult<String>;
    /// A fresh counter object starting at `start`.
    async fn counter(&self, cx: &CallContext, start: u64) -> CallResult<ObjectRef<dyn Counter>>;
    /// Calls the caller's counter `n` times; its last value.
    async fn drain(
        &self,
        cx: &CallContext,
        counter: ObjectRef<dyn Counter>,
        n: u32,
    ) -> CallResult<u64>;
    /// Calls `listener` back `events` times, then returns how many it acknowledged.
    async fn subscribe(
        &self,
        cx: &CallContext,
        listener: ObjectRef<dyn Listener>,
        events: u32,
    ) -> CallResult<u32>;
    /// Counters of this server still referenced by someone.
    async fn live_counters(&self, cx: &CallContext) -> CallResult<u64>;
    /// Sleeps `ms`, then answers it.
    async fn stall(&self, cx: &CallContext, ms: u64) -> CallResult<u64>;
    /// The server process exits while it runs this call.
    async fn exit_now(&self, cx: &CallContext) -> CallResult<()>;
    /// Refuses packaged callers without `internetClient` with 5 (a per-method check).
    async fn guarded(&self, cx: &CallContext) -> CallResult<String>;
}

/// An object the probe hands out.
#[appipc::interface(uuid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5c", version = "1.0")]
pub trait Counter {
    /// The next value.
    async fn next(&self, cx: &CallContext) -> CallResult<u64>;
}

/// A callback a client passes the probe.
#[appipc::interface(uuid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5d", version = "1.0")]
pub trait Listener {
    /// Event `n`; true to acknowledge.
    async fn event(&self, cx: &CallContext, n: u32, text: String) -> CallResult<bool>;
}

/// The probe's interface at a later minor version (a method appended): a 1.2 server does not
/// serve it (1717).
#[appipc::interface(uuid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", version = "1.3")]
pub trait ProbeNext {
    /// As [`Probe::echo`].
    async fn echo(&self, cx: &CallContext, value: Everything) -> CallResult<Everything>;
}

/// The probe's interface at an earlier minor version, with its first methods only: a 1.2
/// server serves it.
#[appipc::interface(uuid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", version = "1.0")]
pub trait ProbeOld {
    /// As [`Probe::echo`].
    async fn echo(&self, cx: &CallContext, value: Everything) -> CallResult<Everything>;
    /// As [`Probe::add`].
    async fn add(&self, cx: &CallContext, a: i64, b: i64) -> CallResult<i64>;
}

/// The probe's interface at another major version (1717).
#[appipc::interface(uuid = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", version = "2.0")]
pub trait ProbeV2 {
    /// As [`Probe::echo`].
    async fn echo(&self, cx: &CallContext, value: Everything) -> CallResult<Everything>;
}

/// The probe's implementation.
#[derive(Debug, Default)]
pub struct ProbeServer {
    live: Arc<AtomicU64>,
}

/// A counter of the probe; counted while it lives.
#[derive(Debug)]
struct Count {
    value: AtomicU64,
    live: Arc<AtomicU64>,
}

impl Drop for Count {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[appipc::async_trait]
impl Counter for Count {
    async fn next(&self, _cx: &CallContext) -> CallResult<u64> {
        Ok(self.value.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

fn failed(e: appipc::Error) -> Fault {
    Fault::new(e.win32_code().unwrap_or(1726), e.to_string())
}

fn describe(cx: &CallContext) -> String {
    match cx.caller() {
        None => "server".into(),
        Some(c) => format!(
            "{} container {} caps {}",
            if c.package_family_name.is_empty() { "-" } else { &c.package_family_name },
            c.app_container,
            c.capability_sids.len()
        ),
    }
}

#[appipc::async_trait]
impl Probe for ProbeServer {
    async fn echo(&self, _cx: &CallContext, value: Everything) -> CallResult<Everything> {
        Ok(value)
    }

    async fn add(&self, _cx: &CallContext, a: i64, b: i64) -> CallResult<i64> {
        a.checked_add(b).ok_or_else(|| Fault::new(534, "arithmetic overflow"))
    }

    async fn whoami(&self, cx: &CallContext) -> CallResult<String> {
        Ok(describe(cx))
    }

    async fn counter(&self, _cx: &CallContext, start: u64) -> CallResult<ObjectRef<dyn Counter>> {
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(ObjectRef::new(Arc::new(Count {
            value: AtomicU64::new(start),
            live: self.live.clone(),
        })))
    }

    async fn drain(
        &self,
        _cx: &CallContext,
        counter: ObjectRef<dyn Counter>,
        n: u32,
    ) -> CallResult<u64> {
        let c = counter.client().map_err(failed)?;
        let mut last = 0;
        for _ in 0..n {
            last = c.next().await.map_err(failed)?;
        }
        Ok(last)
    }

    async fn subscribe(
        &self,
        _cx: &CallContext,
        listener: ObjectRef<dyn Listener>,
        events: u32,
    ) -> CallResult<u32> {
        let l = listener.client().map_err(failed)?;
        let mut acked = 0;
        for n in 0..events {
            if l.event(n, format!("event {n}")).await.map_err(failed)? {
                acked += 1;
            }
        }
        Ok(acked)
    }

    async fn live_counters(&self, _cx: &CallContext) -> CallResult<u64> {
        Ok(self.live.load(Ordering::SeqCst))
    }

    async fn stall(&self, _cx: &CallContext, ms: u64) -> CallResult<u64> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }

    async fn exit_now(&self, _cx: &CallContext) -> CallResult<()> {
        std::process::exit(3);
    }

    async fn guarded(&self, cx: &CallContext) -> CallResult<String> {
        let internet = appipc_model::sid::capability_sid("internetClient").to_string();
        match cx.caller() {
            Some(c) if c.app_container && !c.capability_sids.contains(&internet) => {
                Err(Fault::access_denied("guarded: app containers need internetClient"))
            }
            _ => Ok(describe(cx)),
        }
    }
}
