//! Signed packages, publisher trust, developer mode and consent, tried as an attacker would:
//! another publisher's claim, an upgrade signed by another key, tampered and forged package
//! files, folder installs without developer mode, restricted capabilities without consent.
//! Real broker, real CLI.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use appipc::management::InstallOutcome;
use appipc::{AddPackageOptions, ErrorKind, PackageManager, WindowsCode};
use appipc_model::package_file::{FileMode, PackageWriter, SecretKey};
use appipc_testkit::{
    CONTOSO_BRIDGE, HELLO, SigningKey, TestBroker, assemble, assemble_manifest, bin_dir, unique,
};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";

fn run(b: &TestBroker, args: &[&OsStr]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn install(b: &TestBroker, path: &Path) -> (i32, String, String) {
    run(b, &["install".as_ref(), path.as_os_str()])
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn listed(b: &TestBroker) -> Vec<serde_json::Value> {
    let (code, out, err) = run(b, &["list".as_ref(), "--json".as_ref()]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().clone()
}

/// The key id of a key file made by `appipc key new`.
fn key_id(key: &SigningKey) -> String {
    let text = std::fs::read_to_string(&key.public).unwrap();
    appipc_model::package_file::PublicKey::from_file_text(&text).unwrap().id().to_string()
}

fn secret(key: &SigningKey) -> SecretKey {
    SecretKey::from_file_text(&std::fs::read_to_string(&key.secret).unwrap()).unwrap()
}

/// Nothing half-installed is left behind.
fn no_staging_left(b: &TestBroker) {
    let left: Vec<_> = std::fs::read_dir(b.home.join("packages"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        .collect();
    assert!(left.is_empty(), "staging folders left: {left:?}");
}

fn hello_version(version: &str) -> String {
    HELLO.manifest.replace("version = \"1.0.0.0\"", &format!("version = \"{version}\""))
}

/// A package file in the archive layout `docs/packaging.md` specifies, written entry by entry
/// as an attacker's own tool would: `entries` in archive order, each (name, mode, bytes).
fn tar_file(entries: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, mode, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        t.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    t.into_inner().unwrap()
}

/// A block map for these files (sorted, canonical).
fn block_map(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    use sha2::Digest;
    let mut lines: Vec<(String, String)> = files
        .iter()
        .map(|(p, mode, data)| {
            let hash: String =
                sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
            ((*p).to_owned(), format!("{hash} {mode:o} {} {p}\n", data.len()))
        })
        .collect();
    lines.sort();
    let mut out = b"appipc-block-map 1\n".to_vec();
    for (_, l) in lines {
        out.extend_from_slice(l.as_bytes());
    }
    out
}

/// An `appipc.signature` by `key` over `map`.
fn signature(key: &SecretKey, map: &[u8]) -> Vec<u8> {
    let public = key.public_key().to_file_text();
    let mut text = String::from("format = \"appipc-signature-1\"\n");
    for line in public.lines() {
        if ["publisher = ", "key = ", "binding = "].iter().any(|p| line.starts_with(p)) {
            text.push_str(line);
            text.push('\n');
        }
    }
    let sig = data_encoding::BASE64.encode(&key.sign(map));
    text.push_str(&format!("signature = \"{sig}\"\n"));
    text.into_bytes()
}

const SCRIPT: &[u8] = b"#!/bin/sh\necho hello from a script\n";

fn script_manifest(name: &str, publisher: &str, version: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"{version}\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/run\"\n"
    )
}

/// A whole package file made by hand: `manifest` and `bin/run`, the block map over exactly
/// those, signed by `key` (whatever publisher the manifest claims).
fn forged(key: &SecretKey, manifest: &str) -> Vec<u8> {
    let map = block_map(&[("appipc.toml", 0o644, manifest.as_bytes()), ("bin/run", 0o755, SCRIPT)]);
    let sig = signature(key, &map);
    tar_file(&[
        ("appipc.blockmap", 0o644, map),
        ("appipc.signature", 0o644, sig),
        ("appipc.toml", 0o644, manifest.as_bytes().to_vec()),
        ("bin/run", 0o755, SCRIPT.to_vec()),
    ])
}

fn write(b: &TestBroker, bytes: &[u8]) -> PathBuf {
    let p = b.root.path().join(format!("{}.appipc", unique("f")));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_package_claiming_another_publisher_without_its_key_is_refused() {
    let b = TestBroker::start_strict();
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let dir = assemble(&HELLO, &b.root.path().join(unique("hello"))).unwrap();

    // Mallory makes a key that names Contoso (anyone can) and signs "Contoso.Hello" with it.
    let mallory = b.new_key(CONTOSO);
    let claim = b.pack(&dir, &mallory);
    let (code, _, err) = install(&b, &claim);
    assert_ne!(code, 0);
    assert!(err.contains("untrusted key") && err.contains(&key_id(&mallory)), "{err}");
    assert!(err.contains("0x800B0109"), "CERT_E_UNTRUSTEDROOT: {err}");
    assert!(err.contains("appipc trust add"), "says what would allow it: {err}");

    // Mallory's key, trusted for her own name, signing a manifest that claims Contoso.
    let own = b.new_key("CN=Mallory");
    b.trust(&own);
    let manifest = script_manifest("Contoso.Hello", CONTOSO, "9.0.0.0");
    let (code, _, err) = install(&b, &write(&b, &forged(&secret(&own), &manifest)));
    assert_ne!(code, 0);
    assert!(err.contains("publisher mismatch"), "{err}");
    assert!(err.contains("\"CN=Mallory\"") && err.contains(&format!("{CONTOSO:?}")), "{err}");
    assert!(err.contains("0x8007000B"), "ERROR_BAD_FORMAT: {err}");
    assert!(listed(&b).is_empty(), "nothing installed");

    // Contoso's own signature installs, and the row records the signer.
    let genuine = b.pack(&dir, &contoso);
    let (code, out, err) = install(&b, &genuine);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("installed Contoso.Hello_1.0.0.0"), "{out}");
    let pkgs = listed(&b);
    assert_eq!(pkgs[0]["signer"]["key_id"], key_id(&contoso));
    assert_eq!(pkgs[0]["signer"]["publisher"], CONTOSO);
    no_staging_left(&b);

    // The decisions are in `appipc why`.
    let (_, why, _) = run(&b, &["why".as_ref()]);
    assert!(why.contains("packages.accept-signer") && why.contains("untrusted key"), "{why}");
}

#[test]
fn an_upgrade_signed_by_another_key_is_refused() {
    let b = TestBroker::start_strict();
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let v1 = assemble_manifest(&hello_version("1.0.0.0"), &b.root.path().join("v1"), &bin_dir())
        .unwrap();
    let v2 = assemble_manifest(&hello_version("2.0.0.0"), &b.root.path().join("v2"), &bin_dir())
        .unwrap();
    let (code, _, err) = install(&b, &b.pack(&v1, &contoso));
    assert_eq!(code, 0, "{err}");
    let pfn = listed(&b)[0]["family_name"].as_str().unwrap().to_owned();
    let data = b.home.join("data").join(&pfn).join("LocalState/secret.txt");
    std::fs::write(&data, "Contoso's app data").unwrap();

    // A higher version signed by a key that is not trusted for Contoso: refused, v1 stays.
    let mallory = b.new_key(CONTOSO);
    let (code, _, err) = install(&b, &b.pack(&v2, &mallory));
    assert_ne!(code, 0);
    assert!(err.contains("untrusted key"), "{err}");

    // The same, as a folder in developer mode: an unsigned folder never replaces a signed
    // package (it would take its app data).
    b.set_developer_mode(true);
    let (code, _, err) = install(&b, &v2);
    assert_ne!(code, 0);
    assert!(err.contains("unsigned folder may not replace it"), "{err}");
    assert!(err.contains(&key_id(&contoso)), "names the installed signer: {err}");
    assert!(err.contains("0x80073CFF"), "ERROR_INSTALL_POLICY_FAILURE: {err}");
    b.set_developer_mode(false);
    let pkgs = listed(&b);
    assert_eq!(pkgs.len(), 1);
    assert_eq!(pkgs[0]["version"], "1.0.0.0");
    assert_eq!(pkgs[0]["signer"]["key_id"], key_id(&contoso));
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "Contoso's app data");

    // A second key the user trusts for Contoso (a rotation) may upgrade; the data stays.
    let rotated = b.new_key(CONTOSO);
    b.trust(&rotated);
    let (code, out, err) = install(&b, &b.pack(&v2, &rotated));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("upgraded Contoso.Hello_1.0.0.0"), "{out}");
    assert_eq!(listed(&b)[0]["signer"]["key_id"], key_id(&rotated));
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "Contoso's app data");

    // Removing a key from the trust store leaves what it installed, and refuses what it signs.
    let (code, out, err) =
        run(&b, &["trust".as_ref(), "remove".as_ref(), key_id(&rotated)[..12].as_ref()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&key_id(&rotated)), "{out}");
    assert_eq!(listed(&b)[0]["version"], "2.0.0.0");
    let v3 = assemble_manifest(&hello_version("3.0.0.0"), &b.root.path().join("v3"), &bin_dir())
        .unwrap();
    let (code, _, err) = install(&b, &b.pack(&v3, &rotated));
    assert_ne!(code, 0);
    assert!(err.contains("untrusted key"), "{err}");
    no_staging_left(&b);
}

#[test]
fn a_tampered_or_forged_file_is_refused_naming_the_problem() {
    let b = TestBroker::start_strict();
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let key = secret(&contoso);
    let manifest = script_manifest("Contoso.Script", CONTOSO, "1.0.0.0");
    let good = forged(&key, &manifest);
    let map = block_map(&[("appipc.toml", 0o644, manifest.as_bytes()), ("bin/run", 0o755, SCRIPT)]);
    let sig = signature(&key, &map);
    let entry = |name: &'static str, mode: u32, data: &[u8]| (name, mode, data.to_vec());

    // A byte of bin/run changed after signing.
    let mut evil = SCRIPT.to_vec();
    evil[12] ^= 0x20;
    let tampered = tar_file(&[
        entry("appipc.blockmap", 0o644, &map),
        entry("appipc.signature", 0o644, &sig),
        entry("appipc.toml", 0o644, manifest.as_bytes()),
        entry("bin/run", 0o755, &evil),
    ]);
    // A file added after signing, and one left out.
    let added = tar_file(&[
        entry("appipc.blockmap", 0o644, &map),
        entry("appipc.signature", 0o644, &sig),
        entry("appipc.toml", 0o644, manifest.as_bytes()),
        entry("bin/run", 0o755, SCRIPT),
        entry("bin/extra", 0o755, b"#!/bin/sh\nrm -rf ~\n"),
    ]);
    let missing = tar_file(&[
        entry("appipc.blockmap", 0o644, &map),
        entry("appipc.signature", 0o644, &sig),
        entry("appipc.toml", 0o644, manifest.as_bytes()),
    ]);
    // The block map changed after signing (bin/run's hash replaced by the evil one's).
    let evil_map =
        block_map(&[("appipc.toml", 0o644, manifest.as_bytes()), ("bin/run", 0o755, &evil)]);
    let resigned_map = tar_file(&[
        entry("appipc.blockmap", 0o644, &evil_map),
        entry("appipc.signature", 0o644, &sig),
        entry("appipc.toml", 0o644, manifest.as_bytes()),
        entry("bin/run", 0o755, &evil),
    ]);
    // No signature at all; and a plain tar of a folder.
    let unsigned = tar_file(&[
        entry("appipc.blockmap", 0o644, &map),
        entry("appipc.toml", 0o644, manifest.as_bytes()),
        entry("bin/run", 0o755, SCRIPT),
    ]);
    let plain = tar_file(&[
        entry("appipc.toml", 0o644, manifest.as_bytes()),
        entry("bin/run", 0o755, SCRIPT),
    ]);
    // A link smuggled in as an entry.
    let mut link = tar::Builder::new(Vec::new());
    for (name, data) in [("appipc.blockmap", &map), ("appipc.signature", &sig)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        link.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    link.append_link(&mut h, "appipc.toml", "/etc/passwd").unwrap();
    let link = link.into_inner().unwrap();

    let cases: [(&str, Vec<u8>, &[&str], &str); 7] = [
        ("tampered", tampered, &["bin/run", "hash mismatch"], "0x80080207"),
        ("added", added, &["bin/extra", "not in the block map"], "0x80080205"),
        ("missing", missing, &["bin/run", "missing from the archive"], "0x80080205"),
        ("block map changed", resigned_map, &["bad signature", &key_id(&contoso)], "0x800B0004"),
        ("unsigned", unsigned, &["unsigned", "appipc.signature"], "0x800B0100"),
        ("plain tar", plain, &["not an appipc package file", "appipc.blockmap"], "0x80080203"),
        ("link entry", link, &["appipc.toml", "symbolic link"], ""),
    ];
    for (what, bytes, needles, code_text) in cases {
        let (code, _, err) = install(&b, &write(&b, &bytes));
        assert_ne!(code, 0, "{what} installed");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err}");
        }
        assert!(err.contains(code_text), "{what}: {code_text} not in {err}");
    }
    assert!(listed(&b).is_empty(), "nothing installed");
    no_staging_left(&b);

    // The genuine file installs; the same file again is already installed.
    let file = write(&b, &good);
    let (code, out, err) = install(&b, &file);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("installed Contoso.Script_1.0.0.0"), "{out}");
    let (code, out, _) = install(&b, &file);
    assert_eq!(code, 0);
    assert!(out.contains("is already installed"), "{out}");
    // An fd that is not a regular file is refused before anything is read.
    rt().block_on(async {
        let (r, _w) = std::io::pipe().unwrap();
        let r = std::fs::File::from(std::os::fd::OwnedFd::from(r));
        let e = PackageManager::new(&b.session())
            .add_package_file(&r, &AddPackageOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::BadRequest), "{e}");
        assert!(e.to_string().contains("FIFO or pipe"), "{e}");
    });
}

