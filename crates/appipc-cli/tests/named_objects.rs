//! Named file mappings end to end, from real confined and unconfined processes.

use std::time::{Duration, Instant};

use appipc::named_objects::{FILE_MAP_READ, FileMapping, named_object_path};
use appipc::{ActivateOptions, ApplicationActivationManager};
use appipc_testkit::{HELLO, TestBroker, assemble_manifest, bin_dir, unique};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String) {
    let out = b.cli().args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn app(b: &TestBroker, pfn: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["launch", "--wait", pfn, "--"];
    all.extend_from_slice(args);
    cli(b, &all)
}

fn install_variant(b: &TestBroker, name: &str, publisher: &str) -> String {
    let text =
        HELLO.manifest.replace("name = \"Contoso.Hello\"", &format!("name = \"{name}\"")).replace(
            "publisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"",
            &format!("publisher = \"{publisher}\""),
        );
    let dir = assemble_manifest(&text, &b.root.path().join(unique("pkg")), &bin_dir()).unwrap();
    let (code, out) = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    let full = out.trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    format!("{}_{}", p[0], p[4])
}

fn wait_listed(b: &TestBroker, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, out) = cli(b, &["objects"]);
        if out.contains(name) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never appeared: {out}\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn file_mappings_across_packages_by_acl() {
    let b = TestBroker::start();
    let contoso = install_variant(&b, "Contoso.Hello", "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH");
    let fabrikam = install_variant(&b, "Fabrikam.Viewer", "CN=Fabrikam Inc, O=Fabrikam, C=US");
    let fabrikam_sid = appipc_model::sid::appcontainer_sid(&fabrikam).to_string();
    let rt = rt();
    let session = rt.block_on(async { b.session() });
    let aam = ApplicationActivationManager::new(&session);
    let prefix = rt.block_on(named_object_path(&session, &contoso)).unwrap();
    assert!(prefix.starts_with(r"AppContainerNamedObjects\S-1-15-2-"), "{prefix}");

    // Contoso creates two mappings and keeps them open: one with the default descriptor, one
    // that grants Fabrikam's package read access. As on Windows, an app container needs an
    // entry on the user's side too (OW: the owner, the user) and gets what both sides grant.
    let sddl = format!("D:(A;;GA;;;OW)(A;;GR;;;{fabrikam_sid})");
    let (holder, _) = rt
        .block_on(aam.activate_application(
            &contoso,
            &[
                "--map-create".into(),
                r"Local\private".into(),
                "4096".into(),
                "only contoso".into(),
                "--map-create".into(),
                r"Local\granted".into(),
                "4096".into(),
                "for fabrikam".into(),
                "--sddl".into(),
                sddl,
                "--sleep".into(),
                "30".into(),
            ],
            ActivateOptions::default(),
        ))
        .unwrap();
    wait_listed(&b, "granted");

    // Same package: Local\ reaches it.
    let (_, out) = app(&b, &contoso, &["--map-open", r"Local\private", "r"]);
    assert!(out.contains("read \"only contoso\""), "{out}");
    // Creating it again gives the same object and "already exists".
    let (_, out) = app(&b, &contoso, &["--map-create", r"Local\private", "4096", ""]);
    assert!(out.contains("created (already exists: true)"), "{out}");
    // Another package: refused without an entry (5), allowed with one; Local\ is its own namespace (2).
    let (_, out) = app(&b, &fabrikam, &["--map-open", &format!(r"{prefix}\private"), "r"]);
    assert!(out.contains("open refused") && out.contains("(error 5)"), "{out}");
    let (_, out) = app(&b, &fabrikam, &["--map-open", &format!(r"{prefix}\granted"), "r"]);
    assert!(out.contains("read \"for fabrikam\" (writable: false)"), "{out}");
    let (_, out) = app(&b, &fabrikam, &["--map-open", r"Local\granted", "r"]);
    assert!(out.contains("(error 2)"), "{out}");
    // Read-only stays read-only: no write access, no writable view, and writing faults.
    let (_, out) = app(&b, &fabrikam, &["--map-open", &format!(r"{prefix}\granted"), "rw"]);
    assert!(out.contains("(error 5)"), "{out}");
    let (_, out) = app(&b, &fabrikam, &["--map-writable-ro", &format!(r"{prefix}\granted")]);
    assert!(out.contains("writable view refused"), "{out}");
    let (code, out) = app(&b, &fabrikam, &["--map-write-ro", &format!(r"{prefix}\granted")]);
    assert_eq!(code, 128 + 11, "killed by SIGSEGV: {out}");
    assert!(!out.contains("went through"), "{out}");
    // Containers create only in their own namespace; bad names are 123.
    let (_, out) = app(&b, &fabrikam, &["--map-create", r"Session\x", "4096", "x"]);
    assert!(out.contains("(error 5)"), "{out}");
    let (_, out) = app(&b, &fabrikam, &["--map-open", r"Local\a\b", "r"]);
    assert!(out.contains("(error 123)"), "{out}");

    // An unconfined process of the user opens by qualified name: the default DACL has an
    // entry for the user.
    rt.block_on(async {
        let m = FileMapping::open(&session, &format!(r"{prefix}\private"), FILE_MAP_READ)
            .await
            .unwrap();
        assert!(m.map_view().unwrap().as_bytes().starts_with(b"only contoso"));
    });

    // The objects live while a handle is open: when the holder goes, so do their names.
    let (_, list) = cli(&b, &["objects"]);
    assert!(
        list.contains(&prefix[r"AppContainerNamedObjects\".len()..])
            && list.contains("file mapping"),
        "{list}"
    );
    rt.block_on(async {
        let pm = appipc::PackageManager::new(&session);
        let procs = pm.running_processes().await.unwrap();
        assert!(procs.iter().any(|p| p.pid == holder));
    });
    cli(&b, &["remove", &contoso]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e =
            rt.block_on(FileMapping::open(&session, &format!(r"{prefix}\granted"), FILE_MAP_READ));
        match e {
            Err(appipc::Error::NamedObject { code: 2, .. }) => break,
            other => {
                assert!(Instant::now() < deadline, "still there: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn events_signal_across_sessions_and_names_are_typed() {
    let b = TestBroker::start();
    rt().block_on(async {
        use appipc::named_objects::{Event, SYNCHRONIZE};
        let (s1, s2) = (b.session(), b.session());
        let created = Event::create(&s1, r"Local\ready", false, false, None).await.unwrap();
        assert!(!created.already_exists);
        let opened = Event::open(&s2, r"Local\ready", SYNCHRONIZE).await.unwrap();
        let waiter = tokio::spawn(async move { opened.wait().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        created.object.set().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap();
        // The name is an event: opening it as a file mapping is error 6.
        let e = FileMapping::open(&s2, r"Local\ready", FILE_MAP_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 6, .. }), "{e}");
        let e = FileMapping::open(&s2, r"Local\nothing", FILE_MAP_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 2, .. }), "{e}");
    });
}

#[test]
fn named_pipes_byte_and_message_mode_busy_wait_and_identity() {
    use appipc::named_pipes::{
        self, GENERIC_READ, GENERIC_WRITE, NamedPipeServer, PipeDirection, PipeOptions,
    };
    use std::io::{Read, Write};
    let b = TestBroker::start();
    rt().block_on(async {
        let (server_s, client_s) = (b.session(), b.session());
        let name = r"\\.\pipe\LOCAL\echo";
        // Message mode, one instance.
        let opts = PipeOptions { message_mode: true, max_instances: 1, ..Default::default() };
        let mut server = NamedPipeServer::create(&server_s, name, &opts).await.unwrap();
        // A second instance beyond the limit: busy (231).
        let e = NamedPipeServer::create(&server_s, name, &opts).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 231, .. }), "{e}");
        let mut client =
            named_pipes::open(&client_s, name, GENERIC_READ | GENERIC_WRITE).await.unwrap();
        let mut conn = server.connect().await.unwrap();
        assert_eq!(conn.client_pid, std::process::id(), "the server learns who the client is");
        assert_eq!(conn.client_package_family_name, "");
        // Boundaries kept.
        client.write_all(b"one").unwrap();
        client.write_all(b"two-two").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(conn.stream.read(&mut buf).unwrap(), 3);
        assert_eq!(conn.stream.read(&mut buf).unwrap(), 7);
        // The only instance is taken: busy; waiting times out (121), then succeeds after a disconnect.
        let e = named_pipes::open(&client_s, name, GENERIC_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 231, .. }), "{e}");
        let e = named_pipes::wait_named_pipe(&client_s, name, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 121, .. }), "{e}");
        drop(conn);
        server.disconnect().await.unwrap();
        named_pipes::wait_named_pipe(&client_s, name, Duration::from_secs(5)).await.unwrap();
        // Byte mode, inbound only: the client writes, the server reads, not the other way.
        let inbound = PipeOptions { direction: PipeDirection::Inbound, ..Default::default() };
        let mut srv =
            NamedPipeServer::create(&server_s, r"\\.\pipe\LOCAL\in", &inbound).await.unwrap();
        let mut c =
            named_pipes::open(&client_s, r"\\.\pipe\LOCAL\in", GENERIC_WRITE).await.unwrap();
        let mut s = srv.connect().await.unwrap();
        c.write_all(b"abc").unwrap();
        c.write_all(b"def").unwrap();
        drop(c);
        let mut got = String::new();
        s.stream.read_to_string(&mut got).unwrap();
        assert_eq!(got, "abcdef", "a byte stream");
        assert!(s.stream.write_all(b"back").is_err(), "inbound: the server cannot write");
        // Missing pipe, bad name, prefix conflict.
        let e = named_pipes::open(&client_s, r"\\.\pipe\LOCAL\nothing", GENERIC_READ)
            .await
            .unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 2, .. }), "{e}");
        let e = named_pipes::open(&client_s, r"Local\notapipe", GENERIC_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 123, .. }), "{e}");
        let e = NamedPipeServer::create(&server_s, r"\\.\pipe\LOCAL\echo\sub", &opts)
            .await
            .unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 123, .. }), "{e}");
        // Anonymous pipes.
        let (mut r, mut w) = named_pipes::anonymous_pipe().unwrap();
        w.write_all(b"anon").unwrap();
        drop(w);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "anon");
    });
}

