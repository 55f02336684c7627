//! `appipc check` and `appipc install` report every problem of a package in one run, each on a
//! line of its own as `DIR/appipc.toml:LINE:COLUMN: KEY: RULE`, and exit 65.

use appipc_testkit::TestBroker;

/// Nine problems: a bad name, version, unknown key, capability, application id, absolute path,
/// missing capability for mediumIL, app service name, and a file the folder lacks.
const NINE: &str = r#"[package]
name = "Bad Name"
publisher = "CN=Contoso"
version = "1.0"
colour = "blue"

[capabilities]
general = ["internetclient"]

[[application]]
id = "1App"
executable = "/abs/path"
trust-level = "mediumIL"

[[application.app-service]]
name = "x"

[[application]]
id = "Other"
executable = "bin/other"
"#;

fn expect_all(dir: &std::path::Path, stderr: &str) {
    let file = dir.join("appipc.toml").display().to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&file)).collect();
    let keys = [
        ("2:8", "package.name"),
        ("4:11", "package.version"),
        ("5:1", "package.colour"),
        ("8:12", "capabilities.general[0]"),
        ("11:6", "application[0].id"),
        ("12:14", "application[0].executable"),
        ("13:15", "application[0].trust-level"),
        ("16:8", "application[0].app-service[0].name"),
        ("20:14", "application[1].executable"),
    ];
    for (at, key) in keys {
        let want = format!("{file}:{at}: {key}: ");
        assert!(
            lines.iter().any(|l| l.contains(&want)),
            "no line {want:?} (file:line:column: key: rule) in:\n{stderr}"
        );
    }
    assert!(stderr.contains("no such file in the package"), "{stderr}");
}

#[test]
fn check_and_install_report_every_problem_at_once() {
    let b = TestBroker::start();
    let dir = b.root.path().join("nine");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("appipc.toml"), NINE).unwrap();

    let out = b.cli().args(["check".as_ref(), dir.as_os_str()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    expect_all(&dir, &stderr);
    assert!(stderr.contains("9 problem(s)"), "{stderr}");

    // The broker's own check of the folder at install reports them all too.
    let out = b.cli().args(["install".as_ref(), dir.as_os_str()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    expect_all(&dir, &stderr);
    assert!(stderr.contains("(HRESULT 0x"), "{stderr}");
}