#[test]
fn folder_installs_need_developer_mode_and_are_marked_unsigned() {
    let b = TestBroker::start_strict();
    let dir = assemble(&HELLO, &b.root.path().join(unique("hello"))).unwrap();
    let (code, out, _) = run(&b, &["dev-mode".as_ref(), "status".as_ref()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("developer mode is off"), "{out}");
    let (code, _, err) = install(&b, &dir);
    assert_ne!(code, 0);
    assert!(err.contains("needs developer mode"), "{err}");
    assert!(err.contains("appipc pack") && err.contains("0x80073CFF"), "{err}");
    assert!(listed(&b).is_empty());

    let (code, out, _) = run(&b, &["dev-mode".as_ref(), "on".as_ref()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("developer mode is on"), "{out}");
    let (code, out, err) = install(&b, &dir);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unsigned (developer mode)"), "{err}");
    let pfn = listed(&b)[0]["family_name"].as_str().unwrap().to_owned();
    assert!(listed(&b)[0]["signer"].is_null());
    assert!(out.starts_with("installed "), "{out}");
    let (_, out, _) = run(&b, &["list".as_ref()]);
    assert!(out.contains("signature    unsigned (developer mode)"), "{out}");

    // ps marks the package's processes too.
    let (code, _, err) = run(
        &b,
        &["launch".as_ref(), pfn.as_ref(), "--".as_ref(), "--sleep".as_ref(), "30".as_ref()],
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&b, &["ps".as_ref()]);
    assert!(out.contains(&pfn) && out.contains("[unsigned (developer mode)]"), "{out}");
    let (_, out, _) = run(&b, &["ps".as_ref(), "--json".as_ref()]);
    let ps: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ps[0]["signed"], false, "{ps}");

    // Developer mode survives a restart; off again, folders are refused again.
    let mut b = b;
    b.stop();
    b.restart();
    let (_, out, _) = run(&b, &["dev-mode".as_ref(), "status".as_ref()]);
    assert!(out.starts_with("developer mode is on"), "{out}");
    run(&b, &["dev-mode".as_ref(), "off".as_ref()]);
    let other = assemble(&CONTOSO_BRIDGE, &b.root.path().join(unique("bridge"))).unwrap();
    let (code, _, err) = install(&b, &other);
    assert_ne!(code, 0);
    assert!(err.contains("needs developer mode"), "{err}");
    // The unsigned package installed before stays listed, still marked.
    assert!(listed(&b)[0]["signer"].is_null());
}

#[test]
fn only_the_user_changes_the_trust_store_and_developer_mode() {
    let b = TestBroker::start_strict();
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let (code, _, err) =
        install(&b, &b.pack(&assemble(&HELLO, &b.root.path().join("h")).unwrap(), &contoso));
    assert_eq!(code, 0, "{err}");
    let pfn = listed(&b)[0]["family_name"].as_str().unwrap().to_owned();
    let mallory = b.new_key("CN=Mallory");
    let text = std::fs::read_to_string(&mallory.public).unwrap();
    let (code, out, err) = run(
        &b,
        &[
            "launch".as_ref(),
            "--wait".as_ref(),
            pfn.as_ref(),
            "--".as_ref(),
            "--try-developer-mode".as_ref(),
            "--try-trust".as_ref(),
            text.as_ref(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("developer mode refused:") && out.contains("only the user's own"),
        "{out}"
    );
    assert!(out.contains("trust refused:"), "{out}");
    let (_, out, _) = run(&b, &["trust".as_ref(), "list".as_ref()]);
    assert!(out.contains(&key_id(&contoso)) && !out.contains(&key_id(&mallory)), "{out}");
    let (_, out, _) = run(&b, &["dev-mode".as_ref(), "status".as_ref()]);
    assert!(out.starts_with("developer mode is off"), "{out}");

    // A public key file whose publisher was edited is refused (the binding no longer
    // verifies), and trusting the same key twice changes nothing.
    let relabelled = write(&b, text.replace("CN=Mallory", CONTOSO).as_bytes());
    let (code, _, err) = run(&b, &["trust".as_ref(), "add".as_ref(), relabelled.as_os_str()]);
    assert_ne!(code, 0);
    assert!(err.contains("binding"), "{err}");
    b.trust(&contoso);
    let (_, out, _) = run(&b, &["trust".as_ref(), "list".as_ref(), "--json".as_ref()]);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["publisher"], CONTOSO);
}

#[test]
fn restricted_capabilities_need_consent() {
    let b = TestBroker::start_strict();
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let bridge = b.pack(&assemble(&CONTOSO_BRIDGE, &b.root.path().join("b1")).unwrap(), &contoso);

    // No terminal and no --yes: refused, listing what it would have granted.
    let (code, _, err) = install(&b, &bridge);
    assert_ne!(code, 0);
    assert!(err.contains("runFullTrust") && err.contains("full-trust"), "one line on it: {err}");
    assert!(err.contains("no terminal to ask on") && err.contains("--yes"), "{err}");
    assert!(listed(&b).is_empty());
    // Through the SDK without consent: refused by the broker, with the rule.
    rt().block_on(async {
        let e = PackageManager::new(&b.session()).add_package(&bridge).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::AccessDenied), "{e}");
        assert_eq!(e.windows_code(), WindowsCode::HResult(0x8007_0005));
        assert!(e.to_string().contains("none was given for runFullTrust"), "{e}");
    });

    // On a terminal, answering no, then yes.
    let have_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        eprintln!("skipping the terminal prompt: `script` (util-linux) is not installed");
        let (code, _, err) = run(&b, &["install".as_ref(), "--yes".as_ref(), bridge.as_os_str()]);
        assert_eq!(code, 0, "{err}");
    }
    for (answer, installs) in [("n\n", false), ("y\n", true)].into_iter().filter(|_| have_script) {
        let out = script(&b, &["install", bridge.to_str().unwrap()], answer);
        assert_eq!(out.contains("installed Contoso.Bridge"), installs, "{answer:?}: {out}");
        assert!(out.contains("Grant them and install? [y/N]"), "{out}");
        if !installs {
            assert!(out.contains("you did not grant runFullTrust"), "{out}");
        }
    }
    let pkgs = listed(&b);
    assert_eq!(pkgs[0]["granted_capabilities"], serde_json::json!(["runFullTrust"]));

    // An upgrade with the same restricted capabilities asks nothing; one that adds one asks
    // again, and --yes grants it.
    let v2 = CONTOSO_BRIDGE.manifest.replace("version = \"1.0.0.0\"", "version = \"1.1.0.0\"");
    let v2 =
        b.pack(&assemble_manifest(&v2, &b.root.path().join("b2"), &bin_dir()).unwrap(), &contoso);
    let (code, out, err) = install(&b, &v2);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("upgraded"), "{out}");
    let v3 =
        CONTOSO_BRIDGE.manifest.replace("version = \"1.0.0.0\"", "version = \"1.2.0.0\"").replace(
            "restricted = [\"runFullTrust\"]",
            "restricted = [\"runFullTrust\", \"broadFileSystemAccess\"]",
        );
    assert_ne!(v3, CONTOSO_BRIDGE.manifest);
    let v3 =
        b.pack(&assemble_manifest(&v3, &b.root.path().join("b3"), &bin_dir()).unwrap(), &contoso);
    let (code, _, err) = install(&b, &v3);
    assert_ne!(code, 0);
    assert!(
        err.contains("adds restricted capabilities") && err.contains("broadFileSystemAccess"),
        "{err}"
    );
    assert!(!err.contains("  runFullTrust"), "asks only for the new one: {err}");
    let (code, out, err) = run(&b, &["install".as_ref(), "--yes".as_ref(), v3.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("granted (--yes)"), "{err}");
    assert!(out.starts_with("upgraded"), "{out}");
    let granted = listed(&b)[0]["granted_capabilities"].clone();
    assert_eq!(granted, serde_json::json!(["runFullTrust", "broadFileSystemAccess"]));
}

