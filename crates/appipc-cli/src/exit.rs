//! Exit statuses, one per class of failure and the same on every command (the numbers are
//! those of BSD's `sysexits.h`), and how an error is printed: once, each cause once.
//!
//! | status | class | for example |
//! |---:|---|---|
//! | 0 | success | |
//! | 1 | failed | an app service answered other than `Success`; a downgrade or a conflicting install |
//! | 64 | usage | an unknown option, a missing argument |
//! | 65 | data | an invalid manifest, package file, package name or JSON input |
//! | 66 | not found | no such file, package, application, token or object |
//! | 69 | unavailable | no broker answers and none could be started; an app service that is not there |
//! | 70 | internal | a failure inside the broker or the CLI; a request the broker does not know |
//! | 71 | system | the operating system refused to start a process |
//! | 74 | I/O | reading or writing a file or the broker's socket failed |
//! | 75 | try again | busy, a quota exhausted, a time-out; another broker already runs (`appipcd`) |
//! | 76 | protocol | the broker closed the session or sent something unexpected |
//! | 77 | permission | access denied, an untrusted signature, consent not given |
//! | 78 | configuration | a bad configuration file or environment variable (`APPIPC_SESSION_FD`) |
//!
//! `appipc launch --wait` exits with the app's own status once the app has started (128 + N
//! when signal N ended it). `app-service call` maps the Windows statuses: `AppNotInstalled`
//! 66, `AppUnavailable` and `AppServiceUnavailable` 69, `NotAuthorized` 77,
//! `MessageSizeTooLarge` 65, `ResourceLimitsExceeded` 75, any other 1. `docs/cli.md` carries
//! this table; a test checks the two agree.

use std::fmt;
use std::process::ExitCode;

use appipc::ErrorKind;

/// A class of failure, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    /// The operation ran and did not succeed.
    Failed = 1,
    /// The command line is wrong (clap's errors: `daemon_args::parse_or_exit` exits 64).
    Usage = 64,
    /// Input data is invalid.
    Data = 65,
    /// What was named does not exist.
    NotFound = 66,
    /// A service (the broker, an app service) is not available.
    Unavailable = 69,
    /// Something failed inside.
    Internal = 70,
    /// The operating system refused.
    System = 71,
    /// Reading or writing failed.
    Io = 74,
    /// Worth trying again later.
    TryAgain = 75,
    /// The broker's answer made no sense.
    Protocol = 76,
    /// Not allowed.
    Permission = 77,
    /// Bad configuration.
    Config = 78,
}

/// Every class, for the documentation test.
#[cfg(test)]
pub(crate) const ALL: &[Class] = &[
    Class::Failed,
    Class::Usage,
    Class::Data,
    Class::NotFound,
    Class::Unavailable,
    Class::Internal,
    Class::System,
    Class::Io,
    Class::TryAgain,
    Class::Protocol,
    Class::Permission,
    Class::Config,
];

