//! The live sessions: who each is, what it holds and waits for, and the limits on how many
//! there are (`connections`, `sessions-per-package`, the idle timeout; see [`crate::session`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::Shared;
use crate::caller::Caller;
use crate::limits::FdCharge;
use crate::outbox::{Outbox, Outgoing, QueuedTotal};

/// A live session, as the registry keeps it.
#[derive(Debug)]
pub struct SessionEntry {
    /// Who.
    pub caller: Arc<Caller>,
    /// Where its frames go.
    pub outbox: Arc<Outbox>,
    last_active: AtomicU64,
    /// Things the session waits for that keep it from being idle (followed decisions, a
    /// launched process's exit).
    interest: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    _fds: FdCharge,
    /// Served again after a broker restart (see [`crate::keeper`]).
    restarted: std::sync::atomic::AtomicBool,
    /// Since then, until the client's `broker.Resync`: the ids of the requests read.
    read_since_restart: Mutex<Option<std::collections::HashSet<u64>>>,
}

/// Something a session waits for; while it lives the session is not idle.
#[derive(Debug)]
pub(crate) struct Interest(Arc<SessionEntry>);

impl Drop for Interest {
    fn drop(&mut self) {
        self.0.interest.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request whose session closed while it ran: what it would have entered in a table is not
/// (the session's entries are released once, when it closes).
#[derive(Debug, thiserror::Error)]
#[error("the session closed while its request ran")]
pub(crate) struct SessionGone;

impl From<SessionGone> for crate::error::InternalError {
    fn from(e: SessionGone) -> Self {
        crate::error::InternalError::io(
            "entering a handle",
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, e),
        )
    }
}

impl SessionEntry {
    /// `Err` once the session is closing: call it under the lock of the table a request is
    /// about to enter something in, so that the session's close (which takes that lock after
    /// marking the session closed) sees the entry or the request sees the close.
    pub(crate) fn ensure_open(&self) -> Result<(), crate::error::InternalError> {
        if self.outbox.is_closed() { Err(SessionGone.into()) } else { Ok(()) }
    }

    pub(crate) fn touch(&self, now: u64) {
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// Marks the session as one a broker before this one served: from now on the ids of the
    /// requests read are noted, until the client asks which of its requests were lost.
    pub(crate) fn mark_restarted(&self) {
        *self.read_since_restart.lock().expect("resync poisoned") =
            Some(std::collections::HashSet::new());
        self.restarted.store(true, Ordering::SeqCst);
    }

    /// Whether a broker before this one served the session.
    pub(crate) fn was_restarted(&self) -> bool {
        self.restarted.load(Ordering::SeqCst)
    }

    /// Notes a request read (only between a restart and the client's resynchronization,
    /// which comes at once: at most a few thousand ids; past that, the client is taken not to
    /// resynchronize and nothing is noted any more).
    pub(crate) fn read_request(&self, id: u64) {
        if !self.restarted.load(Ordering::Relaxed) {
            return;
        }
        let mut seen = self.read_since_restart.lock().expect("resync poisoned");
        match seen.as_mut() {
            Some(s) if s.len() < 4096 => {
                s.insert(id);
            }
            Some(_) => *seen = None,
            None => {}
        }
    }

    /// `broker.Resync`: of the requests the client sent before it heard of the restart, those
    /// this broker never read (the one before it read them and died): they are lost.
    pub(crate) fn resync(&self, sent: &[u64]) -> Vec<u64> {
        match self.read_since_restart.lock().expect("resync poisoned").take() {
            Some(seen) => sent.iter().copied().filter(|id| !seen.contains(id)).collect(),
            None => Vec::new(),
        }
    }

    /// Marks the session as waiting for something until the returned guard drops.
    pub(crate) fn interest(self: &Arc<Self>) -> Interest {
        self.interest.fetch_add(1, Ordering::SeqCst);
        Interest(self.clone())
    }
}

/// Why a session was not admitted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// Too many sessions of unpackaged processes.
    #[error(
        "{0} sessions of unpackaged processes are open, the most allowed ([limits] connections); close some"
    )]
    Connections(usize),
    /// Too many sessions of one package.
    #[error("package {0} has {1} sessions open, the most allowed ([limits] sessions-per-package)")]
    Package(String, usize),
    /// The fd budget is spent.
    #[error(
        "the broker holds as many files for its clients as it may ({0}); close some sessions or objects"
    )]
    Fds(usize),
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<u64, Arc<SessionEntry>>>,
    /// Held across an admission's count, eviction and insertion, so two sessions accepted at
    /// once cannot both see room for one. It holds the sessions `OpenSession` promised and that
    /// are not admitted yet (session id → package family, lowercase): they count as live, so a
    /// client opening sessions faster than they are admitted is refused when the cap is reached,
    /// not answered and then closed.
    admitting: Mutex<HashMap<u64, Option<String>>>,
    start: Instant,
    /// The bytes queued for all sessions (`queued-reply-bytes-total`).
    queued_total: Arc<QueuedTotal>,
    /// The turns pipelining sessions share (see [`Sessions::turn`]).
    turns: Arc<crate::turns::Turns>,
}

