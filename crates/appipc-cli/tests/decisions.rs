//! The decision log end to end: refusals are recorded with the rule that made them and what
//! would have allowed them (`appipc why`), the log is bounded, and a custom capability is
//! never granted by its declaration alone.

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use appipc::named_objects::FILE_MAP_READ;
use appipc_testkit::{CONTOSO_SERVICES, TestBroker, assemble_manifest, bin_dir, unique};
use appipc_wire::protocol::named_objects::{self as no, NamedObjectKind};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Installs a probe package (its app is `access-probe`) with `capabilities` (a TOML table
/// body); returns (family name, the install's stderr).
fn install_probe(b: &TestBroker, name: &str, capabilities: &str) -> (String, String) {
    let text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"\n\
         version = \"1.0.0.0\"\n\n[capabilities]\n{capabilities}\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n"
    );
    let dir = assemble_manifest(&text, &b.root.path().join(unique("probe")), &bin_dir()).unwrap();
    let (code, out, err) = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let full = out.trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    (format!("{}_{}", p[0], p[4]), err)
}

fn probe(b: &TestBroker, pfn: &str, steps: &[&str]) -> String {
    let mut args = vec!["launch", "--wait", pfn, "--"];
    args.extend_from_slice(steps);
    cli(b, &args).1
}

const CUSTOM: &str = "Contoso.secret_cvnpggrrsm18p";

#[test]
fn a_declared_custom_capability_is_not_granted_and_matches_no_trustee() {
    let b = TestBroker::start();
    let (with_custom, stderr) = install_probe(
        &b,
        "Contoso.CustomProbe",
        &format!("general = [\"internetClient\"]\ncustom = [\"{CUSTOM}\"]"),
    );
    assert!(
        stderr.contains(&format!("capability {CUSTOM} declared but not granted"))
            && stderr.contains("signed custom capability descriptor"),
        "the install says it was not granted and why: {stderr}"
    );
    // `list` shows declared and granted apart.
    let (_, json, _) = cli(&b, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pkg =
        v.as_array().unwrap().iter().find(|p| p["family_name"] == with_custom.as_str()).unwrap();
    assert!(pkg["capabilities"].as_array().unwrap().iter().any(|c| c == CUSTOM), "{pkg}");
    assert!(!pkg["granted_capabilities"].as_array().unwrap().iter().any(|c| c == CUSTOM), "{pkg}");
    assert!(pkg["granted_capabilities"].as_array().unwrap().iter().any(|c| c == "internetClient"));
    let (_, text, _) = cli(&b, &["list"]);
    assert!(text.contains(&format!("not granted  {CUSTOM}")), "{text}");

    // An object granted to the custom capability's SID is not opened by the package that
    // declares it; one granted to a capability it was granted is.
    let rt = rt();
    let id = unique("o");
    let (by_custom, by_general) = (format!(r"Session\custom{id}"), format!(r"Session\general{id}"));
    let s = rt.block_on(async { b.session() });
    rt.block_on(async {
        for (name, trustee) in
            [(&by_custom, format!("CAP:{CUSTOM}")), (&by_general, "CAP:internetClient".to_owned())]
        {
            let request = no::Create {
                kind: NamedObjectKind::FileMapping { size: 4096, writable: false },
                name: name.clone(),
                // The user's side (WD) and the app-container side (the capability): an app
                // container needs both.
                sddl: Some(format!("D:(A;;GR;;;WD)(A;;GR;;;{trustee})")),
            };
            s.call_with_fds(request, &[]).await.unwrap();
        }
    });
    let read = format!("{FILE_MAP_READ:#x}");
    let out = probe(&b, &with_custom, &["map", &by_custom, &read, "map", &by_general, &read]);
    assert!(out.contains(&format!("map {by_custom} {read} => error 5")), "{out}");
    assert!(out.contains(&format!("map {by_general} {read} => fd read-only read")), "{out}");
    // WhoAmI inside the package does not list it either (the capabilities the SDK reports are
    // the granted ones).
    let (_, json, _) = cli(&b, &["why", "--json", "--package", &with_custom]);
    assert!(json.contains(&by_custom.replace('\\', "\\\\")), "the refusal is recorded: {json}");
}

#[test]
fn why_shows_refusals_with_their_rule_and_remedy() {
    let b = TestBroker::start();
    let rt = rt();
    let (probe_pfn, _) = install_probe(&b, "Contoso.WhyProbe", "general = []");
    let services = rt.block_on(b.install(&CONTOSO_SERVICES)).family_name;
    // A refused open of another's object, by a confined app.
    let name = format!(r"Session\secret{}", unique(""));
    let s = rt.block_on(async { b.session() });
    rt.block_on(async {
        let request = no::Create {
            kind: NamedObjectKind::FileMapping { size: 4096, writable: false },
            name: name.clone(),
            sddl: None,
        };
        s.call_with_fds(request, &[]).await.unwrap();
    });
    let out = probe(&b, &probe_pfn, &["map", &name, "0x4"]);
    assert!(out.contains("error 5"), "{out}");
    // A refused app-service open by an unpackaged caller (the service takes packaged callers).
    let (code, out, _) = cli(&b, &["app-service", "call", &services, "com.contoso.echo.private"]);
    assert_ne!(code, 0, "{out}");

    let (code, text, _) = cli(&b, &["why"]);
    assert_eq!(code, 0);
    assert!(text.contains("REFUSED named_objects.open"), "{text}");
    assert!(text.contains("no entry of the descriptor"), "{text}");
    let sid = appipc_model::sid::appcontainer_sid(&probe_pfn).to_string();
    assert!(text.contains(&format!("(A;;0x4;;;{sid})")), "the remedy names the entry: {text}");
    assert!(text.contains("REFUSED app_service.open"), "{text}");
    assert!(text.contains("allow-unpackaged-callers = false"), "{text}");
    assert!(
        text.contains(&format!("{services}: appipc.toml:")),
        "the manifest line of the declaration: {text}"
    );
    // JSON: one object per line, filtered by package.
    let (_, json, _) = cli(&b, &["why", "--json", "--package", &probe_pfn]);
    let records: Vec<serde_json::Value> =
        json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["allowed"], false, "{r}");
        assert!(
            r["caller"]["package_family_name"] == probe_pfn.as_str()
                || r["object_package_family_name"] == probe_pfn.as_str(),
            "{r}"
        );
    }
    let r = records.iter().find(|r| r["mechanism"] == "named_objects").unwrap();
    assert_eq!(r["asked"], 4);
    assert_eq!(r["granted"], 0);
    // The confined app sees only decisions about itself.
    let (_, text, _) = cli(&b, &["why", "--all", "--last", "1000"]);
    assert!(text.contains("ALLOWED"), "--all shows allowed decisions too: {text}");
    // The refusals are in the log file too.
    let log = std::fs::read_to_string(b.home.join("state/decisions.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"allowed\":false") && l.contains("named_objects")),
        "{log}"
    );
}

