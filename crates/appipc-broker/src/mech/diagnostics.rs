//! `diagnostics`: the decision log, for `appipc why`.

use appipc_model::policy::Operation;
use appipc_wire::protocol::diagnostics::{self as wire, Decision, DecisionRecord};

use crate::cx::{Cx, Replied};
use crate::error::BrokerError;
use crate::outbox::Undeliverable;

/// Whether the caller may see this decision: both its caller's package and its object's
/// package must be visible to it.
fn visible(cx: &Cx<'_>, r: &DecisionRecord, only: Option<&str>) -> bool {
    let see = |f: &str| f.is_empty() || cx.permits(Operation::QueryPackage { family_name: f });
    let about = |f: &str| {
        r.caller.package_family_name.eq_ignore_ascii_case(f)
            || r.object_package_family_name.eq_ignore_ascii_case(f)
    };
    see(&r.caller.package_family_name)
        && see(&r.object_package_family_name)
        && only.is_none_or(about)
}

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied, BrokerError> {
    use wire::Request as R;
    match r {
        R::ListDecisions(l) => {
            let last = usize::try_from(l.last).unwrap_or(usize::MAX);
            let only = l.package_family_name.as_deref();
            let list = cx
                .shared
                .decisions
                .recent(last, |d| (!l.denials_only || !d.allowed) && visible(&cx, d, only));
            Ok(Replied::of::<wire::ListDecisions>(list))
        }
        R::FollowDecisions(f) => {
            let mut rx = cx.shared.decisions.subscribe();
            let entry = cx.session.clone();
            let caller = cx.caller.clone();
            let shared = cx.shared.clone();
            tokio::spawn(async move {
                let _interest = entry.interest();
                let session = cx_for_filter(&shared, &caller, &entry);
                loop {
                    let record = tokio::select! {
                        r = rx.recv() => r,
                        _ = entry.outbox.closed() => break,
                        () = shared.stopping.cancelled() => break,
                    };
                    let record = match record {
                        Ok(r) => r,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(skipped = n, "decision follower lagged");
                            continue;
                        }
                        Err(_) => break,
                    };
                    if (f.denials_only && record.allowed)
                        || !visible(&session, &record, f.package_family_name.as_deref())
                    {
                        continue;
                    }
                    // A follower that does not read loses decisions, not the broker's memory.
                    if entry.outbox.event(Decision { record: (*record).clone() }, Vec::new())
                        == Err(Undeliverable::Gone)
                    {
                        break;
                    }
                }
            });
            Ok(Replied::of::<wire::FollowDecisions>(()))
        }
    }
}

/// A context for the follower task's visibility filter (it outlives the request).
fn cx_for_filter<'a>(
    shared: &'a std::sync::Arc<crate::Shared>,
    caller: &'a std::sync::Arc<crate::caller::Caller>,
    entry: &'a std::sync::Arc<crate::sessions::SessionEntry>,
) -> Cx<'a> {
    Cx { shared, caller, session: entry, fds: Vec::new() }
}
