//! `--json` on every command means one thing, the output format: each command's stdout parses
//! as JSON (one object per line for the commands that stream), errors come as a JSON object on
//! stderr, and the commands whose output is not data refuse it as a usage error. The input of
//! `app-service call` is `--message`; its 64-bit values print as strings; a near-miss type name
//! is refused with the name it resembles.

use std::path::Path;
use std::process::Output;

use appipc_testkit::{CONTOSO_SERVICES, HELLO, TestBroker};

fn run(b: &TestBroker, args: &[&str]) -> Output {
    let mut c = b.cli();
    c.arg("--json").args(args);
    c.output().expect("appipc")
}

fn json(b: &TestBroker, args: &[&str]) -> serde_json::Value {
    let out = run(b, args);
    assert!(
        out.status.success(),
        "appipc --json {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "appipc --json {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn lines(b: &TestBroker, args: &[&str]) -> Vec<serde_json::Value> {
    let out = run(b, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {l:?}: {e}")))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_command_prints_json() {
    let b = TestBroker::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let services = rt.block_on(b.install(&CONTOSO_SERVICES)).family_name;
    let tmp = b.root.path();
    let hello = appipc_testkit::assemble(&HELLO, &tmp.join("hello")).unwrap();
    let file = tmp.join("shared.txt");
    std::fs::write(&file, "x").unwrap();

    // Without a broker: identity, check, key, pack, man, systemd-units.
    assert_eq!(json(&b, &["identity", "publisher-id", "CN=Me"])["value"], "hxmhn7vrhn3vp");
    assert_eq!(
        json(&b, &["identity", "family-name", "My.Hello", "CN=Me"])["value"],
        "My.Hello_hxmhn7vrhn3vp"
    );
    let c = json(&b, &["check", s(&hello)]);
    assert_eq!(
        (c["valid"].clone(), c["family_name"].clone()),
        (true.into(), "Contoso.Hello_cvnpggrrsm18p".into())
    );
    let key = json(
        &b,
        &[
            "key",
            "new",
            "--publisher",
            "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH",
            "-o",
            s(&tmp.join("k")),
        ],
    );
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let secret = key["secret_key"].as_str().unwrap().to_owned();
    let packed = json(&b, &["pack", s(&hello), "--key", &secret, "-o", s(&tmp.join("h.appipc"))]);
    assert!(packed["files"].as_u64().unwrap() >= 2, "{packed}");
    assert!(json(&b, &["man", s(&tmp.join("man"))])["files"].as_array().unwrap().len() > 10);
    assert_eq!(
        json(&b, &["systemd-units", s(&tmp.join("units"))])["files"].as_array().unwrap().len(),
        2
    );

    // The broker's commands.
    assert_eq!(json(&b, &["status"])["broker"]["protocol"], 2);
    assert_eq!(json(&b, &["whoami"])["trust"], "unpackaged");
    assert_eq!(json(&b, &["dev-mode", "status"])["enabled"], true);
    let trusted = json(&b, &["trust", "add", key["public_key"].as_str().unwrap()]);
    assert_eq!(trusted["key_id"], key_id.as_str());
    assert_eq!(json(&b, &["trust", "list"])[0]["key_id"], key_id.as_str());
    let installed = json(&b, &["install", s(&tmp.join("h.appipc"))]);
    assert_eq!(installed["outcome"], "installed");
    assert_eq!(installed["signer"]["key_id"], key_id.as_str());
    let list = json(&b, &["list"]);
    assert!(list.as_array().unwrap().iter().any(|p| p["family_name"] == services.as_str()));
    let launched = json(&b, &["launch", "Contoso.Hello_cvnpggrrsm18p", "--", "--sleep", "30"]);
    assert!(launched["pid"].as_u64().is_some() && launched["log"].is_string(), "{launched}");
    let ps = json(&b, &["ps"]);
    let p = &ps.as_array().unwrap()[0];
    assert_eq!(p["confined"], true, "data, not prose: {p}");
    assert_eq!(p["signed"], true, "{p}");
    for l in lines(&b, &["logs", "Contoso.Hello_cvnpggrrsm18p"]) {
        assert!(l["line"].is_string(), "{l}");
    }
    let token = json(&b, &["token", "add", s(&file)])["token"].as_str().unwrap().to_owned();
    assert_eq!(json(&b, &["token", "list"])[0]["token"], token.as_str());
    assert_eq!(json(&b, &["token", "remove", &token])["removed"], token.as_str());
    assert!(json(&b, &["publisher-cache", "list"]).is_array());
    assert!(json(&b, &["objects"]).is_array());
    assert!(json(&b, &["app-service", "list"])["declared"].is_array());
    let call = json(
        &b,
        &[
            "app-service",
            "call",
            &services,
            "com.contoso.echo",
            "--message",
            r#"{"big": {"UInt64": "18446744073709551615"}, "n": {"Int16": 3}}"#,
        ],
    );
    assert_eq!(call["status"], "Success");
    assert_eq!(call["message"]["big"]["UInt64"], "18446744073709551615", "64-bit as a string");
    assert_eq!(call["message"]["n"]["Int16"], 3);
    for d in lines(&b, &["why", "--all"]) {
        assert!(d["seq"].is_u64() && d["caller"]["trust"].is_string(), "{d}");
    }
    assert!(json(&b, &["trust", "remove", &key_id]).is_array());
    assert_eq!(json(&b, &["remove", "Contoso.Hello_cvnpggrrsm18p"])["stopped_processes"], 1);

    // The message from stdin.
    let mut c = b.cli();
    c.args(["--json", "app-service", "call", &services, "com.contoso.echo", "--message", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(br#"{"from": "stdin"}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"]["from"]["String"], "stdin");

    // Errors: a JSON object on stderr, with the class and the status.
    let out = run(&b, &["remove", "Nobody.Here_cvnpggrrsm18p"]);
    assert_eq!(out.status.code(), Some(66));
    let e: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!((e["class"].clone(), e["exit_status"].clone()), ("not found".into(), 66.into()));
    // A manifest's problems are data.
    let bad = tmp.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("appipc.toml"), "[package]\nname = \"x\"\n").unwrap();
    let out = run(&b, &["check", s(&bad)]);
    assert_eq!(out.status.code(), Some(65));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["valid"], false);
    assert!(c["problems"][0]["line"].is_u64() && c["problems"][0]["key"].is_string(), "{c}");
    // A near-miss type name is refused with the one it resembles.
    let out = run(
        &b,
        &[
            "app-service",
            "call",
            &services,
            "com.contoso.echo",
            "--message",
            r#"{"n": {"int16": 3}}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(65));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(r#"did you mean \"Int16\""#),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What is not data refuses --json: a usage error.
    for args in [
        vec!["launch", "--wait", &services],
        vec!["demo"],
        vec!["completions", "bash"],
        vec!["daemon"],
    ] {
        let out = run(&b, &args);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(json(&b, &["stop"])["stopped"], true);
}
