//! Handles carry exactly the rights granted: every object type × rights asked × confined and
//! unconfined callers × own and other package, probed from the attacker's side (the raw fd the
//! broker handed over, not the SDK's view of it). An open with access 0 gets nothing.

use std::os::fd::{AsFd, OwnedFd};

use appipc::named_objects::{
    EVENT_MODIFY_STATE, FILE_MAP_READ, FILE_MAP_WRITE, GENERIC_READ, GENERIC_WRITE,
    MAXIMUM_ALLOWED, SYNCHRONIZE,
};
use appipc::named_pipes::{NamedPipeServer, PipeDirection, PipeOptions};
use appipc_testkit::{TestBroker, unique};
use appipc_wire::protocol::named_objects::{self as no, HandleFd, NamedObjectKind, ObjectType};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn install_probe(b: &TestBroker, name: &str, publisher: &str) -> String {
    b.install_app(name, publisher, "access-probe")
}

/// Runs the probe confined as `pfn` with `steps`; returns its output lines.
fn probe(b: &TestBroker, pfn: &str, steps: &[&str]) -> String {
    b.run_app(pfn, steps)
}

/// The line of step `step` in a probe's output.
fn result<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(step).and_then(|r| r.strip_prefix(" => ")))
        .unwrap_or_else(|| panic!("no result for {step:?} in:\n{out}"))
}

fn hex(n: u32) -> String {
    format!("{n:#x}")
}

async fn create(
    s: &appipc::Session,
    kind: NamedObjectKind,
    name: &str,
    sddl: &str,
) -> no::NamedObjectHandle {
    let request = no::Create { kind, name: name.to_owned(), sddl: Some(sddl.to_owned()) };
    let (h, _fds) = s.call_with_fds(request, &[]).await.unwrap();
    h
}

/// Opens as this (unconfined) test process, returning what came back.
async fn open_raw(
    s: &appipc::Session,
    ty: ObjectType,
    name: &str,
    access: u32,
) -> Result<(HandleFd, Option<OwnedFd>), appipc::WindowsCode> {
    let request = no::Open { object_type: ty, name: name.to_owned(), desired_access: access };
    match s.call_with_fds(request, &[]).await {
        Ok((h, mut fds)) => Ok((h.fd, fds.pop())),
        Err(e) => Err(e.windows_code()),
    }
}