/// Runs the CLI on a pseudo-terminal (`script`), typing `input`; returns what it printed.
fn script(b: &TestBroker, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut command = String::from(appipc_testkit::binary("appipc").to_str().unwrap());
    for a in args {
        command.push_str(&format!(" '{a}'"));
    }
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"]);
    b.apply_env(&mut cmd);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("script (util-linux) runs the CLI on a terminal");
    // The prompt is printed before the answer is read; the pty buffers what is typed early.
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn package_limits_are_configurable_and_named() {
    let conf = tempfile::tempdir().unwrap();
    let file = conf.path().join("broker.toml");
    std::fs::write(&file, "[packages]\nmax-files = 3\nmax-total-size = 1000000\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", file.to_str().unwrap())]);
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let dir = b.root.path().join("many");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("appipc.toml"), script_manifest("Contoso.Many", CONTOSO, "1.0.0.0"))
        .unwrap();
    std::fs::write(dir.join("bin/run"), SCRIPT).unwrap();
    let mut p = std::fs::metadata(dir.join("bin/run")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
    std::fs::set_permissions(dir.join("bin/run"), p).unwrap();
    for i in 0..3 {
        std::fs::write(dir.join(format!("data{i}")), b"x").unwrap();
    }
    let (code, _, err) = install(&b, &dir);
    assert_ne!(code, 0);
    assert!(err.contains("more than 3 files"), "{err}");
    let (code, _, err) = install(&b, &b.pack(&dir, &contoso));
    assert_ne!(code, 0);
    assert!(err.contains("more than 3 files"), "{err}");
    std::fs::write(dir.join("data0"), vec![0u8; 1_000_001]).unwrap();
    for i in 1..3 {
        std::fs::remove_file(dir.join(format!("data{i}"))).unwrap();
    }
    let (code, _, err) = install(&b, &dir);
    assert_ne!(code, 0);
    assert!(err.contains("add up to more than 1000000 bytes"), "{err}");
    let (code, _, err) = install(&b, &b.pack(&dir, &contoso));
    assert_ne!(code, 0);
    assert!(err.contains("add up to more than 1000000 bytes"), "{err}");
    assert!(listed(&b).is_empty());
    no_staging_left(&b);
}

