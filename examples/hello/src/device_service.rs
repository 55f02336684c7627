//! `device-service [SECONDS]`: `Contoso.Device`'s app. Registers the RPC endpoint
//! `contoso.device`, ACL'd to Contoso's custom capability `Contoso.sensorAccess_…` (and the
//! user's own processes), and serves the typed interface `SensorService` on it for SECONDS
//! (600), or until its session with the broker ends. See `appipc_examples::device`.

use std::sync::Arc;
use std::time::Duration;

use appipc::Session;
use appipc::rpc::{Interfaces, RpcServer};
use appipc_examples::device::{self, Device, SensorService};
use appipc_examples::elog;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let seconds = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(600);
    match run(Duration::from_secs(seconds)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            elog!("device-service: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(serve_for: Duration) -> appipc::Result<()> {
    let session = Session::connect().await?;
    let sddl = device::endpoint_security();
    let server = RpcServer::register(&session, device::ENDPOINT, Some(&sddl)).await?;
    elog!("device-service: serving {} ({sddl})", device::ENDPOINT);
    let interfaces = Interfaces::new().with::<dyn SensorService>(Arc::new(Device::new()));
    tokio::select! {
        () = server.serve(interfaces) => elog!("device-service: the session ended"),
        () = tokio::time::sleep(serve_for) => elog!("device-service: done"),
    }
    Ok(())
}
