//! The packaged-COM interfaces of the end-to-end tests (crates/appipc-cli/tests/com.rs). The
//! `com-probe` binary serves [`ComProbe`] as a COM server the broker starts (`-Embedding`),
//! and activates it as a client (unpackaged, packaged full trust or confined).

use appipc::rpc::{CallContext, CallResult, ObjectRef};
use serde::{Deserialize, Serialize};

/// Who the server process is, as it sees itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its package family name (`Package::current`), "" when it has none.
    pub package_family_name: String,
    /// The application id it was started as, "" when it has none.
    pub app_id: String,
    /// Whether it runs full trust (not in an app container).
    pub full_trust: bool,
    /// `APPIPC_ACTIVATION` in its environment.
    pub activation: String,
    /// `APPIPC_PACKAGE_FAMILY_NAME` in its environment.
    pub env_package_family_name: String,
    /// `APPIPC_APP_ID` in its environment.
    pub env_app_id: String,
    /// Whether its last argument is `-Embedding`.
    pub embedding: bool,
    /// Its arguments (without the program).
    pub args: Vec<String>,
    /// Its pid.
    pub pid: u32,
    /// How it registered its class: `multi`, `single`, `suspended`, `twice`.
    pub mode: String,
    /// For `twice`: the HRESULT of its second registration of the class (0 if it succeeded).
    pub second_registration: Option<u32>,
    /// For `suspended`: whether an activation reached it before it resumed its class objects.
    pub activated_while_suspended: bool,
}

/// The object the probe's class serves.
#[appipc::interface(uuid = "0c0e5a11-7d3b-4f2e-9a61-3b8d2c4e5f01", version = "1.0")]
pub trait ComProbe {
    /// Who the server is.
    async fn server(&self, cx: &CallContext) -> CallResult<ServerInfo>;
    /// Who activated the object, as the server's `CallContext` has it: "PFN container BOOL"
    /// ("-" unpackaged, "none" without a caller).
    async fn caller(&self, cx: &CallContext) -> CallResult<String>;
    /// Gives back what it got.
    async fn echo(&self, cx: &CallContext, text: String) -> CallResult<String>;
    /// The server's pid.
    async fn pid(&self, cx: &CallContext) -> CallResult<u32>;
    /// The server's count (`ComServer::object_count`: live objects and locks).
    async fn objects(&self, cx: &CallContext) -> CallResult<u32>;
    /// Calls `listener` `events` times while this call runs; how many it acknowledged.
    async fn call_back(
        &self,
        cx: &CallContext,
        listener: ObjectRef<dyn ComListener>,
        events: u32,
    ) -> CallResult<u32>;
    /// Sleeps `ms`, then answers it.
    async fn sleep(&self, cx: &CallContext, ms: u64) -> CallResult<u64>;
    /// Another object of the server; it keeps the server alive while someone holds it.
    async fn child(&self, cx: &CallContext) -> CallResult<ObjectRef<dyn ComChild>>;
    /// `lock_server(lock)`; the count after it.
    async fn lock(&self, cx: &CallContext, lock: bool) -> CallResult<u32>;
    /// How many `sleep` calls are running in the server now.
    async fn sleepers(&self, cx: &CallContext) -> CallResult<u32>;
}

/// A client's callback.
#[appipc::interface(uuid = "0c0e5a11-7d3b-4f2e-9a61-3b8d2c4e5f02", version = "1.0")]
pub trait ComListener {
    /// Event `n`; true to acknowledge.
    async fn event(&self, cx: &CallContext, n: u32, text: String) -> CallResult<bool>;
}

/// An object the server hands out.
#[appipc::interface(uuid = "0c0e5a11-7d3b-4f2e-9a61-3b8d2c4e5f03", version = "1.0")]
pub trait ComChild {
    /// The server's pid.
    async fn pid(&self, cx: &CallContext) -> CallResult<u32>;
    /// The server's count.
    async fn objects(&self, cx: &CallContext) -> CallResult<u32>;
}

/// An interface no probe object serves (`E_NOINTERFACE`).
#[appipc::interface(uuid = "0c0e5a11-7d3b-4f2e-9a61-3b8d2c4e5f04", version = "1.0")]
pub trait ComAbsent {
    /// Never served.
    async fn nothing(&self, cx: &CallContext) -> CallResult<()>;
}

/// `co_create_instance` of `clsid` as [`ComProbe`], and the async client of the object.
pub async fn activate(session: &appipc::Session, clsid: &str) -> appipc::Result<ComProbeClient> {
    appipc::com::co_create_instance::<dyn ComProbe>(session, clsid).await?.client()
}

/// An HRESULT as the probe prints it: `0x80070005`.
pub fn hresult_text(hr: u32) -> String {
    format!("0x{hr:08X}")
}

/// How the probe prints an error: its HRESULT, else its Win32 code, else its text.
pub fn error_text(e: &appipc::Error) -> String {
    match (e.hresult(), e.win32_code()) {
        (Some(hr), _) => hresult_text(hr),
        (None, Some(c)) => format!("error {c}"),
        (None, None) => format!("error {e}"),
    }
}

/// What the server's [`ComProbe::caller`] answers for `cx`.
pub fn describe_caller(cx: &CallContext) -> String {
    match cx.caller() {
        None => "none".into(),
        Some(c) => format!(
            "{} container {}",
            if c.package_family_name.is_empty() { "-" } else { &c.package_family_name },
            c.app_container
        ),
    }
}
