//! Fault injection (issue 13): the broker dies (SIGKILL) in the middle of installs, upgrades,
//! removals and file-token additions; after each restart the state is whole: the database
//! passes `PRAGMA integrity_check`, the packages listed are those recorded, every recorded
//! package's folder exists and nothing else is in the packages folder (no staging folder, no
//! leftover version), app data exists exactly for installed packages, the deployment journal is
//! empty, and every acknowledged operation is there.
//!
//! Two parts: a deterministic one that dies at each named point of a deployment
//! (`APPIPC_CRASH_AT`), and a random one that kills the broker at random moments,
//! `APPIPC_CRASH_KILLS` times (100 by default; `scripts/crash-test.sh` runs 500 and more).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use appipc::{PackageManager, SharedStorageAccessManager};
use appipc_testkit::{TestBroker, unique};

const PUBLISHER: &str = "CN=appipc tests";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A package folder with one tiny executable (a shell script): installs in milliseconds.
fn tiny(root: &Path, name: &str, version: &str) -> PathBuf {
    let dir = root.join(unique(&format!("{name}-{version}-")));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("appipc.toml"),
        format!(
            "[package]\nname = \"{name}\"\npublisher = \"{PUBLISHER}\"\nversion = \"{version}\"\n\n\
             [[application]]\nid = \"App\"\nexecutable = \"bin/app\"\n"
        ),
    )
    .unwrap();
    let exe = dir.join("bin/app");
    std::fs::write(&exe, format!("#!/bin/sh\necho {version}\n")).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn family(name: &str) -> String {
    let id = appipc_model::identity::PublisherId::from_publisher(PUBLISHER);
    format!("{name}_{id}")
}

/// What the state holds: installed family → version, tokens.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    packages: BTreeMap<String, String>,
    tokens: BTreeSet<String>,
}

