//! `sensor-client [DEVICE_PFN]`: `Fabrikam.Sensors`' app. Connects to Contoso's device service
//! (endpoint `contoso.device`, served by DEVICE_PFN, `Contoso.Device_cvnpggrrsm18p` by
//! default: the client names the server's package SID, so no other process that took the name
//! can answer), reads a sensor through the typed interface `SensorService`, subscribes with a
//! callback of its own, prints the readings it is called back with, and sees the service
//! release the callback when done. The endpoint admits only packages granted Contoso's custom
//! capability: any other is refused with 5, which this prints with its code (exit status 1),
//! the broker's reason in its log.

use std::sync::Arc;
use std::time::Duration;

use appipc::Session;
use appipc::rpc::{CallContext, CallResult, ObjectRef};
use appipc_examples::device::{self, Reading, SensorListener, SensorServiceClient};
use appipc_examples::elog;

/// The readings the subscription asks for.
const CALLBACKS: u32 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            elog!("sensor-client: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Called back by the service: hands each reading, and who sent it, to `main`.
struct Listener(tokio::sync::mpsc::UnboundedSender<(String, Reading)>);

#[appipc::async_trait]
impl SensorListener for Listener {
    async fn on_reading(&self, cx: &CallContext, reading: Reading) -> CallResult<()> {
        // The caller of a callback is the server this client connected to, as attested.
        let from = cx.server().map(|s| s.server_package_family_name.clone()).unwrap_or_default();
        let _ = self.0.send((from, reading));
        Ok(())
    }
}

async fn run() -> appipc::Result<std::process::ExitCode> {
    let server = std::env::args().nth(1).unwrap_or_else(|| device::DEVICE_FAMILY.to_owned());
    let server_sid = appipc_model::sid::appcontainer_sid(&server).to_string();
    let session = Session::connect().await?;
    let client =
        match SensorServiceClient::connect(&session, device::ENDPOINT, Some(&server_sid)).await {
            Ok(c) => c,
            Err(e) => {
                // The code here, the broker's reason in the log (and in `appipc why`).
                let code = e.win32_code().map_or_else(|| "?".to_owned(), |c| c.to_string());
                println!("sensor-client: connect to {} refused: error {code}", device::ENDPOINT);
                elog!("sensor-client: connect to {}: {e}", device::ENDPOINT);
                return Ok(std::process::ExitCode::FAILURE);
            }
        };
    // The server as the broker attested it.
    let by = client.proxy().server().map(|s| s.server_package_family_name.clone());
    println!(
        "sensor-client: connected to {} served by {}",
        device::ENDPOINT,
        by.unwrap_or_default()
    );
    println!("sensor-client: sensors: {}", client.sensors().await?.join(", "));
    let r = client.read("temperature".into()).await?;
    println!(
        "sensor-client: read temperature: {} {} (reading {}, served to {})",
        r.value, r.unit, r.sequence, r.for_package
    );
    match client.read("pressure".into()).await {
        Ok(r) => println!("sensor-client: read pressure: {} {}", r.value, r.unit),
        Err(e) => println!("sensor-client: read pressure: {e}"),
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = ObjectRef::<dyn SensorListener>::new(Arc::new(Listener(tx)));
    let n = client.subscribe("temperature".into(), CALLBACKS, listener).await?;
    println!("sensor-client: subscribed to {n} readings of temperature");
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some((from, r))) => println!(
                "sensor-client: callback from {from}: temperature {} {} (reading {})",
                r.value, r.unit, r.sequence
            ),
            Ok(None) | Err(_) => {
                println!("sensor-client: no callback within 30 s");
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
    }
    // Done, the service drops its reference: the listener's channel closes and this process
    // releases the listener (and with it the only sender: `recv` ends).
    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        Ok(None) => println!("sensor-client: the service released the listener"),
        Ok(Some(_)) => println!("sensor-client: a callback past the {n} subscribed"),
        Err(_) => {
            println!("sensor-client: the service kept the listener past 30 s");
            return Ok(std::process::ExitCode::FAILURE);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
