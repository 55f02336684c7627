//! `broker`: liveness, identity, more sessions, stopping.

use appipc_model::policy::Operation;
use appipc_wire::frame::PROTOCOL_VERSION;
use appipc_wire::protocol::broker::{self as wire, Pong};

use crate::cx::{Cx, Replied};
use crate::error::BrokerError;

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied, BrokerError> {
    use wire::Request as R;
    Ok(match r {
        R::Ping(_) => Replied::of::<wire::Ping>(Pong {
            protocol: PROTOCOL_VERSION,
            broker_pid: appipc_sys::cred::current_pid(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }),
        R::WhoAmI(_) => Replied::of::<wire::WhoAmI>(cx.caller.attest()),
        R::OpenSession(_) => {
            let (mine, theirs) = appipc_sys::socket::seqpacket_pair()
                .map_err(|e| BrokerError::io("creating a session socket pair", e))?;
            let child = cx.caller.with_session(cx.shared.next_key());
            cx.shared
                .sessions
                .reserve(cx.shared, &child)
                .map_err(|e| BrokerError::Quota(e.to_string()))?;
            cx.shared.keep_and_adopt_session(mine, child, false).await;
            Replied::with_fds::<wire::OpenSession>((), vec![theirs])
        }
        R::Shutdown(wire::Shutdown { stop_apps }) => {
            cx.enforce(Operation::Shutdown)?;
            let stop_apps = stop_apps.unwrap_or(false);
            tracing::info!(caller = %cx.caller.describe(), stop_apps, "shutdown requested");
            if stop_apps {
                crate::hooks::stopping_everything(cx.shared).await;
            }
            cx.shared.stopping.cancel();
            Replied::of::<wire::Shutdown>(())
        }
        R::Resync(wire::Resync { sent }) => {
            let lost = cx.session.resync(&sent);
            if !lost.is_empty() {
                tracing::info!(caller = %cx.caller.describe(), ?lost, "requests lost with the previous broker");
            }
            Replied::of::<wire::Resync>(lost)
        }
    })
}