#[test]
fn pack_refuses_what_the_broker_would_refuse() {
    let b = TestBroker::start_strict();
    let fabrikam = b.new_key("CN=Fabrikam Inc, O=Fabrikam, C=US");
    let dir = assemble(&HELLO, &b.root.path().join(unique("hello"))).unwrap();
    let out = b.root.path().join("x.appipc");
    let pack = |dir: &Path, key: &SigningKey| {
        run(
            &b,
            &[
                "pack".as_ref(),
                dir.as_os_str(),
                "--key".as_ref(),
                key.secret.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
            ],
        )
    };
    let (code, _, err) = pack(&dir, &fabrikam);
    assert_ne!(code, 0);
    assert!(
        err.contains("\"CN=Fabrikam Inc, O=Fabrikam, C=US\"")
            && err.contains(&format!("{CONTOSO:?}")),
        "{err}"
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.join("bin/passwd")).unwrap();
    let contoso = b.new_key(CONTOSO);
    let (code, _, err) = pack(&dir, &contoso);
    assert_ne!(code, 0);
    assert!(err.contains("bin/passwd") && err.contains("symbolic link"), "{err}");
    std::fs::remove_file(dir.join("bin/passwd")).unwrap();
    let (code, stdout, err) = pack(&dir, &contoso);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains(&key_id(&contoso)), "{stdout}");
    // The file is what docs/packaging.md says: tar lists the three metadata entries first.
    let listing = std::process::Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    let first: Vec<&str> = names.lines().take(3).collect();
    assert_eq!(first, ["appipc.blockmap", "appipc.signature", "appipc.toml"], "{names}");
    // And a package writer in-process makes a file the CLI's broker accepts the same way.
    let key = secret(&contoso);
    let mut w = PackageWriter::new(script_manifest("Contoso.Lib", CONTOSO, "1.0.0.0"));
    w.add_bytes("bin/run".parse().unwrap(), FileMode::Executable, SCRIPT);
    let mut bytes = Vec::new();
    w.write(&key, &mut bytes).unwrap();
    b.trust(&contoso);
    let (code, _, err) = install(&b, &write(&b, &bytes));
    assert_eq!(code, 0, "{err}");
    rt().block_on(async {
        let pkgs = PackageManager::new(&b.session()).find_packages().await.unwrap();
        assert_eq!(pkgs[0].signer.as_ref().unwrap().key_id, key.id().to_string());
        let r = PackageManager::new(&b.session()).add_package(&write(&b, &bytes)).await.unwrap();
        assert_eq!(r.outcome, InstallOutcome::AlreadyInstalled);
    });
}