#[test]
fn why_follow_streams_new_refusals() {
    let b = TestBroker::start();
    let (probe_pfn, _) = install_probe(&b, "Contoso.FollowProbe", "general = []");
    let mut follower = b
        .cli()
        .args(["why", "--follow", "--json", "--package", &probe_pfn])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Give the follower time to subscribe; then refusals happen until one is seen.
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let _ = probe(&b, &probe_pfn, &["map", r"Session\nothing-granted-here", "0x4"]);
        let _ = probe(&b, &probe_pfn, &["create-map", r"Session\not-mine", "4096"]);
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            break l;
        }
        assert!(Instant::now() < deadline, "no followed decision");
    };
    let _ = follower.kill();
    let _ = follower.wait();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["caller"]["package_family_name"], probe_pfn.as_str());
}

#[test]
fn the_decision_log_is_bounded_in_memory() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("broker.toml");
    std::fs::write(&config, "[decisions]\nkept = 5\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let (probe_pfn, _) = install_probe(&b, "Contoso.BoundProbe", "general = []");
    let steps: Vec<String> = (0..20)
        .flat_map(|i| ["create-map".into(), format!(r"Session\n{i}"), "4096".into()])
        .collect();
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    probe(&b, &probe_pfn, &steps);
    let (_, json, _) = cli(&b, &["why", "--all", "--json", "--last", "1000"]);
    assert_eq!(json.lines().count(), 5, "kept = 5: {json}");
}
