//! Test support for appipc: a real broker process on a temporary home, the example packages
//! assembled from the built binaries, unique names.
//!
//! Nothing here is a mock: [`TestBroker::start`] runs the real `appipcd` binary, and packages
//! are the real examples with their real binaries.
//!
//! A test broker starts with developer mode on, so that tests install assembled package
//! folders directly ([`TestBroker::install`]); [`TestBroker::start_strict`] leaves it off, as a
//! user's broker is. Signed installs go through the real CLI: [`TestBroker::new_key`] (`appipc
//! key new`), [`TestBroker::trust`] (`appipc trust add`), [`TestBroker::pack`] (`appipc pack`),
//! [`TestBroker::install_signed`].
//!
//! Binaries are found in the cargo target directory of the running executable (the directory
//! of `current_exe`, or its parent for test executables under `deps/`). `cargo test
//! --workspace` builds them all; a missing one is reported with the command that builds it.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use appipc_model::manifest;

pub mod com_probe;
pub mod rpc_probe;

/// An example package: its manifest text (compiled in, so the demo works from anywhere).
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// Short name (the folder under `examples/`).
    pub name: &'static str,
    /// The `appipc.toml` text.
    pub manifest: &'static str,
}

/// `Contoso.Hello`: one app-container app printing its identity.
pub const HELLO: Example =
    Example { name: "hello", manifest: include_str!("../../../examples/hello/appipc.toml") };

/// `Fabrikam.Tools`: an app-container app and a full-trust tool, from another publisher.
pub const FABRIKAM_TOOLS: Example = Example {
    name: "fabrikam-tools",
    manifest: include_str!("../../../examples/fabrikam-tools/appipc.toml"),
};

/// `Contoso.Services`: app service providers, out of process and in process.
pub const CONTOSO_SERVICES: Example = Example {
    name: "contoso-services",
    manifest: include_str!("../../../examples/contoso-services/appipc.toml"),
};

/// `Fabrikam.EchoClient`: an app of another publisher that calls Contoso's services.
pub const FABRIKAM_CLIENT: Example = Example {
    name: "fabrikam-client",
    manifest: include_str!("../../../examples/fabrikam-client/appipc.toml"),
};

/// `Contoso.Bridge`: a confined app and its full-trust helper.
pub const CONTOSO_BRIDGE: Example = Example {
    name: "contoso-bridge",
    manifest: include_str!("../../../examples/contoso-bridge/appipc.toml"),
};

/// `Contoso.Picker`: an app launched for results by URI (`contoso-pick:`), answering with a
/// file token.
pub const CONTOSO_PICKER: Example = Example {
    name: "contoso-picker",
    manifest: include_str!("../../../examples/contoso-picker/appipc.toml"),
};

/// `Fabrikam.Photos`: an app of another publisher that launches the picker for results.
pub const FABRIKAM_PHOTOS: Example = Example {
    name: "fabrikam-photos",
    manifest: include_str!("../../../examples/fabrikam-photos/appipc.toml"),
};

/// `Contoso.LoopServer`: a TCP server on loopback that `Fabrikam.LoopClient` may reach.
pub const CONTOSO_LOOP_SERVER: Example = Example {
    name: "contoso-loopserver",
    manifest: include_str!("../../../examples/contoso-loopserver/appipc.toml"),
};

/// `Fabrikam.LoopClient`: connects to `Contoso.LoopServer` over loopback.
pub const FABRIKAM_LOOP_CLIENT: Example = Example {
    name: "fabrikam-loopclient",
    manifest: include_str!("../../../examples/fabrikam-loopclient/appipc.toml"),
};

/// `Contoso.Device`: a device service over RPC, its endpoint ACL'd to Contoso's custom
/// capability `Contoso.sensorAccess_…`.
pub const CONTOSO_DEVICE: Example = Example {
    name: "contoso-device",
    manifest: include_str!("../../../examples/contoso-device/appipc.toml"),
};

