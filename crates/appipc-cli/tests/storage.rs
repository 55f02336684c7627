//! Files between apps, end to end from inside app containers: publisher cache folders and
//! SharedStorageAccessManager tokens.

use appipc::{ErrorKind, SharedStorageAccessManager};
use appipc_testkit::{HELLO, TestBroker, assemble_manifest, bin_dir, unique};

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

fn app(b: &TestBroker, pfn: &str, args: &[&str]) -> String {
    let mut all = vec!["launch", "--wait", pfn, "--"];
    all.extend_from_slice(args);
    let (code, out, err) = cli(b, &all);
    assert_eq!(code, 0, "{out}\n{err}");
    out
}

/// A copy of the hello example under another name and publisher.
fn variant(b: &TestBroker, name: &str, publisher: &str, folders: &str) -> String {
    let text = HELLO
        .manifest
        .replace("name = \"Contoso.Hello\"", &format!("name = \"{name}\""))
        .replace(
            "publisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"",
            &format!("publisher = \"{publisher}\""),
        )
        .replace("folders = [\"Shared\"]", &format!("folders = [{folders}]"));
    let dir = assemble_manifest(&text, &b.root.path().join(unique("pkg")), &bin_dir()).unwrap();
    let (code, out, err) = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let full = out.trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    format!("{}_{}", p[0], p[4])
}

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";

#[test]
fn publisher_cache_folders_are_shared_by_one_publisher_only() {
    let b = TestBroker::start();
    let hello = variant(&b, "Contoso.Hello", CONTOSO, "\"Shared\"");
    let notes = variant(&b, "Contoso.Notes", CONTOSO, "\"Shared\", \"Other\"");
    let fabrikam = variant(&b, "Fabrikam.Notes", "CN=Fabrikam Inc, O=Fabrikam, C=US", "\"Shared\"");
    let contoso_id = hello.rsplit('_').next().unwrap().to_owned();

    assert!(app(&b, &hello, &["--cache-write", "Shared", "hi from hello"]).contains("wrote"));
    assert!(app(&b, &notes, &["--cache-read", "Shared"]).contains("read \"hi from hello\""));
    // Another publisher's folder of the same name is another folder.
    let out = app(&b, &fabrikam, &["--cache-read", "Shared"]);
    assert!(out.contains("nothing to read"), "{out}");
    // …and Contoso's folder does not exist inside Fabrikam's container.
    let contoso_shared = b.home.join("cache/publisher").join(&contoso_id).join("Shared/note.txt");
    assert!(contoso_shared.is_file());
    let out = app(&b, &fabrikam, &["--try-read", contoso_shared.to_str().unwrap()]);
    assert!(out.contains("refused"), "{out}");
    // Undeclared names are refused.
    let out = app(&b, &hello, &["--cache-read", "Other"]);
    assert!(out.contains("refused") && out.contains("does not declare"), "{out}");

    // The user lists and clears one folder; the other stays.
    assert!(app(&b, &notes, &["--cache-write", "Other", "keep me"]).contains("wrote"));
    let (_, list, _) = cli(&b, &["publisher-cache", "list"]);
    assert!(
        list.contains(&contoso_id) && list.contains("Shared") && list.contains(&notes),
        "{list}"
    );
    let (code, _, err) = cli(&b, &["publisher-cache", "clear", &contoso_id, "Shared"]);
    assert_eq!(code, 0, "{err}");
    assert!(app(&b, &notes, &["--cache-read", "Shared"]).contains("nothing to read"));
    assert!(app(&b, &notes, &["--cache-read", "Other"]).contains("keep me"));

    // An app clears a folder it declares (and only such a folder).
    assert!(app(&b, &hello, &["--cache-write", "Shared", "short-lived"]).contains("wrote"));
    assert!(app(&b, &notes, &["--cache-clear", "Shared"]).contains("cleared"));
    assert!(app(&b, &hello, &["--cache-read", "Shared"]).contains("nothing to read"));
    assert!(app(&b, &hello, &["--cache-clear", "Other"]).contains("clear refused"));
    assert!(app(&b, &notes, &["--cache-read", "Other"]).contains("keep me"));

    // Lifecycle: survives the removal of the writer, goes with the publisher's last package.
    assert!(app(&b, &hello, &["--cache-write", "Shared", "from the writer"]).contains("wrote"));
    cli(&b, &["remove", &hello]);
    assert!(app(&b, &notes, &["--cache-read", "Shared"]).contains("from the writer"));
    cli(&b, &["remove", &notes]);
    assert!(
        !b.home.join("cache/publisher").join(&contoso_id).exists(),
        "deleted with the last package"
    );
    assert!(b.home.join("cache/publisher").join(fabrikam.rsplit('_').next().unwrap()).exists());
}

