//! Errors of manifest parsing and loading, each pointing at a line of `appipc.toml`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::MANIFEST_FILE;

/// A position in `appipc.toml`: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Line, counting from 1.
    pub line: usize,
    /// Column in characters, counting from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the end of the text).
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What is wrong with a file the manifest refers to (found by [`load`](super::load)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// Nothing exists at that path inside the package.
    Missing,
    /// The path resolves (through a symbolic link) to a place outside the package folder.
    EscapesPackage,
    /// The path names a directory, a socket, a device or another non-regular file.
    NotRegularFile,
    /// The file has no execute permission bit set.
    NotExecutable,
    /// The file could not be inspected.
    Unreadable(String),
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProblem::Missing => f.write_str("no such file in the package"),
            FileProblem::EscapesPackage => {
                f.write_str("resolves to a place outside the package folder (symbolic link)")
            }
            FileProblem::NotRegularFile => f.write_str("is not a regular file"),
            FileProblem::NotExecutable => f.write_str("is not executable (no execute bit set)"),
            FileProblem::Unreadable(why) => write!(f, "cannot be inspected: {why}"),
        }
    }
}

fn several(errors: &[ManifestError], more: usize) -> String {
    let mut lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    if more > 0 {
        lines.push(format!("… and {more} more problem(s) (the first {} are shown)", errors.len()));
    }
    lines.join("\n")
}

fn quoted(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{v:?}: "),
        None => String::new(),
    }
}

/// Why a manifest was refused.
///
/// Every variant but [`ManifestError::Io`] names the place in `appipc.toml`
/// ([`ManifestError::location`]), the key path such as `application[1].app-service[0].name`
/// ([`ManifestError::key`]) and the rule that was broken ([`ManifestError::rule`]). The
/// display form is `appipc.toml:LINE:COLUMN: KEY: "VALUE": RULE`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The text is not valid TOML.
    #[error("{MANIFEST_FILE}:{location}: TOML syntax: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// The parser's description.
        message: String,
    },
    /// A key that appipc does not know (typing errors are refused, not ignored).
    #[error("{MANIFEST_FILE}:{location}: {key}: unknown key (expected one of: {})", expected.join(", "))]
    UnknownKey {
        /// Where the key is written.
        location: Location,
        /// Full key path of the unknown key.
        key: String,
        /// The keys allowed in that table.
        expected: Vec<&'static str>,
    },
    /// A required key is absent.
    #[error("{MANIFEST_FILE}:{location}: {key}: required key is missing")]
    MissingKey {
        /// The table that lacks the key (its header, or the start of the file).
        location: Location,
        /// Full key path of the missing key.
        key: String,
    },
    /// A value has the wrong TOML type.
    #[error("{MANIFEST_FILE}:{location}: {key}: must be {expected}, found {found}")]
    WrongType {
        /// Where the value is written.
        location: Location,
        /// Full key path.
        key: String,
        /// The type that was expected (`a string`, `an array of strings`, …).
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// A value breaks a rule of the manifest format.
    #[error("{MANIFEST_FILE}:{location}: {key}: {}{rule}", quoted(value))]
    Invalid {
        /// Where the value is written.
        location: Location,
        /// Full key path.
        key: String,
        /// The offending text, when there is one value to blame.
        value: Option<String>,
        /// The rule it broke.
        rule: String,
    },
    /// A file the manifest refers to is missing, escapes the package, is not a regular file,
    /// or is not executable.
    #[error("{MANIFEST_FILE}:{location}: {key}: {file:?}: {problem}")]
    File {
        /// Where the path is written (or the table that implies it).
        location: Location,
        /// Full key path.
        key: String,
        /// The package-relative path.
        file: String,
        /// What is wrong with it.
        problem: FileProblem,
    },
    /// Several problems, in document order (`check` and `install` report every problem they
    /// find in one run, at most [`MAX_REPORTED`](super::MAX_REPORTED)); shown one per line.
    /// [`location`](Self::location), [`key`](Self::key) and [`rule`](Self::rule) are the
    /// first one's.
    #[error("{}", several(errors, *more))]
    Several {
        /// The problems (two or more).
        errors: Vec<ManifestError>,
        /// How many more were found than are listed.
        more: usize,
    },
    /// The manifest file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ManifestError {
    /// Where in `appipc.toml` the problem is; `None` for I/O errors.
    pub fn location(&self) -> Option<Location> {
        match self {
            ManifestError::Syntax { location, .. }
            | ManifestError::UnknownKey { location, .. }
            | ManifestError::MissingKey { location, .. }
            | ManifestError::WrongType { location, .. }
            | ManifestError::Invalid { location, .. }
            | ManifestError::File { location, .. } => Some(*location),
            ManifestError::Several { errors, .. } => errors.first().and_then(Self::location),
            ManifestError::Io { .. } => None,
        }
    }

    /// Every problem: the list of [`ManifestError::Several`], or this one.
    pub fn problems(&self) -> Vec<&ManifestError> {
        match self {
            ManifestError::Several { errors, .. } => errors.iter().collect(),
            other => vec![other],
        }
    }

    /// One error for a list of problems (at least one), keeping the first
    /// [`MAX_REPORTED`](super::MAX_REPORTED).
    pub fn from_problems(mut errors: Vec<ManifestError>) -> ManifestError {
        if errors.len() == 1 {
            return errors.remove(0);
        }
        let more = errors.len().saturating_sub(super::MAX_REPORTED);
        errors.truncate(super::MAX_REPORTED);
        ManifestError::Several { errors, more }
    }

    /// The line of [`ManifestError::location`].
    pub fn line(&self) -> Option<usize> {
        self.location().map(|l| l.line)
    }

    /// The key path the problem is about (`application[0].app-service[1].name`); `None` for
    /// syntax and I/O errors.
    pub fn key(&self) -> Option<&str> {
        match self {
            ManifestError::UnknownKey { key, .. }
            | ManifestError::MissingKey { key, .. }
            | ManifestError::WrongType { key, .. }
            | ManifestError::Invalid { key, .. }
            | ManifestError::File { key, .. } => Some(key),
            ManifestError::Several { errors, .. } => errors.first().and_then(Self::key),
            ManifestError::Syntax { .. } | ManifestError::Io { .. } => None,
        }
    }

    /// The rule that was broken, in words.
    pub fn rule(&self) -> String {
        match self {
            ManifestError::Syntax { message, .. } => format!("TOML syntax: {message}"),
            ManifestError::UnknownKey { expected, .. } => {
                format!("unknown key (expected one of: {})", expected.join(", "))
            }
            ManifestError::MissingKey { .. } => "required key is missing".to_owned(),
            ManifestError::WrongType { expected, found, .. } => {
                format!("must be {expected}, found {found}")
            }
            ManifestError::Invalid { rule, .. } => rule.clone(),
            ManifestError::File { problem, .. } => problem.to_string(),
            ManifestError::Several { errors, .. } => {
                errors.first().map(Self::rule).unwrap_or_default()
            }
            ManifestError::Io { source, .. } => source.to_string(),
        }
    }
}