#[test]
fn manual_reset_events_semaphores_and_file_backed_mappings() {
    use appipc::named_objects::{Event, FILE_MAP_WRITE, SYNCHRONIZE, Semaphore};
    let b = TestBroker::start();
    rt().block_on(async {
        let (s1, s2) = (b.session(), b.session());
        // Manual reset: stays signalled for every waiter until reset.
        let ev = Event::create(&s1, r"Local\gate", true, false, None).await.unwrap().object;
        let other = Event::open(&s2, r"Local\gate", SYNCHRONIZE).await.unwrap();
        assert!(!other.is_set().unwrap());
        ev.set().await.unwrap();
        ev.set().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), other.wait()).await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(5), other.wait()).await.unwrap().unwrap();
        assert!(other.is_set().unwrap(), "still signalled");
        ev.reset().await.unwrap();
        assert!(!other.is_set().unwrap());
        // Auto reset: one wait per set.
        let auto = Event::create(&s1, r"Local\auto", false, true, None).await.unwrap().object;
        tokio::time::timeout(Duration::from_secs(5), auto.wait()).await.unwrap().unwrap();
        assert!(!auto.is_set().unwrap(), "the wait reset it");
        // Semaphore: counts.
        let sem = Semaphore::create(&s1, r"Local\slots", 2, 5, None).await.unwrap().object;
        let sem2 = Semaphore::open(&s2, r"Local\slots", SYNCHRONIZE).await.unwrap();
        sem2.wait().await.unwrap();
        sem2.wait().await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sem2.wait()).await.is_err(),
            "count exhausted"
        );
        sem.release().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), sem2.wait()).await.unwrap().unwrap();
        // A mapping of a file: both see the file's bytes, writes reach the file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let created =
            FileMapping::create_from_file(&s1, r"Local\file", &f, true, None).await.unwrap().object;
        assert_eq!(created.size(), 8192);
        let opened =
            FileMapping::open(&s2, r"Local\file", FILE_MAP_READ | FILE_MAP_WRITE).await.unwrap();
        opened.map_view().unwrap().as_bytes_mut().unwrap()[..5].copy_from_slice(b"hello");
        assert!(created.map_view().unwrap().as_bytes().starts_with(b"hello"));
        drop((created, opened));
        assert!(std::fs::read(&path).unwrap().starts_with(b"hello"), "written through to the file");
    });
}