#[test]
fn a_package_file_rewritten_while_it_installs_installs_what_was_verified() {
    use std::io::{Seek, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let b = TestBroker::start_strict();
    let contoso = b.new_key(CONTOSO);
    b.trust(&contoso);
    let key = secret(&contoso);
    // Two packages of the same layout and sizes, each with 256 KiB of its own letter.
    let make = |name: &str, letter: u8| {
        let mut w = PackageWriter::new(script_manifest(name, CONTOSO, "1.0.0.0"));
        w.add_bytes("bin/run".parse().unwrap(), FileMode::Executable, SCRIPT);
        w.add_bytes("data.bin".parse().unwrap(), FileMode::Regular, vec![letter; 256 << 10]);
        let mut out = Vec::new();
        w.write(&key, &mut out).unwrap();
        out
    };
    let (a, c) = (make("Contoso.FileA", b'a'), make("Contoso.FileB", b'b'));
    let path = write(&b, &a);
    let stop = Arc::new(AtomicBool::new(false));
    let rewriter = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for bytes in [&c, &a] {
                    f.rewind().unwrap();
                    f.write_all(bytes).unwrap();
                    // Between rewrites the file is whole for a moment, so that some installs
                    // read one package from start to end and succeed.
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
                rounds += 1;
            }
            rounds
        })
    };
    let (mut installed, mut refused) = (0, 0);
    rt().block_on(async {
        let pm = PackageManager::new(&b.session());
        for _ in 0..20 {
            let file = std::fs::File::open(&path).unwrap();
            match pm.add_package_file(&file, &AddPackageOptions::default()).await {
                Ok(r) => {
                    installed += 1;
                    let letter =
                        if r.family_name.starts_with("Contoso.FileA") { b'a' } else { b'b' };
                    let p = pm.find_packages().await.unwrap().remove(0);
                    let data =
                        std::fs::read(Path::new(&p.install_location).join("data.bin")).unwrap();
                    assert!(
                        data.len() == 256 << 10 && data.iter().all(|x| *x == letter),
                        "{} was installed with content that is not its own",
                        r.full_name
                    );
                    pm.remove_package(&r.family_name).await.unwrap();
                }
                Err(e) => {
                    refused += 1;
                    assert_eq!(e.kind(), Some(ErrorKind::InvalidPackage), "{e}");
                }
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let rounds = rewriter.join().unwrap();
    eprintln!("{installed} installed, {refused} refused, {rounds} rewrites");
    no_staging_left(&b);
}
