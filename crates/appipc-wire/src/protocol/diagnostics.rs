//! The broker's decisions, for `appipc why`.

use minicbor::{Decode, Encode};

use crate::caller::TrustLevel;

super::mechanism! {
    /// The broker's decisions: every allow/deny it made recently, with the rule that decided
    /// and what would have allowed a refusal (`appipc why`). A caller sees decisions about the
    /// packages it may see.
    mechanism Diagnostics;
    requests {
        /// Recent decisions, oldest first.
        0 ListDecisions {
            /// Only decisions whose caller or object is this package.
            0 package_family_name: Option<String>,
            /// At most this many (the latest).
            1 last: u32,
            /// Refusals only.
            2 denials_only: bool,
        } fds(0) -> Vec<DecisionRecord>, reply fds "0";
        /// Streams decisions as `diagnostics.Decision` events on this session from now on.
        1 FollowDecisions {
            /// Only decisions whose caller or object is this package.
            0 package_family_name: Option<String>,
            /// Refusals only.
            1 denials_only: bool,
        } fds(0) -> (), reply fds "0";
    }
    events {
        /// A decision, for a session that follows them.
        0 Decision {
            /// The decision.
            0 record: DecisionRecord,
        } fds "0";
    }
}

/// Who asked, in a [`DecisionRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct DecisionCaller {
    /// Package family name ("" for an unpackaged caller).
    #[n(0)]
    pub package_family_name: String,
    /// Application id ("" for an unpackaged caller).
    #[n(1)]
    pub app_id: String,
    /// Process id.
    #[n(2)]
    pub pid: u32,
    /// Trust level.
    #[n(3)]
    pub trust: TrustLevel,
}

/// One decision the broker made.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct DecisionRecord {
    /// Sequence number (increasing).
    #[n(0)]
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    #[n(1)]
    pub time_ms: u64,
    /// Who asked.
    #[n(2)]
    pub caller: DecisionCaller,
    /// The mechanism (`named_objects`, …).
    #[n(3)]
    pub mechanism: String,
    /// The operation (`open`, …).
    #[n(4)]
    pub operation: String,
    /// What it was about (an object name, a package, a service).
    #[n(5)]
    pub object: String,
    /// The package the object belongs to ("" when none).
    #[n(6)]
    pub object_package_family_name: String,
    /// Rights asked (access masks), when the operation has them.
    #[n(7)]
    pub asked: Option<u32>,
    /// Rights granted.
    #[n(8)]
    pub granted: Option<u32>,
    /// Allowed or refused.
    #[n(9)]
    pub allowed: bool,
    /// The rule that decided, in words ("DACL entry 2 of the descriptor of `Local\x`").
    #[n(10)]
    pub rule: String,
    /// What would have allowed it (for refusals).
    #[n(11)]
    pub remedy: Option<String>,
    /// The manifest declaration involved, `appipc.toml:LINE:COL (key)`.
    #[n(12)]
    pub manifest: Option<String>,
}
