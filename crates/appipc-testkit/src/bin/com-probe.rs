//! Both ends of the packaged-COM tests (crates/appipc-cli/tests/com.rs): a COM server the broker
//! starts, and a client run unpackaged, as a packaged full-trust app or confined.
//!
//! ```text
//! com-probe serve CLSID MODE [GO_FILE] -Embedding
//!                       the server (the manifest's exe-server arguments; the broker appends
//!                       -Embedding). MODE: multi (REGCLS_MULTIPLEUSE), single (SINGLEUSE),
//!                       suspended (MULTIPLEUSE|SUSPENDED, resumed once GO_FILE exists), twice
//!                       (multi, and a second registration whose HRESULT it reports), refuse
//!                       (multi, its factory fails every activation with
//!                       CLASS_E_CLASSNOTAVAILABLE), never (does not register), exit (exits
//!                       before registering). Serves ComProbe until its count falls to zero,
//!                       then exits.
//! com-probe create CLSID       activate; "create => ok pid P pfn F app A caller C" or
//!                              "create => 0x…"
//! com-probe server CLSID       activate; "server => pfn F app A full_trust B activation X
//!                              embedding B pid P" (who the server says it is)
//! com-probe progid PROGID      "progid => CLSID" or "progid => 0x…"
//! com-probe list               "list => classes N servers [PFN:PID:OBJECTS …]" (`com::list`)
//! com-probe hold CLSID         activate, print "holding pid P self Q" (the server's pid, its
//!                              own), wait until killed
//! com-probe callback CLSID N   activate, be called back N times: "callback => A of N"
//! ```
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc::com::{self, ComServer, REGCLS_MULTIPLEUSE, REGCLS_SINGLEUSE, REGCLS_SUSPENDED};
use appipc::rpc::{CallContext, CallResult, Fault, Interfaces, ObjectRef, RpcCaller};
use appipc::{Package, Session, TrustLevel};
use appipc_testkit::com_probe::{
    ComChild, ComListener, ComProbe, ComProbeClient, ServerInfo, activate, describe_caller,
    error_text, hresult_text,
};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The server's own state, shared by its objects.
struct Shared {
    info: ServerInfo,
    server: Arc<ComServer>,
    /// For `twice`: the second registration's HRESULT, once it is in.
    second: Mutex<Option<u32>>,
    /// For `suspended`: set just before it resumes its class objects.
    resumed: AtomicBool,
    /// An activation came before `resumed`.
    early: AtomicBool,
    /// `sleep` calls running.
    sleepers: AtomicU32,
}

struct Object {
    shared: Arc<Shared>,
}

struct Child {
    shared: Arc<Shared>,
}

#[appipc::async_trait]
impl ComChild for Child {
    async fn pid(&self, _cx: &CallContext) -> CallResult<u32> {
        Ok(std::process::id())
    }

    async fn objects(&self, _cx: &CallContext) -> CallResult<u32> {
        Ok(self.shared.server.object_count() as u32)
    }
}

fn failed(e: appipc::Error) -> Fault {
    Fault::new(e.win32_code().unwrap_or(1726), e.to_string())
}

#[appipc::async_trait]
impl ComProbe for Object {
    async fn server(&self, _cx: &CallContext) -> CallResult<ServerInfo> {
        let mut info = self.shared.info.clone();
        info.second_registration = *self.shared.second.lock().expect("poisoned");
        info.activated_while_suspended = self.shared.early.load(Ordering::SeqCst);
        Ok(info)
    }

    async fn caller(&self, cx: &CallContext) -> CallResult<String> {
        Ok(describe_caller(cx))
    }

    async fn echo(&self, _cx: &CallContext, text: String) -> CallResult<String> {
        Ok(text)
    }

    async fn pid(&self, _cx: &CallContext) -> CallResult<u32> {
        Ok(std::process::id())
    }

    async fn objects(&self, _cx: &CallContext) -> CallResult<u32> {
        Ok(self.shared.server.object_count() as u32)
    }