#[test]
fn the_ring_streams_records_in_order_and_sleeps_when_idle() {
    use appipc::ring::{RingConsumer, RingProducer};
    let b = TestBroker::start();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (s1, s2) = (b.session(), b.session());
        let producer = RingProducer::create(&s1, r"Local\stream", 4096, None).await.unwrap();
        let consumer = RingConsumer::open(&s2, r"Local\stream").await.unwrap();
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..20_000u32 {
                consumer.pop(&mut out).await.unwrap();
                assert_eq!(out.len(), (i % 300) as usize + 4, "record {i}");
                assert_eq!(out[..4], i.to_le_bytes());
            }
            // Idle: the consumer sleeps on its event and wakes for a late record.
            consumer.pop(&mut out).await.unwrap();
            out
        });
        for i in 0..20_000u32 {
            let mut rec = i.to_le_bytes().to_vec();
            rec.resize((i % 300) as usize + 4, 0xAB);
            producer.push(&rec).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        producer.push(b"late").await.unwrap();
        let last = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
        assert_eq!(last, b"late");
    });
}

#[test]
fn the_blocking_ring_streams_records_in_order_and_sleeps_when_full_or_idle() {
    use appipc::ring::{RingConsumer, RingProducer};
    let b = TestBroker::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (producer, consumer) = rt.block_on(async {
        let (s1, s2) = (b.session(), b.session());
        let producer = RingProducer::create(&s1, r"Local\bstream", 4096, None).await.unwrap();
        let consumer = RingConsumer::open(&s2, r"Local\bstream").await.unwrap();
        (producer, consumer)
    });
    // No runtime runs while the threads stream: the blocking calls need none. Records of up to
    // 1 KiB through 4 KiB fill the ring, so the producer sleeps for room as well.
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut out = Vec::new();
            for i in 0..20_000u32 {
                consumer.pop_blocking(&mut out).unwrap();
                assert_eq!(out.len(), (i % 1000) as usize + 4, "record {i}");
                assert_eq!(out[..4], i.to_le_bytes());
                if i % 5000 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // Idle: the consumer sleeps on its event and wakes for a late record.
            consumer.pop_blocking(&mut out).unwrap();
            out
        });
        for i in 0..20_000u32 {
            let mut rec = i.to_le_bytes().to_vec();
            rec.resize((i % 1000) as usize + 4, 0xAB);
            producer.push_blocking(&rec).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        producer.push_blocking(b"late").unwrap();
        assert_eq!(reader.join().unwrap(), b"late");
    });
    rt.block_on(async { drop((producer, consumer)) });
}

