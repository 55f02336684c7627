//! The turns pipelining sessions share ([`crate::session`]'s pacing), handed out round-robin
//! by *principal*: a package (all its processes and sessions) or, for unpackaged callers, a
//! process. A principal with a thousand pipelining sessions gets one turn in its round, the
//! same as a principal with one, so a client that pipelines waits for at most one turn of
//! each other principal — not for one turn of every session a flooder opened.
//!
//! Within a principal, its sessions take turns in the order they asked. A turn is given back
//! when its [`Turn`] is dropped; a waiter that went away meanwhile (its session ended) is
//! skipped, and its turn goes to the next.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::caller::Caller;

/// Whose turn it is: the unit the turns are shared between.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Principal {
    /// A package family (lower case): all its processes and their sessions.
    Package(String),
    /// An unpackaged process (its pid).
    Process(u32),
}

impl Principal {
    /// The principal a session's caller belongs to.
    pub(crate) fn of(caller: &Caller) -> Principal {
        match caller.family_name() {
            Some(family) => Principal::Package(family.to_ascii_lowercase()),
            None => Principal::Process(caller.pid),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Turns nobody holds.
    free: usize,
    /// Principals with a session waiting, in the order their turn comes.
    order: VecDeque<Principal>,
    /// Each waiting principal's sessions, in the order they asked.
    waiting: HashMap<Principal, VecDeque<oneshot::Sender<Turn>>>,
}

/// A fixed number of turns, shared round-robin by principal.
#[derive(Debug)]
pub(crate) struct Turns {
    state: Mutex<State>,
}

/// One turn, held until dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    /// `None` once given on (or for a turn that was never handed out).
    turns: Option<Arc<Turns>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turns) = self.turns.take() {
            turns.pass_on();
        }
    }
}

impl Turns {
    /// `n` turns (at least one).
    pub(crate) fn new(n: usize) -> Arc<Turns> {
        Arc::new(Turns { state: Mutex::new(State { free: n.max(1), ..State::default() }) })
    }

    /// Waits for a turn for a session of `principal`; `None` only if the turns are gone.
    pub(crate) async fn take(self: &Arc<Self>, principal: Principal) -> Option<Turn> {
        let rx = {
            let mut s = self.state.lock().expect("turns poisoned");
            if s.free > 0 && s.order.is_empty() {
                s.free -= 1;
                return Some(Turn { turns: Some(self.clone()) });
            }
            let (tx, rx) = oneshot::channel();
            let State { order, waiting, .. } = &mut *s;
            let queue = waiting.entry(principal.clone()).or_default();
            if queue.is_empty() {
                order.push_back(principal);
            }
            queue.push_back(tx);
            rx
        };
        rx.await.ok()
    }

    /// Whether sessions of `principal` are waiting for a turn (it pipelines now, e.g. a flooder
    /// with many sessions); a new session of it then starts pipelining too.
    pub(crate) fn is_waiting(&self, principal: &Principal) -> bool {
        self.state.lock().expect("turns poisoned").waiting.contains_key(principal)
    }

    /// Gives a turn that was given back to the next principal's first waiting session, or
    /// keeps it free.
    fn pass_on(self: &Arc<Self>) {
        loop {
            let next = {
                let mut s = self.state.lock().expect("turns poisoned");
                let State { order, waiting, free } = &mut *s;
                let mut found = None;
                while let Some(p) = order.pop_front() {
                    let queue = waiting.get_mut(&p).expect("a waiting principal has a queue");
                    // Sessions that stopped waiting are dropped here, not given a turn.
                    while let Some(tx) = queue.pop_front() {
                        if !tx.is_closed() {
                            found = Some(tx);
                            break;
                        }
                    }
                    if queue.is_empty() {
                        waiting.remove(&p);
                    } else {
                        order.push_back(p);
                    }
                    if found.is_some() {
                        break;
                    }
                }
                if found.is_none() {
                    *free += 1;
                }
                found
            };
            let Some(tx) = next else { return };
            match tx.send(Turn { turns: Some(self.clone()) }) {
                Ok(()) => return,
                // It stopped waiting just now: the turn goes to the next one, without a
                // second pass through `Drop`.
                Err(mut turn) => turn.turns = None,
            }
        }
    }

