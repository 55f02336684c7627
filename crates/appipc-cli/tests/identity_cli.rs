//! `appipc identity …` prints Windows' own values.

use std::process::Command;

fn appipc(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_appipc")).args(args).output().expect("run appipc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line(args: &[&str]) -> String {
    let (ok, out, err) = appipc(args);
    assert!(ok, "appipc {args:?} failed: {err}");
    assert_eq!(out.lines().count(), 1, "one line expected, got {out:?}");
    out
}

const MS: &str = "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";

#[test]
fn publisher_ids() {
    assert_eq!(line(&["identity", "publisher-id", MS]), "8wekyb3d8bbwe");
    assert_eq!(
        line(&[
            "identity",
            "publisher-id",
            "CN=Microsoft Windows, O=Microsoft Corporation, L=Redmond, S=Washington, C=US"
        ]),
        "cw5n1h2txyewy"
    );
    assert_eq!(
        line(&["identity", "publisher-id", "CN=4975D53F-AA7E-49A5-8B49-EA4FDC1BB66B"]),
        "qbz5n2kfra8p0"
    );
    // Non-ASCII: hashed as UTF-16LE exactly as written (precomposed and decomposed differ).
    assert_eq!(line(&["identity", "publisher-id", "CN=Z\u{fc}rich"]), "k1qkv4f1qdrjy");
    assert_eq!(line(&["identity", "publisher-id", "CN=Zu\u{308}rich"]), "t77c0m53rpbfr");
}

#[test]
fn family_and_full_names() {
    assert_eq!(
        line(&["identity", "family-name", "Microsoft.MicrosoftEdge", MS]),
        "Microsoft.MicrosoftEdge_8wekyb3d8bbwe"
    );
    assert_eq!(
        line(&[
            "identity",
            "full-name",
            "Microsoft.Windows.Photos",
            "2019.19071.12548.0",
            "X64",
            MS
        ]),
        "Microsoft.Windows.Photos_2019.19071.12548.0_x64__8wekyb3d8bbwe"
    );
    assert_eq!(
        line(&[
            "identity",
            "full-name",
            "Microsoft.BingWeather",
            "4.25.20211.0",
            "x64",
            MS,
            "--resource-id",
            "NorthAmerica"
        ]),
        "Microsoft.BingWeather_4.25.20211.0_x64_NorthAmerica_8wekyb3d8bbwe"
    );
}

#[test]
fn sids() {
    assert_eq!(
        line(&["identity", "appcontainer-sid", "Microsoft.MicrosoftEdge_8wekyb3d8bbwe"]),
        "S-1-15-2-3624051433-2125758914-1423191267-1740899205-1073925389-3782572162-737981194"
    );
    assert_eq!(line(&["identity", "capability-sid", "internetClient"]), "S-1-15-3-1");
    assert_eq!(
        line(&["identity", "capability-sid", "registryRead"]),
        "S-1-15-3-1024-1065365936-1281604716-3511738428-1654721687-432734479-3232135806-4053264122-3456934681"
    );
    let group = line(&["identity", "capability-sid", "registryRead", "--group"]);
    assert!(group.starts_with("S-1-5-32-"), "{group}");
}

#[test]
fn invalid_input_is_named() {
    let (ok, _, err) = appipc(&["identity", "family-name", "a_b", "CN=X"]);
    assert!(!ok);
    assert!(err.contains("package name") && err.contains("a_b"), "{err}");
    let (ok, _, err) = appipc(&["identity", "full-name", "Name", "1.0.0", "x64", "CN=X"]);
    assert!(!ok);
    assert!(err.contains("version"), "{err}");
}
