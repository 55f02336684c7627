//! Loopback isolation end to end through a real broker: `appipc loopback why` for the rule ×
//! capability matrix between two installed packages of two publishers (the missing rule or
//! capability named on its side, with the manifest line), and the persistent outbound
//! exemptions (`appipc loopback exempt`), which survive a broker restart.

use appipc_model::identity::PackageFamilyName;
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, unique};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam, O=Fabrikam, C=US";

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn family(name: &str, publisher: &str) -> String {
    PackageFamilyName::from_publisher(&name.parse().unwrap(), publisher).to_string()
}

/// Installs (or upgrades to `version`) a probe package with the capability or not and these
/// loopback rules (`(direction, family)`).
fn install(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    version: u32,
    capability: bool,
    rules: &[(&str, &str)],
) {
    let mut text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.{version}\"\n\n"
    );
    if capability {
        text.push_str("[capabilities]\ngeneral = [\"privateNetworkClientServer\"]\n\n");
    }
    text.push_str("[[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n\n");
    for (d, f) in rules {
        text.push_str(&format!(
            "[[loopback-rule]]\ndirection = \"{d}\"\npackage-family-name = \"{f}\"\n\n"
        ));
    }
    let dir = assemble_manifest(&text, &b.root.path().join(unique("loop")), &bin_dir()).unwrap();
    let (code, out, err) = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn why_names_what_is_missing_on_which_side_for_every_combination() {
    let b = TestBroker::start();
    let client = family("Contoso.LoopClient", CONTOSO);
    let server = family("Fabrikam.LoopServer", FABRIKAM);
    let mut version = 0;
    for (out_rule, in_rule) in [(false, false), (true, false), (false, true), (true, true)] {
        for (cap_c, cap_s) in [(true, true), (true, false), (false, true), (false, false)] {
            version += 1;
            let out: Vec<(&str, &str)> =
                if out_rule { vec![("out", server.as_str())] } else { vec![] };
            let inn: Vec<(&str, &str)> =
                if in_rule { vec![("in", client.as_str())] } else { vec![] };
            install(&b, "Contoso.LoopClient", CONTOSO, version, cap_c, &out);
            install(&b, "Fabrikam.LoopServer", FABRIKAM, version, cap_s, &inn);
            let (code, text, err) = cli(&b, &["loopback", "why", &client, &server, "8080"]);
            let want = out_rule && in_rule && cap_c && cap_s;
            let case = format!("rules {out_rule}/{in_rule} caps {cap_c}/{cap_s}: {text}{err}");
            assert_eq!(code, if want { 0 } else { 1 }, "{case}");
            if want {
                assert!(text.starts_with("allowed"), "{case}");
                continue;
            }
            assert!(text.starts_with("refused (ECONNREFUSED)"), "{case}");
            assert!(text.contains(&format!("{server}:8080")), "{case}");
            let says = |s: String| text.contains(&s);
            assert_eq!(says(format!("the client {client} was not granted")), !cap_c, "{case}");
            assert_eq!(says(format!("the server {server} was not granted")), !cap_s, "{case}");
            assert_eq!(says(format!("the client {client} has no \"out\"")), !out_rule, "{case}");
            assert_eq!(says(format!("the server {server} has no \"in\"")), !in_rule, "{case}");
            // The manifest line of the first thing missing, on its side.
            let whose = if !cap_c || !out_rule { &client } else { &server };
            assert!(text.contains(&format!("manifest {whose}: appipc.toml")), "{case}");
        }
    }
    // The same package always reaches itself.
    let (code, text, _) = cli(&b, &["loopback", "why", &client, &client]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("always reaches itself"), "{text}");
    // JSON for scripts.
    let (_, json, _) = cli(&b, &["--json", "loopback", "why", &server, &client]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["allowed"], false, "{json}");
    // A package that is not installed.
    let (code, _, err) = cli(&b, &["loopback", "why", &client, "Nobody.Here_8wekyb3d8bbwe"]);
    assert_ne!(code, 0);
    assert!(err.contains("no package Nobody.Here_8wekyb3d8bbwe is installed"), "{err}");
}

#[test]
fn outbound_exemptions_persist_across_a_broker_restart() {
    let mut b = TestBroker::start();
    let app = family("Contoso.LoopExempt", CONTOSO);
    install(&b, "Contoso.LoopExempt", CONTOSO, 1, true, &[]);
    let (code, text, _) = cli(&b, &["loopback", "why", &app, "-", "5000"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("appipc loopback exempt add"), "{text}");
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", &app]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", "Other.App_8wekyb3d8bbwe"]);
    assert_eq!(code, 0, "{out}{err}");
    b.stop();
    b.restart();
    let (_, list, _) = cli(&b, &["loopback", "exempt", "list"]);
    assert_eq!(list.lines().collect::<Vec<_>>(), [app.as_str(), "Other.App_8wekyb3d8bbwe"]);
    let (code, text, _) = cli(&b, &["loopback", "why", &app, "-", "5000"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("outbound loopback exemption"), "{text}");
    let (code, out, _) = cli(&b, &["loopback", "exempt", "remove", &app]);
    assert_eq!(code, 0);
    assert!(out.contains("no longer exempt"), "{out}");
    let (code, text, _) = cli(&b, &["loopback", "why", &app, "-"]);
    assert_eq!(code, 1, "{text}");
    let (_, out, _) = cli(&b, &["loopback", "exempt", "clear"]);
    assert!(out.contains("1 exemption(s) removed"), "{out}");
    let (_, list, _) = cli(&b, &["loopback", "exempt", "list"]);
    assert_eq!(list.trim(), "no exempt packages");
    // Not a family name: refused before the store.
    let (code, _, err) = cli(&b, &["loopback", "exempt", "add", "not a name"]);
    assert_ne!(code, 0, "{err}");
}