#[test]
fn handles_carry_exactly_the_rights_granted() {
    let b = TestBroker::start();
    let other = install_probe(&b, "Fabrikam.Probe", "CN=Fabrikam Inc, O=Fabrikam, C=US");
    let own = install_probe(&b, "Contoso.Probe", "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH");
    let other_sid = appipc_model::sid::appcontainer_sid(&other).to_string();
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let id = unique("x");
    let (map, ev_sync, ev_mod, sem) = (
        format!(r"Session\map{id}"),
        format!(r"Session\evsync{id}"),
        format!(r"Session\evmod{id}"),
        format!(r"Session\sem{id}"),
    );
    let (pipe_in, pipe_dx) =
        (format!(r"\\.\pipe\Session\in{id}"), format!(r"\\.\pipe\Session\dx{id}"));

    // The test process (unconfined, the session namespace) creates the objects, each granting
    // the other package one right. As on Windows: the user's side (WD) grants everything, the
    // package's side one right, and the app container gets what both grant; the Low label
    // lets an app container (Low integrity) write what a Medium process created.
    let mut servers = Vec::new();
    rt.block_on(async {
        let grant =
            |mask: u32| format!("D:(A;;GA;;;WD)(A;;{mask:#x};;;{other_sid})S:(ML;;NW;;;LW)");
        create(
            &s,
            NamedObjectKind::FileMapping { size: 4096, writable: true },
            &map,
            &grant(FILE_MAP_READ),
        )
        .await;
        let event = NamedObjectKind::Event { manual_reset: true, initial_state: false };
        create(&s, event.clone(), &ev_sync, &grant(SYNCHRONIZE)).await;
        create(&s, event, &ev_mod, &grant(EVENT_MODIFY_STATE)).await;
        create(
            &s,
            NamedObjectKind::Semaphore { initial: 1, maximum: 5 },
            &sem,
            &grant(SYNCHRONIZE),
        )
        .await;
        for (name, direction, rights) in [
            (&pipe_in, PipeDirection::Inbound, GENERIC_WRITE),
            (&pipe_dx, PipeDirection::Duplex, GENERIC_READ),
        ] {
            for _ in 0..8 {
                let options =
                    PipeOptions { direction, sddl: Some(grant(rights)), ..PipeOptions::default() };
                servers.push(NamedPipeServer::create(&s, name, &options).await.unwrap());
            }
        }
    });

    // Another package, confined: access 0 gets nothing; every handle does only what was granted.
    let (r, w) = (hex(FILE_MAP_READ), hex(FILE_MAP_WRITE));
    let (sync, modify, zero) = (hex(SYNCHRONIZE), hex(EVENT_MODIFY_STATE), hex(0));
    let both = hex(SYNCHRONIZE | EVENT_MODIFY_STATE);
    let max = hex(MAXIMUM_ALLOWED);
    let (gr, gw, grw) = (hex(GENERIC_READ), hex(GENERIC_WRITE), hex(GENERIC_READ | GENERIC_WRITE));
    let steps: Vec<String> = [
        ("map", &map, &zero),
        ("map", &map, &r),
        ("map", &map, &w),
        ("map", &map, &max),
        ("event", &ev_sync, &zero),
        ("event", &ev_sync, &sync),
        ("event", &ev_sync, &modify),
        ("event", &ev_sync, &both),
        ("event", &ev_mod, &zero),
        ("event", &ev_mod, &modify),
        ("event", &ev_mod, &sync),
        ("set", &ev_sync, &sync),
        ("set", &ev_mod, &modify),
        ("sem", &sem, &zero),
        ("sem", &sem, &sync),
        ("sem", &sem, &both),
        ("pipe", &pipe_in, &zero),
        ("pipe", &pipe_in, &gw),
        ("pipe", &pipe_in, &gr),
        ("pipe", &pipe_dx, &zero),
        ("pipe", &pipe_dx, &gr),
        ("pipe", &pipe_dx, &grw),
    ]
    .iter()
    .flat_map(|(v, n, a)| [v.to_string(), n.to_string(), a.to_string()])
    .collect();
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = probe(&b, &other, &steps);
    let expect = |step: String, want: &str| {
        assert_eq!(result(&out, &step), want, "{step}\n{out}");
    };
    expect(format!("map {map} {zero}"), "error 5");
    expect(format!("map {map} {r}"), "fd read-only read no-write");
    expect(format!("map {map} {w}"), "error 5");
    expect(format!("map {map} {max}"), "fd read-only read no-write");
    expect(format!("event {ev_sync} {zero}"), "error 5");
    expect(format!("event {ev_sync} {sync}"), "fd readiness no-signal poll");
    expect(format!("event {ev_sync} {modify}"), "error 5");
    expect(format!("event {ev_sync} {both}"), "error 5");
    expect(format!("event {ev_mod} {zero}"), "error 5");
    expect(format!("event {ev_mod} {modify}"), "fd none no-signal no-poll");
    expect(format!("event {ev_mod} {sync}"), "error 5");
    expect(format!("set {ev_sync} {sync}"), "set error 5");
    expect(format!("set {ev_mod} {modify}"), "set ok");
    expect(format!("sem {sem} {zero}"), "error 5");
    expect(format!("sem {sem} {sync}"), "fd readiness no-signal poll");
    expect(format!("sem {sem} {both}"), "error 5");
    expect(format!("pipe {pipe_in} {zero}"), "error 5");
    expect(format!("pipe {pipe_in} {gw}"), "fd object no-read write");
    expect(format!("pipe {pipe_in} {gr}"), "error 5");
    expect(format!("pipe {pipe_dx} {zero}"), "error 5");
    expect(format!("pipe {pipe_dx} {gr}"), "fd object read no-write");
    expect(format!("pipe {pipe_dx} {grw}"), "error 5");

    rt.block_on(async {
        // The event the other package could only wait on was not signalled through its fd; the
        // one it may modify was set (through the broker).
        let (_, fd) = open_raw(&s, ObjectType::Event, &ev_sync, SYNCHRONIZE).await.unwrap();
        assert!(
            !appipc_sys::aio::is_readable(fd.unwrap()).unwrap(),
            "a wait-only handle signalled"
        );
        let (_, fd) = open_raw(&s, ObjectType::Event, &ev_mod, SYNCHRONIZE).await.unwrap();
        assert!(appipc_sys::aio::is_readable(fd.unwrap()).unwrap(), "SetEvent through the broker");

        // Unconfined callers of the user: access 0 gets nothing, the rest what they ask.
        assert_eq!(
            open_raw(&s, ObjectType::FileMapping, &map, 0).await.unwrap_err(),
            appipc::WindowsCode::Win32(5)
        );
        let (kind, fd) = open_raw(&s, ObjectType::FileMapping, &map, FILE_MAP_READ).await.unwrap();
        assert_eq!(kind, HandleFd::ReadOnly);
        assert!(
            appipc_sys::memfd::SharedView::map(fd.as_ref().unwrap().as_fd(), 4096, true).is_err()
        );
        let (kind, _) = open_raw(&s, ObjectType::FileMapping, &map, FILE_MAP_WRITE).await.unwrap();
        assert_eq!(kind, HandleFd::Object);
        let (kind, _) =
            open_raw(&s, ObjectType::Event, &ev_sync, EVENT_MODIFY_STATE).await.unwrap();
        assert_eq!(kind, HandleFd::None);
        assert_eq!(
            open_raw(&s, ObjectType::Event, &ev_sync, 0).await.unwrap_err(),
            appipc::WindowsCode::Win32(5)
        );
        let pipe = appipc::named_pipes::open(&s, &pipe_dx, 0).await.unwrap_err();
        assert_eq!(pipe.windows_code(), appipc::WindowsCode::Win32(5));
    });

    // The own package, confined: its objects' default descriptor gives it everything, but an
    // open still gets only the rights asked, and access 0 nothing.
    let out = probe(
        &b,
        &own,
        &[
            "create-map",
            r"Local\own",
            "4096",
            "map",
            r"Local\own",
            &zero,
            "map",
            r"Local\own",
            &r,
            "map",
            r"Local\own",
            &hex(FILE_MAP_READ | FILE_MAP_WRITE),
            "create-event",
            r"Local\ownev",
            "event",
            r"Local\ownev",
            &zero,
            "event",
            r"Local\ownev",
            &sync,
            "event",
            r"Local\ownev",
            &both,
        ],
    );
    assert_eq!(result(&out, r"map Local\own 0x0"), "error 5", "{out}");
    assert_eq!(result(&out, r"map Local\own 0x4"), "fd read-only read no-write", "{out}");
    assert_eq!(result(&out, r"map Local\own 0x6"), "fd object read write", "{out}");
    assert_eq!(result(&out, r"event Local\ownev 0x0"), "error 5", "{out}");
    assert_eq!(result(&out, r"event Local\ownev 0x100000"), "fd readiness no-signal poll", "{out}");
    assert_eq!(result(&out, r"event Local\ownev 0x100002"), "fd object signal poll", "{out}");
    drop(servers);
}