/// `Fabrikam.Sensors`: the device service's client, declaring Contoso's custom capability. Its
/// descriptor is made from [`FABRIKAM_SENSORS_DESCRIPTOR_DRAFT`] and signed by Contoso's key.
pub const FABRIKAM_SENSORS: Example = Example {
    name: "fabrikam-sensors",
    manifest: include_str!("../../../examples/fabrikam-sensors/appipc.toml"),
};

/// The unsigned draft of `Fabrikam.Sensors`' custom capability descriptor: `FABRIKAM_KEY_ID`
/// stands for the key id of the key that signs the package.
pub const FABRIKAM_SENSORS_DESCRIPTOR_DRAFT: &str =
    include_str!("../../../examples/fabrikam-sensors/CustomCapability.sccd.toml");

/// The file `Fabrikam.Sensors`' manifest names as its descriptor.
pub const FABRIKAM_SENSORS_DESCRIPTOR_FILE: &str = "CustomCapability.sccd.toml";

/// Every example package (but Contoso.Settings, Contoso.Device and Fabrikam.Sensors, which
/// need more than their manifest: a registry file, a signed descriptor).
pub const EXAMPLES: [Example; 9] = [
    HELLO,
    FABRIKAM_TOOLS,
    CONTOSO_SERVICES,
    FABRIKAM_CLIENT,
    CONTOSO_BRIDGE,
    CONTOSO_PICKER,
    FABRIKAM_PHOTOS,
    CONTOSO_LOOP_SERVER,
    FABRIKAM_LOOP_CLIENT,
];

/// The folder holding the workspace's built binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("executable has a folder").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir
    }
}

/// The unprivileged test user `appipc-test` (`scripts/test.sh` creates it), as uid and gid,
/// if `/etc/passwd` has it.
pub fn test_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"appipc-test"))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
            .flatten()
    })
}

/// Makes a folder tree readable by every user (folders 0755, files 0644 keeping their execute
/// bits), so that a broker running as another user (the unprivileged test user) can install
/// it. Panics if a permission cannot be set.
pub fn readable_by_all(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p).expect("metadata");
    let mode = if meta.is_dir() { 0o755 } else { 0o644 | (meta.permissions().mode() & 0o111) };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("set_permissions");
    if meta.is_dir() {
        for e in std::fs::read_dir(p).expect("read_dir") {
            readable_by_all(&e.expect("a folder entry").path());
        }
    }
}

/// The path of a built binary of the workspace, or a panic that says how to build it.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace --bins`, which \
         `cargo test --workspace` does)",
        p.display()
    );
    p
}

/// Builds the package folder of an example under `dest` (created): its manifest, and each
/// executable it names copied from [`bin_dir`] by file name. Returns the folder.
pub fn assemble(example: &Example, dest: &Path) -> std::io::Result<PathBuf> {
    assemble_manifest(example.manifest, dest, &bin_dir())
}

/// Like [`assemble`] for any manifest text, with binaries from `bins`.
pub fn assemble_manifest(
    manifest_text: &str,
    dest: &Path,
    bins: &Path,
) -> std::io::Result<PathBuf> {
    let m = manifest::parse(manifest_text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    std::fs::create_dir_all(dest)?;
    std::fs::write(dest.join(manifest::MANIFEST_FILE), manifest_text)?;
    for app in &m.applications {
        let mut paths = vec![app.executable.as_str().to_owned()];
        paths.extend(
            app.app_services
                .iter()
                .filter_map(|s| s.entry_point.as_ref())
                .map(|p| p.as_str().to_owned()),
        );
        paths.extend(app.full_trust_processes.iter().map(|f| f.executable.as_str().to_owned()));
        paths.extend(
            app.com_servers
                .iter()
                .flat_map(|s| s.exe_servers.iter())
                .map(|e| e.executable.as_str().to_owned()),
        );
        for rel in paths {
            let target = dest.join(&rel);
            if target.exists() {
                continue;
            }
            let name = Path::new(&rel).file_name().expect("validated path has a file name");
            std::fs::create_dir_all(target.parent().expect("inside dest"))?;
            std::fs::copy(bins.join(name), &target).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("copying {} into the package: {e}", bins.join(name).display()),
                )
            })?;
        }
    }
    Ok(dest.to_path_buf())
}

