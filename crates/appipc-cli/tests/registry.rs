//! The registry end to end through a real broker, with real confined processes of installed
//! packages (the `reg-probe` helper): two processes of one package talk through a value of
//! their private hive and a change notification, another package and unpackaged processes
//! never see it; shipped keys (`Registry.reg`) are read-only; tombstones; `excluded-keys`;
//! upgrade keeps the private hive, removal drops it; `.reg` export → import round trip of
//! every type; crash consistency (SIGKILL during writes); and the attacks: hostile names,
//! limits, huge values, handle hoarding, guessed handles, a flood of changes to a session
//! that never reads.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use appipc::registry::{NotifyFilter, RegKey, RegValue};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, unique};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";

/// A second application, `Full`, that runs with full trust (`appipc launch PFN!Full`).
const FULL_TRUST: &str = "[capabilities]\nrestricted = [\"runFullTrust\"]\n\n\
    [[application]]\nid = \"Full\"\nexecutable = \"bin/reg-probe\"\ntrust-level = \"mediumIL\"\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Installs (or upgrades to `version`) a reg-probe package; its first application `App` is
/// an app container, `extra` goes after it (tables, more applications), `shipped` is its
/// `Registry.reg`. Returns the family name.
fn install(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    version: u32,
    extra: &str,
    shipped: Option<&str>,
) -> String {
    let text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.{version}\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/reg-probe\"\n\n{extra}\n"
    );
    let dir = assemble_manifest(&text, &b.root.path().join(unique("reg")), &bin_dir()).unwrap();
    if let Some(s) = shipped {
        std::fs::write(dir.join("Registry.reg"), appipc_model::registry::regfile::to_utf16le(s))
            .unwrap();
    }
    let out = b.cli().args(["install", "--yes", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    appipc_model::identity::PackageFamilyName::from_publisher(&name.parse().unwrap(), publisher)
        .to_string()
}

fn launch(b: &TestBroker, pfn: &str, steps: &[&str]) -> Command {
    let mut cmd = b.cli();
    cmd.args(["launch", "--wait", pfn, "--"]).args(steps);
    cmd
}

/// Runs the probe confined as `pfn`; its output.
fn probe(b: &TestBroker, pfn: &str, steps: &[&str]) -> String {
    let out = launch(b, pfn, steps).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The result of `step` (the nth occurrence, from 0).
fn result(out: &str, step: &str, nth: usize) -> String {
    out.lines()
        .filter_map(|l| l.strip_prefix(step).and_then(|r| r.strip_prefix(" => ")))
        .nth(nth)
        .unwrap_or_else(|| panic!("no result {nth} for {step:?} in:\n{out}"))
        .to_owned()
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn win32(e: appipc::Error) -> u32 {
    e.win32_code().unwrap_or_else(|| panic!("not a Win32 error: {e}"))
}

#[test]
fn two_processes_of_a_package_talk_through_its_private_hive_and_no_one_else_sees_it() {
    let b = TestBroker::start();
    let a = install(&b, "Contoso.RegIpc", CONTOSO, 0, "", None);
    let other = install(&b, "Fabrikam.RegIpc", FABRIKAM, 0, "", None);
    let key = r"HKCU\Software\Contoso\Ipc";
    let mut waiter: Child = launch(&b, &a, &["watch-get", key, "msg", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(waiter.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "watch-get => watching");
    let out = probe(&b, &a, &["set", key, "msg", "hello"]);
    assert_eq!(result(&out, "set", 0), "ok");
    assert_eq!(lines.next().unwrap().unwrap(), "watch-get => changed: hello");
    assert!(waiter.wait().unwrap().success());
    // The value is in the package's private hive.
    let out = probe(&b, &a, &["get", key, "msg"]);
    assert_eq!(result(&out, "get", 0), "hello [package private hive]");
    // Another package does not see it; nor does an unpackaged process.
    let out = probe(&b, &other, &["get", key, "msg", "subkeys", r"HKCU\Software"]);
    assert_eq!(result(&out, "get", 0), "error 2");
    assert!(!result(&out, "subkeys", 0).split(',').any(|k| k == "Contoso"), "{out}");
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let e = RegKey::current_user(&s).open(r"Software\Contoso\Ipc").await.unwrap_err();
        assert_eq!(win32(e), 2);
        // The user may look at the package's merged view, and sees where the value is.
        let view = RegKey::package_view(&s, appipc::registry::HKEY_CURRENT_USER, &a).await.unwrap();
        let k = view.open(r"Software\Contoso\Ipc").await.unwrap();
        assert_eq!(k.query_value("msg").await.unwrap().as_str().unwrap(), "hello");
    });
    let (code, out, err) = cli(&b, &["reg", "query", key, "--package", &a, "--explain"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("msg    REG_SZ    hello    [package private hive]"), "{out}");
    assert!(out.contains("(writes go to: package private hive)"), "{out}");
    let (code, _, _) = cli(&b, &["reg", "query", key]);
    assert_ne!(code, 0, "the global view has no such key");
}

#[test]
fn shipped_keys_merge_over_hklm_and_are_read_only() {
    let b = TestBroker::start();
    let shipped = "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\Contoso\\Shipped]\r\n\"Version\"=\"1.0\"\r\n";
    let a = install(&b, "Contoso.RegShip", CONTOSO, 0, "", Some(shipped));
    let (code, _, err) = cli(&b, &["reg", "add", r"HKLM\Software\Native", "-v", "x", "-d", "g"]);
    assert_eq!(code, 0, "{err}");
    let out = probe(
        &b,
        &a,
        &[
            "get",
            r"HKLM\Software\Contoso\Shipped",
            "Version",
            "set",
            r"HKLM\Software\Contoso\Shipped",
            "Version",
            "2.0",
            "del-tree",
            r"HKLM\Software\Contoso",
            "subkeys",
            r"HKLM\Software",
            "get",
            r"HKLM\Software\Native",
            "x",
            "set",
            r"HKLM\Software\Native",
            "x",
            "mine",
        ],
    );
    assert_eq!(result(&out, "get", 0), "1.0 [package Registry.reg (read-only)]");
    assert_eq!(result(&out, "set", 0), "error 5");
    assert_eq!(result(&out, "del-tree", 0), "error 5");
    assert_eq!(result(&out, "subkeys", 0), "Contoso,Native");
    assert_eq!(result(&out, "get", 1), "g [global]");
    assert_eq!(result(&out, "set", 1), "error 5", "an app container may not write HKLM");
    // The refusals are decisions: `appipc why` names the rule.
    let (code, out, err) = cli(&b, &["why", "--package", &a]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is part of the package's registry (Registry.reg), which is read-only"),
        "{out}"
    );
    assert!(out.contains("an app container may not write HKEY_LOCAL_MACHINE"), "{out}");
    // The global view has no shipped keys.
    let (code, _, _) = cli(&b, &["reg", "query", r"HKLM\Software\Contoso\Shipped"]);
    assert_ne!(code, 0);
    // A package shipping keys outside HKLM\Software, or a malformed file, is refused at install.
    for bad in [
        "REGEDIT4\r\n\r\n[HKEY_CURRENT_USER\\Software\\Sneaky]\r\n\"x\"=\"y\"\r\n",
        "REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\A]\r\n\"x\"=dword:zz\r\n",
    ] {
        let text = format!(
            "[package]\nname = \"Contoso.RegBadShip\"\npublisher = \"{CONTOSO}\"\nversion = \"1.0.0.0\"\n\n\
             [[application]]\nid = \"App\"\nexecutable = \"bin/reg-probe\"\n"
        );
        let dir = assemble_manifest(&text, &b.root.path().join(unique("bad")), &bin_dir()).unwrap();
        std::fs::write(dir.join("Registry.reg"), bad).unwrap();
        let (code, _, err) = cli(&b, &["install", "--yes", dir.to_str().unwrap()]);
        assert_ne!(code, 0);
        assert!(err.contains("Registry.reg"), "{err}");
    }
}

#[test]
fn tombstones_hide_global_values_and_keys_in_the_package_view_only() {
    let b = TestBroker::start();
    let a = install(&b, "Contoso.RegTomb", CONTOSO, 0, FULL_TRUST, None);
    // Full trust: the private hive merged over the global HKCU (an app container sees no
    // global HKCU key).
    let a = format!("{a}!Full");
    for (v, d) in [("a", "global"), ("b", "global")] {
        let (code, _, err) =
            cli(&b, &["reg", "add", r"HKCU\Software\Tomb\Child", "-v", v, "-d", d]);
        assert_eq!(code, 0, "{err}");
    }
    let k = r"HKCU\Software\Tomb\Child";
    let out = probe(
        &b,
        &a,
        &[
            "get",
            k,
            "a",
            "del-value",
            k,
            "a",
            "get",
            k,
            "a",
            "set",
            k,
            "b",
            "mine",
            "get",
            k,
            "b",
            "del-tree",
            k,
            "subkeys",
            r"HKCU\Software\Tomb",
            "create",
            k,
        ],
    );
    assert_eq!(result(&out, "get", 0), "global [global]");
    assert_eq!(result(&out, "del-value", 0), "ok");
    assert_eq!(result(&out, "get", 1), "error 2");
    assert_eq!(result(&out, "get", 2), "mine [package private hive]");
    assert_eq!(result(&out, "del-tree", 0), "ok");
    assert_eq!(result(&out, "subkeys", 0), "");
    assert_eq!(result(&out, "create", 0), "1", "created again, empty");
    let out = probe(&b, &a, &["get", k, "b"]);
    assert_eq!(result(&out, "get", 0), "error 2", "the global value stays hidden");
    // The global view is untouched.
    let (_, out, _) = cli(&b, &["reg", "query", k]);
    assert!(
        out.contains("a    REG_SZ    global") && out.contains("b    REG_SZ    global"),
        "{out}"
    );
}

/// Red team finding 4: an app container read and watched the user's global HKCU (other apps'
/// and the user's keys) under its private hive. It sees HKCU in its package's private hive
/// only; a full-trust process of the same package sees the private hive merged over the
/// global HKCU; the refused read is a decision (`appipc why`).
#[test]
fn an_app_container_neither_reads_nor_watches_the_global_hkcu() {
    let b = TestBroker::start();
    let a = install(&b, "Contoso.RegSecret", CONTOSO, 0, FULL_TRUST, None);
    let secret = r"HKCU\Software\Secret";
    for (k, v, d) in [(secret, "password", "hunter2"), (r"HKCU\Software\Secret\Deeper", "x", "y")] {
        let (code, _, err) = cli(&b, &["reg", "add", k, "-v", v, "-d", d]);
        assert_eq!(code, 0, "{err}");
    }
    // An app container watches its HKCU\Software; the user changes the secret, then the
    // package's own process writes: the first change the watcher hears of is its package's.
    assert_eq!(result(&probe(&b, &a, &["create", r"HKCU\Software\Mine"]), "create", 0), "1");
    let mut waiter: Child = launch(&b, &a, &["watch-tree", r"HKCU\Software", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(waiter.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "watch-tree => watching");
    let (code, _, err) = cli(&b, &["reg", "add", secret, "-v", "password", "-d", "hunter3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(result(&probe(&b, &a, &["set", r"HKCU\Software\Mine", "v", "x"]), "set", 0), "ok");
    assert_eq!(lines.next().unwrap().unwrap(), "watch-tree => changed: Mine");
    assert!(waiter.wait().unwrap().success());
    let out = probe(
        &b,
        &a,
        &[
            "get",
            secret,
            "password",
            "subkeys",
            r"HKCU\Software",
            "subkeys",
            secret,
            "create",
            secret,
            "get",
            secret,
            "password",
            "subkeys",
            secret,
        ],
    );
    assert_eq!(result(&out, "get", 0), "error 2", "the user's secret:\n{out}");
    assert_eq!(result(&out, "subkeys", 0), "Mine", "only its own keys");
    assert_eq!(result(&out, "subkeys", 1), "error 2");
    assert_eq!(result(&out, "create", 0), "1", "a key of its own, in its private hive");
    assert_eq!(result(&out, "get", 1), "error 2", "empty: the global values stay unseen");
    assert_eq!(result(&out, "subkeys", 2), "");
    // HKLM stays readable (most of HKLM\Software is readable to app containers on Windows).
    let (code, _, err) = cli(&b, &["reg", "add", r"HKLM\Software\Native", "-v", "x", "-d", "g"]);
    assert_eq!(code, 0, "{err}");
    let out = probe(&b, &a, &["get", r"HKLM\Software\Native", "x"]);
    assert_eq!(result(&out, "get", 0), "g [global]");
    // A full-trust process of the package sees the merge: its private hive over the global.
    let out = probe(&b, &format!("{a}!Full"), &["get", secret, "password", "subkeys", secret]);
    assert_eq!(result(&out, "get", 0), "hunter3 [global]");
    assert_eq!(result(&out, "subkeys", 0), "Deeper");
    // The refused read is a decision with its rule and remedy.
    let (code, out, err) = cli(&b, &["why", "--package", &a]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sees HKEY_CURRENT_USER only in its package's private hive"), "{out}");
}

#[test]
fn excluded_keys_and_disabled_virtualization_write_the_global_hive() {
    let b = TestBroker::start();
    let extra = "[capabilities]\nrestricted = [\"unvirtualizedResources\"]\n\n[virtualization]\nexcluded-keys = [\"HKCU\\\\Software\\\\Shared\"]\n";
    let a = install(&b, "Contoso.RegExcl", CONTOSO, 0, extra, None);
    let out = probe(
        &b,
        &a,
        &["set", r"HKCU\Software\Shared\X", "v", "x", "set", r"HKCU\Software\Private", "v", "y"],
    );
    assert_eq!(result(&out, "set", 0), "ok");
    let (code, out, _) = cli(&b, &["reg", "query", r"HKCU\Software\Shared\X", "-v", "v"]);
    assert_eq!(code, 0);
    assert!(out.contains("REG_SZ    x"), "{out}");
    let (code, _, _) = cli(&b, &["reg", "query", r"HKCU\Software\Private"]);
    assert_ne!(code, 0, "not excluded: private");
    let extra = "[capabilities]\nrestricted = [\"unvirtualizedResources\"]\n\n[virtualization]\nregistry-write-virtualization = false\n";
    let c = install(&b, "Contoso.RegOff", CONTOSO, 0, extra, None);
    let out = probe(&b, &c, &["set", r"HKCU\Software\Unvirt", "v", "z"]);
    assert_eq!(result(&out, "set", 0), "ok");
    let (code, out, _) = cli(&b, &["reg", "query", r"HKCU\Software\Unvirt"]);
    assert_eq!(code, 0);
    assert!(out.contains("REG_SZ    z"), "{out}");
}

#[test]
fn an_upgrade_keeps_the_private_hive_and_removal_drops_it() {
    let b = TestBroker::start();
    let a = install(&b, "Contoso.RegLife", CONTOSO, 0, "", None);
    let k = r"HKCU\Software\Life";
    assert_eq!(result(&probe(&b, &a, &["set", k, "v", "kept"]), "set", 0), "ok");
    install(&b, "Contoso.RegLife", CONTOSO, 1, "", None);
    assert_eq!(result(&probe(&b, &a, &["get", k, "v"]), "get", 0), "kept [package private hive]");
    // The user holds a handle in the package's view across its removal: a write through it
    // after the removal is refused, it does not bring the dropped hive back.
    let rt = rt();
    let (s, held) = rt.block_on(async {
        let s = b.session();
        let view = RegKey::package_view(&s, appipc::registry::HKEY_CURRENT_USER, &a).await.unwrap();
        let k = view.open(r"Software\Life").await.unwrap();
        (s, k)
    });
    let (code, _, err) = cli(&b, &["remove", &a]);
    assert_eq!(code, 0, "{err}");
    rt.block_on(async {
        let e = held.set_value("late", &RegValue::dword(1)).await.unwrap_err();
        assert_eq!(win32(e), 2);
        drop(s);
    });
    install(&b, "Contoso.RegLife", CONTOSO, 2, "", None);
    assert_eq!(result(&probe(&b, &a, &["get", k, "v"]), "get", 0), "error 2");
}

#[test]
fn export_then_import_gives_the_same_tree_with_every_type() {
    let b = TestBroker::start();
    let k = r"HKCU\Software\RoundTrip";
    for (name, ty, data) in [
        ("none", "REG_NONE", "0102"),
        ("sz", "REG_SZ", "a \"quoted\" C:\\path"),
        ("expand", "REG_EXPAND_SZ", "%TEMP%\\x"),
        ("bin", "REG_BINARY", "deadbeef"),
        ("dword", "REG_DWORD", "0x2a"),
        ("dwordbe", "REG_DWORD_BIG_ENDIAN", "42"),
        ("link", "REG_LINK", "\\Registry\\Machine"),
        ("multi", "REG_MULTI_SZ", "one\\0two"),
        ("qword", "REG_QWORD", "18446744073709551615"),
    ] {
        let (code, _, err) =
            cli(&b, &["reg", "add", &format!("{k}\\Sub"), "-v", name, "-t", ty, "-d", data]);
        assert_eq!(code, 0, "{name}: {err}");
    }
    cli(&b, &["reg", "add", k, "-v", "", "-d", "default"]);
    let first = b.root.path().join("first.reg");
    let (code, _, err) = cli(&b, &["reg", "export", k, first.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xFE], "UTF-16LE with a BOM");
    let text = appipc_model::registry::regfile::parse(&bytes).unwrap();
    assert_eq!(text.entries.len(), 2);
    assert_eq!(cli(&b, &["reg", "delete", k]).0, 0);
    assert_ne!(cli(&b, &["reg", "query", k]).0, 0);
    let (code, _, err) = cli(&b, &["reg", "import", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let second = b.root.path().join("second.reg");
    assert_eq!(cli(&b, &["reg", "export", k, second.to_str().unwrap()]).0, 0);
    assert_eq!(std::fs::read(&second).unwrap(), bytes);
    // A malformed file changes nothing, and names its line.
    let bad = b.root.path().join("bad.reg");
    std::fs::write(
        &bad,
        "REGEDIT4\n[-HKEY_CURRENT_USER\\Software\\RoundTrip]\n[HKCU\\x]\n\"v\"=dword:zz\n",
    )
    .unwrap();
    let (code, _, err) = cli(&b, &["reg", "import", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(cli(&b, &["reg", "query", k]).0, 0);
}

#[test]
fn every_acknowledged_write_survives_a_sigkill_of_the_broker() {
    let mut b = TestBroker::start();
    let socket = b.socket();
    let writer = std::thread::spawn(move || {
        let rt = rt();
        rt.block_on(async {
            let s = appipc::Session::connect_to(&socket).unwrap();
            let (k, _) = RegKey::current_user(&s).create(r"Software\Crash").await.unwrap();
            let mut acked = Vec::new();
            for i in 0..100_000u32 {
                match k.set_value(&format!("v{i}"), &RegValue::dword(i)).await {
                    Ok(()) => acked.push(i),
                    Err(_) => break,
                }
            }
            acked
        })
    });
    // Let some writes through, then kill the broker in the middle of them.
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let (k, _) = RegKey::current_user(&s).create(r"Software\Crash").await.unwrap();
        let mut changes = k.notify_change(NotifyFilter::LAST_SET, false).await.unwrap();
        for _ in 0..50 {
            changes.next().await.unwrap();
        }
    });
    b.kill();
    let acked = writer.join().unwrap();
    // 50 changes were committed; the last one's reply may have been on its way when the
    // broker died (the writer has one request in flight), so at least 49 were acknowledged.
    assert!(acked.len() >= 49, "{} writes acknowledged", acked.len());
    b.restart();
    rt.block_on(async {
        let s = b.session();
        let k = RegKey::current_user(&s).open(r"Software\Crash").await.unwrap();
        let values = k.enum_values().await.unwrap();
        for i in &acked {
            let name = format!("v{i}");
            let v = values.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("{name} lost"));
            assert_eq!(RegValue::from(v.clone()).as_u64(), Some(u64::from(*i)));
        }
    });
}

#[test]
fn hostile_names_limits_and_sizes_are_refused_with_win32_codes() {
    let b = TestBroker::start();
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let hkcu = RegKey::current_user(&s);
        for bad in
            ["Software\\a\0b", "\\Software", "Software\\\\x", "Software\\a\nb", &"n".repeat(256)]
        {
            let e = hkcu.create(bad).await.unwrap_err();
            assert_eq!(win32(e), 87, "{bad:?}");
        }
        let deep = vec!["d"; 513].join("\\");
        assert_eq!(win32(hkcu.create(&deep).await.unwrap_err()), 87);
        // 512 levels, created at most 32 at a time (Windows' bound per call).
        let mut at = hkcu.create("d").await.unwrap().0;
        for _ in 0..15 {
            at = at.create(&vec!["d"; 32].join("\\")).await.unwrap().0;
        }
        let (last, _) = at.create(&vec!["d"; 31].join("\\")).await.unwrap();
        assert_eq!(win32(last.create("d").await.unwrap_err()), 87);
        // `..` is a name, not a way up.
        let (k, _) = hkcu.create(r"Software\Dots\..\..").await.unwrap();
        assert_eq!(k.info().await.unwrap().path, r"HKEY_CURRENT_USER\Software\Dots\..\..");
        let dots = hkcu.open(r"Software\Dots").await.unwrap();
        assert_eq!(dots.enum_keys().await.unwrap(), [".."]);
        // Value names and data.
        let (k, d) = hkcu.create(r"Software\Limits").await.unwrap();
        assert_eq!(d, appipc::registry::Disposition::CreatedNewKey);
        assert_eq!(
            hkcu.create(r"software\LIMITS").await.unwrap().1,
            appipc::registry::Disposition::OpenedExistingKey
        );
        assert_eq!(
            win32(k.set_value(&"v".repeat(16_384), &RegValue::dword(1)).await.unwrap_err()),
            87
        );
        assert!(k.set_value(&"v".repeat(16_383), &RegValue::dword(1)).await.is_ok());
        assert_eq!(win32(k.set_value("nul\0", &RegValue::dword(1)).await.unwrap_err()), 87);
        let bad_type = RegValue { value_type: 8, data: vec![] };
        assert_eq!(win32(k.set_value("t", &bad_type).await.unwrap_err()), 87);
        let short = RegValue { value_type: appipc::registry::REG_DWORD, data: vec![1] };
        assert_eq!(win32(k.set_value("t", &short).await.unwrap_err()), 87);
        assert_eq!(
            win32(k.set_value("big", &RegValue::binary(&vec![0; 65_537])).await.unwrap_err()),
            87
        );
        k.set_value("big", &RegValue::binary(&vec![0; 65_536])).await.unwrap();
        // Buffers: 234; past the end: 259; RegDeleteKey of a key with subkeys: 5; a deleted
        // key's handle: 1018.
        assert_eq!(win32(k.query_value_info("big", Some(100)).await.unwrap_err()), 234);
        assert_eq!(win32(k.enum_value(0, Some(2), None).await.unwrap_err()), 234);
        assert_eq!(win32(k.enum_key(0, None).await.unwrap_err()), 259);
        let (child, _) = k.create(r"A\B").await.unwrap();
        assert_eq!(win32(k.delete_key("a").await.unwrap_err()), 5);
        k.delete_tree("A").await.unwrap();
        assert_eq!(win32(child.query_value("x").await.unwrap_err()), 1018);
        assert_eq!(win32(k.delete_value("missing").await.unwrap_err()), 2);
        assert_eq!(win32(k.notify_change(NotifyFilter(0x10), false).await.unwrap_err()), 87);
    });
}

/// Red team findings 5 and 3: key paths so long that events, replies and messages outgrew a
/// frame (and the session with them). A key's absolute path is at most 32 767 UTF-16 units
/// (87 past it), one create makes at most 32 levels (87), and messages shorten paths.
#[test]
fn long_key_paths_are_bounded_and_shortened_in_messages() {
    let b = TestBroker::start();
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let watcher = b.session();
        let hkcu = RegKey::current_user(&s);
        // 33 new levels in one call: 87, nothing created; 32: created.
        let e = hkcu.create(&vec!["L"; 33].join("\\")).await.unwrap_err();
        assert_eq!(win32(e), 87);
        assert_eq!(win32(hkcu.open("L").await.unwrap_err()), 2);
        // Components of 255 characters, one at a time, until the path is too long.
        let name = "p".repeat(255);
        let mut at = hkcu.create(&name).await.unwrap().0;
        let mut units = "HKEY_CURRENT_USER".len() + 256;
        let refused = loop {
            match at.create(&name).await {
                Ok((k, _)) => {
                    at = k;
                    units += 256;
                    assert!(units <= 32_767, "a path of {units} units was created");
                }
                Err(e) => break e,
            }
        };
        assert!(units + 256 > 32_767, "refused at {units} units");
        let text = refused.to_string();
        assert_eq!(win32(refused), 87);
        assert!(text.len() < 1024, "message of {} bytes", text.len());
        // Messages about a long key stay short.
        let e = at.open("missing").await.unwrap_err();
        assert!(e.to_string().len() < 1024, "message of {} bytes", e.to_string().len());
        assert_eq!(win32(e), 2);
        // The longest key still fits its replies and its change events: both sessions live.
        let info = at.info().await.unwrap();
        assert_eq!(info.path.encode_utf16().count(), units);
        let mut changes =
            RegKey::current_user(&watcher).notify_change(NotifyFilter(0xF), true).await.unwrap();
        at.set_value("v", &RegValue::dword(1)).await.unwrap();
        // Every change reaches the watcher, the last one at the longest key.
        loop {
            let c = changes.next().await.expect("the watcher's session lives");
            if c.subkey.encode_utf16().count() + "HKEY_CURRENT_USER\\".len() == units {
                break;
            }
        }
        assert!(RegKey::current_user(&watcher).open("Software").await.is_ok());
    });
}

#[test]
fn handles_are_the_sessions_own_and_counted() {
    let b = TestBroker::start();
    let a = install(&b, "Contoso.RegHoard", CONTOSO, 0, "", None);
    let rt = rt();
    let mine = rt.block_on(async {
        let s = b.session();
        let k = RegKey::current_user(&s).open("Software").await.unwrap();
        let h = k.handle();
        std::mem::forget(k);
        (s, h)
    });
    let guess = mine.1.to_string();
    let out = probe(&b, &a, &["guess", &guess, "hoard", "5000"]);
    assert_eq!(result(&out, "guess", 0), "error 6");
    assert_eq!(result(&out, "hoard", 0), "opened 1024, then error 1816");
    // The hoarder's handles went with its process; the user's handle still works.
    rt.block_on(async {
        let q = appipc_wire::protocol::registry::QueryKeyInfo { handle: mine.1 };
        assert!(mine.0.call(q).await.is_ok());
    });
}

/// Red team finding 12: a create refused its handle (the session's quota) but had committed
/// the key. The quota is checked first: a refused create changes nothing.
#[test]
fn a_create_refused_by_the_handle_quota_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nregistry-handles-per-session = 2\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let hkcu = RegKey::current_user(&s);
        let first = hkcu.open("Software").await.unwrap();
        let _second = hkcu.open("Software").await.unwrap();
        let e = hkcu.create(r"Software\Quota\Child").await.unwrap_err();
        assert_eq!(win32(e), 1816);
        let other = b.session();
        let e = RegKey::current_user(&other).open(r"Software\Quota").await.unwrap_err();
        assert_eq!(win32(e), 2, "the refused create left its key behind");
        // With a handle given back, the same create creates.
        first.close().await.unwrap();
        let (_k, d) = hkcu.create(r"Software\Quota\Child").await.unwrap();
        assert_eq!(d, appipc::registry::Disposition::CreatedNewKey);
        assert_eq!(win32(hkcu.open("Software").await.unwrap_err()), 1816);
    });
}

/// Re-red-team (watchers × sessions): every committed change is matched against every watch
/// of every session, on an async thread under the registry's lock; a package's 256 sessions
/// of 1024 watches each made every write of anyone cost a quarter of a million matches. A
/// package's processes together hold at most `[limits] registry-watches-per-package`.
#[test]
fn a_package_holds_a_bounded_number_of_watches_across_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nregistry-watches-per-package = 6\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let a = install(&b, "Contoso.RegWatchers", CONTOSO, 0, "", None);
    // One process holds 4 watches while another asks for more: 2 more, then 1816.
    let mut holder: Child =
        launch(&b, &a, &["watch-hoard", "4", "watch-get", r"HKCU\Software\W", "v", "20000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "watch-hoard => watched 4");
    assert_eq!(lines.next().unwrap().unwrap(), "watch-get => watching");
    let out = probe(&b, &a, &["watch-hoard", "100"]);
    assert_eq!(
        result(&out, "watch-hoard", 0),
        "watched 1, then error 1816",
        "the holder's watch-get is the 5th"
    );
    // The holder's watches still fire; once it has gone, the package may watch again.
    assert_eq!(result(&probe(&b, &a, &["set", r"HKCU\Software\W", "v", "x"]), "set", 0), "ok");
    assert_eq!(lines.next().unwrap().unwrap(), "watch-get => changed: x");
    assert!(holder.wait().unwrap().success());
    let out = probe(&b, &a, &["watch-hoard", "100"]);
    assert_eq!(result(&out, "watch-hoard", 0), "watched 6, then error 1816");
    // The user's own watches are not the package's.
    rt().block_on(async {
        let s = b.session();
        let k = RegKey::current_user(&s).open("Software").await.unwrap();
        let _w = k.notify_change(NotifyFilter::LAST_SET, true).await.unwrap();
    });
}

#[test]
fn a_package_fills_its_private_hive_up_to_its_quota_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nregistry-bytes-per-hive = 1048576\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let a = install(&b, "Contoso.RegFill", CONTOSO, 0, "", None);
    let out = probe(&b, &a, &["fill", "100"]);
    assert_eq!(result(&out, "fill", 0), "filled 17, then error 1816");
    // Its quota is its own: the user's hive and another package's are not affected.
    let other = install(&b, "Fabrikam.RegFill", FABRIKAM, 0, "", None);
    assert_eq!(result(&probe(&b, &other, &["fill", "3"]), "fill", 0), "filled 3");
    let (code, _, err) = cli(&b, &["reg", "add", r"HKCU\Software\Mine", "-v", "x", "-d", "y"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_flood_of_changes_to_a_session_that_never_reads_stays_bounded() {
    use appipc_sys::socket::{self, Blocking};
    use appipc_wire::frame::Frame;
    use appipc_wire::protocol::registry as wire;
    let b = TestBroker::start();
    let rt = rt();
    // A raw session watches a key and never reads again.
    let raw = socket::seqpacket_connect(&b.socket()).unwrap();
    let send = |id: u64, r: appipc_wire::protocol::Request| {
        socket::send(&raw, &Frame::request(id, r).to_cbor(), &[], Blocking::Yes).unwrap();
    };
    rt.block_on(async {
        let s = b.session();
        RegKey::current_user(&s).create(r"Software\Flood").await.unwrap();
    });
    send(
        1,
        wire::OpenKey { parent: 0x8000_0001, subkey: r"Software\Flood".into(), package: None }
            .into(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let reply = socket::recv(&raw, 4096, Blocking::Yes).unwrap().unwrap();
    let handle: u64 = match Frame::from_cbor(&reply.data).unwrap().reply.unwrap() {
        appipc_wire::frame::Reply::Ok(r) => r.decode().unwrap(),
        e => panic!("{e:?}"),
    };
    send(2, wire::NotifyChangeKeyValue { handle, watch_subtree: true, filter: 0xF }.into());
    std::thread::sleep(Duration::from_millis(200));
    // Every write of another client goes through, whatever the non-reader's queue holds.
    // The writes are to a subkey with a long name, which each change event carries: with
    // events of a few bytes, the bound (`queued-reply-bytes`, 64 KiB, and the socket's
    // buffer) held nearly 3 000 of them, and a loaded machine's run saw all 3 000 arrive.
    let deep = format!(r"Software\Flood\{}", "x".repeat(200));
    rt.block_on(async {
        let s = b.session();
        let (k, _) = RegKey::current_user(&s).create(&deep).await.unwrap();
        for i in 0..3000u32 {
            k.set_value("v", &RegValue::dword(i)).await.unwrap();
        }
        assert_eq!(k.query_value("v").await.unwrap().as_u64(), Some(2999));
    });
    // The broker kept at most its bound for it (the socket's buffer and `queued-reply-bytes`),
    // or closed it once its queue stayed full (`non-reader-grace-ms`, when the writes took
    // that long): fewer changes than were made reach the non-reader.
    let mut events = 0usize;
    while let Ok(Some(p)) = socket::recv(&raw, 4096, Blocking::No) {
        if let Ok(Frame { event: Some(appipc_wire::protocol::Event::Registry(_)), .. }) =
            Frame::from_cbor(&p.data)
        {
            events += 1;
        }
    }
    // Events of ~240 bytes: 64 KiB queued and the socket's buffer hold a few hundred (295-470
    // in runs here); with events of a few bytes it was 1 696-2 348 of the 3 000.
    assert!(events < 1500, "{events} change events were kept for the non-reader");
}

/// Red team finding 10: a change that did not fit a watcher's queue was dropped, and the
/// watcher never heard of it (after a flood, even the last change could be lost). A session
/// that stops reading gets, once it reads again, one change marked `coalesced` that stands
/// for all it missed.
#[test]
fn changes_that_do_not_fit_the_queue_coalesce_into_one_that_arrives() {
    use appipc_sys::socket::{self, Blocking};
    use appipc_wire::frame::Frame;
    use appipc_wire::protocol::registry as wire;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nqueued-reply-bytes = 4096\nnon-reader-grace-ms = 3600000\n")
        .unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        RegKey::current_user(&s).create(r"Software\Burst").await.unwrap();
    });
    // A raw session watches the key, then reads nothing while the changes come.
    let raw = socket::seqpacket_connect(&b.socket()).unwrap();
    let call = |id: u64, r: appipc_wire::protocol::Request| -> u64 {
        socket::send(&raw, &Frame::request(id, r).to_cbor(), &[], Blocking::Yes).unwrap();
        let p = socket::recv(&raw, 4096, Blocking::Yes).unwrap().unwrap();
        match Frame::from_cbor(&p.data).unwrap().reply.unwrap() {
            appipc_wire::frame::Reply::Ok(r) => r.decode().unwrap(),
            e => panic!("{e:?}"),
        }
    };
    let handle = call(
        1,
        wire::OpenKey { parent: 0x8000_0001, subkey: r"Software\Burst".into(), package: None }
            .into(),
    );
    let watch =
        call(2, wire::NotifyChangeKeyValue { handle, watch_subtree: false, filter: 0x4 }.into());
    const WRITES: u32 = 3000;
    rt.block_on(async {
        let s = b.session();
        let k = RegKey::current_user(&s).open(r"Software\Burst").await.unwrap();
        for i in 0..WRITES {
            k.set_value("v", &RegValue::dword(i)).await.unwrap();
        }
    });
    // Now it reads: some changes one by one, then one coalesced change for those that did
    // not fit (the broker sends it once the session's queue has room).
    let (mut single, mut coalesced) = (0u32, None);
    while coalesced.is_none() {
        assert!(
            socket::wait_readable(&raw, Duration::from_secs(30)).unwrap(),
            "{single} single changes of {WRITES}, then nothing: the others were lost unheard of"
        );
        let p = socket::recv(&raw, 4096, Blocking::Yes).unwrap().unwrap();
        if let Ok(Frame {
            event: Some(appipc_wire::protocol::Event::Registry(wire::Event::KeyChanged(c))),
            ..
        }) = Frame::from_cbor(&p.data)
        {
            assert_eq!(c.watch, watch);
            if c.coalesced {
                coalesced = Some(c);
            } else {
                single += 1;
            }
        }
    }
    let c = coalesced.unwrap();
    assert!(single < WRITES, "every change fitted the queue: the test proves nothing");
    assert_eq!(c.change, 0x4, "REG_NOTIFY_CHANGE_LAST_SET");
    assert_eq!(c.subkey, "");
}

/// The SDK's side of finding 10: a reader more than 64 changes behind got the first 64 and
/// never heard of the rest; now the rest come as one coalesced change.
#[test]
fn a_reader_that_falls_behind_gets_one_coalesced_change_for_the_rest() {
    let b = TestBroker::start();
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let watcher = b.session();
        let (k, _) = RegKey::current_user(&s).create(r"Software\Behind").await.unwrap();
        let w = RegKey::current_user(&watcher).open(r"Software\Behind").await.unwrap();
        let mut changes = w.notify_change(NotifyFilter::LAST_SET, false).await.unwrap();
        for i in 0..200u32 {
            k.set_value("v", &RegValue::dword(i)).await.unwrap();
        }
        // A round trip on the watcher's session: every change queued for it before has been
        // routed to its reader.
        w.info().await.unwrap();
        let mut single = 0;
        let last = loop {
            let c = changes.next().await.expect("the session lives");
            if c.coalesced {
                break c;
            }
            single += 1;
        };
        assert_eq!(single, 64);
        assert_eq!(last.change, 0x4);
        // Caught up: changes come one by one again.
        k.set_value("v", &RegValue::dword(7)).await.unwrap();
        let next = changes.next().await.unwrap();
        assert!(!next.coalesced);
    });
}

/// Re-red-team (a huge `.reg` import through the CLI): thousands of keys are imported through
/// one session without running into its handle quota (each key's handle is closed), and the
/// file is read in linear work.
#[test]
fn a_large_reg_import_stays_within_the_session_handle_quota() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nregistry-handles-per-session = 16\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let mut text = String::from("Windows Registry Editor Version 5.00\r\n");
    for i in 0..2000 {
        text.push_str(&format!(
            "\r\n[HKEY_CURRENT_USER\\Software\\Big\\K{i}]\r\n\"v\"=dword:{i:08x}\r\n"
        ));
    }
    let file = b.root.path().join("big.reg");
    std::fs::write(&file, &text).unwrap();
    let (code, _, err) = cli(&b, &["reg", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&b, &["reg", "query", r"HKCU\Software\Big\K1999", "-v", "v"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0x7cf"), "{out}");
}