/// SDDL as Windows reads it, from inside a real app container: the mandatory label (an app
/// container runs at Low and may not write what a Medium process created unless it is
/// labelled Low), NULL and empty DACLs, and malformed text refused with the position (87), an
/// owner the creator may not assign (1307), a label above the creator (1299).
#[test]
fn security_descriptors_are_read_as_windows_reads_them() {
    let b = TestBroker::start();
    let app = install_probe(&b, "Fabrikam.SddlProbe", "CN=Fabrikam Inc, O=Fabrikam, C=US");
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let id = unique("sd");
    let names: Vec<(String, &str)> = [
        ("medium", "D:(A;;GA;;;WD)(A;;GA;;;AC)"),
        ("low", "D:(A;;GA;;;WD)(A;;GA;;;AC)S:(ML;;NW;;;LW)"),
        ("null", "D:NO_ACCESS_CONTROL S:(ML;;NW;;;LW)"),
        ("empty", "D:S:(ML;;NW;;;LW)"),
        ("audited", "D:(A;;GA;;;WD)(A;;GA;;;AC)S:(AU;SAFA;GA;;;WD)(ML;;NW;;;LW)"),
    ]
    .iter()
    .map(|(n, sddl)| (format!(r"Session\{n}{id}"), *sddl))
    .collect();
    rt.block_on(async {
        for (name, sddl) in &names {
            create(&s, NamedObjectKind::FileMapping { size: 4096, writable: true }, name, sddl)
                .await;
        }
    });
    let (r, rw) = (hex(FILE_MAP_READ), hex(FILE_MAP_READ | FILE_MAP_WRITE));
    let mut steps = Vec::new();
    for (name, _) in &names {
        steps.extend(["map".to_owned(), name.clone(), r.clone()]);
        steps.extend(["map".to_owned(), name.clone(), rw.clone()]);
    }
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = probe(&b, &app, &steps);
    let got = |i: usize, access: &str| result(&out, &format!("map {} {access}", names[i].0));
    assert_eq!(got(0, &r), "fd read-only read no-write", "reading up is allowed\n{out}");
    assert_eq!(got(0, &rw), "error 5", "no-write-up: Low may not write a Medium object\n{out}");
    assert_eq!(got(1, &rw), "fd object read write", "labelled Low\n{out}");
    assert_eq!(got(2, &rw), "fd object read write", "a NULL DACL grants everyone\n{out}");
    assert_eq!(got(3, &r), "error 5", "an empty DACL grants nobody\n{out}");
    assert_eq!(got(4, &rw), "fd object read write", "the audit entry is set aside\n{out}");
    assert!(b.log().contains("does not audit"), "the set-aside entry is logged");
    // Refusals with Windows' codes, naming the problem.
    rt.block_on(async {
        for (sddl, code, needle) in [
            ("D:(A;;GA;;;WD", 87, "at character 3: an entry is not closed"),
            ("D:(A;;GA;;;DA)", 87, "relative to a Windows domain"),
            ("O:BAD:(A;;GA;;;WD)", 1307, "S-1-5-32-544"),
            ("D:(A;;GA;;;WD)S:(ML;;NW;;;HI)", 1299, "above the creator"),
        ] {
            let request = no::Create {
                kind: NamedObjectKind::Event { manual_reset: false, initial_state: false },
                name: format!(r"Session\bad{}", unique("")),
                sddl: Some(sddl.to_owned()),
            };
            let e = s.call_with_fds(request, &[]).await.unwrap_err();
            assert_eq!(e.windows_code(), appipc::WindowsCode::Win32(code), "{sddl}: {e}");
            assert!(e.to_string().contains(needle), "{sddl}: {e}");
        }
    });
}

