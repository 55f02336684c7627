//! Synchronization objects as Windows has them (issue 16, items 1 and 4), against a real broker
//! and real confined processes of two packages (the `sync-probe` helper):
//!
//! * a handle with `SYNCHRONIZE` alone cannot signal an event or a semaphore, whatever it does
//!   with the raw fd it got, and a semaphore's holder with both rights cannot push it past its
//!   maximum through its fd either;
//! * `ReleaseSemaphore` past the maximum is `ERROR_TOO_MANY_POSTS` (298) and changes nothing,
//!   and returns the previous count;
//! * a mutex whose owner dies holding it goes to the next waiter with `WAIT_ABANDONED`; only the
//!   owner releases (`ERROR_NOT_OWNER`, 288); ownership is recursive;
//! * a second `CreateMutex` of a name reports `ERROR_ALREADY_EXISTS` (183) and does not own it:
//!   single-instance detection;
//! * waitable timers fire (once, periodically, at an absolute time), manual vs synchronization
//!   reset, `CancelWaitableTimer` keeps the signalled state;
//! * waits time out with `WAIT_TIMEOUT` (258); `WaitForMultipleObjects` waits for any or all.
//!
//! Outcomes only: no test asserts how long anything took.

use std::process::{Child, Command, Stdio};

use appipc::named_objects::{
    EVENT_MODIFY_STATE, Event, GENERIC_ALL, INFINITE, MAXIMUM_WAIT_OBJECTS, MUTEX_MODIFY_STATE,
    Mutex, SEMAPHORE_MODIFY_STATE, SYNCHRONIZE, Semaphore, TIMER_MODIFY_STATE, WAIT_TIMEOUT,
    WaitHandle, WaitResult, WaitableTimer, wait_for_multiple_objects,
};
use appipc_testkit::{TestBroker, unique};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn install_probe(b: &TestBroker, name: &str, publisher: &str) -> String {
    b.install_app(name, publisher, "sync-probe")
}

fn fabrikam(b: &TestBroker) -> String {
    install_probe(b, "Fabrikam.SyncProbe", "CN=Fabrikam Inc, O=Fabrikam, C=US")
}

fn contoso(b: &TestBroker) -> String {
    install_probe(b, "Contoso.SyncProbe", "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH")
}

fn launch(b: &TestBroker, pfn: &str, steps: &[&str]) -> Command {
    let mut cmd = b.cli();
    cmd.args(["launch", "--wait", pfn, "--"]).args(steps);
    cmd
}

/// Runs the probe confined as `pfn` with `steps` until it exits; returns its output.
fn probe(b: &TestBroker, pfn: &str, steps: &[&str]) -> String {
    let out = launch(b, pfn, steps).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the probe confined as `pfn` with `steps`, without waiting.
fn spawn_probe(b: &TestBroker, pfn: &str, steps: &[&str]) -> Child {
    launch(b, pfn, steps).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The result of step `step` in a probe's output.
fn result<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(step).and_then(|r| r.strip_prefix(" => ")))
        .unwrap_or_else(|| panic!("no result for {step:?} in:\n{out}"))
}

/// The Win32 code of an SDK error.
fn win32(e: appipc::Error) -> u32 {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => c,
        other => panic!("not a Win32 error: {other:?}: {e}"),
    }
}

/// Everyone (the user's side) and every app container may use it; labelled Low so that an
/// app container may change its state.
const SHARED: &str = "D:(A;;GA;;;WD)(A;;GA;;;AC)S:(ML;;NW;;;LW)";

/// Gives the user's side everything and the package only `rights`.
fn granting(pfn: &str, rights: u32) -> String {
    let sid = appipc_model::sid::appcontainer_sid(pfn);
    format!("D:(A;;GA;;;WD)(A;;{rights:#x};;;{sid})S:(ML;;NW;;;LW)")
}

