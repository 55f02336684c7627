//! Who is asking: the one description of a caller that every access decision takes.
//!
//! The broker builds a [`Principal`] once per session from facts it attested itself (which
//! socket the session is, which package it launched there, which capabilities that package was
//! *granted* at install), never from anything the caller says. SIDs are derived once here.

use appipc_wire::caller::TrustLevel;

use crate::identity::{AppId, PackageFamilyName};
use crate::sid::{self, Sid};

/// The package side of a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagePrincipal {
    /// Package family name.
    pub family_name: PackageFamilyName,
    /// The application the process runs as.
    pub app_id: AppId,
    /// The package's AppContainer SID.
    pub package_sid: Sid,
    /// Granted capability names (declared ones that were not granted are not here).
    pub capabilities: Vec<String>,
    /// Their SIDs, in the same order.
    pub capability_sids: Vec<Sid>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Trust level.
    pub trust: TrustLevel,
    /// `None` for an unpackaged process.
    pub package: Option<PackagePrincipal>,
}

impl Principal {
    /// An unpackaged process of the user.
    pub fn unpackaged() -> Principal {
        Principal { trust: TrustLevel::Unpackaged, package: None }
    }

    /// A process of `family_name` running as `app_id` at `trust` (never `Unpackaged`), with
    /// these granted capabilities.
    pub fn packaged(
        family_name: PackageFamilyName,
        app_id: AppId,
        trust: TrustLevel,
        granted_capabilities: Vec<String>,
    ) -> Principal {
        debug_assert_ne!(trust, TrustLevel::Unpackaged);
        let capability_sids = granted_capabilities.iter().map(|c| sid::capability_sid(c)).collect();
        Principal {
            trust,
            package: Some(PackagePrincipal {
                package_sid: sid::appcontainer_sid(family_name.as_str()),
                family_name,
                app_id,
                capabilities: granted_capabilities,
                capability_sids,
            }),
        }
    }

    /// Runs in an app container.
    pub fn is_confined(&self) -> bool {
        self.trust == TrustLevel::AppContainer
    }

    /// The package family name, if packaged.
    pub fn family_name(&self) -> Option<&str> {
        self.package.as_ref().map(|p| p.family_name.as_str())
    }

    /// The AppContainer SID of a confined caller (`None` for unconfined ones: their named
    /// objects live in the session namespace).
    pub fn appcontainer_sid(&self) -> Option<&Sid> {
        self.package.as_ref().filter(|_| self.is_confined()).map(|p| &p.package_sid)
    }

    /// Whether the caller was granted this capability (case-insensitive).
    pub fn has_capability(&self, name: &str) -> bool {
        self.package
            .as_ref()
            .is_some_and(|p| p.capabilities.iter().any(|c| c.eq_ignore_ascii_case(name)))
    }

    /// Whether this is a process of the package `family` (case-insensitive).
    pub fn is_package(&self, family: &str) -> bool {
        self.family_name().is_some_and(|f| f.eq_ignore_ascii_case(family))
    }

    /// In words, for messages: `Contoso.App_… (appcontainer)` or `an unpackaged process`.
    pub fn describe(&self) -> String {
        match &self.package {
            None => "an unpackaged process".to_owned(),
            Some(p) => format!("{} ({})", p.family_name, self.trust.as_str()),
        }
    }
}