#[test]
fn events_and_pipes_across_packages_from_inside_containers() {
    let b = TestBroker::start();
    let contoso = install_variant(&b, "Contoso.Hello", "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH");
    let fabrikam = install_variant(&b, "Fabrikam.Viewer", "CN=Fabrikam Inc, O=Fabrikam, C=US");
    let rt = rt();
    let session = rt.block_on(async { b.session() });
    let prefix = rt.block_on(named_object_path(&session, &contoso)).unwrap();
    let aam = ApplicationActivationManager::new(&session);
    let start = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        rt.block_on(aam.activate_application(
            &contoso,
            &args,
            ActivateOptions { notify_exit: true, ..Default::default() },
        ))
        .unwrap()
        .0
    };
    // An event without an entry for Fabrikam: refused; with one (by family name): set.
    let waiter = start(&["--event-wait", r"Local\closed"]);
    wait_listed(&b, "closed");
    let (_, out) = app(&b, &fabrikam, &["--event-set", &format!(r"{prefix}\closed")]);
    assert!(out.contains("open refused") && out.contains("(error 5)"), "{out}");
    let _ = waiter;
    // The SDK's descriptor builder, by family name: D:(A;;GA;;;WD)(A;;0x100002;;;PFN:…).
    use appipc::named_objects::{EVENT_MODIFY_STATE, GENERIC_ALL, SYNCHRONIZE, SecurityDescriptor};
    let sddl = SecurityDescriptor::new()
        .allow_everyone(GENERIC_ALL)
        .allow_package(&fabrikam, SYNCHRONIZE | EVENT_MODIFY_STATE)
        .to_sddl();
    assert_eq!(sddl, format!("D:(A;;GA;;;WD)(A;;0x100002;;;PFN:{fabrikam})"));
    let waiter = start(&["--event-wait", r"Local\open", "--sddl", &sddl]);
    wait_listed(&b, "open");
    let (_, out) = app(&b, &fabrikam, &["--event-set", &format!(r"{prefix}\open")]);
    assert!(out.contains("set"), "{out}");
    rt.block_on(session.wait_for_exit(waiter)).unwrap();
    assert!(
        b.app_log(&contoso).contains(r"event Local\open: signalled"),
        "{}",
        b.app_log(&contoso)
    );
    // A message-mode pipe served by Contoso's container, used from Fabrikam's: the server
    // learns who the client is.
    let sddl = format!("D:(A;;GA;;;OW)(A;;GRGW;;;PFN:{fabrikam})");
    let server = start(&["--pipe-serve", r"\\.\pipe\LOCAL\inbox", "--sddl", &sddl]);
    let pipe = format!(r"\\.\pipe\{prefix}\inbox");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out) = app(&b, &fabrikam, &["--pipe-send", &pipe, "hello over a pipe"]);
        if out.contains("answer \"ack\"") {
            break;
        }
        assert!(out.contains("(error 2)") && Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(session.wait_for_exit(server)).unwrap();
    let log = b.app_log(&contoso);
    assert!(
        log.contains(&format!("{fabrikam} (pid")) && log.contains("sent \"hello over a pipe\""),
        "{log}"
    );
    // Without an entry: refused.
    let _server = start(&["--pipe-serve", r"\\.\pipe\LOCAL\private"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out) =
            app(&b, &fabrikam, &["--pipe-send", &format!(r"\\.\pipe\{prefix}\private"), "x"]);
        if out.contains("(error 5)") {
            break;
        }
        assert!(out.contains("(error 2)") && Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pipe_server_serves_many_clients_one_instance_each() {
    use appipc::named_pipes::{self, GENERIC_READ, GENERIC_WRITE, NamedPipeServer, PipeOptions};
    use std::io::{Read, Write};
    let b = TestBroker::start();
    rt().block_on(async {
        let (server_s, client_s) = (b.session(), b.session());
        let name = r"\\.\pipe\LOCAL\many";
        let opts = PipeOptions { max_instances: 3, ..Default::default() };
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(NamedPipeServer::create(&server_s, name, &opts).await.unwrap());
        }
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(
                named_pipes::open(&client_s, name, GENERIC_READ | GENERIC_WRITE).await.unwrap(),
            );
        }
        // Every instance has its client: a fourth is busy.
        let e = named_pipes::open(&client_s, name, GENERIC_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 231, .. }), "{e}");
        let mut conns = Vec::new();
        for s in &mut servers {
            conns.push(s.connect().await.unwrap());
        }
        // Each client talks to its own instance: what one sends, only its server reads.
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("client {i}").as_bytes()).unwrap();
        }
        let mut heard = Vec::new();
        for conn in &mut conns {
            let mut buf = [0u8; 16];
            let n = conn.stream.read(&mut buf).unwrap();
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            conn.stream.write_all(&buf[..n]).unwrap();
        }
        heard.sort();
        assert_eq!(heard, ["client 0", "client 1", "client 2"]);
        for (i, c) in clients.iter_mut().enumerate() {
            let mut buf = [0u8; 16];
            let n = c.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("client {i}").as_bytes(), "echo from its own instance");
        }
    });
}