#[test]
fn a_synchronize_only_holder_cannot_signal_through_its_fd_or_the_broker() {
    let b = TestBroker::start();
    let attacker = fabrikam(&b);
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let id = unique("x");
    let (ev, sem, sem2) =
        (format!(r"Session\ev{id}"), format!(r"Session\sem{id}"), format!(r"Session\semb{id}"));
    let sync = granting(&attacker, SYNCHRONIZE);
    let both = granting(&attacker, SYNCHRONIZE | SEMAPHORE_MODIFY_STATE);
    let (event, semaphore, bounded) = rt.block_on(async {
        (
            Event::create(&s, &ev, false, false, Some(&sync)).await.unwrap().object,
            Semaphore::create(&s, &sem, 0, 10, Some(&sync)).await.unwrap().object,
            Semaphore::create(&s, &sem2, 0, 1, Some(&both)).await.unwrap().object,
        )
    });
    let sync_hex = format!("{SYNCHRONIZE:#x}");
    let both_hex = format!("{:#x}", SYNCHRONIZE | SEMAPHORE_MODIFY_STATE);
    let out = probe(
        &b,
        &attacker,
        &[
            "attack",
            "event",
            &ev,
            &sync_hex, // wait-only
            "attack",
            "semaphore",
            &sem,
            &sync_hex, // wait-only
            "attack",
            "semaphore",
            &sem2,
            &both_hex, // may release, up to the maximum
        ],
    );
    // The wait-only handles got an fd they can wait on, and nothing signals through it; the
    // broker refuses them too (5).
    assert_eq!(
        result(&out, &format!("attack event {ev} {sync_hex}")),
        "fd readiness write-refused signal-error-5",
        "{out}"
    );
    assert_eq!(
        result(&out, &format!("attack semaphore {sem} {sync_hex}")),
        "fd readiness write-refused signal-error-5",
        "{out}"
    );
    // Both rights: the raw fd still cannot add counts; the broker's release can, once (the
    // maximum is 1).
    assert_eq!(
        result(&out, &format!("attack semaphore {sem2} {both_hex}")),
        "fd readiness write-refused signal-ok",
        "{out}"
    );
    rt.block_on(async {
        assert_eq!(event.wait_timeout(0).await.unwrap(), WaitResult::Timeout, "not signalled");
        assert_eq!(semaphore.wait_timeout(0).await.unwrap(), WaitResult::Timeout, "count 0");
        // The bounded semaphore holds exactly the one count the broker released.
        assert_eq!(bounded.wait_timeout(0).await.unwrap(), WaitResult::Object(0));
        assert_eq!(bounded.wait_timeout(0).await.unwrap(), WaitResult::Timeout);
    });
}

#[test]
fn release_semaphore_past_its_maximum_is_298_and_returns_the_previous_count() {
    let b = TestBroker::start();
    let app = contoso(&b);
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let name = format!(r"Session\slots{}", unique("s"));
    let sem = rt.block_on(async {
        let c = Semaphore::create(&s, &name, 1, 3, Some(SHARED)).await.unwrap();
        assert!(!c.already_exists);
        c.object
    });
    let global = name.replacen("Session", "Global", 1);
    let out = probe(&b, &app, &["sem-release", &global, "1", "sem-release", &global, "2"]);
    assert_eq!(result(&out, &format!("sem-release {global} 1")), "previous 1", "{out}");
    assert_eq!(result(&out, &format!("sem-release {global} 2")), "error 298", "{out}");
    rt.block_on(async {
        // From here too: 2 of 3, one more fits, then 298, the count unchanged.
        assert_eq!(sem.release_count(1).await.unwrap(), 2);
        assert_eq!(win32(sem.release_count(1).await.unwrap_err()), 298);
        assert_eq!(win32(sem.release_count(0).await.unwrap_err()), 87);
        for _ in 0..3 {
            assert_eq!(sem.wait_timeout(0).await.unwrap(), WaitResult::Object(0));
        }
        assert_eq!(sem.wait_timeout(0).await.unwrap(), WaitResult::Timeout, "3 counts, no more");
        assert_eq!(sem.release_count(3).await.unwrap(), 0);
    });
}