    async fn call_back(
        &self,
        _cx: &CallContext,
        listener: ObjectRef<dyn ComListener>,
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

    async fn sleep(&self, _cx: &CallContext, ms: u64) -> CallResult<u64> {
        self.shared.sleepers.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        Ok(ms)
    }

    async fn sleepers(&self, _cx: &CallContext) -> CallResult<u32> {
        Ok(self.shared.sleepers.load(Ordering::SeqCst))
    }

    async fn child(&self, _cx: &CallContext) -> CallResult<ObjectRef<dyn ComChild>> {
        Ok(ObjectRef::new(Arc::new(Child { shared: self.shared.clone() })))
    }

    async fn lock(&self, _cx: &CallContext, lock: bool) -> CallResult<u32> {
        self.shared.server.lock_server(lock);
        Ok(self.shared.server.object_count() as u32)
    }
}

async fn serve(session: &Session, args: &[String]) -> ! {
    let clsid = args.get(1).cloned().unwrap_or_default();
    let mode = args.get(2).cloned().unwrap_or_default();
    let go_file = args.get(3).filter(|a| *a != "-Embedding").cloned();
    let (package_family_name, app_id, full_trust) = match Package::current(session).await {
        Ok(p) => (
            p.id().family_name.clone(),
            p.app_id().unwrap_or_default().to_owned(),
            p.trust() != TrustLevel::AppContainer,
        ),
        Err(_) => (String::new(), String::new(), true),
    };
    let info = ServerInfo {
        package_family_name,
        app_id,
        full_trust,
        activation: std::env::var("APPIPC_ACTIVATION").unwrap_or_default(),
        env_package_family_name: std::env::var("APPIPC_PACKAGE_FAMILY_NAME").unwrap_or_default(),
        env_app_id: std::env::var("APPIPC_APP_ID").unwrap_or_default(),
        embedding: args.last().is_some_and(|a| a == "-Embedding") && com::is_embedding(),
        args: args.to_vec(),
        pid: std::process::id(),
        mode: mode.clone(),
        second_registration: None,
        activated_while_suspended: false,
    };
    say(&format!("server {clsid} mode {mode} pid {}", info.pid));
    match mode.as_str() {
        "never" => loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        },
        "exit" => std::process::exit(0),
        _ => {}
    }
    let flags = match mode.as_str() {
        "single" => REGCLS_SINGLEUSE,
        "suspended" => REGCLS_MULTIPLEUSE | REGCLS_SUSPENDED,
        _ => REGCLS_MULTIPLEUSE,
    };
    let shared = Arc::new(Shared {
        info,
        server: Arc::new(ComServer::new(session)),
        second: Mutex::new(None),
        resumed: AtomicBool::new(mode != "suspended"),
        early: AtomicBool::new(false),
        sleepers: AtomicU32::new(0),
    });
    let factory = {
        let shared = shared.clone();
        move |_caller: &RpcCaller| {
            if shared.info.mode == "refuse" {
                return Err(Fault::new(
                    0x8004_0111,
                    "CLASS_E_CLASSNOTAVAILABLE: this probe refuses",
                ));
            }
            if !shared.resumed.load(Ordering::SeqCst) {
                shared.early.store(true, Ordering::SeqCst);
            }
            Ok(Interfaces::new().with::<dyn ComProbe>(Arc::new(Object { shared: shared.clone() })))
        }
    };
    let server = shared.server.clone();
    match server.register_class_object(&clsid, flags, factory.clone()).await {
        Ok(cookie) => say(&format!("registered {clsid} cookie {cookie}")),
        Err(e) => {
            say(&format!("register => {}", error_text(&e)));
            std::process::exit(1);
        }
    }
    if mode == "twice" {
        let hr = match server.register_class_object(&clsid, flags, factory).await {
            Ok(_) => 0,
            Err(e) => e.hresult().unwrap_or(1),
        };
        say(&format!("second register => {}", hresult_text(hr)));
        *shared.second.lock().expect("poisoned") = Some(hr);
    }
    if let Some(go) = go_file.filter(|_| mode == "suspended") {
        while !Path::new(&go).exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shared.resumed.store(true, Ordering::SeqCst);
        if let Err(e) = server.resume_class_objects().await {
            say(&format!("resume => {}", error_text(&e)));
            std::process::exit(1);
        }
        say("resumed");
    }
    server.run().await;
    say("count zero: exiting");
    std::process::exit(0);
}

