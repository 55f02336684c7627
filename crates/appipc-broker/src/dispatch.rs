//! From a decoded request to its mechanism's handler: the request's declared fds are checked
//! here, once, before any handler runs.

use appipc_wire::protocol::Request;

use crate::cx::{Cx, Replied};
use crate::error::BrokerError;
use crate::mech;

/// Runs one request.
pub(crate) async fn dispatch(cx: Cx<'_>, request: Request) -> Result<Replied, BrokerError> {
    let expected = request.fds();
    if cx.fds.len() != expected {
        return Err(BrokerError::BadRequest(format!(
            "{} takes {expected} fd(s), {} attached",
            request.name(),
            cx.fds.len()
        )));
    }
    Ok(match request {
        Request::Broker(r) => mech::broker::handle(cx, r).await?,
        Request::Packages(r) => mech::packages::handle(cx, r).await?,
        Request::Launch(r) => mech::launch::handle(cx, r).await?,
        Request::AppService(r) => mech::app_service::handle(cx, r).await?,
        Request::FullTrust(r) => mech::full_trust::handle(cx, r).await?,
        Request::Storage(r) => mech::storage::handle(cx, r).await?,
        Request::NamedObjects(r) => mech::named_objects::handle(cx, r).await?,
        Request::Pipes(r) => mech::pipes::handle(cx, r).await?,
        Request::Diagnostics(r) => mech::diagnostics::handle(cx, r).await?,
        Request::Launcher(r) => mech::launcher::handle(cx, r).await?,
        Request::Loopback(r) => mech::loopback::handle(cx, r).await?,
        Request::Registry(r) => mech::registry::handle(cx, r).await?,
        Request::Rpc(r) => mech::rpc::handle(cx, r).await?,
        Request::Com(r) => mech::com::handle(cx, r).await?,
        Request::Unknown { mechanism, call } => {
            return Err(BrokerError::Unsupported(format!(
                "this broker does not know request {call} of mechanism {mechanism} (a newer \
                 client?)"
            )));
        }
    })
}