#[test]
fn file_tokens_from_the_user_to_a_confined_app() {
    let mut b = TestBroker::start();
    let hello = variant(&b, "Contoso.Hello", CONTOSO, "\"Shared\"");
    // A file in the host's /tmp: no path to it exists inside the container.
    let dir = tempfile::Builder::new().prefix("appipc-token-").tempdir().unwrap();
    let file = dir.path().join("doc.txt");
    std::fs::write(&file, "first line of the document\nsecond\n").unwrap();
    let add = |b: &TestBroker, rw: bool| {
        let mut args = vec!["token", "add", file.to_str().unwrap()];
        if rw {
            args.push("--read-write");
        }
        let (code, out, err) = cli(b, &args);
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    };
    assert!(app(&b, &hello, &["--try-read", file.to_str().unwrap()]).contains("refused"));
    let t = add(&b, false);
    assert_eq!(t.len(), 32, "128 bits in hex: {t}");
    let out = app(&b, &hello, &["--redeem", &t]);
    assert!(out.contains("first line \"first line of the document\""), "{out}");
    assert!(out.contains("write refused"), "read-only stays read-only: {out}");
    // Single use.
    assert!(app(&b, &hello, &["--redeem", &t]).contains("redeem refused"));
    // Read-write when shared so.
    let rw = add(&b, true);
    assert!(app(&b, &hello, &["--redeem", &rw]).contains("write allowed"));
    // Revoked.
    let revoked = add(&b, false);
    let (code, _, _) = cli(&b, &["token", "remove", &revoked]);
    assert_eq!(code, 0);
    assert!(app(&b, &hello, &["--redeem", &revoked]).contains("redeem refused"));
    // Survives a broker restart (the broker no longer holds the file open).
    let kept = add(&b, false);
    let replaced = add(&b, false);
    b.stop();
    b.restart();
    assert!(app(&b, &hello, &["--redeem", &kept]).contains("first line"), "survives a restart");
    // A file replaced at its path is detected.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "another file\n").unwrap();
    let out = app(&b, &hello, &["--redeem", &replaced]);
    assert!(out.contains("redeem refused") && out.contains("replaced"), "{out}");
}

#[test]
fn tokens_expire_after_fourteen_days() {
    let dir = tempfile::Builder::new().prefix("appipc-expire-").tempdir().unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x\n").unwrap();
    let mut b = TestBroker::start();
    let (_, early, _) = cli(&b, &["token", "add", file.to_str().unwrap()]);
    let (_, late, _) = cli(&b, &["token", "add", file.to_str().unwrap()]);
    // Thirteen days later the token still works; fourteen days and a second later, not.
    b.stop();
    b.set_env("APPIPC_CLOCK_OFFSET_SECS", &(13 * 86_400).to_string());
    b.restart();
    rt().block_on(async {
        let f = SharedStorageAccessManager::redeem_token_for_file(&b.session(), early.trim()).await;
        // A StorageFile, with the name and path the file had when it was shared.
        let f = f.unwrap();
        assert_eq!((f.name.as_str(), f.path.as_str()), ("f.txt", file.to_str().unwrap()));
        assert!(!f.writable);
    });
    b.stop();
    b.set_env("APPIPC_CLOCK_OFFSET_SECS", "1209601");
    b.restart();
    rt().block_on(async {
        let e = SharedStorageAccessManager::redeem_token_for_file(&b.session(), late.trim())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::TokenInvalid), "{e}");
        assert!(e.to_string().contains("expired"), "{e}");
    });
    let (_, list, _) = cli(&b, &["token", "list"]);
    assert!(list.contains("no outstanding tokens"), "{list}");
}