/// Object names are case-sensitive inside an app container as outside, keywords included
/// (`Local\`, not `local\`); pipe names are not.
#[test]
fn object_names_are_case_sensitive_pipe_names_are_not() {
    let b = TestBroker::start();
    let app = install_probe(&b, "Contoso.CaseProbe", "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH");
    let out = probe(
        &b,
        &app,
        &[
            "create-map",
            r"Local\Case",
            "4096",
            "create-map",
            r"Local\case",
            "4096",
            "map",
            r"Local\Case",
            "0x4",
            "map",
            r"Local\CASE",
            "0x4",
            "map",
            r"local\Case",
            "0x4",
            "map",
            r"LOCAL\Case",
            "0x4",
        ],
    );
    assert_eq!(result(&out, r"create-map Local\Case 4096"), "created", "{out}");
    assert_eq!(result(&out, r"create-map Local\case 4096"), "created", "a second object\n{out}");
    assert_eq!(result(&out, r"map Local\Case 0x4"), "fd read-only read no-write", "{out}");
    assert_eq!(result(&out, r"map Local\CASE 0x4"), "error 2", "{out}");
    assert_eq!(result(&out, r"map local\Case 0x4"), "error 123", "{out}");
    assert_eq!(result(&out, r"map LOCAL\Case 0x4"), "error 123", "{out}");
    // Pipes: one pipe, whatever the case.
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let name = format!(r"\\.\pipe\Local\CasePipe{}", unique(""));
        let _server = NamedPipeServer::create(&s, &name, &PipeOptions::default()).await.unwrap();
        let other = name.replace(r"\\.\pipe\Local\CasePipe", r"\\.\PIPE\local\casepipe");
        appipc::named_pipes::open(&s, &other, GENERIC_READ | GENERIC_WRITE).await.unwrap();
    });
}
