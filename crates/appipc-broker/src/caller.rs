//! The one broker-side "who is asking": built once when a session is created, from facts the
//! broker attested itself (the peer's credentials on the public socket, or the package it
//! launched on a session socket it created), never from anything the caller writes.

use appipc_model::principal::Principal;
use appipc_wire::caller::{CallerIdentity, TrustLevel};
use appipc_wire::protocol::diagnostics::DecisionCaller;

/// Who is behind a session.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The broker's id for this session (in logs).
    pub session_id: u64,
    /// pid of the process the session belongs to.
    pub pid: u32,
    /// uid.
    pub uid: u32,
    /// Who it is, for decisions.
    pub principal: Principal,
    /// Package full name (packaged callers).
    pub full_name: Option<String>,
}

impl Caller {
    /// An unpackaged process of the user, as the kernel reported it.
    pub fn unpackaged(session_id: u64, pid: u32, uid: u32) -> Caller {
        Caller { session_id, pid, uid, principal: Principal::unpackaged(uid), full_name: None }
    }

    /// The same identity on another session (`OpenSession`).
    pub fn with_session(&self, session_id: u64) -> Caller {
        Caller { session_id, ..self.clone() }
    }

    /// The trust level.
    pub fn trust(&self) -> TrustLevel {
        self.principal.trust
    }

    /// The package family name, if packaged.
    pub fn family_name(&self) -> Option<&str> {
        self.principal.family_name()
    }

    /// The package family name, or "" for an unpackaged caller (Windows'
    /// `CallerPackageFamilyName`).
    pub fn family_name_or_empty(&self) -> String {
        self.family_name().unwrap_or_default().to_owned()
    }

    /// Short description for logs.
    pub fn describe(&self) -> String {
        match &self.principal.package {
            None => format!("unpackaged pid {}", self.pid),
            Some(p) => format!(
                "{}!{} pid {} ({})",
                p.family_name,
                p.app_id,
                self.pid,
                self.trust().as_str()
            ),
        }
    }

    /// The identity as the broker attests it on the wire (`WhoAmI`).
    pub fn attest(&self) -> CallerIdentity {
        let p = self.principal.package.as_ref();
        CallerIdentity {
            pid: self.pid,
            uid: self.uid,
            package_full_name: self.full_name.clone(),
            package_family_name: p.map(|p| p.family_name.to_string()),
            app_id: p.map(|p| p.app_id.to_string()),
            trust: self.trust(),
            capabilities: p.map(|p| p.capabilities.clone()).unwrap_or_default(),
            package_sid: p.map(|p| p.package_sid.to_string()),
            capability_sids: p
                .map(|p| p.capability_sids.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            session_id: self.session_id,
        }
    }

    /// The caller as a decision record names it.
    pub(crate) fn for_record(&self) -> DecisionCaller {
        let p = self.principal.package.as_ref();
        DecisionCaller {
            package_family_name: self.family_name_or_empty(),
            app_id: p.map(|p| p.app_id.to_string()).unwrap_or_default(),
            pid: self.pid,
            trust: self.trust(),
        }
    }
}
