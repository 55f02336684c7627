//! The one place where the broker allows or refuses.
//!
//! [`enforce`] asks the pure policy (`appipc_model::policy::decide`) about an operation,
//! records the decision, and turns a refusal into [`Denied`], which every mechanism's error
//! nests. No mechanism decides inline; listings filter with [`permits`], which asks the same
//! policy without recording (a listing is not an access attempt).
//!
//! The last `kept` decisions (default 10 000) stay in memory for `appipc why`; refusals are
//! also appended, as JSON lines, to `decisions.log` in the state folder, rotated at a size
//! limit with a bounded number of old files. The file is written by a thread of its own
//! through a bounded queue, so a slow disk never stalls a request (a full queue drops the line
//! and counts it).

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use appipc_model::named_objects::Namespace;
use appipc_model::policy::{self, Decision, Operation};
use appipc_wire::protocol::diagnostics::DecisionRecord;
use appipc_wire::text::printable;

use crate::Shared;
use crate::caller::Caller;
use crate::config::DecisionsConfig;
use crate::error::Denied;

/// Most bytes of one text field of a record (longer ones end in `…`).
const MAX_FIELD: usize = 1024;

/// `s`, cut to at most [`MAX_FIELD`] bytes (at a character boundary) and `…`.
fn capped(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_owned();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Lines waiting for the log writer; more are dropped (and counted).
const LOG_QUEUE: usize = 1024;

/// The decision log.
#[derive(Debug)]
pub struct Decisions {
    kept: usize,
    recent: Mutex<VecDeque<Arc<DecisionRecord>>>,
    seq: AtomicU64,
    follow: tokio::sync::broadcast::Sender<Arc<DecisionRecord>>,
    log: Mutex<Option<std::sync::mpsc::SyncSender<Arc<DecisionRecord>>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One record as a JSON line of the log.
fn json_line(r: &DecisionRecord) -> String {
    serde_json::json!({
        "seq": r.seq,
        "time_ms": r.time_ms,
        "caller": {
            "package_family_name": r.caller.package_family_name,
            "app_id": r.caller.app_id,
            "pid": r.caller.pid,
            "trust": r.caller.trust.as_str(),
        },
        "mechanism": r.mechanism,
        "operation": r.operation,
        "object": r.object,
        "object_package_family_name": r.object_package_family_name,
        "asked": r.asked,
        "granted": r.granted,
        "allowed": r.allowed,
        "rule": r.rule,
        "remedy": r.remedy,
        "manifest": r.manifest,
    })
    .to_string()
}

/// Appends refusals to the log file, rotating it.
fn writer(
    path: PathBuf,
    max_bytes: u64,
    files: u32,
    rx: std::sync::mpsc::Receiver<Arc<DecisionRecord>>,
) {
    use std::os::unix::fs::OpenOptionsExt;
    let open =
        |p: &PathBuf| std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(p);
    let mut file = match open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(log = %path.display(), error = %e, "cannot open the decision log");
            None
        }
    };
    for record in rx {
        let Some(f) = file.as_mut() else { continue };
        let mut line = json_line(&record);
        line.push('\n');
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::warn!(log = %path.display(), error = %e, "cannot write the decision log");
            continue;
        }
        if f.metadata().map(|m| m.len() > max_bytes).unwrap_or(false) {
            let name = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
            let _ = std::fs::remove_file(name(files));
            for n in (1..files).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            if files == 0 {
                let _ = std::fs::remove_file(&path);
            } else {
                let _ = std::fs::rename(&path, name(1));
            }
            file = open(&path).ok();
        }
    }
}

impl Decisions {
    /// A decision log keeping `config.kept` decisions in memory and appending refusals to
    /// `log` (its folder is created private).
    pub fn start(config: &DecisionsConfig, log: PathBuf) -> Decisions {
        let dropped = Arc::new(AtomicU64::new(0));
        let (sender, writer) = match log.parent().map(crate::create_private_dir) {
            Some(Err(e)) => {
                tracing::warn!(error = %e, "no decision log file");
                (None, None)
            }
            _ => {
                let (tx, rx) = std::sync::mpsc::sync_channel(LOG_QUEUE);
                let (max, files) = (config.log_max_bytes, config.log_files);
                match std::thread::Builder::new()
                    .name("appipc-decisions".into())
                    .spawn(move || writer(log, max, files, rx))
                {
                    Ok(handle) => (Some(tx), Some(handle)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the decision log writer");
                        (None, None)
                    }
                }
            }
        };
        Decisions {
            kept: config.kept.max(1),
            recent: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(1),
            follow: tokio::sync::broadcast::channel(256).0,
            log: Mutex::new(sender),
            writer: Mutex::new(writer),
            dropped,
        }
    }

