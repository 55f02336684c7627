//! Every command that takes a package accepts its family name and its full name, and
//! `PFN!AppId` where one application is meant; other text is refused with the forms that were
//! expected (exit 65), a full name of a version that is not installed is not found (exit 66).

use appipc_testkit::{CONTOSO_SERVICES, HELLO, TestBroker};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().expect("appipc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const EXPECTED: &str = "expected a package family name Name_PublisherId";

#[test]
fn every_package_form_on_every_command() {
    let b = TestBroker::start();
    let (hello, services) =
        rt().block_on(async { (b.install(&HELLO).await, b.install(&CONTOSO_SERVICES).await) });
    let (family, full) = (hello.family_name.clone(), hello.full_name.clone());
    assert!(full.starts_with("Contoso.Hello_1.0.0.0_neutral__"), "{full}");

    // launch: family, full, and either with !AppId.
    for target in [family.clone(), full.clone(), format!("{family}!App"), format!("{full}!App")] {
        let (code, out, err) = cli(&b, &["launch", "--wait", &target]);
        assert_eq!(code, 0, "launch {target}: {err}");
        assert!(out.contains(&format!("hello from {family}!App")), "{target}: {out}");
    }

    // app-service call: family and full; an application is refused with the reason.
    for package in [services.family_name.clone(), services.full_name.clone()] {
        let (code, out, err) =
            cli(&b, &["app-service", "call", &package, "com.contoso.echo", "--message", "{}"]);
        assert_eq!(code, 0, "app-service call {package}: {out}{err}");
        assert!(out.contains("Success"), "{out}");
    }
    let (code, _, err) = cli(
        &b,
        &["app-service", "call", &format!("{}!App", services.family_name), "com.contoso.echo"],
    );
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("takes a package, not one of its applications"), "{err}");

    // why --package: every form names the family.
    for p in [family.clone(), full.clone(), format!("{family}!App")] {
        let (code, _, err) = cli(&b, &["why", "--all", "--package", &p]);
        assert_eq!(code, 0, "why --package {p}: {err}");
    }

    // Text that is no package is refused with the forms expected, by every command.
    for args in [
        vec!["launch", "Contoso.Hello"],
        vec!["remove", "Contoso.Hello_1.0_neutral__cvnpggrrsm18p"],
        vec!["app-service", "call", "Contoso Services", "com.contoso.echo"],
        vec!["why", "--package", "a_b_c"],
    ] {
        let (code, _, err) = cli(&b, &args);
        assert_eq!(code, 65, "{args:?}: {err}");
        assert!(err.contains(EXPECTED), "{args:?} does not say what it expected: {err}");
    }
    // A full name whose version is not the installed one is not found, and says what is.
    let other = full.replace("_1.0.0.0_", "_2.0.0.0_");
    for args in [vec!["launch", other.as_str()], vec!["remove", other.as_str()]] {
        let (code, _, err) = cli(&b, &args);
        assert_eq!(code, 66, "{args:?}: {err}");
        assert!(err.contains(&format!("installed as {full}")), "{err}");
    }
    // remove refuses an application, then takes the full name, then the family name.
    let (code, _, err) = cli(&b, &["remove", &format!("{family}!App")]);
    assert_eq!(code, 65, "{err}");
    let (code, out, err) = cli(&b, &["remove", &full]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("removed {full}")), "{out}");
    let (code, out, err) = cli(&b, &["remove", &services.family_name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("removed {}", services.full_name)), "{out}");
    // Gone: not found, by either name.
    for p in [&family, &full] {
        let (code, _, err) = cli(&b, &["remove", p]);
        assert_eq!(code, 66, "remove {p} again: {err}");
    }
}
