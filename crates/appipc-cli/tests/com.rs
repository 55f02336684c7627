//! Packaged COM (issue 21) against a real broker: servers declared in a package's manifest
//! (`[[application.com-server]]`), started by the broker with `-Embedding`, activated by class
//! id from this (unpackaged) process, from packaged full-trust apps and from confined ones (the
//! `com-probe` helper plays the server and the packaged clients; its interfaces are
//! `appipc_testkit::com_probe`):
//!
//! * activation from unpackaged, full-trust and confined clients; a confined client is refused
//!   (`E_ACCESSDENIED`) unless the exe server's `launch-and-activation-permission` grants `AC`
//!   or its package SID, and the refusal is in `appipc why`; with the broker as root and as
//!   the unprivileged test user; rights 9 (`EXECUTE | ACTIVATE_LOCAL`) reach a running
//!   server, starting one needs 11 (`| EXECUTE_LOCAL`);
//! * the server carries the identity of the application that declares it (the second of two),
//!   full trust, with `-Embedding` and `APPIPC_ACTIVATION=comserver`;
//! * two clients share one `REGCLS_MULTIPLEUSE` server, also when their activations all come
//!   before it registered; `SINGLEUSE` starts a process per activation; `SUSPENDED` takes none
//!   until it resumes; a server the user started (no `-Embedding`) takes activations too;
//! * the server exits when its count (objects, handed-out objects, `lock_server`) falls to
//!   zero, and the next activation starts another; a client's death (`SIGKILL`) releases its
//!   objects; activations racing the shutdown never see `CO_E_SERVER_STOPPING`;
//! * removal and upgrade end the server: its proxies fail with `RPC_E_DISCONNECTED`; a broker
//!   restart does not (its SDK registers the classes again, its count is listed again);
//! * the server calls a client's callback during a call;
//! * every error: `REGDB_E_CLASSNOTREG`, `CO_E_CLASSSTRING`, `CO_E_SERVER_EXEC_FAILURE` (no
//!   registration in time, exit before registering), `E_ACCESSDENIED`, `E_NOINTERFACE`,
//!   `CO_E_WRONG_SERVER_IDENTITY`, `CO_E_OBJISREG`, and 0x800706BE for a server killed mid-call;
//! * `clsid_from_prog_id` through a version-independent ProgID (any case); CLSIDs with braces
//!   and in upper case; a second package declaring a CLSID or ProgID already in the catalog is
//!   refused at install; `appipc com list` (text and `--json`).
//!
//! Outcomes only: no test asserts how long anything took. Every wait has a deadline (15 s)
//! whose failure prints the broker's log.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use appipc::com::{self, ComServer, REGCLS_MULTIPLEUSE};
use appipc::rpc::{CallContext, CallResult, Interfaces, ObjectRef, RpcCaller};
use appipc_model::identity::PublisherId;
use appipc_testkit::com_probe::{ComAbsent, ComListener, ComProbe, ComProbeClient, activate};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, readable_by_all, unique};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";
const NORTHWIND: &str = "CN=Northwind Traders, O=Northwind, C=US";

/// The server package and its classes.
const SERVER_NAME: &str = "Contoso.ComProbe";
/// `REGCLS_MULTIPLEUSE`, the default permission (the user only), ProgIDs.
const PROBE: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
/// `REGCLS_SINGLEUSE`.
const SINGLE: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3302";
/// `REGCLS_MULTIPLEUSE | REGCLS_SUSPENDED`, resumed when the test says.
const SUSPENDED: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3303";
/// The permission grants the user side to everyone and the app-container side to `AC`.
const OPEN_AC: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3304";
/// The permission grants the app-container side to the client package's SID only.
const OPEN_PKG: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3305";
/// The permission grants `AC` only: no user side, so nobody.
const AC_ONLY: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3306";
/// A server that never registers.
const NEVER: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3307";
/// A server that exits before it registers.
const EXITS: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3308";
/// A server that registers its class twice.
const TWICE: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3309";
/// The permission lets app containers activate a running server (`EXECUTE | ACTIVATE_LOCAL`,
/// 9) but not start one (that also needs `EXECUTE_LOCAL`, 11).
const ACTIVATE_ONLY: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c330a";
/// A server whose class factory refuses every activation (`CLASS_E_CLASSNOTAVAILABLE`).
const REFUSES: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c330b";
/// Its permission passes the manifest's outline check but is not a security descriptor.
const BAD_SDDL: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c330c";
/// No package declares it.
const UNKNOWN: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c33ff";

const E_ACCESSDENIED: u32 = 0x8007_0005;
const REGDB_E_CLASSNOTREG: u32 = 0x8004_0154;
const CO_E_CLASSSTRING: u32 = 0x8004_01F3;
const CO_E_SERVER_EXEC_FAILURE: u32 = 0x8008_0005;
const CO_E_SERVER_STOPPING: u32 = 0x8008_0008;
const CO_E_WRONG_SERVER_IDENTITY: u32 = 0x8000_4015;
const CO_E_OBJISREG: u32 = 0x8004_01FB;
const E_NOINTERFACE: u32 = 0x8000_4002;
const RPC_E_DISCONNECTED: u32 = 0x8001_0108;
const RPC_S_CALL_FAILED_HR: u32 = 0x8007_06BE;
const CLASS_E_CLASSNOTAVAILABLE: u32 = 0x8004_0111;
const E_INVALIDARG: u32 = 0x8007_0057;
const CO_E_OBJNOTREG: u32 = 0x8004_01FC;
const RPC_E_CALL_CANCELED: u32 = 0x8001_0002;

/// How long any one wait may take.
const DEADLINE: Duration = Duration::from_secs(15);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The end of the broker's log (a failure's context).
fn log_tail(b: &TestBroker) -> String {
    let log = b.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(300)..].join("\n")
}

/// Panics with `what` and the broker's log once [`DEADLINE`] has passed since `start`.
fn check_deadline(b: &TestBroker, start: Instant, what: &str) {
    assert!(
        start.elapsed() < DEADLINE,
        "{what}: not within {DEADLINE:?}; broker log (end):\n{}",
        log_tail(b)
    );
}

/// Runs `f` off the runtime's reactor (a blocking command from async code).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Awaits `f` for at most [`DEADLINE`].
async fn within<T>(b: &TestBroker, what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not within {DEADLINE:?}; broker log (end):\n{}", log_tail(b)),
    }
}

/// The HRESULT of an SDK error, or a panic naming the error.
fn hr(e: &appipc::Error) -> u32 {
    e.hresult().unwrap_or_else(|| panic!("no HRESULT in {e:?}"))
}

/// The family name of package `name` of `publisher`.
fn family(name: &str, publisher: &str) -> String {
    format!("{name}_{}", PublisherId::from_publisher(publisher).as_str())
}

/// The package SID of a family name.
fn sid_of(pfn: &str) -> String {
    appipc_model::sid::appcontainer_sid(pfn).to_string()
}

/// The family name of the confined and full-trust client package.
fn client_pfn() -> String {
    family("Fabrikam.ComClient", FABRIKAM)
}

/// One class of a server package: its own exe server running `com-probe serve CLSID MODE`.
struct Class {
    clsid: &'static str,
    mode: &'static str,
    permission: Option<String>,
    /// `serve`'s third argument (the suspended server's go file).
    extra: Option<String>,
}

fn class(clsid: &'static str, mode: &'static str) -> Class {
    Class { clsid, mode, permission: None, extra: None }
}