#[test]
fn a_mutex_whose_owner_dies_holding_it_is_abandoned_to_the_next_waiter() {
    let b = TestBroker::start();
    let (x, y) = (fabrikam(&b), contoso(&b));
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let name = format!(r"Session\lock{}", unique("m"));
    let global = name.replacen("Session", "Global", 1);
    let m = rt.block_on(async {
        let m = Mutex::create(&s, &name, false, Some(SHARED)).await.unwrap().object;
        // Nobody owns it: releasing is 288.
        assert_eq!(win32(m.release().await.unwrap_err()), 288);
        m
    });
    // Package X takes it, and dies holding it.
    let out = probe(&b, &x, &["mutex-open", &global, "mutex-wait", &global, "INFINITE", "die"]);
    assert_eq!(result(&out, &format!("mutex-wait {global} INFINITE")), "object 0", "{out}");
    assert!(out.contains("die => dying"), "{out}");
    // Package Y's wait gets it abandoned, and owns it: a second wait is recursive, releasing
    // twice frees it, a third release is not the owner's (288).
    let out = probe(
        &b,
        &y,
        &[
            "mutex-open",
            &global,
            "mutex-wait",
            &global,
            "INFINITE",
            "mutex-wait",
            &global,
            "0",
            "mutex-release",
            &global,
            "mutex-release",
            &global,
            "mutex-release",
            &global,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.ends_with("INFINITE => abandoned 0")), "{out}");
    assert_eq!(result(&out, &format!("mutex-wait {global} 0")), "object 0", "recursive: {out}");
    let releases: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&*format!("mutex-release {global} => ")))
        .collect();
    assert_eq!(releases, ["released", "released", "error 288"], "{out}");
    rt.block_on(async {
        // Free and no longer abandoned.
        assert_eq!(m.wait(0).await.unwrap(), WaitResult::Object(0));
        // Another process's wait times out while this one owns it.
        let out = probe(&b, &y, &["wait", "mutex", &global, "0"]);
        assert_eq!(result(&out, &format!("wait mutex {global} 0")), "timeout", "{out}");
        m.release().await.unwrap();
    });
}