#[test]
fn a_session_that_hoards_handles_is_stopped_and_the_broker_serves_on() {
    use appipc::named_objects::{Event, SYNCHRONIZE};
    const QUOTA: usize = 4096;
    // This process holds an fd per handle too.
    let mut limit = appipc_sys::process::raise_open_file_limit().unwrap_or(0);
    if limit < QUOTA as u64 + 512 {
        // Root may raise the hard limit too.
        use rustix::process::{Resource, Rlimit, setrlimit};
        let want = Some(QUOTA as u64 + 1024);
        if setrlimit(Resource::Nofile, Rlimit { current: want, maximum: want }).is_ok() {
            limit = QUOTA as u64 + 1024;
        }
    }
    if limit < QUOTA as u64 + 512 {
        println!("SKIP: this process may open only {limit} files, the test needs {}", QUOTA + 512);
        return;
    }
    let b = TestBroker::start();
    rt().block_on(async {
        let s = b.session();
        let first = Event::create(&s, r"Local\hoard", false, false, None).await.unwrap().object;
        let mut held = Vec::new();
        let err = loop {
            match Event::open(&s, r"Local\hoard", SYNCHRONIZE).await {
                Ok(e) => held.push(e),
                Err(e) => break e,
            }
            assert!(held.len() <= QUOTA, "no quota");
        };
        assert!(matches!(err, appipc::Error::NamedObject { code: 1816, .. }), "{err}");
        assert_eq!(held.len() + 1, QUOTA, "the creator's handle counts too");
        let e = Event::create(&s, r"Local\more", false, false, None).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 1816, .. }), "{e}");
        // Other sessions are not affected, and the broker answers.
        let other = b.session();
        let theirs = Event::open(
            &other,
            r"Local\hoard",
            SYNCHRONIZE | appipc::named_objects::EVENT_MODIFY_STATE,
        )
        .await
        .unwrap();
        theirs.set().await.unwrap();
        first.wait().await.unwrap();
        // Closing handles makes room again.
        held.truncate(QUOTA - 100);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Event::create(&s, r"Local\more", false, false, None).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no room after closing: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    });
}