    /// Records one decision.
    fn record(
        &self,
        caller: &Caller,
        op: &Operation<'_>,
        d: &Decision,
        manifest: Option<String>,
        object_package: String,
    ) -> Arc<DecisionRecord> {
        // What a client chose (names, services, app ids) is kept escaped: a record cannot
        // forge another line or carry a terminal escape.
        // Each field at most `MAX_FIELD` bytes: a record stays small whatever a client named.
        let clean = |s: &str| capped(&printable(s));
        let record = Arc::new(DecisionRecord {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            time_ms: now_ms(),
            caller: caller.for_record(),
            mechanism: op.mechanism().to_owned(),
            operation: op.name().to_owned(),
            object: clean(&op.object()),
            object_package_family_name: clean(&object_package),
            asked: op.asked(),
            granted: op.asked().map(|_| d.granted),
            allowed: d.allowed,
            rule: clean(&d.rule),
            remedy: d.remedy.as_deref().map(clean),
            manifest: manifest.as_deref().map(clean),
        });
        {
            let mut recent = self.recent.lock().expect("decisions poisoned");
            if recent.len() == self.kept {
                recent.pop_front();
            }
            recent.push_back(record.clone());
        }
        if !d.allowed
            && let Some(tx) = self.log.lock().expect("decision log poisoned").as_ref()
            && tx.try_send(record.clone()).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.follow.send(record.clone());
        record
    }

    /// The latest `last` decisions that pass `keep`, oldest first.
    pub fn recent(
        &self,
        last: usize,
        keep: impl Fn(&DecisionRecord) -> bool,
    ) -> Vec<DecisionRecord> {
        let recent = self.recent.lock().expect("decisions poisoned");
        let mut out: Vec<DecisionRecord> =
            recent.iter().rev().filter(|r| keep(r)).take(last).map(|r| (**r).clone()).collect();
        out.reverse();
        out
    }