#[test]
fn a_second_create_mutex_is_183_so_a_second_instance_knows_it_is_one() {
    let b = TestBroker::start();
    let app = fabrikam(&b);
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let mutex = r"Local\SingleInstance";
    let done = r"Local\done";
    // The first instance creates the mutex owning it, and waits until told to go.
    let mut first = spawn_probe(
        &b,
        &app,
        &["mutex-create", mutex, "1", "event-create", done, "event-wait", done, "INFINITE"],
    );
    let path = format!(r"{}\done", appipc_model::named_objects::named_object_path(&app));
    rt.block_on(async {
        // Until the first instance's event is there (it is created after the mutex); if the
        // first instance ends before, say what it printed.
        loop {
            let listed = appipc::named_objects::list(&s).await.unwrap();
            if listed.iter().any(|o| o.name == "done") {
                break;
            }
            if first.try_wait().unwrap().is_some() {
                let mut out = String::new();
                std::io::Read::read_to_string(first.stdout.as_mut().unwrap(), &mut out).unwrap();
                panic!("the first instance ended before creating its event:\n{out}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let second = probe(
        &b,
        &app,
        &[
            "mutex-create",
            mutex,
            "1",
            "mutex-wait",
            mutex,
            "0",
            "mutex-release",
            mutex,
            "event-set",
            done,
        ],
    );
    assert_eq!(result(&second, &format!("mutex-create {mutex} 1")), "exists 183", "{second}");
    // It did not take ownership, and cannot: the first instance owns it.
    assert_eq!(result(&second, &format!("mutex-wait {mutex} 0")), "timeout", "{second}");
    assert_eq!(result(&second, &format!("mutex-release {mutex}")), "error 288", "{second}");
    assert_eq!(result(&second, &format!("event-set {done}")), "set", "{second}");
    let out = first.wait_with_output().unwrap();
    let first = String::from_utf8_lossy(&out.stdout);
    assert_eq!(result(&first, &format!("mutex-create {mutex} 1")), "created", "{first}");
    assert_eq!(result(&first, &format!("event-wait {done} INFINITE")), "object 0", "{first}");
    // An unconfined process of the user qualifies the name and sees the same answer.
    rt.block_on(async {
        let path = path.replace(r"\done", r"\SingleInstance");
        // The first instance has exited: the mutex went with its last handle.
        let again = Mutex::create(&s, r"Local\SingleInstance", true, None).await.unwrap();
        assert!(!again.already_exists);
        assert_eq!(win32(Mutex::open(&s, &path, SYNCHRONIZE).await.unwrap_err()), 2);
        let twice = Mutex::create(&s, r"Local\SingleInstance", true, None).await.unwrap();
        assert!(twice.already_exists);
        // Recursion inside one process: the creator owns it once; the second create did not
        // take it.
        assert_eq!(again.object.wait(0).await.unwrap(), WaitResult::Object(0));
        again.object.release().await.unwrap();
        again.object.release().await.unwrap();
        assert_eq!(win32(again.object.release().await.unwrap_err()), 288);
    });
}

#[test]
fn waitable_timers_fire_and_keep_windows_reset_rules() {
    let b = TestBroker::start();
    let app = contoso(&b);
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let id = unique("t");
    let (manual_name, sync_name) = (format!(r"Session\tm{id}"), format!(r"Session\ts{id}"));
    rt.block_on(async {
        let manual = WaitableTimer::create(&s, &manual_name, true, Some(SHARED)).await.unwrap();
        let sync = WaitableTimer::create(&s, &sync_name, false, Some(SHARED)).await.unwrap();
        let (manual, sync) = (manual.object, sync.object);
        // Not set: not signalled.
        assert_eq!(manual.wait(0).await.unwrap(), WaitResult::Timeout);
        // Relative, once: a manual-reset timer stays signalled, a synchronization timer
        // releases one wait.
        manual.set(-1, 0).await.unwrap();
        sync.set(-1, 0).await.unwrap();
        assert_eq!(manual.wait(INFINITE).await.unwrap(), WaitResult::Object(0));
        assert_eq!(manual.wait(0).await.unwrap(), WaitResult::Object(0), "still signalled");
        assert_eq!(sync.wait(INFINITE).await.unwrap(), WaitResult::Object(0));
        assert_eq!(sync.wait(0).await.unwrap(), WaitResult::Timeout, "taken by the wait");
        // Setting it again makes it non-signalled until due (an hour from now).
        manual.set(-36_000_000_000, 0).await.unwrap();
        assert_eq!(manual.wait(0).await.unwrap(), WaitResult::Timeout);
        // Cancelling keeps the state: not signalled stays so; signalled stays so.
        manual.cancel().await.unwrap();
        assert_eq!(manual.wait(0).await.unwrap(), WaitResult::Timeout);
        // Absolute: 2000-01-01T00:00:00Z is past, so at once.
        let y2k = 116_444_736_000_000_000 + 946_684_800 * 10_000_000;
        manual.set(y2k, 0).await.unwrap();
        assert_eq!(manual.wait(INFINITE).await.unwrap(), WaitResult::Object(0));
        manual.cancel().await.unwrap();
        assert_eq!(manual.wait(0).await.unwrap(), WaitResult::Object(0), "cancel kept it");
        // Periodic: every expiry releases a wait.
        sync.set(-1, 1).await.unwrap();
        for _ in 0..3 {
            assert_eq!(sync.wait(INFINITE).await.unwrap(), WaitResult::Object(0));
        }
        sync.cancel().await.unwrap();
        // A negative period is 87.
        assert_eq!(win32(sync.set(-1, -1).await.unwrap_err()), 87);
    });
    // Confined, another package: it waits on the periodic timer through a wait-only handle,
    // and may not set it.
    let timer = rt.block_on(async {
        let sync = WaitableTimer::open(&s, &sync_name, GENERIC_ALL).await.unwrap();
        assert_eq!(sync.granted_access() & TIMER_MODIFY_STATE, TIMER_MODIFY_STATE);
        sync.set(-1, 1).await.unwrap();
        sync
    });
    let global = sync_name.replacen("Session", "Global", 1);
    let sync_hex = format!("{SYNCHRONIZE:#x}");
    let out = probe(
        &b,
        &app,
        &["wait", "timer", &global, "INFINITE", "attack", "timer", &global, &sync_hex],
    );
    assert_eq!(result(&out, &format!("wait timer {global} INFINITE")), "object 0", "{out}");
    assert_eq!(
        result(&out, &format!("attack timer {global} {sync_hex}")),
        "fd readiness write-refused signal-error-5",
        "{out}"
    );
    drop(timer);
}

#[test]
fn waits_time_out_with_258_and_wait_for_multiple_objects_waits_for_any_or_all() {
    let b = TestBroker::start();
    let app = fabrikam(&b);
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    // Confined: a wait on its own event that nobody sets times out.
    let out = probe(&b, &app, &["event-create", r"Local\e", "event-wait", r"Local\e", "10"]);
    assert_eq!(result(&out, r"event-wait Local\e 10"), "timeout", "{out}");
    rt.block_on(async {
        let id = unique("w");
        let e1 = Event::create(&s, &format!("a{id}"), false, false, None).await.unwrap().object;
        let e2 = Event::create(&s, &format!("b{id}"), false, false, None).await.unwrap().object;
        let sem = Semaphore::create(&s, &format!("s{id}"), 0, 1, None).await.unwrap().object;
        let m = Mutex::create(&s, &format!("m{id}"), false, None).await.unwrap().object;
        let r = e1.wait_timeout(10).await.unwrap();
        assert_eq!((r, r.code()), (WaitResult::Timeout, WAIT_TIMEOUT));
        assert_eq!(WAIT_TIMEOUT, 258);
        // Any: the lowest index signalled; only that one is taken.
        e2.set().await.unwrap();
        let any: [&dyn WaitHandle; 3] = [&e1, &e2, &sem];
        assert_eq!(
            wait_for_multiple_objects(&any, false, INFINITE).await.unwrap(),
            WaitResult::Object(1)
        );
        assert_eq!(wait_for_multiple_objects(&any, false, 10).await.unwrap(), WaitResult::Timeout);
        e1.set().await.unwrap();
        e2.set().await.unwrap();
        assert_eq!(wait_for_multiple_objects(&any, false, 0).await.unwrap(), WaitResult::Object(0));
        assert!(e2.is_set().unwrap(), "the other one was left");
        // All: nothing is taken until every one is signalled.
        let all: [&dyn WaitHandle; 3] = [&e2, &sem, &m];
        assert_eq!(wait_for_multiple_objects(&all, true, 10).await.unwrap(), WaitResult::Timeout);
        assert!(e2.is_set().unwrap(), "an all-wait that timed out took nothing");
        sem.release().await.unwrap();
        let r = wait_for_multiple_objects(&all, true, INFINITE).await.unwrap();
        assert_eq!((r, r.code()), (WaitResult::Object(0), 0));
        assert!(!e2.is_set().unwrap(), "taken");
        assert_eq!(sem.wait_timeout(0).await.unwrap(), WaitResult::Timeout, "taken");
        // … and the mutex is this process's now.
        m.release().await.unwrap();
        // Parameters: none, too many, twice the same: 87.
        let code = |r: appipc::Result<WaitResult>| win32(r.unwrap_err());
        assert_eq!(code(wait_for_multiple_objects(&[], false, 0).await), 87);
        let many: Vec<&dyn WaitHandle> =
            (0..=MAXIMUM_WAIT_OBJECTS).map(|_| &e1 as &dyn WaitHandle).collect();
        assert_eq!(code(wait_for_multiple_objects(&many, false, 0).await), 87);
        assert_eq!(code(wait_for_multiple_objects(&[&e1, &e1], true, 0).await), 87);
        // A handle without SYNCHRONIZE: 5.
        let set_only = Event::open(&s, &format!("a{id}"), EVENT_MODIFY_STATE).await.unwrap();
        assert_eq!(code(set_only.wait_timeout(0).await), 5);
        let no_wait = Mutex::open(&s, &format!("m{id}"), MUTEX_MODIFY_STATE).await.unwrap();
        assert_eq!(code(no_wait.wait(0).await), 5);
    });
}

#[test]
fn blocking_waits_take_what_windows_takes_and_refuse_handles_that_need_the_broker() {
    let b = TestBroker::start();
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let id = unique("bw");
    let (auto, manual, sync_only, set_only, sem) = rt.block_on(async {
        let auto = Event::create(&s, &format!("a{id}"), false, false, None).await.unwrap().object;
        let manual = Event::create(&s, &format!("m{id}"), true, false, None).await.unwrap().object;
        let sync_only = Event::open(&s, &format!("a{id}"), SYNCHRONIZE).await.unwrap();
        let set_only = Event::open(&s, &format!("a{id}"), EVENT_MODIFY_STATE).await.unwrap();
        let sem = Semaphore::create(&s, &format!("s{id}"), 1, 1, None).await.unwrap().object;
        (auto, manual, sync_only, set_only, sem)
    });
    // Auto-reset: a completed wait takes the signal; 0 only looks; a time-out is 258.
    auto.set_blocking().unwrap();
    assert_eq!(auto.wait_blocking(0).unwrap(), WaitResult::Object(0));
    assert_eq!(auto.wait_blocking(0).unwrap(), WaitResult::Timeout, "taken by the wait");
    let r = auto.wait_blocking(20).unwrap();
    assert_eq!((r, r.code()), (WaitResult::Timeout, WAIT_TIMEOUT));
    // Manual-reset: stays signalled for every waiter until reset.
    manual.set_blocking().unwrap();
    assert_eq!(manual.wait_blocking(0).unwrap(), WaitResult::Object(0));
    assert_eq!(manual.wait_blocking(INFINITE).unwrap(), WaitResult::Object(0));
    rt.block_on(manual.reset()).unwrap();
    assert_eq!(manual.wait_blocking(0).unwrap(), WaitResult::Timeout);
    // One set releases one of two blocked waiters of an auto-reset event, set from another
    // handle (the async one) while they sleep.
    std::thread::scope(|scope| {
        let waiters: Vec<_> = (0..2).map(|_| scope.spawn(|| auto.wait_blocking(3000))).collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        rt.block_on(set_only.set()).unwrap();
        let mut got: Vec<WaitResult> =
            waiters.into_iter().map(|w| w.join().unwrap().unwrap()).collect();
        got.sort_by_key(|r| r.code());
        assert_eq!(got, [WaitResult::Object(0), WaitResult::Timeout], "exactly one released");
    });
    // Handles whose wait or set is the broker's: 50 (use the async calls), and nothing taken
    // or signalled by the refusal.
    auto.set_blocking().unwrap();
    assert_eq!(win32(sync_only.wait_blocking(0).unwrap_err()), 50);
    assert_eq!(win32(sync_only.set_blocking().unwrap_err()), 50);
    let sem_wait = appipc::named_objects::wait_for_single_object_blocking(&sem, 0);
    assert_eq!(win32(sem_wait.unwrap_err()), 50);
    assert_eq!(rt.block_on(sem.wait_timeout(0)).unwrap(), WaitResult::Object(0), "count kept");
    assert_eq!(auto.wait_blocking(0).unwrap(), WaitResult::Object(0), "signal kept");
    // Without SYNCHRONIZE: 5, as the async wait.
    assert_eq!(win32(set_only.wait_blocking(0).unwrap_err()), 5);
    rt.block_on(async { drop((auto, manual, sync_only, set_only, sem)) });
}