/// A server package `name` (version `version`): application `App` (confined, first),
/// application `Server` (second) declaring `classes`, [`PROBE`]'s with the ProgIDs
/// `Contoso.Probe.1` and the version-independent `Contoso.Probe`, and application `Tool` (full
/// trust, declaring nothing).
fn server_manifest(name: &str, version: &str, classes: &[Class]) -> String {
    let mut text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{CONTOSO}\"\nversion = \"{version}\"\n\n\
         [capabilities]\nrestricted = [\"runFullTrust\"]\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/com-probe\"\n\n\
         [[application]]\nid = \"Server\"\nexecutable = \"bin/com-probe\"\n\
         trust-level = \"mediumIL\"\n\n\
         [[application.com-server]]\n"
    );
    for c in classes {
        let mut args = vec!["serve".to_owned(), c.clsid.to_owned(), c.mode.to_owned()];
        args.extend(c.extra.clone());
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        text.push_str(&format!(
            "\n[[application.com-server.exe-server]]\nexecutable = \"bin/com-probe\"\n\
             arguments = [{}]\ndisplay-name = \"Probe server {}\"\n",
            args.join(", "),
            c.mode
        ));
        if let Some(p) = &c.permission {
            text.push_str(&format!("launch-and-activation-permission = \"{p}\"\n"));
        }
        text.push_str(&format!(
            "[[application.com-server.exe-server.class]]\nid = \"{}\"\ndisplay-name = \"Probe {}\"\n",
            c.clsid, c.mode
        ));
        if c.clsid == PROBE {
            text.push_str(
                "prog-id = \"Contoso.Probe.1\"\nversion-independent-prog-id = \"Contoso.Probe\"\n",
            );
        }
        if c.clsid == SINGLE {
            text.push_str(&format!("auto-convert-to = \"{PROBE}\"\n"));
        }
    }
    if classes.iter().any(|c| c.clsid == PROBE) {
        text.push_str(&format!(
            "\n[[application.com-server.prog-id]]\nid = \"Contoso.Probe.1\"\nclsid = \"{PROBE}\"\n\
             \n[[application.com-server.prog-id]]\nid = \"Contoso.Probe\"\n\
             current-version = \"Contoso.Probe.1\"\n"
        ));
    }
    // A third application, full trust, declaring nothing: not the servers' identity.
    text.push_str(
        "\n[[application]]\nid = \"Tool\"\nexecutable = \"bin/com-probe\"\n\
         trust-level = \"mediumIL\"\n",
    );
    text
}

/// Every class of the usual server package. The suspended one waits for `go` to exist.
fn all_classes(go: &Path) -> Vec<Class> {
    let client = client_pfn();
    vec![
        class(PROBE, "multi"),
        class(SINGLE, "single"),
        Class { extra: Some(go.display().to_string()), ..class(SUSPENDED, "suspended") },
        Class { permission: Some("D:(A;;11;;;WD)(A;;11;;;AC)".into()), ..class(OPEN_AC, "multi") },
        Class {
            permission: Some(format!("D:(A;;11;;;WD)(A;;11;;;{})", sid_of(&client))),
            ..class(OPEN_PKG, "multi")
        },
        Class { permission: Some("D:(A;;11;;;AC)".into()), ..class(AC_ONLY, "multi") },
        class(NEVER, "never"),
        class(EXITS, "exit"),
        class(TWICE, "twice"),
        Class {
            permission: Some("D:(A;;11;;;WD)(A;;9;;;AC)".into()),
            ..class(ACTIVATE_ONLY, "multi")
        },
        class(REFUSES, "refuse"),
        Class { permission: Some("D:(A;;11;;;NOT-A-SID)".into()), ..class(BAD_SDDL, "multi") },
    ]
}

/// Installs a package from manifest text through the CLI (consenting to its restricted
/// capabilities); its family name, or the CLI's stderr when it is refused.
fn try_install(b: &TestBroker, text: &str) -> Result<String, String> {
    let dir = assemble_manifest(text, &b.root.path().join(unique("pkg")), &bin_dir())
        .expect("assembling the package");
    readable_by_all(&dir);
    let out = run_cli(b, &["install", "--yes", dir.to_str().unwrap()]);
    if !out.0 {
        return Err(format!("{}{}", out.1, out.2));
    }
    let full = out.1.trim().rsplit(' ').next().unwrap_or("").to_owned();
    let p: Vec<&str> = full.split('_').collect();
    assert_eq!(p.len(), 5, "a package full name at the end of {:?}", out.1);
    Ok(format!("{}_{}", p[0], p[4]))
}

fn install(b: &TestBroker, text: &str) -> String {
    try_install(b, text).unwrap_or_else(|e| panic!("install refused: {e}"))
}

/// The usual server package (every class); its family name.
fn install_server(b: &TestBroker) -> String {
    let go = go_file(b);
    install(b, &server_manifest(SERVER_NAME, "1.0.0.0", &all_classes(&go)))
}

/// The file the suspended server waits for.
fn go_file(b: &TestBroker) -> PathBuf {
    b.root.path().join("resume-suspended")
}

/// The client package: `App` confined, `Full` full trust.
fn install_client(b: &TestBroker) -> String {
    let pfn = install(
        b,
        &format!(
            "[package]\nname = \"Fabrikam.ComClient\"\npublisher = \"{FABRIKAM}\"\n\
             version = \"1.0.0.0\"\n\n[capabilities]\nrestricted = [\"runFullTrust\"]\n\n\
             [[application]]\nid = \"App\"\nexecutable = \"bin/com-probe\"\n\n\
             [[application]]\nid = \"Full\"\nexecutable = \"bin/com-probe\"\n\
             trust-level = \"mediumIL\"\n"
        ),
    );
    assert_eq!(pfn, client_pfn());
    pfn
}

/// Another confined client, of a package no permission names.
fn install_other_client(b: &TestBroker) -> String {
    install(
        b,
        &format!(
            "[package]\nname = \"Northwind.ComClient\"\npublisher = \"{NORTHWIND}\"\n\
             version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\n\
             executable = \"bin/com-probe\"\n"
        ),
    )
}

/// Runs a command to its end within [`DEADLINE`] (killed, with the broker's log, past it):
/// (success, stdout, stderr).
fn run_to_end(b: &TestBroker, mut cmd: Command, what: &str) -> (bool, String, String) {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting a command");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: did not end within {DEADLINE:?}; it wrote {:?} {:?}; broker log (end):\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default(),
                log_tail(b)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.success(), out.join().unwrap_or_default(), err.join().unwrap_or_default())
}

fn run_cli(b: &TestBroker, args: &[&str]) -> (bool, String, String) {
    let mut cmd = b.cli();
    cmd.args(args);
    run_to_end(b, cmd, &format!("appipc {args:?}"))
}

/// Runs `com-probe ARGS` as app `target` (`PFN` or `PFN!App`) through `appipc launch --wait`;
/// the probe's result line for `verb` (what follows `verb => `).
fn run_probe(b: &TestBroker, target: &str, args: &[&str]) -> String {
    let mut cli_args = vec!["launch", "--wait", target, "--"];
    cli_args.extend_from_slice(args);
    let (ok, out, err) = run_cli(b, &cli_args);
    assert!(ok, "{target} {args:?} failed: {out}\n{err}");
    result_of(&out, args[0])
}

/// Runs `com-probe serve CLSID multi` as app `target`, expecting its registration to fail;
/// the HRESULT it printed.
fn serve_as(b: &TestBroker, target: &str, clsid: &str) -> String {
    let (ok, out, err) = run_cli(b, &["launch", "--wait", target, "--", "serve", clsid, "multi"]);
    assert!(!ok, "{target} registered {clsid}: {out}\n{err}");
    result_of(&out, "register")
}