#[test]
fn token_quota_is_a_thousand_per_source() {
    let b = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.txt");
    std::fs::write(&path, "q").unwrap();
    rt().block_on(async {
        let s = b.session();
        let f = std::fs::File::open(&path).unwrap();
        let mut tokens = Vec::new();
        for _ in 0..1000 {
            tokens.push(SharedStorageAccessManager::add_file(&s, &f).await.unwrap());
        }
        let e = SharedStorageAccessManager::add_file(&s, &f).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::QuotaExceeded), "{e}");
        // Redeeming or removing frees quota.
        SharedStorageAccessManager::remove_file(&s, &tokens[0]).await.unwrap();
        let _ = SharedStorageAccessManager::redeem_token_for_file(&s, &tokens[1]).await.unwrap();
        SharedStorageAccessManager::add_file(&s, &f).await.unwrap();
        SharedStorageAccessManager::add_file(&s, &f).await.unwrap();
        let e = SharedStorageAccessManager::add_file(&s, &f).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::QuotaExceeded));
        let e = SharedStorageAccessManager::redeem_token_for_file(
            &s,
            "00112233445566778899aabbccddeeff",
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::TokenInvalid));
    });
}

#[test]
fn a_token_travels_through_an_app_service_to_another_publishers_app() {
    let b = TestBroker::start();
    let hello = variant(&b, "Contoso.Hello", CONTOSO, "\"Shared\"");
    let viewer = rt().block_on(b.install(&appipc_testkit::FABRIKAM_CLIENT)).family_name;
    let note = b.home.join("data").join(&hello).join("LocalState").join("note.txt");
    let out = app(
        &b,
        &hello,
        &["--write-note", "a note for Fabrikam", "--send-token", note.to_str().unwrap()],
    );
    assert!(
        out.contains(&format!(
            "to {viewer}: Success (0); the viewer read the first line \"a note for Fabrikam\""
        )),
        "{out}"
    );
    assert!(
        b.app_log(&viewer).contains(&format!("viewer: {hello} shared a file")),
        "{}",
        b.app_log(&viewer)
    );
}