/// Bad parameters are `ERROR_INVALID_PARAMETER` (87), a 2^63-byte mapping included; object names
/// reach `MAX_PATH` (260 characters), pipe names 256.
#[test]
fn bad_parameters_are_87_and_names_reach_max_path() {
    use appipc::WindowsCode;
    use appipc::named_objects::{Event, Semaphore};
    use appipc::named_pipes::{NamedPipeServer, PipeOptions};
    let b = TestBroker::start();
    rt().block_on(async {
        let s = b.session();
        let code = |r: Result<(), appipc::Error>| r.unwrap_err().windows_code();
        let mapping = |size: u64| FileMapping::create(&s, "m", size, true, None);
        assert_eq!(code(mapping(0).await.map(|_| ())), WindowsCode::Win32(87), "size 0");
        assert_eq!(code(mapping(1 << 63).await.map(|_| ())), WindowsCode::Win32(87), "2^63 bytes");
        assert_eq!(code(mapping(u64::MAX).await.map(|_| ())), WindowsCode::Win32(87));
        let sem = |initial, maximum| Semaphore::create(&s, "s", initial, maximum, None);
        assert_eq!(code(sem(2, 1).await.map(|_| ())), WindowsCode::Win32(87), "initial > maximum");
        assert_eq!(code(sem(0, 0).await.map(|_| ())), WindowsCode::Win32(87), "maximum 0");
        let pipe = PipeOptions { max_instances: 0, ..PipeOptions::default() };
        let e = NamedPipeServer::create(&s, r"\\.\pipe\zero", &pipe).await.unwrap_err();
        assert_eq!(e.windows_code(), WindowsCode::Win32(87), "{e}");
        // Names: 260 characters, prefix included; one more is 123.
        let name = |n: usize| format!(r"Local\{}", "n".repeat(n - 6));
        Event::create(&s, &name(260), false, false, None).await.unwrap();
        let e = Event::create(&s, &name(261), false, false, None).await.unwrap_err();
        assert_eq!(e.windows_code(), WindowsCode::Win32(123), "{e}");
        assert!(e.to_string().contains("MAX_PATH"), "{e}");
        let pipe_name = |n: usize| format!(r"\\.\pipe\{}", "p".repeat(n - 9));
        let _p =
            NamedPipeServer::create(&s, &pipe_name(256), &PipeOptions::default()).await.unwrap();
        let e = NamedPipeServer::create(&s, &pipe_name(257), &PipeOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.windows_code(), WindowsCode::Win32(123), "{e}");
    });
}
