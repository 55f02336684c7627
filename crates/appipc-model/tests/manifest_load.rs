//! `load` checks the files a manifest names: present, inside the package, regular, executable.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use appipc_model::manifest::{self, FileProblem, MANIFEST_FILE, ManifestError};

const COMPLETE: &str = include_str!("manifests/complete.toml");

/// A unique temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "appipc-manifest-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SIMPLE: &str = r#"[package]
name = "Contoso.Load"
publisher = "CN=Contoso"
version = "1.0.0.0"

[capabilities]
restricted = ["runFullTrust"]

[[application]]
id = "App"
executable = "bin/app"

[[application.full-trust-process]]
executable = "bin/helper"
"#;

/// A package with `SIMPLE` and both executables in place.
fn simple_package(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    fs::write(dir.path().join(MANIFEST_FILE), SIMPLE).unwrap();
    dir.file("bin/app", 0o755);
    dir.file("bin/helper", 0o700);
    dir
}

#[track_caller]
/// The first problem, which must be about a file (others may follow).
fn file_error(dir: &TempDir) -> (String, usize, String, FileProblem) {
    let err = manifest::load(dir.path()).expect_err("a file problem");
    match err.problems()[0] {
        ManifestError::File { location, key, file, problem } => {
            (key.clone(), location.line, file.clone(), problem.clone())
        }
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn complete_package_loads() {
    let dir = TempDir::new("complete");
    fs::write(dir.path().join(MANIFEST_FILE), COMPLETE).unwrap();
    for exe in [
        "bin/echo-app",
        "bin/echo-service",
        "bin/echo-helper",
        "bin/echo-com-host",
        "bin/echo-com-server",
    ] {
        dir.file(exe, 0o755);
    }
    for data in ["assets/logo.png", "CustomCapability.SCCD", "lib/libecho-ps.so", "lib/echo.tlb"] {
        dir.file(data, 0o644);
    }
    let m = manifest::load(dir.path()).unwrap();
    assert_eq!(m, manifest::parse(COMPLETE).unwrap());

    // Every data file is checked too: remove one at a time.
    fs::remove_file(dir.path().join("lib/echo.tlb")).unwrap();
    let (key, line, file, problem) = file_error(&dir);
    assert_eq!(key, "com-interface[0].type-lib[0].version[0].path");
    assert_eq!(line, COMPLETE.lines().position(|l| l.contains("lib/echo.tlb")).unwrap() + 1);
    assert_eq!((file.as_str(), problem), ("lib/echo.tlb", FileProblem::Missing));
}

#[test]
fn simple_package_loads() {
    let dir = simple_package("simple");
    let m = manifest::load(dir.path()).unwrap();
    assert_eq!(m.applications[0].full_trust_processes[0].executable.as_str(), "bin/helper");
}

#[test]
fn missing_executable_is_refused_with_its_line() {
    let dir = simple_package("missing");
    fs::remove_file(dir.path().join("bin/helper")).unwrap();
    let (key, line, file, problem) = file_error(&dir);
    assert_eq!(key, "application[0].full-trust-process[0].executable");
    assert_eq!(line, 14);
    assert_eq!(file, "bin/helper");
    assert_eq!(problem, FileProblem::Missing);
    let err = manifest::load(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "appipc.toml:14:14: application[0].full-trust-process[0].executable: \"bin/helper\": \
         no such file in the package"
    );
}

#[test]
fn non_executable_file_is_refused() {
    let dir = simple_package("noexec");
    fs::set_permissions(dir.path().join("bin/app"), fs::Permissions::from_mode(0o644)).unwrap();
    let (key, line, _, problem) = file_error(&dir);
    assert_eq!(
        (key.as_str(), line, problem),
        ("application[0].executable", 11, FileProblem::NotExecutable)
    );
}

#[test]
fn directory_is_not_an_executable() {
    let dir = simple_package("dir");
    fs::remove_file(dir.path().join("bin/app")).unwrap();
    fs::create_dir(dir.path().join("bin/app")).unwrap();
    let (key, _, _, problem) = file_error(&dir);
    assert_eq!((key.as_str(), problem), ("application[0].executable", FileProblem::NotRegularFile));
}

#[test]
fn symlink_escaping_the_package_is_refused() {
    let outside = TempDir::new("outside");
    let target = outside.file("tool", 0o755);
    let dir = simple_package("escape");
    fs::remove_file(dir.path().join("bin/helper")).unwrap();
    symlink(&target, dir.path().join("bin/helper")).unwrap();
    let (key, _, _, problem) = file_error(&dir);
    assert_eq!(
        (key.as_str(), problem),
        ("application[0].full-trust-process[0].executable", FileProblem::EscapesPackage)
    );

    // A relative link climbing out is refused the same way.
    fs::remove_file(dir.path().join("bin/helper")).unwrap();
    let rel = Path::new("../..").join(outside.path().file_name().unwrap()).join("tool");
    symlink(&rel, dir.path().join("bin/helper")).unwrap();
    assert_eq!(file_error(&dir).3, FileProblem::EscapesPackage);
}

#[test]
fn symlinked_directory_escaping_the_package_is_refused() {
    let outside = TempDir::new("outside-dir");
    outside.file("app", 0o755);
    outside.file("helper", 0o755);
    let dir = TempDir::new("escape-dir");
    fs::write(dir.path().join(MANIFEST_FILE), SIMPLE).unwrap();
    symlink(outside.path(), dir.path().join("bin")).unwrap();
    let (key, _, _, problem) = file_error(&dir);
    assert_eq!((key.as_str(), problem), ("application[0].executable", FileProblem::EscapesPackage));
}

#[test]
fn symlinks_inside_the_package_are_fine() {
    let dir = simple_package("inside");
    fs::remove_file(dir.path().join("bin/helper")).unwrap();
    dir.file("libexec/real-helper", 0o755);
    symlink("../libexec/real-helper", dir.path().join("bin/helper")).unwrap();
    manifest::load(dir.path()).unwrap();
}

#[test]
fn dangling_symlink_is_missing() {
    let dir = simple_package("dangling");
    fs::remove_file(dir.path().join("bin/helper")).unwrap();
    symlink("nowhere", dir.path().join("bin/helper")).unwrap();
    assert_eq!(file_error(&dir).3, FileProblem::Missing);
}

#[test]
fn path_through_a_file_is_missing() {
    let dir = TempDir::new("through-file");
    fs::write(dir.path().join(MANIFEST_FILE), SIMPLE.replace("bin/helper", "bin/app/helper"))
        .unwrap();
    dir.file("bin/app", 0o755);
    let (key, _, _, problem) = file_error(&dir);
    assert_eq!(
        (key.as_str(), problem),
        ("application[0].full-trust-process[0].executable", FileProblem::Missing)
    );
}

#[test]
fn default_full_trust_executable_is_checked_at_its_table() {
    let dir = TempDir::new("ftp-default");
    let text = SIMPLE.replace("executable = \"bin/helper\"\n", "");
    fs::write(dir.path().join(MANIFEST_FILE), &text).unwrap();
    dir.file("bin/app", 0o755);
    manifest::load(dir.path()).unwrap();
}

#[test]
fn data_files_need_not_be_executable() {
    let dir = simple_package("data");
    let text =
        SIMPLE.replace("version = \"1.0.0.0\"\n", "version = \"1.0.0.0\"\nlogo = \"logo.png\"\n");
    fs::write(dir.path().join(MANIFEST_FILE), &text).unwrap();
    let (key, _, _, problem) = file_error(&dir);
    assert_eq!((key.as_str(), problem), ("package.logo", FileProblem::Missing));
    dir.file("logo.png", 0o600);
    manifest::load(dir.path()).unwrap();
}

#[test]
fn missing_manifest_is_an_io_error() {
    let dir = TempDir::new("empty");
    let err = manifest::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, ManifestError::Io { ref path, .. } if path.ends_with(MANIFEST_FILE)),
        "{err:?}"
    );
    assert_eq!(err.location(), None);
    assert!(err.to_string().starts_with("cannot read "), "{err}");
}

#[test]
fn an_invalid_manifest_and_missing_files_are_reported_together() {
    let dir = TempDir::new("invalid");
    fs::write(dir.path().join(MANIFEST_FILE), SIMPLE.replace("bin/app", "/bin/true")).unwrap();
    let err = manifest::load(dir.path()).unwrap_err();
    // The invalid path is not looked up; the valid path of a file that is not there is.
    let problems = err.problems();
    assert_eq!(problems.len(), 2, "{err}");
    assert!(matches!(problems[0], ManifestError::Invalid { .. }), "{err:?}");
    assert_eq!(err.key(), Some("application[0].executable"));
    assert!(
        matches!(problems[1], ManifestError::File { problem: FileProblem::Missing, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string().lines().count(), 2, "one line per problem: {err}");
}
