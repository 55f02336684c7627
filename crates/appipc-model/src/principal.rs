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
    /// The Linux user the process runs for (the broker's user: a broker serves one). Its SID is
    /// [`Principal::user_sid`].
    pub uid: u32,
    /// Trust level.
    pub trust: TrustLevel,
    /// `None` for an unpackaged process.
    pub package: Option<PackagePrincipal>,
}

/// `SECURITY_MANDATORY_LOW_RID`: the integrity level of an app container.
pub const LOW_INTEGRITY: u32 = 0x1000;
/// `SECURITY_MANDATORY_MEDIUM_RID`: the integrity level of a standard user's processes (and
/// of an object without a label).
pub const MEDIUM_INTEGRITY: u32 = 0x2000;

impl Principal {
    /// An unpackaged process of the user `uid`.
    pub fn unpackaged(uid: u32) -> Principal {
        Principal { uid, trust: TrustLevel::Unpackaged, package: None }
    }

    /// A process of the user `uid` and of `family_name`, running as `app_id` at `trust` (never
    /// `Unpackaged`), with these granted capabilities.
    pub fn packaged(
        uid: u32,
        family_name: PackageFamilyName,
        app_id: AppId,
        trust: TrustLevel,
        granted_capabilities: Vec<String>,
    ) -> Principal {
        debug_assert_ne!(trust, TrustLevel::Unpackaged);
        let capability_sids = granted_capabilities.iter().map(|c| sid::capability_sid(c)).collect();
        Principal {
            uid,
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

    /// The user's SID, [`Sid::unix_user`]`(uid)` (`S-1-22-1-<uid>`): the owner of the objects
    /// the user's processes create and the first SID of their tokens.
    pub fn user_sid(&self) -> Sid {
        Sid::unix_user(self.uid)
    }

    /// The integrity level of the caller's token: Low for an app container (Windows runs every
    /// app container at Low), Medium for an unconfined process (a standard user's level; full
    /// trust is `mediumIL`).
    pub fn integrity_level(&self) -> u32 {
        if self.is_confined() { LOW_INTEGRITY } else { MEDIUM_INTEGRITY }
    }

    /// The SIDs of the user side of the caller's token, as Windows gives an interactive
    /// standard user (app containers included: their tokens keep the user's groups): the user
    /// ([`Principal::user_sid`]), Everyone (`WD`), LOCAL (`S-1-2-0`), CONSOLE LOGON
    /// (`S-1-2-1`), INTERACTIVE (`IU`), Authenticated Users (`AU`), This Organization
    /// (`S-1-5-15`) and Users (`BU`). Not given: the logon-session SID (appipc has no logon
    /// sessions), Administrators (no Linux user is an elevated Windows administrator) and the
    /// user's Unix groups.
    pub fn user_side_sids(&self) -> Vec<Sid> {
        let nt = |subs: &[u32]| Sid::new(sid::NT_AUTHORITY, subs).expect("a valid SID");
        vec![
            self.user_sid(),
            Sid::everyone(),
            Sid::new(2, &[0]).expect("LOCAL"),
            Sid::new(2, &[1]).expect("CONSOLE LOGON"),
            nt(&[4]),
            nt(&[11]),
            nt(&[15]),
            nt(&[32, 545]),
        ]
    }

    /// The SIDs of the app-container side of a confined caller's token (empty for an
    /// unconfined one): its package SID, its granted capabilities' SIDs, ALL APPLICATION
    /// PACKAGES (`AC`) and ALL RESTRICTED APPLICATION PACKAGES (`S-1-15-2-2`). Windows gives
    /// both wildcards to every app container except a less-privileged one (LPAC), which opts
    /// out of ALL APPLICATION PACKAGES; appipc has no LPACs.
    pub fn container_side_sids(&self) -> Vec<Sid> {
        let Some(p) = self.package.as_ref().filter(|_| self.is_confined()) else {
            return Vec::new();
        };
        let mut out = vec![p.package_sid.clone()];
        out.extend(p.capability_sids.iter().cloned());
        out.push(Sid::all_application_packages());
        out.push(Sid::all_restricted_application_packages());
        out
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
