//! Who is calling, as the broker attests it: trust levels and the identity a session carries.

use minicbor::{Decode, Encode};

/// How much a process is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize)]
#[cbor(index_only)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// No package identity: a process the user started outside the broker.
    #[n(0)]
    Unpackaged,
    /// A packaged process in its app container.
    #[n(1)]
    AppContainer,
    /// A packaged process with full trust (`mediumIL`, `runFullTrust`).
    #[n(2)]
    FullTrust,
}

impl TrustLevel {
    /// Lower-case name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Unpackaged => "unpackaged",
            TrustLevel::AppContainer => "appcontainer",
            TrustLevel::FullTrust => "fulltrust",
        }
    }
}

/// Identity as the broker attests it: from the kernel and from which socket the request came
/// in on, never from what the caller claims.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct CallerIdentity {
    /// Process id of the peer that opened the session (for a launched package: the process
    /// the broker started).
    #[n(0)]
    pub pid: u32,
    /// User id.
    #[n(1)]
    pub uid: u32,
    /// Package full name; `None` for an unpackaged caller.
    #[n(2)]
    pub package_full_name: Option<String>,
    /// Package family name; `None` for an unpackaged caller.
    #[n(3)]
    pub package_family_name: Option<String>,
    /// Application id inside the package.
    #[n(4)]
    pub app_id: Option<String>,
    /// Trust level.
    #[n(5)]
    pub trust: TrustLevel,
    /// Granted capability names (declared ones the broker did not grant are not here).
    #[n(6)]
    pub capabilities: Vec<String>,
    /// AppContainer SID of the package.
    #[n(7)]
    pub package_sid: Option<String>,
    /// SIDs of the granted capabilities.
    #[n(8)]
    pub capability_sids: Vec<String>,
    /// The session's id in the broker's log.
    #[n(9)]
    pub session_id: u64,
}