/// Checks every invariant of a restarted broker's state; returns it.
fn check(b: &TestBroker) -> Result<State, String> {
    let db = rusqlite::Connection::open_with_flags(
        b.home.join("state.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| e.to_string())?;
    let integrity: String =
        db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| e.to_string())?;
    if integrity != "ok" {
        return Err(format!("integrity_check: {integrity}"));
    }
    let mut rows = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    {
        let mut st = db
            .prepare("SELECT family_name, full_name, install_dir FROM packages")
            .map_err(|e| e.to_string())?;
        let it = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(|e| e.to_string())?;
        for row in it {
            let (fam, full, dir) = row.map_err(|e| e.to_string())?;
            let version = full.split('_').nth(1).unwrap_or("").to_owned();
            rows.insert(fam, version);
            dirs.insert(PathBuf::from(dir));
        }
    }
    let journal: i64 = db
        .query_row("SELECT COUNT(*) FROM operations", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if journal != 0 {
        return Err(format!("{journal} deployments left in the journal after the restart"));
    }
    let mut tokens = BTreeSet::new();
    {
        let mut st = db.prepare("SELECT token FROM file_tokens").map_err(|e| e.to_string())?;
        for t in st.query_map([], |r| r.get::<_, String>(0)).map_err(|e| e.to_string())? {
            tokens.insert(t.map_err(|e| e.to_string())?);
        }
    }
    // The list is the store.
    let out = b.cli().args(["list", "--json"]).output().map_err(|e| e.to_string())?;
    let listed: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let listed: BTreeMap<String, String> = listed
        .as_array()
        .ok_or("list --json is not an array")?
        .iter()
        .map(|p| {
            (
                p["family_name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    if listed != rows {
        return Err(format!("listed {listed:?}, recorded {rows:?}"));
    }
    // The packages folder holds exactly the recorded versions: no staging, no leftover.
    let on_disk: BTreeSet<PathBuf> = std::fs::read_dir(b.home.join("packages"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .collect();
    if on_disk != dirs {
        return Err(format!("packages folder {on_disk:?}, recorded {dirs:?}"));
    }
    for d in &dirs {
        if !d.join("appipc.toml").is_file() {
            return Err(format!("{} is recorded but incomplete", d.display()));
        }
    }
    // App data exactly for the installed families.
    let data: BTreeSet<String> = std::fs::read_dir(b.home.join("data"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let families: BTreeSet<String> = rows.keys().cloned().collect();
    if data != families {
        return Err(format!("app data for {data:?}, installed {families:?}"));
    }
    Ok(State { packages: rows, tokens })
}

/// Starts the broker again, dying at `point` during the next deployment (or not, with "").
fn restart_at(b: &mut TestBroker, point: &str) {
    b.set_env("APPIPC_CRASH_AT", point);
    b.restart();
}

/// Runs `appipc ARGS` against a broker that dies at `point` of it, starts a broker again (the
/// command's session outlives the first: the second answers it) and returns what the command
/// said.
fn crash_during(b: &mut TestBroker, point: &str, args: &[&str]) -> String {
    b.stop();
    restart_at(b, point);
    let line = format!("dying here point=\"{point}\"");
    let before = b.log().matches(&line).count();
    let cmd = b
        .cli()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.log().matches(&line).count() == before {
        assert!(Instant::now() < deadline, "the broker did not reach {point}");
        std::thread::sleep(Duration::from_millis(10));
    }
    b.kill();
    restart_at(b, "");
    let out = cmd.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "{point}: the command did not notice the crash: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn cli_install(b: &TestBroker, dir: &Path) -> bool {
    b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap().status.success()
}

/// A deployment that dies at each of its points is rolled back (before its commit) or
/// completed (after it) at the next start; app data is kept across an upgrade, deleted with a
/// removal, and never inherited by a later install. The command that asked learns that the
/// broker restarted under it.
#[test]
fn a_deployment_interrupted_at_any_point_is_finished_at_the_next_start() {
    let mut b = TestBroker::start();
    let root = b.root.path().to_path_buf();
    let pfn = family("AppIpc.Journal");
    let data = b.home.join("data").join(&pfn).join("LocalState");
    let points =
        [("install:journaled", false), ("install:placed", false), ("install:committed", true)];
    for (point, installed) in points {
        let dir = tiny(&root, "AppIpc.Journal", "1.0.0.0");
        let said = crash_during(&mut b, point, &["install", dir.to_str().unwrap()]);
        assert!(said.contains("the broker restarted while it handled Install"), "{point}: {said}");
        let state = check(&b).unwrap_or_else(|e| panic!("after a crash at {point}: {e}"));
        assert_eq!(state.packages.contains_key(&pfn), installed, "{point}: {state:?}");
        if installed {
            let out = b.cli().args(["remove", &pfn]).output().unwrap();
            assert!(out.status.success());
        }
    }
    // An upgrade: v1 with data; dying before its commit keeps v1, after it gives v2; the data
    // stays either way.
    assert!(cli_install(&b, &tiny(&root, "AppIpc.Journal", "1.0.0.0")));
    std::fs::write(data.join("secret"), "v1's secret").unwrap();
    for (point, version) in [("install:placed", "1.0.0.0"), ("install:committed", "1.1.0.0")] {
        let dir = tiny(&root, "AppIpc.Journal", "1.1.0.0");
        crash_during(&mut b, point, &["install", dir.to_str().unwrap()]);
        let state = check(&b).unwrap_or_else(|e| panic!("after a crash at {point}: {e}"));
        assert_eq!(state.packages.get(&pfn).map(String::as_str), Some(version), "{point}");
        assert_eq!(std::fs::read_to_string(data.join("secret")).unwrap(), "v1's secret", "{point}");
    }
    // A removal that dies after its commit deletes the app data at the next start; installing
    // the package again does not find the old data.
    crash_during(&mut b, "remove:committed", &["remove", &pfn]);
    let state = check(&b).unwrap_or_else(|e| panic!("after a crash at remove:committed: {e}"));
    assert!(!state.packages.contains_key(&pfn));
    assert!(cli_install(&b, &tiny(&root, "AppIpc.Journal", "2.0.0.0")));
    assert!(data.is_dir() && !data.join("secret").exists(), "a reinstall inherited the old data");
}

/// A tiny xorshift generator: the test prints its seed (`APPIPC_CRASH_SEED` repeats a run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
enum Op {
    Install(String, String),
    Remove(String),
    AddToken,
}

/// Runs `op` over a fresh SDK session; `Ok` once the broker acknowledged it (with the token,
/// for a token).
async fn run(
    socket: PathBuf,
    root: PathBuf,
    file: PathBuf,
    op: Op,
) -> Result<Option<String>, String> {
    let s = appipc::Session::connect_to(&socket).map_err(|e| e.to_string())?;
    match op {
        Op::Install(name, version) => {
            let dir = tiny(&root, &name, &version);
            PackageManager::new(&s).add_package(&dir).await.map(|_| None).map_err(|e| e.to_string())
        }
        Op::Remove(pfn) => PackageManager::new(&s)
            .remove_package(&pfn)
            .await
            .map(|_| None)
            .map_err(|e| e.to_string()),
        Op::AddToken => {
            let f = std::fs::File::open(&file).map_err(|e| e.to_string())?;
            SharedStorageAccessManager::add_file(&s, &f).await.map(Some).map_err(|e| e.to_string())
        }
    }
}

/// Kills the broker at random moments of random deployments and token additions, and checks
/// the state after each restart.
#[test]
fn random_kills_during_deployments_leave_a_whole_state() {
    let kills: u32 =
        std::env::var("APPIPC_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let seed: u64 =
        std::env::var("APPIPC_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            t.as_nanos() as u64 | 1
        });
    eprintln!("fault injection: {kills} kills, APPIPC_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut b = TestBroker::start();
    let root = b.root.path().to_path_buf();
    let file = root.join("shared.txt");
    std::fs::write(&file, "shared").unwrap();
    let names = ["AppIpc.FaultA", "AppIpc.FaultB"];
    let mut known = State::default();
    let (mut acked, mut lost, mut mid) = (0u32, 0u32, 0u32);
    let rt = rt();
    let started = Instant::now();
    for i in 0..kills {
        let name = names[rng.below(2) as usize];
        let pfn = family(name);
        let op = match (rng.below(4), known.packages.get(&pfn)) {
            (0, _) => Op::AddToken,
            (1, Some(_)) => Op::Remove(pfn.clone()),
            (_, Some(v)) => {
                let minor: u32 = v.split('.').nth(1).unwrap().parse().unwrap();
                Op::Install(name.to_owned(), format!("1.{}.0.0", minor + 1))
            }
            (_, None) => Op::Install(name.to_owned(), "1.0.0.0".to_owned()),
        };
        let task = rt.spawn(run(b.socket(), root.clone(), file.clone(), op.clone()));
        let delay = Duration::from_micros(rng.below(40_000));
        rt.block_on(async { tokio::time::sleep(delay).await });
        if !task.is_finished() {
            mid += 1;
        }
        b.kill();
        b.restart();
        // The client's answer: from the broker that died (before the kill), or from the new
        // one (a request the old one took along is lost and said so; one it had not read yet
        // is carried out now).
        let result = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), task).await })
            .unwrap_or_else(|_| panic!("kill {i} (seed {seed}): {op:?} never answered"))
            .unwrap();
        let state = check(&b).unwrap_or_else(|e| panic!("kill {i} (seed {seed}), {op:?}: {e}"));
        let before = known.packages.get(&pfn).cloned();
        let now = state.packages.get(&pfn).cloned();
        let (target, token) = match (&op, &result) {
            (Op::Install(_, v), _) => (Some(v.clone()), None),
            (Op::Remove(_), _) => (None, None),
            (Op::AddToken, Ok(t)) => (before.clone(), t.clone()),
            (Op::AddToken, Err(_)) => (before.clone(), None),
        };
        if result.is_ok() {
            acked += 1;
            assert_eq!(now, target, "kill {i} (seed {seed}): acknowledged {op:?} is not there");
        } else {
            lost += 1;
            assert!(
                now == before || now == target,
                "kill {i} (seed {seed}): {op:?} -> {result:?}; found {now:?}, not {before:?} or {target:?}"
            );
        }
        if let Some(t) = token {
            assert!(state.tokens.contains(&t), "kill {i} (seed {seed}): acknowledged token lost");
        }
        let gone: Vec<_> = known.tokens.difference(&state.tokens).collect();
        assert!(gone.is_empty(), "kill {i} (seed {seed}): tokens lost: {gone:?}");
        known = state;
    }
    eprintln!(
        "fault injection: {kills} kills in {:.1} s, {mid} while an operation was under way; \
         {acked} operations acknowledged (all found), {lost} interrupted (each found done or \
         undone); every restart whole (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}