    /// A free turn, if one is free and nobody waits (for tests).
    #[cfg(test)]
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Turn> {
        let mut s = self.state.lock().expect("turns poisoned");
        (s.free > 0 && s.order.is_empty()).then(|| {
            s.free -= 1;
            Turn { turns: Some(self.clone()) }
        })
    }

    /// Turns nobody holds, and sessions waiting (for tests).
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let s = self.state.lock().expect("turns poisoned");
        (s.free, s.waiting.values().map(VecDeque::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(n: &str) -> Principal {
        Principal::Package(n.to_owned())
    }

    /// A principal counts as waiting while one of its sessions waits for a turn (then a new
    /// session of it starts pipelining), and no longer once it has been served.
    #[tokio::test]
    async fn a_principal_waits_while_one_of_its_sessions_does() {
        let t = Turns::new(1);
        let held = t.take(pkg("other")).await.unwrap();
        assert!(!t.is_waiting(&pkg("flooder")), "holding a turn is not waiting");
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.take(pkg("flooder")).await })
        };
        while t.counts().1 == 0 {
            tokio::task::yield_now().await;
        }
        assert!(t.is_waiting(&pkg("flooder")));
        assert!(!t.is_waiting(&pkg("other")));
        drop(held);
        let turn = waiter.await.unwrap().unwrap();
        assert!(!t.is_waiting(&pkg("flooder")));
        drop(turn);
    }

    #[tokio::test]
    async fn free_turns_are_taken_at_once_and_come_back_when_dropped() {
        let t = Turns::new(2);
        let a = t.take(pkg("a")).await.unwrap();
        let b = t.take(pkg("a")).await.unwrap();
        assert_eq!(t.counts(), (0, 0));
        drop(a);
        drop(b);
        assert_eq!(t.counts(), (2, 0));
    }

    /// A flooder with many sessions waiting gets one turn a round: a second principal that
    /// asks after all of them is served next, not after each of them.
    #[tokio::test]
    async fn a_principal_with_many_waiting_sessions_gets_one_turn_a_round() {
        let t = Turns::new(1);
        let held = t.take(Principal::Process(1)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let spawn_waiter = |p: Principal, name: &'static str| {
            let (t, order) = (t.clone(), order.clone());
            tokio::spawn(async move {
                let turn = t.take(p).await.unwrap();
                order.lock().unwrap().push(name);
                drop(turn);
            })
        };
        for _ in 0..100 {
            tasks.push(spawn_waiter(Principal::Process(1), "flooder"));
            tokio::task::yield_now().await;
        }
        tasks.push(spawn_waiter(pkg("victim"), "victim"));
        tokio::task::yield_now().await;
        while t.counts().1 < 101 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap();
        let victim = order.iter().position(|n| *n == "victim").unwrap();
        assert!(victim <= 1, "the victim waited for {victim} flooder turns: {order:?}");
        assert_eq!(t.counts(), (1, 0));
    }

    /// A session that stops waiting (it ended) never holds a turn: the turn goes on.
    #[tokio::test]
    async fn a_waiter_that_went_away_is_skipped() {
        let t = Turns::new(1);
        let held = t.take(pkg("a")).await.unwrap();
        let gone = {
            let t = t.clone();
            tokio::spawn(async move { t.take(pkg("b")).await })
        };
        while t.counts().1 < 1 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        let next = {
            let t = t.clone();
            tokio::spawn(async move { t.take(pkg("c")).await.is_some() })
        };
        while t.counts().1 < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(next.await.unwrap());
        assert_eq!(t.counts(), (1, 0));
    }
}
