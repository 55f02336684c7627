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
    // that grants Fabrikam's package read access.
    let sddl = format!("D:(A;;GR;;;{fabrikam_sid})");
    let (holder, _) = rt
        .block_on(aam.activate_application(
            &contoso,
            &[
                "--map-create".into(),
                r"LOCAL\private".into(),
                "4096".into(),
                "only contoso".into(),
                "--map-create".into(),
                r"LOCAL\granted".into(),
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

    // Same package: LOCAL\ reaches it.
    let (_, out) = app(&b, &contoso, &["--map-open", r"LOCAL\private", "r"]);
    assert!(out.contains("read \"only contoso\""), "{out}");
    // Creating it again gives the same object and "already exists".
    let (_, out) = app(&b, &contoso, &["--map-create", r"LOCAL\private", "4096", ""]);
    assert!(out.contains("created (already exists: true)"), "{out}");
    // Another package: refused without an entry (5), allowed with one; LOCAL\ is its own namespace (2).
    let (_, out) = app(&b, &fabrikam, &["--map-open", &format!(r"{prefix}\private"), "r"]);
    assert!(out.contains("open refused") && out.contains("(error 5)"), "{out}");
    let (_, out) = app(&b, &fabrikam, &["--map-open", &format!(r"{prefix}\granted"), "r"]);
    assert!(out.contains("read \"for fabrikam\" (writable: false)"), "{out}");
    let (_, out) = app(&b, &fabrikam, &["--map-open", r"LOCAL\granted", "r"]);
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
    let (_, out) = app(&b, &fabrikam, &["--map-open", r"LOCAL\a\b", "r"]);
    assert!(out.contains("(error 123)"), "{out}");

    // An unconfined process of the user opens by qualified name, no entry needed.
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
        let created = Event::create(&s1, r"LOCAL\ready", false, false, None).await.unwrap();
        assert!(!created.already_exists);
        let opened = Event::open(&s2, r"LOCAL\ready", SYNCHRONIZE).await.unwrap();
        let waiter = tokio::spawn(async move { opened.wait().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        created.object.set().unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap();
        // The name is an event: opening it as a file mapping is error 6.
        let e = FileMapping::open(&s2, r"LOCAL\ready", FILE_MAP_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 6, .. }), "{e}");
        let e = FileMapping::open(&s2, r"LOCAL\nothing", FILE_MAP_READ).await.unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 2, .. }), "{e}");
    });
}