/// A signing key made with `appipc key new`.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// The secret key file.
    pub secret: PathBuf,
    /// The public key file.
    pub public: PathBuf,
    /// Its publisher.
    pub publisher: String,
}

/// The restricted capabilities a manifest declares: what a test consents to when it installs
/// an example (as `appipc install --yes` would).
pub fn restricted_capabilities(manifest_text: &str) -> Vec<String> {
    manifest::parse(manifest_text).map(|m| m.capabilities.restricted).unwrap_or_default()
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The `test-reaper` between a test and its brokers (see that binary): brokers are its
/// children, and so is everything they leave when they die.
#[derive(Debug)]
struct Reaper {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Reaper {
    /// The next line it says, waiting at most `within`.
    fn line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }
}

/// A running broker: its pid and a pidfd opened while it was known to run (it is the
/// reaper's child, not reaped before the reaper says it exited).
#[derive(Debug)]
struct Running {
    pid: u32,
    pidfd: std::os::fd::OwnedFd,
}

/// A real `appipcd` process serving a temporary home.
///
/// Brokers run under a subreaper of the test's (`test-reaper`), as under a user's service
/// manager: what a killed broker leaves (apps, namespace holders, its session keeper) is
/// reaped by it, and ended when the `TestBroker` is dropped.
#[derive(Debug)]
pub struct TestBroker {
    /// Holds the temporary folders; removed on drop.
    pub root: tempfile::TempDir,
    /// `APPIPC_HOME`.
    pub home: PathBuf,
    /// `APPIPC_RUNTIME_DIR`.
    pub runtime_dir: PathBuf,
    child: Option<Running>,
    reaper: Option<Reaper>,
    env: Vec<(String, String)>,
    user: Option<(u32, u32)>,
}

impl TestBroker {
    /// Starts `appipcd` on a fresh temporary home, waits until it answers, and turns
    /// developer mode on (package folders install unsigned).
    pub fn start() -> TestBroker {
        TestBroker::start_with_env(&[])
    }

    /// Like [`TestBroker::start`], with developer mode left off, as on a user's broker: only
    /// signed package files install.
    pub fn start_strict() -> TestBroker {
        let root = tempfile::Builder::new().prefix("appipc-test-").tempdir().expect("tempdir");
        let home = root.path().join("home");
        let runtime_dir = root.path().join("run");
        let mut b = TestBroker {
            root,
            home,
            runtime_dir,
            child: None,
            reaper: None,
            env: Vec::new(),
            user: None,
        };
        b.restart();
        b
    }

    /// Like [`TestBroker::start`], with extra environment for the broker (timeouts, …).
    pub fn start_with_env(env: &[(&str, &str)]) -> TestBroker {
        let root = tempfile::Builder::new().prefix("appipc-test-").tempdir().expect("tempdir");
        let home = root.path().join("home");
        let runtime_dir = root.path().join("run");
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut b =
            TestBroker { root, home, runtime_dir, child: None, reaper: None, env, user: None };
        b.restart();
        b.set_developer_mode(true);
        b
    }

    /// Like [`TestBroker::start`], with the temporary folder as the user's home (`HOME`), so
    /// that appipc's own state and runtime folders lie inside the home.
    pub fn start_with_home_inside() -> TestBroker {
        let root = tempfile::Builder::new().prefix("appipc-test-").tempdir().expect("tempdir");
        let home = root.path().join("home");
        let runtime_dir = root.path().join("run");
        let env = vec![("HOME".to_owned(), root.path().display().to_string())];
        let mut b =
            TestBroker { root, home, runtime_dir, child: None, reaper: None, env, user: None };
        b.restart();
        b.set_developer_mode(true);
        b
    }

    /// Like [`TestBroker::start_with_env`], with the broker (and [`TestBroker::cli`]) running
    /// as another user (the caller is root). The temporary folder is given to that user.
    pub fn start_as(uid: u32, gid: u32, env: &[(&str, &str)]) -> TestBroker {
        let root = tempfile::Builder::new().prefix("appipc-test-").tempdir().expect("tempdir");
        std::os::unix::fs::chown(root.path(), Some(uid), Some(gid)).expect("chown the test folder");
        let home = root.path().join("home");
        let runtime_dir = root.path().join("run");
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        // The target folder may not be reachable by that user (a checkout under /root):
        // run copies of the binaries. cp, not std::fs::copy: a writable fd of ours could leak
        // into another test thread's fork and make the exec fail with ETXTBSY.
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin folder");
        for name in ["appipcd", "appipc", "test-reaper"] {
            let ok = Command::new("cp").arg(binary(name)).arg(bin.join(name)).status().expect("cp");
            assert!(ok.success(), "copying {name}");
        }
        let mut b = TestBroker {
            root,
            home,
            runtime_dir,
            child: None,
            reaper: None,
            env,
            user: Some((uid, gid)),
        };
        b.restart();
        b.set_developer_mode(true);
        b
    }

    /// The user the broker runs as, when [`TestBroker::start_as`] started it as another.
    pub fn user(&self) -> Option<(u32, u32)> {
        self.user
    }

    /// Runs the CLI with `args` against this broker; panics with its output unless it
    /// succeeds. Returns its stdout.
    pub fn cli_ok(&self, args: &[&std::ffi::OsStr]) -> String {
        let out = self.cli().args(args).output().expect("running appipc");
        assert!(
            out.status.success(),
            "appipc {:?} failed: {}{}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Turns developer mode on or off (`appipc dev-mode on|off`).
    pub fn set_developer_mode(&self, on: bool) {
        self.cli_ok(&["dev-mode".as_ref(), if on { "on" } else { "off" }.as_ref()]);
    }

    /// Makes a signing key for `publisher` under the temporary folder (`appipc key new`).
    pub fn new_key(&self, publisher: &str) -> SigningKey {
        let prefix = self.root.path().join(unique("key"));
        self.cli_ok(&[
            "key".as_ref(),
            "new".as_ref(),
            "--publisher".as_ref(),
            publisher.as_ref(),
            "-o".as_ref(),
            prefix.as_os_str(),
        ]);
        let with = |suffix: &str| {
            let mut p = prefix.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        };
        SigningKey {
            secret: with(".secret.toml"),
            public: with(".public.toml"),
            publisher: publisher.to_owned(),
        }
    }

    /// Trusts a key in this broker (`appipc trust add`).
    pub fn trust(&self, key: &SigningKey) {
        self.cli_ok(&["trust".as_ref(), "add".as_ref(), key.public.as_os_str()]);
    }

    /// Packs and signs a package folder (`appipc pack`); returns the package file.
    pub fn pack(&self, dir: &Path, key: &SigningKey) -> PathBuf {
        let out = self.root.path().join(format!("{}.appipc", unique("pkg")));
        self.cli_ok(&[
            "pack".as_ref(),
            dir.as_os_str(),
            "--key".as_ref(),
            key.secret.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        out
    }

    /// The binary `name` as this broker's user runs it.
    fn bin(&self, name: &str) -> PathBuf {
        match self.user {
            Some(_) => self.root.path().join("bin").join(name),
            None => binary(name),
        }
    }

    /// What a package's processes wrote to their stdout and stderr (when not launched with
    /// stdio).
    pub fn app_log(&self, family_name: &str) -> String {
        std::fs::read_to_string(self.home.join("state/logs").join(format!("{family_name}.log")))
            .unwrap_or_default()
    }

    /// Starts the broker again on the same home (after [`TestBroker::stop`] or a kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        let log = self.root.path().join(format!("broker-{}.log", unique("")));
        if self.reaper.is_none() {
            self.reaper = Some(self.start_reaper());
        }
        let reaper = self.reaper.as_mut().expect("reaper");
        let stdin = reaper.stdin.as_mut().expect("reaper's stdin");
        use std::io::Write;
        let start = serde_json::json!({ "log": log, "env": self.env });
        writeln!(stdin, "{start}").expect("asking the reaper to start a broker");
        stdin.flush().expect("asking the reaper to start a broker");
        let started = reaper.line(Duration::from_secs(20)).unwrap_or_default();
        let pid: u32 = started
            .strip_prefix("started ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the reaper did not start appipcd: {started:?}"));
        let pidfd = appipc_sys::process::pidfd_open(pid).expect("pidfd of the new broker");
        let deadline = Instant::now() + Duration::from_secs(20);
        let socket = self.socket();
        let reaper = self.reaper.as_ref().expect("reaper");
        while appipc_sys::socket::seqpacket_connect(&socket).is_err() {
            if let Some(line) = reaper.line(Duration::from_millis(10)) {
                panic!("appipcd exited at start ({line}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "appipcd did not answer in 20 s; log:\n{}",
                self.log()
            );
        }
        self.child = Some(Running { pid, pidfd });
    }

    fn start_reaper(&self) -> Reaper {
        let mut cmd = Command::new(self.bin("test-reaper"));
        cmd.arg(self.bin("appipcd"));
        self.apply_env(&mut cmd);
        // The broker logs at debug for the tests' failure output, unless the caller's
        // environment or the broker's own (`start_with_env`, e.g. a benchmark's `info`) says.
        if !self.env.iter().any(|(k, _)| k == "APPIPC_LOG") {
            cmd.env("APPIPC_LOG", std::env::var("APPIPC_LOG").unwrap_or_else(|_| "debug".into()));
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("starting test-reaper");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("reaper's stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Reaper { child, stdin, lines }
    }

    /// Waits until the running broker has exited (the reaper says so), at most `within`;
    /// whether it has.
    fn wait_exited(&mut self, within: Duration) -> bool {
        let Some(run) = &self.child else { return true };
        let Some(reaper) = &self.reaper else { return true };
        let want = format!("exited {} ", run.pid);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(line) = reaper.line(Duration::from_millis(50))
                && line.starts_with(&want)
            {
                self.child = None;
                return true;
            }
        }
        false
    }

    /// Everything the broker logged so far.
    pub fn log(&self) -> String {
        let mut out = String::new();
        let mut logs: Vec<_> = std::fs::read_dir(self.root.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        for p in logs {
            out.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
        out
    }

    /// The broker's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker running").pid
    }

    /// The public socket.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join("broker.sock")
    }

    /// Points a command at this broker (`APPIPC_HOME`, `APPIPC_RUNTIME_DIR`) and removes an
    /// inherited session.
    pub fn apply_env(&self, cmd: &mut Command) {
        cmd.env("APPIPC_HOME", &self.home)
            .env("APPIPC_RUNTIME_DIR", &self.runtime_dir)
            .env_remove("APPIPC_SESSION_FD");
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid).env("HOME", self.root.path());
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// A `Command` for the `appipc` CLI against this broker.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(self.bin("appipc"));
        self.apply_env(&mut cmd);
        cmd.env("APPIPC_LOG", "warn");
        cmd
    }

    /// Installs (through the CLI) a one-app package `name` of `publisher` whose app `App` runs
    /// `executable`, one of the workspace's binaries (`access-probe`, `pipe-probe`, …), and
    /// returns its package family name. Panics, with the CLI's error, if the install fails.
    pub fn install_app(&self, name: &str, publisher: &str, executable: &str) -> String {
        self.install_app_with(name, publisher, executable, &[])
    }

    /// [`TestBroker::install_app`] with `[capabilities] general = [capabilities…]`.
    pub fn install_app_with(
        &self,
        name: &str,
        publisher: &str,
        executable: &str,
        capabilities: &[&str],
    ) -> String {
        let caps: Vec<String> = capabilities.iter().map(|c| format!("{c:?}")).collect();
        let text = format!(
            "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.0\"\n\n\
             [capabilities]\ngeneral = [{}]\n\n\
             [[application]]\nid = \"App\"\nexecutable = \"bin/{executable}\"\n",
            caps.join(", ")
        );
        let dir = assemble_manifest(&text, &self.root.path().join(unique("app")), &bin_dir())
            .expect("assembling the package");
        let out = self.cli().args(["install", dir.to_str().expect("utf-8 path")]).output();
        let out = out.expect("running appipc install");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let full =
            String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap_or("").to_owned();
        let p: Vec<&str> = full.split('_').collect();
        assert_eq!(p.len(), 5, "a package full name at the end of {full:?}");
        format!("{}_{}", p[0], p[4])
    }

    /// Runs the app of package family `pfn` confined (`appipc launch --wait PFN -- ARGS`) until
    /// it exits and returns its stdout; panics, with both outputs, if it fails.
    pub fn run_app(&self, pfn: &str, args: &[&str]) -> String {
        let mut cli_args = vec!["launch", "--wait", pfn, "--"];
        cli_args.extend_from_slice(args);
        let out = self.cli().args(&cli_args).output().expect("running appipc launch");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{pfn} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// An async SDK session as an unpackaged process. Call inside a tokio runtime.
    pub fn session(&self) -> appipc::Session {
        appipc::Session::connect_to(&self.socket()).expect("connecting to the test broker")
    }

    /// Assembles an example and installs the folder through the SDK (developer mode),
    /// consenting to the restricted capabilities it declares.
    pub async fn install(&self, example: &Example) -> appipc::DeploymentResult {
        let dir =
            assemble(example, &self.root.path().join(unique(example.name))).expect("assemble");
        let consent =
            appipc::AddPackageOptions::consenting_to(restricted_capabilities(example.manifest));
        appipc::PackageManager::new(&self.session())
            .add_package_with(&dir, &consent)
            .await
            .expect("install")
    }

    /// Assembles an example, packs and signs it with `key` (which this broker must trust),
    /// and installs the package file through the SDK, consenting to its restricted
    /// capabilities.
    pub async fn install_signed(
        &self,
        example: &Example,
        key: &SigningKey,
    ) -> appipc::DeploymentResult {
        let dir =
            assemble(example, &self.root.path().join(unique(example.name))).expect("assemble");
        let file = self.pack(&dir, key);
        let consent =
            appipc::AddPackageOptions::consenting_to(restricted_capabilities(example.manifest));
        appipc::PackageManager::new(&self.session())
            .add_package_with(&file, &consent)
            .await
            .expect("signed install")
    }

    /// Sets an environment variable for the broker's next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Stops the broker with SIGTERM and waits for it. What it started keeps running (and the
    /// next broker on this home takes it over).
    pub fn stop(&mut self) {
        if let Some(run) = &self.child {
            let _ = appipc_sys::process::send_signal(
                &run.pidfd,
                appipc_sys::process::ProcessSignal::TERM,
            );
            if !self.wait_exited(Duration::from_secs(10)) {
                self.kill();
            }
        }
    }

    /// Kills the broker with SIGKILL (a crash) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(run) = &self.child {
            let _ = appipc_sys::process::send_signal(
                &run.pidfd,
                appipc_sys::process::ProcessSignal::KILL,
            );
            assert!(self.wait_exited(Duration::from_secs(20)), "the killed broker did not end");
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.stop();
        // Everything the brokers started goes with the reaper.
        if let Some(mut reaper) = self.reaper.take() {
            drop(reaper.stdin.take());
            let _ = reaper.child.wait();
        }
    }
}