impl Class {
    /// The exit status.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// Its name in the documentation (and in `--json` errors).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Failed => "failed",
            Class::Usage => "usage",
            Class::Data => "data",
            Class::NotFound => "not found",
            Class::Unavailable => "unavailable",
            Class::Internal => "internal",
            Class::System => "system",
            Class::Io => "I/O",
            Class::TryAgain => "try again",
            Class::Protocol => "protocol",
            Class::Permission => "permission",
            Class::Config => "configuration",
        }
    }

    pub(crate) fn exit(self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The class of a broker error kind.
    pub(crate) fn of_kind(kind: ErrorKind) -> Class {
        match kind {
            ErrorKind::BadRequest | ErrorKind::InvalidPackage => Class::Data,
            ErrorKind::AccessDenied | ErrorKind::NotDeclared => Class::Permission,
            ErrorKind::NotFound | ErrorKind::TokenInvalid => Class::NotFound,
            ErrorKind::Downgrade | ErrorKind::Conflict => Class::Failed,
            ErrorKind::LaunchFailed => Class::System,
            ErrorKind::Busy | ErrorKind::QuotaExceeded => Class::TryAgain,
            _ => Class::Internal,
        }
    }

    fn of_io(kind: std::io::ErrorKind) -> Class {
        match kind {
            std::io::ErrorKind::NotFound => Class::NotFound,
            std::io::ErrorKind::PermissionDenied => Class::Permission,
            _ => Class::Io,
        }
    }

    /// The class of an app-service open that did not succeed.
    pub(crate) fn of_open(status: appipc::app_service::AppServiceConnectionStatus) -> Class {
        use appipc::app_service::AppServiceConnectionStatus as S;
        match status {
            S::AppNotInstalled => Class::NotFound,
            S::AppUnavailable | S::AppServiceUnavailable => Class::Unavailable,
            S::NotAuthorized => Class::Permission,
            _ => Class::Failed,
        }
    }

    /// The class of an app-service response other than `Success`.
    pub(crate) fn of_response(status: appipc::app_service::AppServiceResponseStatus) -> Class {
        use appipc::app_service::AppServiceResponseStatus as S;
        match status {
            S::MessageSizeTooLarge => Class::Data,
            S::ResourceLimitsExceeded => Class::TryAgain,
            _ => Class::Failed,
        }
    }

    /// The class of an SDK error.
    pub(crate) fn of_sdk(e: &appipc::Error) -> Class {
        use appipc::Error as E;
        match e {
            E::Connect { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => Class::Permission,
                _ => Class::Unavailable,
            },
            E::BadSessionFd { .. } => Class::Config,
            E::Broker { kind, .. } => Class::of_kind(*kind),
            E::Disconnected | E::Closed { .. } | E::Protocol(_) => Class::Protocol,
            E::Timeout { .. } | E::BrokerRestarted { .. } => Class::TryAgain,
            E::Io { source, .. } => Class::of_io(source.kind()),
            E::NamedObject { code: 2, .. } | E::Registry { code: 2 | 1018, .. } => Class::NotFound,
            E::NamedObject { code: 5, .. } | E::Registry { code: 5, .. } => Class::Permission,
            E::Registry { code: 1816, .. } => Class::TryAgain,
            E::NamedObject { .. } | E::Registry { .. } => Class::Data,
            E::NoPackageIdentity => Class::Permission,
            _ => Class::Internal,
        }
    }

    /// The class of any error: the first cause in the chain that has one.
    pub(crate) fn of(e: &anyhow::Error) -> Class {
        for cause in e.chain() {
            if let Some(f) = cause.downcast_ref::<Failure>() {
                return f.class;
            }
            if let Some(s) = cause.downcast_ref::<appipc::Error>() {
                return Class::of_sdk(s);
            }
            if cause.is::<appipc_model::identity::IdentityError>()
                || cause.is::<serde_json::Error>()
                || cause.is::<appipc::json::JsonError>()
            {
                return Class::Data;
            }
            if let Some(m) = cause.downcast_ref::<appipc_model::manifest::ManifestError>() {
                return match m {
                    appipc_model::manifest::ManifestError::Io { source, .. } => {
                        Class::of_io(source.kind())
                    }
                    _ => Class::Data,
                };
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                return Class::of_io(io.kind());
            }
        }
        Class::Internal
    }
}

/// An error whose class the CLI decided itself.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) class: Class,
    pub(crate) message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error of class `class`.
pub(crate) fn fail(class: Class, message: impl Into<String>) -> anyhow::Error {
    Failure { class, message: message.into() }.into()
}

/// The message of an error and its causes, `what: cause: cause`, each cause once: a cause whose
/// text the message already ends with (an error that prints its source itself) is not repeated.
pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.ends_with(&text) || out.contains(&format!(": {text}")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_distinct_and_sysexits() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            assert!(seen.insert(c.code()), "{} twice", c.code());
            assert!(c.code() == 1 || (64..=78).contains(&c.code()), "{}", c.code());
        }
    }

    #[test]
    fn docs_cli_md_lists_every_class_with_its_status() {
        let doc = include_str!("../../../docs/cli.md");
        let start = doc.find("<!-- BEGIN exit statuses").expect("begin marker");
        let end = doc.find("<!-- END exit statuses").expect("end marker");
        let rows: Vec<(u8, String)> = doc[start..end]
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                Some((cells.get(1)?.parse().ok()?, (*cells.get(2)?).to_owned()))
            })
            .filter(|(code, _)| *code != 0)
            .collect();
        let classes: Vec<(u8, String)> =
            ALL.iter().map(|c| (c.code(), c.name().to_owned())).collect();
        assert_eq!(rows, classes, "docs/cli.md's table and exit::Class differ");
        // And the table in this module's documentation says the same.
        let here = include_str!("exit.rs");
        for (code, name) in &classes {
            assert!(here.contains(&format!("//! | {code} | {name} |")), "{code} {name}");
        }
    }

    #[test]
    fn a_cause_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let sdk = appipc::Error::Connect { path: "/run/x".into(), source: io };
        let e = anyhow::Error::from(sdk).context("connecting");
        let m = message(&e);
        assert_eq!(m.matches(&text).count(), 1, "{m}");
        assert_eq!(Class::of(&e), Class::Unavailable);
    }
}