/// A client's callback: counts the events it got.
struct Events(AtomicU32);

#[appipc::async_trait]
impl ComListener for Events {
    async fn event(&self, _cx: &CallContext, _n: u32, _text: String) -> CallResult<bool> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
}

async fn create(session: &Session, clsid: &str) -> Result<ComProbeClient, String> {
    activate(session, clsid).await.map_err(|e| error_text(&e))
}

async fn client(session: &Session, args: &[String]) {
    let verb = args[0].as_str();
    let arg = args.get(1).cloned().unwrap_or_default();
    match verb {
        "create" => match create(session, &arg).await {
            Err(e) => say(&format!("create => {e}")),
            Ok(c) => {
                let pid = c.pid().await.map_err(|e| error_text(&e));
                let info = c.server().await.map_err(|e| error_text(&e));
                let caller = c.caller().await.map_err(|e| error_text(&e));
                match (pid, info, caller) {
                    (Ok(pid), Ok(info), Ok(caller)) => say(&format!(
                        "create => ok pid {pid} pfn {} app {} caller {caller}",
                        info.package_family_name, info.app_id
                    )),
                    (p, i, c) => say(&format!("create => call failed: {p:?} {i:?} {c:?}")),
                }
            }
        },
        "server" => match create(session, &arg).await {
            Err(e) => say(&format!("server => {e}")),
            Ok(c) => match c.server().await {
                Ok(i) => say(&format!(
                    "server => pfn {} app {} full_trust {} activation {} embedding {} pid {}",
                    i.package_family_name, i.app_id, i.full_trust, i.activation, i.embedding, i.pid
                )),
                Err(e) => say(&format!("server => {}", error_text(&e))),
            },
        },
        "list" => match com::list(session).await {
            Ok(l) => {
                let servers: Vec<String> = l
                    .servers
                    .iter()
                    .map(|v| format!("{}:{}:{}", v.package_family_name, v.pid, v.objects))
                    .collect();
                say(&format!("list => classes {} servers [{}]", l.classes.len(), servers.join(" ")))
            }
            Err(e) => say(&format!("list => {}", error_text(&e))),
        },
        "progid" => match com::clsid_from_prog_id(session, &arg).await {
            Ok(clsid) => say(&format!("progid => {clsid}")),
            Err(e) => say(&format!("progid => {}", error_text(&e))),
        },
        "hold" => match create(session, &arg).await {
            Err(e) => say(&format!("hold => {e}")),
            Ok(c) => {
                match c.pid().await {
                    Ok(pid) => say(&format!("holding pid {pid} self {}", std::process::id())),
                    Err(e) => say(&format!("hold => {}", error_text(&e))),
                }
                std::future::pending::<()>().await;
            }
        },
        "callback" => match create(session, &arg).await {
            Err(e) => say(&format!("callback => {e}")),
            Ok(c) => {
                let n: u32 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3);
                let events = Arc::new(Events(AtomicU32::new(0)));
                match c.call_back(ObjectRef::new(events.clone()), n).await {
                    Ok(acked) => say(&format!(
                        "callback => {acked} of {n} (got {})",
                        events.0.load(Ordering::SeqCst)
                    )),
                    Err(e) => say(&format!("callback => {}", error_text(&e))),
                }
            }
        },
        other => {
            eprintln!("com-probe: unknown verb {other:?}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!(
            "usage: com-probe serve CLSID MODE [GO_FILE] -Embedding | create CLSID | server \
             CLSID | progid PROGID | list | hold CLSID | callback CLSID N"
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        if args[0] == "serve" {
            serve(&session, &args).await;
        } else {
            client(&session, &args).await;
        }
    });
}