/// The data folder of an installed package, from `appipc list --json`.
fn data_dir(b: &TestBroker, pfn: &str) -> std::path::PathBuf {
    let (_, json, _) = cli(b, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = v.as_array().unwrap().iter().find(|p| p["family_name"] == pfn).unwrap();
    std::path::PathBuf::from(p["data_location"].as_str().unwrap())
}

fn token_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("token "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned()
}

#[test]
fn a_redeem_never_follows_what_the_sharer_planted() {
    // After a restart the broker has no fd of the shared file any more and goes by the path it
    // recorded: the sharer controls that path (its own data folder). A link planted on it, or a
    // FIFO at its end, must not make the broker open a host file with its own rights, tell
    // whether one exists, or hang.
    let mut b = TestBroker::start();
    let hello = variant(&b, "Contoso.Hello", CONTOSO, "\"Shared\"");
    let local = data_dir(&b, &hello).join("LocalState");
    let l = local.join("L");
    std::fs::create_dir_all(&l).unwrap();
    for name in ["f", "passwd", "nothing-here"] {
        std::fs::write(l.join(name), "shared\n").unwrap();
    }
    std::fs::write(local.join("fifo"), "shared\n").unwrap();
    let tokens: Vec<String> = ["L/passwd", "L/nothing-here", "fifo", "L/f"]
        .iter()
        .map(|rel| token_of(&app(&b, &hello, &["--share", local.join(rel).to_str().unwrap()])))
        .collect();
    b.stop();
    b.restart();
    // The sharer swaps its folder for a link to the host's /etc, and its file for a FIFO.
    std::fs::remove_dir_all(&l).unwrap();
    std::os::unix::fs::symlink("/etc", &l).unwrap();
    std::fs::remove_file(local.join("fifo")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(local.join("fifo")).status().unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    let existing = app(&b, &hello, &["--redeem", &tokens[0]]);
    let missing = app(&b, &hello, &["--redeem", &tokens[1]]);
    let fifo_out = app(&b, &hello, &["--redeem", &tokens[2]]);
    for out in [&existing, &missing] {
        assert!(out.contains("redeem refused") && out.contains("deleted or replaced"), "{out}");
    }
    assert!(
        fifo_out.contains("redeem refused") && fifo_out.contains("not a regular file"),
        "{fifo_out}"
    );
    // No existence oracle: /etc/passwd exists and /etc/nothing-here does not, the answers
    // are the same but for the token and the path.
    let strip = |s: &str, t: &str, n: &str| {
        let line = s.lines().find(|l| l.contains("redeem refused")).unwrap_or_default();
        line.replace(t, "T").replace(n, "N")
    };
    assert_eq!(strip(&existing, &tokens[0], "passwd"), strip(&missing, &tokens[1], "nothing-here"));
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the FIFO did not hang it");
    // The broker still answers, and refused redeems did not consume the tokens.
    let (code, list, _) = cli(&b, &["token", "list"]);
    assert_eq!(code, 0);
    for t in &tokens[..3] {
        assert!(list.contains(t.as_str()), "a failed redeem consumed {t}: {list}");
    }
    // Put the real folder back: the token that names a file still there redeems.
    std::fs::remove_file(&l).unwrap();
    std::fs::create_dir_all(&l).unwrap();
    let out = app(&b, &hello, &["--redeem", &tokens[3]]);
    assert!(out.contains("redeem refused"), "a new file at the path is not the shared one: {out}");
}

#[test]
fn a_kept_token_gives_the_shared_file_whatever_its_path_became() {
    // While the broker runs it redeems from the fd the sharer handed over: renaming or
    // linking over the path changes nothing; deleting the file (or renaming another over it)
    // makes the redeem fail.
    let b = TestBroker::start();
    let hello = variant(&b, "Contoso.Hello", CONTOSO, "\"Shared\"");
    let local = data_dir(&b, &hello).join("LocalState");
    std::fs::write(local.join("doc"), "the shared one\n").unwrap();
    std::fs::write(local.join("gone"), "doomed\n").unwrap();
    let doc = token_of(&app(&b, &hello, &["--share", local.join("doc").to_str().unwrap()]));
    let gone = token_of(&app(&b, &hello, &["--share", local.join("gone").to_str().unwrap()]));
    std::fs::rename(local.join("doc"), local.join("moved")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", local.join("doc")).unwrap();
    std::fs::write(local.join("other"), "another\n").unwrap();
    std::fs::rename(local.join("other"), local.join("gone")).unwrap();
    let out = app(&b, &hello, &["--redeem", &doc]);
    assert!(out.contains("first line \"the shared one\""), "{out}");
    let out = app(&b, &hello, &["--redeem", &gone]);
    assert!(out.contains("redeem refused") && out.contains("deleted or replaced"), "{out}");
}

/// Two packages of one publisher naming a folder `Shared` and `shared` share one folder, as on
/// Windows, and it has one spelling on disk: the first one created.
#[test]
fn publisher_cache_folder_names_differing_in_case_are_one_folder() {
    let b = TestBroker::start();
    let upper = variant(&b, "Contoso.Hello", CONTOSO, "\"Shared\"");
    let lower = variant(&b, "Contoso.Notes", CONTOSO, "\"shared\"");
    let id = upper.rsplit('_').next().unwrap().to_owned();
    assert!(app(&b, &upper, &["--cache-write", "Shared", "one folder"]).contains("wrote"));
    let out = app(&b, &lower, &["--cache-read", "shared"]);
    assert!(out.contains("read \"one folder\""), "{out}");
    // Asking by another spelling of a declared name finds it too.
    let out = app(&b, &lower, &["--cache-read", "SHARED"]);
    assert!(out.contains("read \"one folder\""), "{out}");
    let on_disk: Vec<String> = std::fs::read_dir(b.home.join("cache/publisher").join(&id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(on_disk, vec!["Shared".to_owned()], "one spelling on disk");
    let (_, list, _) = cli(&b, &["publisher-cache", "list"]);
    assert!(list.contains(&upper) && list.contains(&lower), "both packages use it: {list}");
    // The user clears it by either spelling.
    let (code, _, err) = cli(&b, &["publisher-cache", "clear", &id, "SHARED"]);
    assert_eq!(code, 0, "{err}");
    assert!(app(&b, &upper, &["--cache-read", "Shared"]).contains("nothing to read"));
}
