//! The broker's decisions: why something was allowed or refused (`appipc why`).
//!
//! The broker keeps its recent decisions with the rule that made each and, for refusals,
//! what would have allowed it; a caller sees those about the packages it may see.

pub use appipc_wire::protocol::diagnostics::{DecisionCaller, DecisionRecord};
use appipc_wire::protocol::diagnostics::{FollowDecisions, ListDecisions};
use tokio::sync::mpsc;

use crate::error::Result;
use crate::session::Session;

/// Which decisions to ask for.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    /// Only those whose caller or object is this package.
    pub package_family_name: Option<String>,
    /// Refusals only.
    pub denials_only: bool,
}

/// The latest `last` decisions that pass `filter`, oldest first.
pub async fn recent(
    session: &Session,
    filter: &DecisionFilter,
    last: u32,
) -> Result<Vec<DecisionRecord>> {
    session
        .call(ListDecisions {
            package_family_name: filter.package_family_name.clone(),
            last,
            denials_only: filter.denials_only,
        })
        .await
}

/// Decisions that pass `filter` from now on, as they are made. The stream ends when the
/// session does.
pub async fn follow(
    session: &Session,
    filter: &DecisionFilter,
) -> Result<mpsc::UnboundedReceiver<DecisionRecord>> {
    let (tx, rx) = mpsc::unbounded_channel();
    session.route_decisions(tx);
    session
        .call(FollowDecisions {
            package_family_name: filter.package_family_name.clone(),
            denials_only: filter.denials_only,
        })
        .await?;
    Ok(rx)
}