/// Runs `com-probe ARGS` here, unpackaged, as the broker's user.
fn run_probe_unpackaged(b: &TestBroker, args: &[&str]) -> String {
    let mut cmd = Command::new(probe_binary(b));
    cmd.args(args);
    b.apply_env(&mut cmd);
    let (ok, out, err) = run_to_end(b, cmd, &format!("com-probe {args:?}"));
    assert!(ok, "com-probe {args:?} failed: {out}\n{err}");
    result_of(&out, args[0])
}

fn result_of(out: &str, verb: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(verb).and_then(|r| r.strip_prefix(" => ")))
        .unwrap_or_else(|| panic!("no result for {verb:?} in:\n{out}"))
        .to_owned()
}

/// A `com-probe` process holding an object, killed by its pid (which a confined holder's caller
/// sets from the broker's process list: the holder's own is of its pid namespace).
struct Holder {
    child: Child,
    pid: u32,
    /// Killed and waited for ([`Holder::kill`]); else dropping it (a test that failed) ends it,
    /// so that no holder outlives its test (it would keep the test's output open).
    done: bool,
}

impl Drop for Holder {
    fn drop(&mut self) {
        if !self.done {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Holder {
    /// Starts `com-probe hold CLSID` (unpackaged, or as the full-trust app `target` through
    /// `appipc launch --wait`) and waits until it holds the object; the server's pid it
    /// reports.
    fn start(b: &TestBroker, target: Option<&str>, clsid: &str) -> (Holder, u32) {
        let mut cmd = match target {
            Some(t) => {
                let mut c = b.cli();
                c.args(["launch", "--wait", t, "--", "hold", clsid]);
                c
            }
            None => {
                let mut c = Command::new(probe_binary(b));
                c.args(["hold", clsid]);
                b.apply_env(&mut c);
                c
            }
        };
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("starting the holder");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let line: String = lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("the holder said nothing; broker log:\n{}", log_tail(b)));
        let parsed = line.strip_prefix("holding pid ").and_then(|r| {
            let (server, own) = r.split_once(" self ")?;
            Some((server.parse().ok()?, own.parse().ok()?))
        });
        let (server, pid) = parsed.unwrap_or_else(|| panic!("the holder: {line}"));
        (Holder { child, pid, done: false }, server)
    }

    /// `SIGKILL`s the holding process and waits for the command in front of it.
    fn kill(mut self, b: &TestBroker) {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            check_deadline(b, start, "the killed holder's command ends");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.done = true;
    }
}

/// The `com-probe` binary as the broker's user runs it unpackaged (a copy the unprivileged
/// test user can reach).
fn probe_binary(b: &TestBroker) -> PathBuf {
    if b.user().is_none() {
        return appipc_testkit::binary("com-probe");
    }
    let copy = b.root.path().join("bin").join("com-probe");
    if !copy.exists() {
        let tmp = b.root.path().join(unique("com-probe"));
        let ok = Command::new("cp").arg(appipc_testkit::binary("com-probe")).arg(&tmp).status();
        assert!(ok.unwrap().success(), "copying com-probe");
        std::fs::rename(&tmp, &copy).unwrap();
    }
    copy
}

/// Activates `clsid` as [`ComProbe`] from this process, within the deadline.
async fn create(b: &TestBroker, s: &appipc::Session, clsid: &str) -> ComProbeClient {
    within(b, &format!("activating {clsid}"), activate(s, clsid))
        .await
        .unwrap_or_else(|e| panic!("activating {clsid}: {e:?}; broker log:\n{}", log_tail(b)))
}

/// The HRESULT an activation of `clsid` as [`ComProbe`] fails with.
async fn create_fails(b: &TestBroker, s: &appipc::Session, clsid: &str) -> u32 {
    match within(b, &format!("activating {clsid}"), activate(s, clsid)).await {
        Ok(_) => panic!("activating {clsid} succeeded"),
        Err(e) => hr(&e),
    }
}

/// Whether process `pid` exists (a full-trust server shares our pid namespace).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false)
}

/// Waits until the server `pid` has exited and the broker no longer lists it.
async fn until_gone(b: &TestBroker, s: &appipc::Session, pid: u32, what: &str) {
    let start = Instant::now();
    loop {
        let listed = com::list(s).await.unwrap().servers.iter().any(|v| v.pid == pid);
        if !listed && !alive(pid) {
            return;
        }
        check_deadline(b, start, what);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server's count (as its object says) is `want`.
async fn until_count(b: &TestBroker, o: &ComProbeClient, want: u32, what: &str) {
    let start = Instant::now();
    loop {
        let n = o.objects().await.unwrap();
        if n == want {
            return;
        }
        check_deadline(b, start, &format!("{what} (count {n}, want {want})"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Activation from this unpackaged process, a packaged full-trust app and confined apps; the
/// server's identity; permissions. With the broker as root and as the unprivileged test user.
#[test]
fn activation_from_unpackaged_full_trust_and_confined_clients() {
    let mut users = vec![None];
    match appipc_testkit::test_user() {
        Some(u) => users.push(Some(u)),
        None => eprintln!(
            "skipping the unprivileged broker: no user appipc-test (scripts/test.sh adds it)"
        ),
    }
    for user in users {
        let b = match user {
            Some((uid, gid)) => TestBroker::start_as(uid, gid, &[]),
            None => TestBroker::start(),
        };
        // The declaring application has no trust level (an app container's): the server runs
        // full trust anyway.
        let text = server_manifest(SERVER_NAME, "1.0.0.0", &all_classes(&go_file(&b))).replace(
            "id = \"Server\"\nexecutable = \"bin/com-probe\"\ntrust-level = \"mediumIL\"\n",
            "id = \"Server\"\nexecutable = \"bin/com-probe\"\n",
        );
        assert!(
            text.contains(
                "id = \"Server\"\nexecutable = \"bin/com-probe\"\n\n[[application.com-server]]"
            ),
            "{text}"
        );
        let server = install(&b, &text);
        let client = install_client(&b);
        let other = install_other_client(&b);
        // An unpackaged process of the broker's user holds an object: the user side of the
        // default permission (the user) admits it.
        let (holder, pid) = Holder::start(&b, None, PROBE);
        // The server carries the identity of the application declaring the class (the second
        // of the package), full trust, started with -Embedding.
        let out = run_probe_unpackaged(&b, &["server", PROBE]);
        assert_eq!(
            out,
            format!(
                "pfn {server} app Server full_trust true activation comserver embedding true \
                 pid {pid}"
            ),
            "{user:?}"
        );
        // A packaged full-trust client: the user side alone decides, as for an unpackaged one;
        // it reaches the same MULTIPLEUSE server.
        let out = run_probe(&b, &format!("{client}!Full"), &["create", PROBE]);
        assert_eq!(
            out,
            format!("ok pid {pid} pfn {server} app Server caller {client} container false"),
            "{user:?}"
        );
        // A confined client: the default permission has no app-container entry.
        let out = run_probe(&b, &format!("{client}!App"), &["create", PROBE]);
        assert_eq!(out, "0x80070005", "{user:?}");
        let why = run_cli(&b, &["why", "--package", &client]);
        assert!(why.1.to_lowercase().contains(PROBE), "the refusal in appipc why: {why:?}");
        // A server runs (the holder's): the refused right is to activate it, and the entry
        // that would admit the client names its package SID.
        assert!(why.1.contains("com.activate"), "{why:?}");
        assert!(why.1.contains(&format!("(A;;0x9;;;{})", sid_of(&client))), "{why:?}");
        // `AC` in the permission admits every app container.
        let out = run_probe(&b, &format!("{client}!App"), &["create", OPEN_AC]);
        assert!(out.starts_with("ok pid "), "{user:?}: {out}");
        assert!(out.ends_with(&format!("caller {client} container true")), "{out}");
        let out = run_probe(&b, &other, &["create", OPEN_AC]);
        assert!(out.ends_with(&format!("caller {other} container true")), "{out}");
        // The client package's SID admits that package only.
        let out = run_probe(&b, &format!("{client}!App"), &["create", OPEN_PKG]);
        assert!(out.ends_with(&format!("caller {client} container true")), "{out}");
        let out = run_probe(&b, &other, &["create", OPEN_PKG]);
        assert_eq!(out, "0x80070005", "another package");
        // The list: an app container sees its own package's classes and servers only, the
        // servers without their pids.
        let out = run_probe(&b, &format!("{client}!App"), &["list"]);
        let n = all_classes(Path::new("-")).len();
        assert_eq!(out, "classes 0 servers []", "another package's container");
        let out = run_probe(&b, &format!("{server}!App"), &["list"]);
        assert!(out.starts_with(&format!("classes {n} servers [{server}:0:")), "{out}");
        let out = run_probe_unpackaged(&b, &["list"]);
        assert!(out.contains(&format!("{server}:{pid}:")), "{out}");
        // `AC` alone has no user side: nobody, unpackaged or confined.
        let out = run_probe(&b, &format!("{client}!App"), &["create", AC_ONLY]);
        assert_eq!(out, "0x80070005");
        assert_eq!(run_probe_unpackaged(&b, &["create", AC_ONLY]), "0x80070005");
        if user.is_none() {
            // This test process, through the SDK (a broker of another user refuses it).
            rt().block_on(async {
                let s = b.session();
                let o = create(&b, &s, PROBE).await;
                let info = o.server().await.unwrap();
                assert_eq!(info.package_family_name, server, "{info:?}");
                assert_eq!(info.app_id, "Server", "the declaring application: {info:?}");
                assert!(info.full_trust, "Activate-As-Package runs full trust: {info:?}");
                assert_eq!(info.activation, "comserver", "{info:?}");
                assert_eq!(
                    (info.env_package_family_name.as_str(), info.env_app_id.as_str()),
                    (server.as_str(), "Server"),
                    "its environment: {info:?}"
                );
                assert!(info.embedding, "started with -Embedding: {info:?}");
                assert_eq!(info.args[..3], ["serve", PROBE, "multi"], "{info:?}");
                assert_eq!(info.pid, pid, "the same MULTIPLEUSE server");
                assert_eq!(o.caller().await.unwrap(), "- container false");
                assert_eq!(o.echo("grüße".into()).await.unwrap(), "grüße");
                let attested = o.proxy().server().expect("the server as the broker attested it");
                assert_eq!(attested.server_package_family_name, server);
                assert_eq!(attested.server_pid, pid);
                assert_eq!(create_fails(&b, &s, AC_ONLY).await, E_ACCESSDENIED);
                // `appipc ps` shows it as the declaring application.
                let procs = appipc::PackageManager::new(&s).running_processes().await.unwrap();
                let p = procs.iter().find(|p| p.pid == pid).expect("the server is listed");
                assert_eq!(p.app_user_model_id, format!("{server}!Server"), "{p:?}");
            });
        }
        // With another application of the package running (its confined App, holding an
        // object of another class), a new server still carries the declaring application's
        // identity.
        let (app_holder, other_pid) = Holder::start(&b, Some(&format!("{server}!App")), OPEN_AC);
        assert_ne!(other_pid, pid, "another class, another exe server");
        let out = run_probe_unpackaged(&b, &["server", OPEN_AC]);
        assert_eq!(
            out,
            format!(
                "pfn {server} app Server full_trust true activation comserver embedding true \
                 pid {other_pid}"
            ),
            "{user:?}"
        );
        // The confined holder ends with the broker (the test's reaper ends what it started).
        drop(app_holder);
        holder.kill(&b);
    }
}

/// Two clients share one MULTIPLEUSE server; a killed client's objects are released; at count
/// zero the server exits and the next activation starts another; a killed last client ends
/// the server too.
#[test]
fn one_multipleuse_server_for_all_clients_until_its_count_falls_to_zero() {
    let b = TestBroker::start();
    install_server(&b);
    let client = install_client(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let a = create(&b, &s, PROBE).await;
        let first = a.pid().await.unwrap();
        assert!(alive(first));
        // Another client, a packaged full-trust app holding an object: the same server.
        let (holder, pid) = blocking(|| Holder::start(&b, Some(&format!("{client}!Full")), PROBE));
        assert_eq!(pid, first, "one MULTIPLEUSE server for both clients");
        let b2 = create(&b, &s, PROBE).await;
        assert_eq!(b2.pid().await.unwrap(), first);
        until_count(&b, &a, 3, "three objects").await;
        // The broker lists the server with its count (as the server reports it).
        let start = Instant::now();
        loop {
            let list = com::list(&s).await.unwrap();
            let v = list.servers.iter().find(|v| v.pid == first);
            if v.is_some_and(|v| v.objects == 3) {
                let v = v.unwrap();
                assert!(v.started_by_broker && !v.suspended, "{v:?}");
                assert!(v.classes.iter().any(|c| c.clsid == PROBE), "{v:?}");
                break;
            }
            check_deadline(&b, start, &format!("com list shows 3 objects: {v:?}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The holder dies: its object goes with it.
        blocking(|| holder.kill(&b));
        until_count(&b, &a, 2, "the killed client's object released").await;
        drop(b2);
        until_count(&b, &a, 1, "a dropped object released").await;
        drop(a);
        until_gone(&b, &s, first, "the server exits at count zero").await;
        // The next activation starts another server.
        let c = create(&b, &s, PROBE).await;
        let second = c.pid().await.unwrap();
        assert_ne!(second, first, "a new server process");
        // Its last client killed: the server exits.
        let (holder, pid) = blocking(|| Holder::start(&b, None, PROBE));
        assert_eq!(pid, second);
        until_count(&b, &c, 2, "two objects").await;
        drop(c);
        let start = Instant::now();
        while com::list(&s).await.unwrap().servers.iter().any(|v| v.pid == second && v.objects != 1)
        {
            check_deadline(&b, start, "the server reports one object");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        blocking(|| holder.kill(&b));
        until_gone(&b, &s, second, "the server exits when its last client is killed").await;
        // A confined client's death releases its object too.
        let d = create(&b, &s, OPEN_AC).await;
        let third = d.pid().await.unwrap();
        let (mut holder, pid) =
            blocking(|| Holder::start(&b, Some(&format!("{client}!App")), OPEN_AC));
        assert_eq!(pid, third, "the confined client reaches the running server");
        until_count(&b, &d, 2, "the confined client's object").await;
        let procs = appipc::PackageManager::new(&s).running_processes().await.unwrap();
        let confined = procs
            .iter()
            .find(|p| p.package_family_name == client && p.confined == Some(true))
            .unwrap_or_else(|| panic!("the confined holder runs: {procs:?}"));
        holder.pid = confined.pid;
        blocking(|| holder.kill(&b));
        until_count(&b, &d, 1, "the killed confined client's object released").await;
    });
}

/// A handed-out object and `lock_server` keep the server; a SINGLEUSE class starts a process
/// per activation; a SUSPENDED registration takes no activation until it is resumed.
#[test]
fn handed_out_objects_locks_single_use_and_suspended_registrations() {
    let b = TestBroker::start();
    install_server(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        // An object the server handed out counts.
        let a = create(&b, &s, PROBE).await;
        let pid = a.pid().await.unwrap();
        let child = a.child().await.unwrap().client().unwrap();
        assert_eq!(child.objects().await.unwrap(), 2, "the activation and the handed-out object");
        drop(a);
        let start = Instant::now();
        while child.objects().await.unwrap() != 1 {
            check_deadline(&b, start, "the activation released");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(child.pid().await.unwrap(), pid, "the handed-out object keeps the server");
        // A lock keeps it too: the next activation reaches the same process.
        let a = create(&b, &s, PROBE).await;
        assert_eq!(a.pid().await.unwrap(), pid);
        drop(child);
        until_count(&b, &a, 1, "the handed-out object released").await;
        assert_eq!(a.lock(true).await.unwrap(), 2);
        drop(a);
        let start = Instant::now();
        loop {
            let list = com::list(&s).await.unwrap();
            let v = list.servers.iter().find(|v| v.pid == pid);
            match v {
                Some(v) if v.objects == 0 && v.locks == 1 => break,
                _ => check_deadline(&b, start, &format!("one lock, no object: {v:?}")),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = create(&b, &s, PROBE).await;
        assert_eq!(a.pid().await.unwrap(), pid, "the locked server takes the activation");
        assert_eq!(a.lock(false).await.unwrap(), 1);
        drop(a);
        until_gone(&b, &s, pid, "the unlocked server exits").await;

        // SINGLEUSE: one activation per process.
        let x = create(&b, &s, SINGLE).await;
        let y = create(&b, &s, SINGLE).await;
        let (px, py) = (x.pid().await.unwrap(), y.pid().await.unwrap());
        assert_ne!(px, py, "a SINGLEUSE class object takes one activation");
        assert_eq!(x.server().await.unwrap().mode, "single");
        drop((x, y));
        until_gone(&b, &s, px, "the first single-use server exits").await;
        until_gone(&b, &s, py, "the second single-use server exits").await;

        // SUSPENDED: registered, not available, until the server resumes.
        let activation = tokio::spawn({
            let s = s.clone();
            async move { activate(&s, SUSPENDED).await }
        });
        let start = Instant::now();
        loop {
            let list = com::list(&s).await.unwrap();
            let reg = list
                .servers
                .iter()
                .flat_map(|v| v.classes.iter().map(move |c| (v, c)))
                .find(|(_, c)| c.clsid == SUSPENDED);
            if let Some((v, c)) = reg {
                assert!(!c.available, "a suspended registration takes no activation: {v:?}");
                assert_eq!(c.flags, 1 | 4, "{v:?}");
                break;
            }
            check_deadline(&b, start, "the suspended server registered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!activation.is_finished(), "no object before the server resumes");
        std::fs::write(go_file(&b), b"go").unwrap();
        let o = within(&b, "the activation after the resume", activation)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("activating the resumed class: {e:?}"));
        let info = o.server().await.unwrap();
        assert_eq!(info.mode, "suspended");
        assert!(!info.activated_while_suspended, "no activation reached it before it resumed");
        // Waiting for the resume, the activation started no second server (a registration
        // waiting for its resume is not one that was used).
        let starts = b
            .log()
            .lines()
            .filter(|l| l.contains("com server started") && l.contains(SUSPENDED))
            .count();
        assert_eq!(starts, 1, "one server started for the suspended class; log:\n{}", log_tail(&b));
    });
}

/// A server the user started (the declaring application launched, without `-Embedding`)
/// takes the activations of the class it registered; it exits at count zero as well.
#[test]
fn a_server_started_by_the_user_takes_activations() {
    let b = TestBroker::start();
    let server = install_server(&b);
    let mut launched = b
        .cli()
        .args(["launch", "--wait", &format!("{server}!Server"), "--", "serve", PROBE, "multi"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let start = Instant::now();
        let pid = loop {
            let list = com::list(&s).await.unwrap();
            if let Some(v) =
                list.servers.iter().find(|v| v.classes.iter().any(|c| c.clsid == PROBE))
            {
                assert!(!v.started_by_broker, "the user started it: {v:?}");
                assert_eq!(
                    (v.package_family_name.as_str(), v.app_id.as_str()),
                    (&*server, "Server")
                );
                break v.pid;
            }
            check_deadline(&b, start, "the launched server registers");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let o = create(&b, &s, PROBE).await;
        assert_eq!(o.pid().await.unwrap(), pid, "the running server took the activation");
        let info = o.server().await.unwrap();
        assert!(!info.embedding && info.activation != "comserver", "{info:?}");
        assert_eq!(info.app_id, "Server");
        drop(o);
        until_gone(&b, &s, pid, "the server exits at count zero").await;
    });
    let start = Instant::now();
    while launched.try_wait().unwrap().is_none() {
        check_deadline(&b, start, "appipc launch --wait ends with the server");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Activations that all arrive before the server registered start one MULTIPLEUSE server
/// (and one SINGLEUSE server each); a permission granting app containers `EXECUTE |
/// ACTIVATE_LOCAL` only lets them reach a running server, not start one.
#[test]
fn concurrent_first_activations_and_the_right_to_start_a_server() {
    let b = TestBroker::start();
    install_server(&b);
    let client = install_client(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let many: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { activate(&s, PROBE).await })
            })
            .collect();
        let mut objects = Vec::new();
        for a in many {
            let o = within(&b, "a concurrent activation", a).await.unwrap();
            objects.push(o.unwrap_or_else(|e| panic!("a concurrent activation: {e:?}")));
        }
        let mut pids = std::collections::BTreeSet::new();
        for o in &objects {
            pids.insert(o.pid().await.unwrap());
        }
        let started = b.log().matches("com server started").count();
        assert_eq!(
            pids.len(),
            1,
            "one MULTIPLEUSE server for all: {pids:?} ({started} started); broker log (end):\n{}",
            log_tail(&b)
        );
        until_count(&b, &objects[0], 8, "eight objects").await;
        let singles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { activate(&s, SINGLE).await })
            })
            .collect();
        let mut single_pids = std::collections::BTreeSet::new();
        let mut held = Vec::new();
        for a in singles {
            let o = within(&b, "a concurrent single-use activation", a).await.unwrap();
            let o = o.unwrap_or_else(|e| panic!("a concurrent single-use activation: {e:?}"));
            single_pids.insert(o.pid().await.unwrap());
            held.push(o);
        }
        assert_eq!(single_pids.len(), 4, "a process per SINGLEUSE activation: {single_pids:?}");
        for o in &held {
            let pid = o.pid().await.unwrap_or_else(|e| panic!("a single-use object: {e:?}"));
            assert!(single_pids.contains(&pid));
        }
    });
    // Rights 9 for app containers: no server runs, so a confined client may not start one.
    let out = run_probe(&b, &format!("{client}!App"), &["create", ACTIVATE_ONLY]);
    assert_eq!(out, "0x80070005", "starting a server needs EXECUTE_LOCAL too");
    // Once one runs (an unpackaged client holds an object), the confined client reaches it.
    let (holder, pid) = Holder::start(&b, None, ACTIVATE_ONLY);
    let out = run_probe(&b, &format!("{client}!App"), &["create", ACTIVATE_ONLY]);
    assert_eq!(
        out,
        format!(
            "ok pid {pid} pfn {} app Server caller {client} container true",
            family(SERVER_NAME, CONTOSO)
        )
    );
    holder.kill(&b);
}

/// A broker killed and restarted: the server's objects go on (calls are peer to peer), its SDK
/// registers its classes again, and the next activation reaches the same server.
#[test]
fn a_broker_restart_keeps_the_server_and_its_objects() {
    let mut b = TestBroker::start();
    install_server(&b);
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let o = rt.block_on(create(&b, &s, PROBE));
    let pid = rt.block_on(o.pid()).unwrap();
    b.kill();
    assert_eq!(rt.block_on(o.echo("alone".into())).unwrap(), "alone", "no broker on the path");
    b.restart();
    rt.block_on(async {
        let start = Instant::now();
        loop {
            let listed = match com::list(&s).await {
                Ok(l) => l.servers.iter().any(|v| {
                    v.pid == pid && v.classes.iter().any(|c| c.clsid == PROBE && c.available)
                }),
                Err(e) => {
                    assert!(e.is_retryable(), "{e:?}");
                    false
                }
            };
            if listed {
                break;
            }
            check_deadline(&b, start, "the server registers its class with the new broker");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The new broker knows the server's count.
        let start = Instant::now();
        loop {
            let list = com::list(&s).await.unwrap();
            let v = list.servers.iter().find(|v| v.pid == pid);
            if v.is_some_and(|v| v.objects == 1) {
                break;
            }
            check_deadline(&b, start, &format!("the restarted broker lists one object: {v:?}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let again = create(&b, &s, PROBE).await;
        assert_eq!(again.pid().await.unwrap(), pid, "the same server after the restart");
        assert_eq!(o.pid().await.unwrap(), pid);
        until_count(&b, &again, 2, "both objects counted").await;
        drop(again);
        drop(o);
        until_gone(&b, &s, pid, "the server exits at count zero").await;
        let next = create(&b, &s, PROBE).await;
        assert_ne!(next.pid().await.unwrap(), pid);
    });
}

/// Activations in a loop while the previous object is released: some race the server's
/// shutdown; none fails, and none sees `CO_E_SERVER_STOPPING`.
#[test]
fn the_shutdown_race_never_surfaces_server_stopping() {
    let b = TestBroker::start();
    install_server(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let mut pids = std::collections::BTreeSet::new();
        let mut held: Option<ComProbeClient> = None;
        for i in 0..200 {
            // Release the last object just before or just after the next activation is on its
            // way: the server may be shutting down when it arrives.
            if i % 2 == 0 {
                drop(held.take());
            }
            let next = tokio::spawn({
                let s = s.clone();
                async move { activate(&s, PROBE).await }
            });
            drop(held.take());
            let o = match within(&b, &format!("activation {i}"), next).await.unwrap() {
                Ok(o) => o,
                Err(e) => {
                    assert_ne!(e.hresult(), Some(CO_E_SERVER_STOPPING), "activation {i}: {e:?}");
                    panic!("activation {i} failed: {e:?}; broker log:\n{}", log_tail(&b));
                }
            };
            let pid = within(&b, "a call", o.pid()).await;
            pids.insert(pid.unwrap_or_else(|e| panic!("a call on activation {i}: {e:?}")));
            held = Some(o);
        }
        // What the race did (not asserted: which activations meet a stopping server depends on
        // the scheduler): activations the broker routed beyond the 200 were retried by the SDK.
        let routed = b.log().matches("com activation").count();
        eprintln!(
            "200 activations, {} server processes, {routed} routed by the broker",
            pids.len()
        );
    });
}

/// Removal and upgrade end the server: its proxies fail with `RPC_E_DISCONNECTED`.
#[test]
fn remove_and_upgrade_disconnect_the_servers_objects() {
    let b = TestBroker::start();
    let go = go_file(&b);
    let server = install_server(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let o = create(&b, &s, PROBE).await;
        let pid = o.pid().await.unwrap();
        // Upgrade.
        let text = server_manifest(SERVER_NAME, "1.0.0.1", &all_classes(&go));
        blocking(|| install(&b, &text));
        within(&b, "the upgraded server's proxy closes", o.proxy().closed()).await;
        let e = o.pid().await.unwrap_err();
        assert_eq!(hr(&e), RPC_E_DISCONNECTED, "{e:?}");
        until_gone(&b, &s, pid, "the old version's server ends").await;
        // The new version serves the class.
        let o = create(&b, &s, PROBE).await;
        let pid = o.pid().await.unwrap();
        // An object the server handed out is disconnected as well.
        let child = o.child().await.unwrap().client().unwrap();
        assert_eq!(child.pid().await.unwrap(), pid);
        // Removal.
        let (ok, out, err) = blocking(|| run_cli(&b, &["remove", &server]));
        assert!(ok, "remove: {out}{err}");
        within(&b, "the removed server's proxy closes", o.proxy().closed()).await;
        let e = o.echo("x".into()).await.unwrap_err();
        assert_eq!(hr(&e), RPC_E_DISCONNECTED, "{e:?}");
        within(&b, "the handed-out object's proxy closes", child.proxy().closed()).await;
        let e = child.pid().await.unwrap_err();
        assert_eq!(hr(&e), RPC_E_DISCONNECTED, "a handed-out object: {e:?}");
        until_gone(&b, &s, pid, "the removed package's server ends").await;
        assert_eq!(create_fails(&b, &s, PROBE).await, REGDB_E_CLASSNOTREG, "out of the catalog");
    });
}

/// A client's callback, called by the server while the client's call runs.
struct Events {
    got: AtomicU32,
    server: String,
}

#[appipc::async_trait]
impl ComListener for Events {
    async fn event(&self, cx: &CallContext, n: u32, text: String) -> CallResult<bool> {
        assert!(cx.caller().is_none(), "called by the server");
        let server = cx.server().expect("the server, as the broker attested it");
        assert_eq!(server.server_package_family_name, self.server);
        assert_eq!(text, format!("event {n}"));
        self.got.fetch_add(1, Ordering::SeqCst);
        Ok(n.is_multiple_of(2))
    }
}

#[test]
fn the_server_calls_back_its_clients() {
    let b = TestBroker::start();
    let server = install_server(&b);
    let client = install_client(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let o = create(&b, &s, PROBE).await;
        let events = Arc::new(Events { got: AtomicU32::new(0), server: server.clone() });
        let acked = within(&b, "the callbacks", o.call_back(ObjectRef::new(events.clone()), 5));
        assert_eq!(acked.await.unwrap(), 3);
        assert_eq!(events.got.load(Ordering::SeqCst), 5);
        // A confined client is called back too.
        let out = blocking(|| run_probe(&b, &format!("{client}!App"), &["callback", OPEN_AC, "4"]));
        assert_eq!(out, "4 of 4 (got 4)");
        // An object called through the blocking client, on this thread.
        let r = within(&b, "activating", com::co_create_instance::<dyn ComProbe>(&s, PROBE)).await;
        let bc = r.unwrap().blocking_client().unwrap();
        let pid = o.pid().await.unwrap();
        assert_eq!(blocking(|| bc.pid()).unwrap(), pid, "the same MULTIPLEUSE server");
        assert_eq!(blocking(|| bc.echo("blocking".into())).unwrap(), "blocking");
        until_count(&b, &o, 2, "both objects").await;
        drop(bc);
        until_count(&b, &o, 1, "the blocking client's object released").await;
    });
}

/// Every error an activation or a registration gives.
#[test]
fn every_error_code() {
    // A server has 2 s to register.
    let b = TestBroker::start_with_env(&[("APPIPC_COM_START_MS", "2000")]);
    let server = install_server(&b);
    let client = install_client(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        assert_eq!(create_fails(&b, &s, UNKNOWN).await, REGDB_E_CLASSNOTREG);
        let e = com::clsid_from_prog_id(&s, "Contoso.NoSuchThing").await.unwrap_err();
        assert_eq!(hr(&e), CO_E_CLASSSTRING, "{e:?}");
        assert_eq!(create_fails(&b, &s, NEVER).await, CO_E_SERVER_EXEC_FAILURE, "no register");
        // The broker ends the server that did not register.
        let start = Instant::now();
        loop {
            let running = appipc::PackageManager::new(&s).running_processes().await.unwrap();
            if !running.iter().any(|p| p.package_family_name == server) {
                break;
            }
            check_deadline(&b, start, &format!("the late server is ended: {running:?}"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(create_fails(&b, &s, EXITS).await, CO_E_SERVER_EXEC_FAILURE, "exits first");
        // A permission the broker cannot parse refuses every activation, saying why.
        let e = within(&b, "activating", activate(&s, BAD_SDDL)).await.unwrap_err();
        assert_eq!(hr(&e), E_ACCESSDENIED, "{e:?}");
        assert!(e.to_string().contains("NOT-A-SID"), "the reason names the permission: {e}");
        let e = com::clsid_from_prog_id(&s, "").await.unwrap_err();
        assert_eq!(hr(&e), CO_E_CLASSSTRING, "an empty ProgID: {e:?}");
        // A class factory's own failure reaches the client as its HRESULT.
        assert_eq!(create_fails(&b, &s, REFUSES).await, CLASS_E_CLASSNOTAVAILABLE);
        // E_ACCESSDENIED for a confined client (the default permission).
        let out = blocking(|| run_probe(&b, &format!("{client}!App"), &["create", PROBE]));
        assert_eq!(out, "0x80070005");
        // An interface the object does not serve.
        let e = within(&b, "activating", com::co_create_instance::<dyn ComAbsent>(&s, PROBE))
            .await
            .unwrap_err();
        assert_eq!(hr(&e), E_NOINTERFACE, "{e:?}");
        // Registering a class this process's package does not declare (it has none).
        let here = ComServer::new(&s);
        let e = here.register_class_object(PROBE, REGCLS_MULTIPLEUSE, |_: &RpcCaller| {
            Ok(Interfaces::new())
        });
        let e = within(&b, "registering", e).await.unwrap_err();
        assert_eq!(hr(&e), CO_E_WRONG_SERVER_IDENTITY, "{e:?}");
        // Unknown REGCLS flags; revoking what is not a registration.
        let e = here.register_class_object(PROBE, 0x100, |_: &RpcCaller| Ok(Interfaces::new()));
        let e = within(&b, "registering", e).await.unwrap_err();
        assert_eq!(hr(&e), E_INVALIDARG, "{e:?}");
        let e = within(&b, "revoking", here.revoke_class_object(4242)).await.unwrap_err();
        assert_eq!(hr(&e), CO_E_OBJNOTREG, "{e:?}");
        // A full-trust process of another package, and a confined process of the declaring
        // package (servers run full trust): the same.
        let out = blocking(|| serve_as(&b, &format!("{client}!Full"), PROBE));
        assert_eq!(out, "0x80004015", "another package's full-trust app");
        let out = blocking(|| serve_as(&b, &format!("{server}!App"), PROBE));
        assert_eq!(out, "0x80004015", "the declaring package's confined app");
        let out = blocking(|| serve_as(&b, &format!("{server}!Tool"), PROBE));
        assert_eq!(out, "0x80004015", "another full-trust application of the package");
        // The same class twice in one server process.
        let o = create(&b, &s, TWICE).await;
        let start = Instant::now();
        let second = loop {
            if let Some(hr) = o.server().await.unwrap().second_registration {
                break hr;
            }
            check_deadline(&b, start, "the second registration's answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(second, CO_E_OBJISREG);
        assert_eq!(o.server().await.unwrap().package_family_name, server);
        // A call that outlives its proxy's timeout is cancelled; the object serves the next.
        let o = create(&b, &s, PROBE).await;
        o.proxy().set_timeout(Some(Duration::from_millis(100)));
        let e = within(&b, "the cancelled call", o.sleep(600_000)).await.unwrap_err();
        assert_eq!(hr(&e), RPC_E_CALL_CANCELED, "{e:?}");
        o.proxy().set_timeout(None);
        assert_eq!(o.echo("after".into()).await.unwrap(), "after");
        drop(o);
        // The server killed during a call.
        let o = create(&b, &s, PROBE).await;
        let pid = o.pid().await.unwrap();
        let call = tokio::spawn({
            let o = o.clone();
            async move { o.sleep(600_000).await }
        });
        let start = Instant::now();
        while o.sleepers().await.unwrap() != 1 {
            check_deadline(&b, start, "the call runs in the server");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let target = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(target, rustix::process::Signal::KILL).unwrap();
        let e = within(&b, "the call ends", call).await.unwrap().unwrap_err();
        assert_eq!(hr(&e), RPC_S_CALL_FAILED_HR, "{e:?}");
        // After it, the proxy is disconnected.
        let e = o.pid().await.unwrap_err();
        assert_eq!(hr(&e), RPC_E_DISCONNECTED, "{e:?}");
        // And the next activation gets a new server.
        let o = create(&b, &s, PROBE).await;
        assert_ne!(o.pid().await.unwrap(), pid);
    });
}

/// ProgIDs, catalog conflicts between packages, and `appipc com list`.
#[test]
fn prog_ids_conflicts_and_the_com_list() {
    let b = TestBroker::start();
    let server = install_server(&b);
    let client = install_client(&b);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        // The version-independent ProgID leads through its current version to the class;
        // ProgIDs compare without case; braces are not part of the answer.
        for p in ["Contoso.Probe", "Contoso.Probe.1", "contoso.PROBE"] {
            let clsid = com::clsid_from_prog_id(&s, p).await.unwrap();
            assert_eq!(clsid.trim_matches(['{', '}']).to_lowercase(), PROBE, "{p}");
        }
        let out =
            blocking(|| run_probe(&b, &format!("{client}!App"), &["progid", "Contoso.Probe"]));
        assert_eq!(out.trim_matches(['{', '}']).to_lowercase(), PROBE, "from a confined app");
        // A CLSID in braces and upper case names the same class; text that is not one is
        // CO_E_CLASSSTRING.
        let o = create(&b, &s, &format!("{{{}}}", PROBE.to_uppercase())).await;
        assert_eq!(o.server().await.unwrap().args[1], PROBE);
        drop(o);
        assert_eq!(create_fails(&b, &s, "Contoso.Probe").await, CO_E_CLASSSTRING);
        assert_eq!(create_fails(&b, &s, "{3f2504e0-4f89-11d3}").await, CO_E_CLASSSTRING);
        // Activated through the ProgID's answer.
        let clsid = com::clsid_from_prog_id(&s, "Contoso.Probe").await.unwrap();
        let o = create(&b, &s, &clsid).await;
        let pid = o.pid().await.unwrap();

        // Another package declaring the same CLSID, or the same ProgID, is refused.
        let dup = server_manifest("Northwind.Dup", "1.0.0.0", &[class(PROBE, "multi")])
            .replace(CONTOSO, NORTHWIND);
        let e = blocking(|| try_install(&b, &dup)).unwrap_err();
        assert!(e.to_lowercase().contains(PROBE), "the refusal names the class: {e}");
        let dup_prog = server_manifest("Northwind.Dup", "1.0.0.0", &[class(PROBE, "multi")])
            .replace(CONTOSO, NORTHWIND)
            .replace(PROBE, "3f2504e0-4f89-11d3-9a0c-0305e82c3399");
        let e = blocking(|| try_install(&b, &dup_prog)).unwrap_err();
        assert!(e.contains("Contoso.Probe"), "the refusal names the ProgID: {e}");

        // The list: classes with their ProgIDs, package, application, exe server and
        // permission; the running server with its count.
        let start = Instant::now();
        let json = loop {
            let (ok, out, err) = blocking(|| run_cli(&b, &["com", "list", "--json"]));
            assert!(ok, "com list: {out}{err}");
            let json: serde_json::Value = serde_json::from_str(&out).unwrap();
            let running = json["servers"].as_array().unwrap().iter().any(|v| {
                v["pid"] == pid && v["objects"] == 1 && v["package_family_name"] == server
            });
            if running {
                break json;
            }
            check_deadline(&b, start, &format!("com list shows the server: {json}"));
            std::thread::sleep(Duration::from_millis(50));
        };
        let classes = json["classes"].as_array().unwrap();
        let probe = classes.iter().find(|c| c["clsid"] == PROBE).expect("the class is listed");
        assert_eq!(probe["package_family_name"], server.as_str(), "{probe}");
        assert_eq!(probe["app_id"], "Server", "{probe}");
        assert_eq!(probe["executable"], "bin/com-probe", "{probe}");
        let progs: Vec<&str> =
            probe["prog_ids"].as_array().unwrap().iter().filter_map(|p| p.as_str()).collect();
        assert!(progs.contains(&"Contoso.Probe") && progs.contains(&"Contoso.Probe.1"), "{probe}");
        assert!(!probe["permission"].as_str().unwrap().is_empty(), "the default applies: {probe}");
        let open = classes.iter().find(|c| c["clsid"] == OPEN_AC).expect("every class is listed");
        let bad = classes.iter().find(|c| c["clsid"] == BAD_SDDL).expect("listed");
        assert!(bad["permission"].as_str().unwrap().contains("unusable"), "{bad}");
        let sddl = open["permission"].as_str().unwrap();
        assert!(sddl.contains(";AC)") || sddl.contains(";S-1-15-2-1)"), "{open}");
        assert_eq!(
            classes.iter().filter(|c| c["package_family_name"] == server.as_str()).count(),
            all_classes(Path::new("-")).len()
        );
        let single = classes.iter().find(|c| c["clsid"] == SINGLE).expect("listed");
        assert_eq!(single["auto_convert_to"], PROBE, "{single}");
        // The text form names the class and the server.
        let (ok, text, err) = blocking(|| run_cli(&b, &["com", "list"]));
        assert!(ok, "{err}");
        assert!(text.to_lowercase().contains(PROBE) && text.contains(&pid.to_string()), "{text}");
        drop(o);
        until_gone(&b, &s, pid, "the server exits").await;
        // Removed, its classes leave the catalog.
        let (ok, out, err) = blocking(|| run_cli(&b, &["remove", &server]));
        assert!(ok, "remove: {out}{err}");
        let list = com::list(&s).await.unwrap();
        assert!(list.classes.iter().all(|c| c.package_family_name != server), "{list:?}");
        let e = com::clsid_from_prog_id(&s, "Contoso.Probe").await.unwrap_err();
        assert_eq!(hr(&e), CO_E_CLASSSTRING, "{e:?}");
        // Now the other package may declare them.
        blocking(|| install(&b, &dup));
    });
}

/// The attacker's package and client: a package whose family name sorts first declares 3 000
/// classes under one exe server with a permission of 700 entries, and 3 000 ProgIDs each the
/// current version of the next (resolving them one walk per name was cubic, on the broker's
/// async workers); lookups from a confined app still answer, `appipc com list` fits one reply
/// and says how much it left out. A client that activates and never binds gets its channel
/// closed by the server (it cannot hold the server's fds), and the server goes on serving
/// others meanwhile.
#[test]
fn a_flooded_catalog_and_unbound_activations_stall_nothing() {
    let b = TestBroker::start();
    let _server = install_server(&b);
    let client = install_client(&b);
    let n = 3000;
    let mut text = format!(
        "[package]\nname = \"Aaaa.Flood\"\npublisher = \"{NORTHWIND}\"\nversion = \"1.0.0.0\"\n\n\
         [capabilities]\nrestricted = [\"runFullTrust\"]\n\n\
         [[application]]\nid = \"Server\"\nexecutable = \"bin/com-probe\"\n\
         trust-level = \"mediumIL\"\n\n[[application.com-server]]\n\
         [[application.com-server.exe-server]]\nexecutable = \"bin/com-probe\"\n\
         launch-and-activation-permission = \"D:{}\"\n",
        "(A;;11;;;WD)".repeat(700)
    );
    let clsid = |i: usize| format!("5e5e5e5e-0000-4000-8000-{i:012x}");
    for i in 0..n {
        text.push_str(&format!(
            "[[application.com-server.exe-server.class]]\nid = \"{}\"\n",
            clsid(i)
        ));
    }
    let name = |i: usize| format!("Aaaa.Flood.Chain.Link.{i:05}");
    for i in 0..n {
        let target = if i + 1 < n {
            format!("current-version = \"{}\"", name(i + 1))
        } else {
            format!("clsid = \"{}\"", clsid(0))
        };
        text.push_str(&format!(
            "[[application.com-server.prog-id]]\nid = \"{}\"\n{target}\n",
            name(i)
        ));
    }
    install(&b, &text);
    // From a confined app: the head of the chain and a name nobody declares.
    let head = run_probe(&b, &format!("{client}!App"), &["progid", &name(0)]);
    assert_eq!(head.trim_matches(['{', '}']).to_lowercase(), clsid(0));
    let missing = run_probe(&b, &format!("{client}!App"), &["progid", "Nobody.Declares.This"]);
    assert!(missing.contains("0x800401f3") || missing.contains("0x800401F3"), "{missing}");
    // The list fits one reply and counts what it left out.
    let (ok, out, err) = run_cli(&b, &["com", "list", "--json"]);
    assert!(ok, "appipc com list: {out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("the list as JSON");
    let listed = v["classes"].as_array().map(Vec::len).unwrap_or(0);
    let more = v["more"].as_u64().unwrap_or(0) as usize;
    assert!(listed > 0 && more > 0, "listed {listed}, more {more}");
    assert!(listed + more >= n, "every class listed or counted: {listed} + {more}");
    let (ok, text_out, _) = run_cli(&b, &["com", "list"]);
    assert!(ok && text_out.contains("more classes"), "the text says so too:\n{text_out}");

    rt().block_on(async {
        let s = b.session();
        // An activation never bound: the raw request, its fd kept, nothing sent on it.
        let request = appipc::wire::protocol::com::CreateInstance { clsid: PROBE.into() };
        let (_, mut fds) = within(&b, "a raw activation", async {
            s.call_within(request, &[], Duration::from_secs(60)).await.expect("activated")
        })
        .await;
        let unbound = fds.pop().expect("the channel");
        // The server serves another client meanwhile.
        let o = create(&b, &s, PROBE).await;
        assert!(o.pid().await.unwrap() > 0);
        // And gives the unbound channel back: its end reads end-of-file.
        let held = std::os::unix::net::UnixStream::from(unbound);
        held.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut buf = [0u8; 64];
        let got = blocking(|| std::io::Read::read(&mut &held, &mut buf));
        assert!(
            matches!(got, Ok(0)),
            "the server closes a channel never bound (got {got:?}); broker log:\n{}",
            log_tail(&b)
        );
    });
}
