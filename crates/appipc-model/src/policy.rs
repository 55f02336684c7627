//! Access policy as pure functions: `decide(caller, operation) -> Decision`.
//!
//! The broker gathers the facts (who is calling, on what) and enforces the decision; every
//! rule lives here so that it is unit-tested without processes. Each mechanism adds its
//! operations as it lands.

use appipc_wire::protocol::TrustLevel;

/// Who is asking, as the broker attests it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Package family name; `None` for an unpackaged process.
    pub family_name: Option<&'a str>,
    /// Trust level.
    pub trust: TrustLevel,
    /// Declared capability names.
    pub capabilities: &'a [String],
}

impl Caller<'_> {
    /// An unpackaged process of the user.
    pub const UNPACKAGED: Caller<'static> =
        Caller { family_name: None, trust: TrustLevel::Unpackaged, capabilities: &[] };

    /// True if the caller declared this capability (case-insensitive).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    fn is_package(&self, family: &str) -> bool {
        self.family_name.is_some_and(|f| f.eq_ignore_ascii_case(family))
    }

    fn describe(&self) -> String {
        match self.family_name {
            None => "an unpackaged process".to_owned(),
            Some(f) => format!("{f} ({})", self.trust.as_str()),
        }
    }
}

/// What is being asked.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// Install or upgrade a package.
    InstallPackage,
    /// Remove a package.
    RemovePackage {
        /// Its family.
        family_name: &'a str,
    },
    /// See that a package is installed and read its details (listings).
    QueryPackage {
        /// Its family.
        family_name: &'a str,
    },
    /// Start one of a package's applications directly (by AUMID).
    Launch {
        /// The target's family.
        family_name: &'a str,
    },
    /// Stop the broker.
    Shutdown,
}

/// The answer, with the reason that the broker logs and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// Why, in words.
    pub reason: String,
}

impl Decision {
    fn allow(reason: impl Into<String>) -> Decision {
        Decision { allowed: true, reason: reason.into() }
    }

    fn deny(reason: impl Into<String>) -> Decision {
        Decision { allowed: false, reason: reason.into() }
    }
}

/// The restricted capability that lets a packaged app deploy packages
/// (Windows: `packageManagement`).
pub const PACKAGE_MANAGEMENT: &str = "packageManagement";
/// The restricted capability that lets a packaged app see other packages
/// (Windows: `packageQuery`).
pub const PACKAGE_QUERY: &str = "packageQuery";

/// Decides one operation.
pub fn decide(caller: &Caller<'_>, op: &Operation<'_>) -> Decision {
    let who = caller.describe();
    match *op {
        Operation::InstallPackage | Operation::RemovePackage { .. } => {
            if caller.trust == TrustLevel::Unpackaged {
                Decision::allow("the user's own unpackaged process may deploy packages")
            } else if caller.has_capability(PACKAGE_MANAGEMENT) {
                Decision::allow(format!("{who} declares {PACKAGE_MANAGEMENT}"))
            } else {
                Decision::deny(format!(
                    "{who} may not deploy packages: it does not declare the restricted \
                     capability {PACKAGE_MANAGEMENT}"
                ))
            }
        }
        Operation::QueryPackage { family_name } => {
            if caller.trust != TrustLevel::AppContainer {
                Decision::allow(format!("{who} is not in an app container"))
            } else if caller.is_package(family_name) {
                Decision::allow("a package may see itself")
            } else if caller.has_capability(PACKAGE_QUERY) {
                Decision::allow(format!("{who} declares {PACKAGE_QUERY}"))
            } else {
                Decision::deny(format!(
                    "{who} may not see package {family_name}: app containers see only their own \
                     package unless they declare {PACKAGE_QUERY}"
                ))
            }
        }
        Operation::Launch { family_name } => {
            if caller.trust != TrustLevel::AppContainer {
                Decision::allow(format!("{who} is not in an app container"))
            } else if caller.is_package(family_name) {
                Decision::allow("a package may start its own applications")
            } else {
                Decision::deny(format!(
                    "{who} may not start applications of {family_name} directly: app containers \
                     reach other packages through app services and protocol activation"
                ))
            }
        }
        Operation::Shutdown => {
            if caller.trust == TrustLevel::Unpackaged {
                Decision::allow("the user's own unpackaged process may stop the broker")
            } else {
                Decision::deny(format!(
                    "{who} may not stop the broker: packaged processes never may"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packaged<'a>(family: &'a str, trust: TrustLevel, caps: &'a [String]) -> Caller<'a> {
        Caller { family_name: Some(family), trust, capabilities: caps }
    }

    #[test]
    fn deployment() {
        assert!(decide(&Caller::UNPACKAGED, &Operation::InstallPackage).allowed);
        let none: Vec<String> = vec![];
        let d = decide(&packaged("A_x", TrustLevel::FullTrust, &none), &Operation::InstallPackage);
        assert!(!d.allowed);
        assert!(d.reason.contains("packageManagement"), "{}", d.reason);
        let caps = vec!["PackageManagement".to_owned()];
        let op = Operation::RemovePackage { family_name: "B_x" };
        assert!(decide(&packaged("A_x", TrustLevel::AppContainer, &caps), &op).allowed);
    }

    #[test]
    fn query_and_launch() {
        let none: Vec<String> = vec![];
        let ac = packaged("A_x", TrustLevel::AppContainer, &none);
        assert!(decide(&ac, &Operation::QueryPackage { family_name: "a_X" }).allowed);
        assert!(!decide(&ac, &Operation::QueryPackage { family_name: "B_x" }).allowed);
        assert!(decide(&ac, &Operation::Launch { family_name: "A_x" }).allowed);
        assert!(!decide(&ac, &Operation::Launch { family_name: "B_x" }).allowed);
        let ft = packaged("A_x", TrustLevel::FullTrust, &none);
        assert!(decide(&ft, &Operation::Launch { family_name: "B_x" }).allowed);
        let q = vec!["packageQuery".to_owned()];
        let acq = packaged("A_x", TrustLevel::AppContainer, &q);
        assert!(decide(&acq, &Operation::QueryPackage { family_name: "B_x" }).allowed);
    }

    #[test]
    fn shutdown_only_unpackaged() {
        let none: Vec<String> = vec![];
        assert!(decide(&Caller::UNPACKAGED, &Operation::Shutdown).allowed);
        assert!(
            !decide(&packaged("A_x", TrustLevel::FullTrust, &none), &Operation::Shutdown).allowed
        );
    }
}