impl Sessions {
    /// No sessions yet; all of them together may have `queued_total` bytes of replies and
    /// events queued, and `turns` of them pipeline requests at once.
    pub fn new(queued_total: usize, turns: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            admitting: Mutex::new(HashMap::new()),
            start: Instant::now(),
            queued_total: QueuedTotal::new(queued_total),
            turns: crate::turns::Turns::new(turns),
        }
    }

    /// Waits for one of the turns that sessions pipelining requests share, for a session of
    /// `caller` ([`crate::turns`]: round-robin by package or unpackaged process, in the order
    /// they asked within one): a flood of pipelining clients is worked through one session at
    /// a time per turn, a pipelining client of another principal waits for at most one turn
    /// of the flooder's, and sessions that send one request at a time never wait for a turn.
    pub(crate) async fn turn(&self, caller: &crate::caller::Caller) -> Option<crate::turns::Turn> {
        self.turns.take(crate::turns::Principal::of(caller)).await
    }

    /// Whether sessions of `caller`'s principal are waiting for a shared turn: a new session of
    /// a principal that pipelines starts pipelining at once, so that opening more sessions
    /// does not get a flooder more than its one turn a round.
    pub(crate) fn principal_waits_for_turns(&self, caller: &crate::caller::Caller) -> bool {
        self.turns.is_waiting(&crate::turns::Principal::of(caller))
    }

    /// Bytes queued for all sessions together.
    pub fn queued_bytes(&self) -> usize {
        self.queued_total.bytes()
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionEntry>>> {
        self.map.lock().expect("sessions poisoned")
    }

    /// The live sessions of a package family.
    pub(crate) fn of_package(&self, family: &str) -> usize {
        self.lock()
            .values()
            .filter(|e| e.caller.family_name().is_some_and(|f| f.eq_ignore_ascii_case(family)))
            .count()
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live sessions of unpackaged processes (public connections and the sessions opened over
    /// them), those already closing aside.
    fn unpackaged(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.caller.family_name().is_none() && !e.outbox.is_closed())
            .count()
    }

    /// Sessions of `family` (`None`: of unpackaged processes) live or promised.
    fn counted(&self, promised: &HashMap<u64, Option<String>>, family: Option<&str>) -> usize {
        let lc = family.map(str::to_ascii_lowercase);
        let promised = promised.values().filter(|f| **f == lc).count();
        promised
            + match family {
                None => self.unpackaged(),
                Some(f) => self.of_package(f),
            }
    }

    fn refusal(&self, shared: &Shared, family: Option<&str>, n: usize) -> Option<Refused> {
        let limits = &shared.config.limits;
        match family {
            None if n >= limits.connections => Some(Refused::Connections(n)),
            Some(f) if n >= limits.sessions_per_package => Some(Refused::Package(f.to_owned(), n)),
            _ => None,
        }
    }

    /// Promises `child` (a session `OpenSession` hands out) a place: refused when its package,
    /// or the user's unpackaged processes, have as many sessions live or promised as they may.
    pub(crate) fn reserve(&self, shared: &Shared, child: &Caller) -> Result<(), Refused> {
        let mut promised = self.admitting.lock().expect("admission poisoned");
        let family = child.family_name();
        let n = self.counted(&promised, family);
        if let Some(refused) = self.refusal(shared, family, n) {
            return Err(refused);
        }
        promised.insert(child.session_id, family.map(str::to_ascii_lowercase));
        Ok(())
    }

    /// Whether a package may open one more session.
    pub(crate) fn room_for_package(&self, shared: &Shared, family: &str) -> Result<(), Refused> {
        let promised = self.admitting.lock().expect("admission poisoned");
        let n = self.counted(&promised, Some(family));
        self.refusal(shared, Some(family), n).map_or(Ok(()), Err)
    }

    /// Admits a session: the limits are checked (a full table of unpackaged sessions first
    /// closes its longest idle session), the fd it costs is charged.
    pub(crate) fn admit(
        &self,
        shared: &Shared,
        caller: Caller,
    ) -> Result<(Arc<SessionEntry>, mpsc::UnboundedReceiver<Outgoing>), Refused> {
        let limits = &shared.config.limits;
        let mut promised = self.admitting.lock().expect("admission poisoned");
        promised.remove(&caller.session_id);
        let family = caller.family_name();
        let n = self.counted(&promised, family);
        if let Some(refused) = self.refusal(shared, family, n) {
            // Unpackaged sessions, on the public socket or opened over one, share the cap;
            // an idle one that holds nothing makes room.
            if family.is_some() || !self.close_longest_idle(shared) {
                return Err(refused);
            }
        }
        let charge = shared.fds.try_charge(1).ok_or(Refused::Fds(shared.fds.max()))?;
        let (outbox, rx) = Outbox::new(limits.queued_reply_bytes, self.queued_total.clone());
        let entry = Arc::new(SessionEntry {
            caller: Arc::new(caller),
            outbox,
            last_active: AtomicU64::new(self.now()),
            interest: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            _fds: charge,
            restarted: std::sync::atomic::AtomicBool::new(false),
            read_since_restart: Mutex::new(None),
        });
        self.lock().insert(entry.caller.session_id, entry.clone());
        Ok((entry, rx))
    }

    /// Whether an unpackaged session holds nothing and waits for nothing (so closing it loses
    /// nothing of its peer's). Packaged sessions are bounded per package and never closed to
    /// make room.
    fn holds_nothing(shared: &Shared, e: &SessionEntry) -> bool {
        let id = e.caller.session_id;
        e.caller.family_name().is_none()
            && e.in_flight.load(Ordering::SeqCst) == 0
            && e.interest.load(Ordering::SeqCst) == 0
            && e.outbox.queued() == 0
            && shared.named_objects.handles_of(id) == 0
            && shared.pipes.instances_of(id) == 0
            && !shared.app_services.hosts_in(id)
    }

    /// Closes the unpackaged session idle the longest that holds nothing; whether there was one.
    fn close_longest_idle(&self, shared: &Shared) -> bool {
        let victim = self
            .lock()
            .values()
            .filter(|e| !e.outbox.is_closed() && Self::holds_nothing(shared, e))
            .min_by_key(|e| e.last_active.load(Ordering::Relaxed))
            .cloned();
        match victim {
            Some(v) => {
                v.outbox
                    .close("the broker's table of sessions is full and this one was idle longest");
                true
            }
            None => false,
        }
    }

    /// Closes unpackaged sessions that held nothing and asked nothing for the idle timeout.
    pub(crate) fn close_idle(&self, shared: &Shared) {
        let timeout = shared.config.limits.idle_timeout_secs.saturating_mul(1000);
        let now = self.now();
        let idle: Vec<_> = self
            .lock()
            .values()
            .filter(|e| {
                now.saturating_sub(e.last_active.load(Ordering::Relaxed)) >= timeout
                    && Self::holds_nothing(shared, e)
            })
            .cloned()
            .collect();
        for e in idle {
            e.outbox.close(format!(
                "idle for {} s with nothing open ([limits] idle-timeout-secs)",
                shared.config.limits.idle_timeout_secs
            ));
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}
