//! Loading a package folder: the manifest plus the files it names.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::build::{self, Reference};
use super::error::{FileProblem, Location, ManifestError};
use super::{MANIFEST_FILE, Manifest};

pub(super) fn load(package_dir: &Path) -> Result<Manifest, ManifestError> {
    let path = package_dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path)
        .map_err(|source| ManifestError::Io { path: path.clone(), source })?;
    let parsed = build::parse(&text);
    let root = fs::canonicalize(package_dir)
        .map_err(|source| ManifestError::Io { path: package_dir.to_path_buf(), source })?;
    finish(&text, parsed, |r| check_file(&root, r).err())
}

/// The manifest, or every problem of the text and of the files it names, in document order.
fn finish(
    text: &str,
    parsed: build::Parsed,
    file_problem: impl Fn(&Reference) -> Option<FileProblem>,
) -> Result<Manifest, ManifestError> {
    let mut problems = parsed.problems;
    for r in &parsed.references {
        if let Some(problem) = file_problem(r) {
            problems.push(ManifestError::File {
                location: Location::of_offset(text, r.span.start),
                key: r.key.clone(),
                file: r.path.as_str().to_owned(),
                problem,
            });
        }
    }
    problems.sort_by_key(ManifestError::location);
    match parsed.manifest {
        Some(m) if problems.is_empty() => Ok(m),
        _ => Err(ManifestError::from_problems(problems)),
    }
}

/// [`parse`](super::parse): the text alone.
pub(super) fn parse(text: &str) -> Result<Manifest, ManifestError> {
    finish(text, build::parse(text), |_| None)
}

/// Checks one named file: present, inside `root` once symbolic links are resolved, a regular
/// file, and executable when it has to be.
fn check_file(root: &Path, r: &Reference) -> Result<(), FileProblem> {
    let unreadable = |e: io::Error| FileProblem::Unreadable(e.to_string());
    let joined = r.path.under(root);
    match fs::symlink_metadata(&joined) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FileProblem::Missing),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(FileProblem::Missing),
        Err(e) => return Err(unreadable(e)),
    }
    let real = match fs::canonicalize(&joined) {
        Ok(p) => p,
        // A dangling symbolic link: nothing there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FileProblem::Missing),
        Err(e) => return Err(unreadable(e)),
    };
    if !real.starts_with(root) {
        return Err(FileProblem::EscapesPackage);
    }
    let meta = fs::metadata(&real).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileProblem::NotRegularFile);
    }
    if r.executable && meta.permissions().mode() & 0o111 == 0 {
        return Err(FileProblem::NotExecutable);
    }
    Ok(())
}

/// What a package holds at a path, for [`parse_with_files`](super::parse_with_files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageEntry {
    /// A regular file; `executable` when it has an execute bit.
    File {
        /// Whether it is executable.
        executable: bool,
    },
    /// A folder (of other files).
    Folder,
}

pub(super) fn parse_with_files(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<PackageEntry>,
) -> Result<Manifest, ManifestError> {
    finish(text, build::parse(text), |r| match lookup(r.path.as_str()) {
        None => Some(FileProblem::Missing),
        Some(PackageEntry::Folder) => Some(FileProblem::NotRegularFile),
        Some(PackageEntry::File { executable: false }) if r.executable => {
            Some(FileProblem::NotExecutable)
        }
        Some(PackageEntry::File { .. }) => None,
    })
}