    /// Decisions from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<DecisionRecord>> {
        self.follow.subscribe()
    }

    /// How many decisions are kept in memory now.
    pub fn len(&self) -> usize {
        self.recent.lock().expect("decisions poisoned").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refusals that could not be written to the log file (its queue was full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops the log writer and waits until it has written what is queued (at most
    /// [`LOG_QUEUE`] lines).
    pub(crate) fn close(&self) {
        self.log.lock().expect("decision log poisoned").take();
        if let Some(w) = self.writer.lock().expect("decision log poisoned").take() {
            let _ = w.join();
        }
    }
}

/// `appipc.toml:LINE:COL (key)` for a refusal's manifest reference, or the key alone.
pub(crate) fn manifest_line(shared: &Shared, d: &Decision) -> Option<String> {
    let m = d.manifest.as_ref()?;
    let pkg = shared.repository.get(&m.package_family_name);
    let at = pkg.as_ref().and_then(|p| appipc_model::manifest::locate(&p.manifest_text, &m.key));
    Some(match at {
        Some(l) => {
            format!("{}: appipc.toml:{}:{} ({})", m.package_family_name, l.line, l.column, m.key)
        }
        None => format!("{}: appipc.toml ({}: not declared)", m.package_family_name, m.key),
    })
}

/// The package an operation's object belongs to: the one the operation names, or for a named
/// object or pipe the package whose app container namespace it is in (its SID when no
/// installed package has that namespace). A decision is shown only to who may see that
/// package.
fn object_package(shared: &Shared, op: &Operation<'_>) -> String {
    let named = op.object_package();
    if !named.is_empty() {
        return named;
    }
    match op {
        Operation::CreateNamedObject { name, .. } | Operation::OpenNamedObject { name, .. } => {
            match &name.namespace {
                Namespace::Session => String::new(),
                Namespace::AppContainer(sid) => shared
                    .repository
                    .all()
                    .into_iter()
                    .find(|p| p.package_sid == *sid)
                    .map_or_else(|| sid.to_string(), |p| p.family_name.to_string()),
            }
        }
        _ => String::new(),
    }
}

/// Decides `op` for `caller`, records the decision and logs it; a refusal becomes [`Denied`].
pub(crate) fn enforce(
    shared: &Shared,
    caller: &Caller,
    op: Operation<'_>,
) -> Result<Decision, Denied> {
    let mut d = policy::decide(&caller.principal, &op);
    if !d.allowed {
        explain_not_granted(shared, caller, &mut d);
    }
    let manifest = if d.allowed {
        d.manifest.as_ref().map(|m| format!("{}: appipc.toml ({})", m.package_family_name, m.key))
    } else {
        manifest_line(shared, &d)
    };
    let record = shared.decisions.record(caller, &op, &d, manifest, object_package(shared, &op));
    if d.allowed {
        tracing::debug!(caller = %caller.describe(), mechanism = %record.mechanism, operation = %record.operation, object = %record.object, rule = %d.rule, "allowed");
        Ok(d)
    } else {
        tracing::info!(caller = %caller.describe(), mechanism = %record.mechanism, operation = %record.operation, object = %record.object, rule = %d.rule, "denied");
        Err(Denied(Box::new(d)))
    }
}

/// Adds to a refusal's remedy why a capability it involves was not granted to the caller's
/// package at install (a declared custom capability a descriptor did not grant, a restricted
/// one without consent): the refusal's rule names the capability, or its SID.
fn explain_not_granted(shared: &Shared, caller: &Caller, d: &mut Decision) {
    let Some(family) = caller.principal.package.as_ref().map(|p| p.family_name.as_str()) else {
        return;
    };
    let Some(pkg) = shared.repository.get(family) else { return };
    let rule = d.rule.to_ascii_lowercase();
    let mut why = Vec::new();
    for n in &pkg.not_granted {
        let sid = appipc_model::sid::capability_sid(&n.name).to_string().to_ascii_lowercase();
        if rule.contains(&sid) || rule.contains(&n.name.to_ascii_lowercase()) {
            why.push(format!(
                "{family} declares the capability {} but it was not granted at install: {}",
                n.name, n.reason
            ));
        }
    }
    if why.is_empty() {
        return;
    }
    let why = why.join("; ");
    d.remedy = Some(match d.remedy.take() {
        Some(r) => format!("{r}; {why}"),
        None => why,
    });
}

/// Whether the policy allows `op`, without recording it (listings filter with this).
pub(crate) fn permits(caller: &Caller, op: Operation<'_>) -> bool {
    policy::decide(&caller.principal, &op).allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use appipc_model::principal::Principal;

    fn caller() -> Caller {
        Caller {
            session_id: 1,
            pid: 2,
            uid: 3,
            principal: Principal::unpackaged(3),
            full_name: None,
        }
    }

    fn deny() -> Decision {
        policy::decide(
            &Principal::packaged(
                3,
                "Contoso.A_cvnpggrrsm18p".parse().unwrap(),
                "App".parse().unwrap(),
                appipc_wire::caller::TrustLevel::AppContainer,
                vec![],
            ),
            &Operation::Shutdown,
        )
    }

    /// Red team finding 2: a record held the whole object (a 30 KB key path) and rule, 10 000
    /// of them in memory, and `appipc why --follow` frames outgrew a frame.
    #[test]
    fn every_record_is_bounded_whatever_the_object_and_rule() {
        let decisions =
            Decisions::start(&DecisionsConfig { kept: 10, log_max_bytes: 0, log_files: 0 }, {
                tempfile::tempdir().unwrap().path().join("d.log")
            });
        let key = appipc_model::registry::KeyPath::parse("HKLM\\Software")
            .unwrap()
            .join(&vec!["k".repeat(250); 120].join("\\"))
            .unwrap();
        let op = Operation::WriteRegistry { key: &key, rules: None, shipped: true, view: "" };
        let mut d = deny();
        d.rule = "r".repeat(100_000);
        d.remedy = Some("m".repeat(100_000));
        let r =
            decisions.record(&caller(), &op, &d, Some("x".repeat(100_000)), "p".repeat(100_000));
        for (what, field) in [
            ("object", &r.object),
            ("rule", &r.rule),
            ("object package", &r.object_package_family_name),
            ("remedy", r.remedy.as_ref().unwrap()),
            ("manifest", r.manifest.as_ref().unwrap()),
        ] {
            assert!(field.len() <= MAX_FIELD + 8, "{what}: {} bytes", field.len());
        }
        assert!(r.rule.ends_with('…'));
        assert!(json_line(&r).len() < 8 * 1024);
        decisions.close();
    }

    #[test]
    fn bounded_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("state/decisions.log");
        let cfg = DecisionsConfig { kept: 10, log_max_bytes: 2000, log_files: 2 };
        let decisions = Decisions::start(&cfg, log.clone());
        let d = deny();
        for _ in 0..500 {
            decisions.record(&caller(), &Operation::Shutdown, &d, None, String::new());
        }
        assert_eq!(decisions.len(), 10);
        let recent = decisions.recent(3, |_| true);
        assert_eq!(recent.len(), 3);
        assert!(recent[0].seq < recent[2].seq, "oldest first");
        assert_eq!(recent[2].seq, 500);
        decisions.close();
        let sizes: Vec<u64> = std::fs::read_dir(log.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .collect();
        assert!(sizes.len() <= 3, "the current file and two rotated ones: {sizes:?}");
        assert!(log.with_extension("log.2").exists(), "rotated twice at least");
        assert!(sizes.iter().all(|s| *s <= 2000 + 1000), "{sizes:?}");
        let line = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(first) = line.lines().next() {
            let v: serde_json::Value = serde_json::from_str(first).unwrap();
            assert_eq!(v["allowed"], false);
            assert_eq!(v["operation"], "shutdown");
        }
    }
}
