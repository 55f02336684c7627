//! Contoso's device service, the example of issue 20: an RPC endpoint guarded by a custom
//! capability, serving a typed interface.
//!
//! `Contoso.Device`'s app (`device-service`) serves [`SensorService`] on the endpoint
//! [`ENDPOINT`], whose security descriptor ([`endpoint_security`]) admits the user's own
//! processes and, of the app containers, only those granted Contoso's custom capability
//! [`SENSOR_ACCESS`]. A package is granted it at install only by a descriptor Contoso signed
//! that names the package and the key that signed it (docs/rpc.md, "Custom capabilities"):
//! `Fabrikam.Sensors` (`sensor-client`) carries one. Every other package is refused at connect
//! with 5 (`ERROR_ACCESS_DENIED`), and `appipc why` says why the capability was not granted.
//!
//! A client reads a sensor, and subscribes: it passes a [`SensorListener`] of its own as an
//! [`ObjectRef`], and the service calls it back with each new reading.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use appipc::named_objects::{GENERIC_ALL, SecurityDescriptor};
use appipc::rpc::{CallContext, CallResult, Fault, ObjectRef, PORT_CONNECT};
use serde::{Deserialize, Serialize};

use crate::elog;

/// The endpoint `Contoso.Device` serves.
pub const ENDPOINT: &str = "contoso.device";

/// The package family of the device service (`Contoso.Device`, publisher Contoso).
pub const DEVICE_FAMILY: &str = "Contoso.Device_cvnpggrrsm18p";

/// Contoso's custom capability: its owner is Contoso's publisher id, the part after the `_`.
pub const SENSOR_ACCESS: &str = "Contoso.sensorAccess_cvnpggrrsm18p";

/// The sensors the device has.
pub const SENSORS: [&str; 2] = ["temperature", "humidity"];

/// The most readings one subscription sends.
pub const MAX_SUBSCRIPTION: u32 = 100;

/// How often a subscription sends a reading.
pub const SUBSCRIPTION_INTERVAL: Duration = Duration::from_millis(50);

/// `ERROR_NOT_FOUND`: no sensor of that name.
pub const ERROR_NOT_FOUND: u32 = 1168;

/// `ERROR_INVALID_PARAMETER`.
pub const ERROR_INVALID_PARAMETER: u32 = 87;

/// One reading of a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The sensor (one of [`SENSORS`]).
    pub sensor: String,
    /// Its value, in `unit`.
    pub value: f64,
    /// `°C` or `%`.
    pub unit: String,
    /// The device's reading number (every reading of every sensor counts).
    pub sequence: u64,
    /// The package the reading was served to, as the broker attested it to the service ("" for
    /// an unpackaged caller).
    pub for_package: String,
}

/// The device's interface.
#[appipc::interface(uuid = "5ade953b-589d-4988-8b8a-7e08987b8b2a", version = "1.0")]
pub trait SensorService {
    /// The names of the device's sensors.
    async fn sensors(&self, cx: &CallContext) -> CallResult<Vec<String>>;
    /// The current reading of `sensor`; [`ERROR_NOT_FOUND`] for a sensor the device lacks.
    async fn read(&self, cx: &CallContext, sensor: String) -> CallResult<Reading>;
    /// Calls `listener` back with the next `count` readings of `sensor` (1 to
    /// [`MAX_SUBSCRIPTION`], else [`ERROR_INVALID_PARAMETER`]), one each
    /// [`SUBSCRIPTION_INTERVAL`], and returns at once with how many it will send. It stops
    /// early when a callback fails (the listener is gone).
    async fn subscribe(
        &self,
        cx: &CallContext,
        sensor: String,
        count: u32,
        listener: ObjectRef<dyn SensorListener>,
    ) -> CallResult<u32>;
}

/// What a subscriber implements: the service calls it with each reading.
#[appipc::interface(uuid = "79aa0a5d-f1a3-49df-b931-32930d65daa6", version = "1.0")]
pub trait SensorListener {
    /// A new reading.
    async fn on_reading(&self, cx: &CallContext, reading: Reading) -> CallResult<()>;
}

/// The endpoint's security descriptor: the user's side for the owner (every process of the
/// user passes it, and it alone decides for unconfined ones); the app-container side for the
/// holders of [`SENSOR_ACCESS`] only.
pub fn endpoint_security() -> String {
    SecurityDescriptor::new()
        .allow_owner(GENERIC_ALL)
        .allow_capability(SENSOR_ACCESS, PORT_CONNECT)
        .to_sddl()
}

/// The package a call came from, as the broker attested it ("unpackaged" when none).
fn caller_of(cx: &CallContext) -> String {
    match cx.caller() {
        Some(c) if !c.package_family_name.is_empty() => c.package_family_name.clone(),
        _ => "unpackaged".to_owned(),
    }
}

fn no_sensor(name: &str) -> Fault {
    Fault::new(
        ERROR_NOT_FOUND,
        format!("the device has no sensor {name:?} (it has {})", SENSORS.join(", ")),
    )
}

/// The simulated device behind [`SensorService`]: readings that change with each one taken.
#[derive(Debug, Clone, Default)]
pub struct Device {
    taken: Arc<AtomicU64>,
}

impl Device {
    /// A device that has taken no reading yet.
    pub fn new() -> Device {
        Device::default()
    }

    fn reading(&self, sensor: &str, for_package: &str) -> CallResult<Reading> {
        let (base, step, unit) = match sensor {
            "temperature" => (21.0, 0.1, "°C"),
            "humidity" => (40.0, 0.5, "%"),
            other => return Err(no_sensor(other)),
        };
        let sequence = self.taken.fetch_add(1, Ordering::Relaxed) + 1;
        // Whole tenths, so that the value prints the same everywhere.
        let value = ((base + step * (sequence % 10) as f64) * 10.0).round() / 10.0;
        Ok(Reading {
            sensor: sensor.to_owned(),
            value,
            unit: unit.to_owned(),
            sequence,
            for_package: for_package.to_owned(),
        })
    }
}

#[appipc::async_trait]
impl SensorService for Device {
    async fn sensors(&self, _cx: &CallContext) -> CallResult<Vec<String>> {
        Ok(SENSORS.iter().map(|s| (*s).to_owned()).collect())
    }

    async fn read(&self, cx: &CallContext, sensor: String) -> CallResult<Reading> {
        let who = caller_of(cx);
        let r = self.reading(&sensor, &who);
        match &r {
            Ok(r) => elog!("device-service: {who} read {sensor}: {} {}", r.value, r.unit),
            Err(f) => elog!("device-service: {who} read {sensor}: {f}"),
        }
        r
    }

    async fn subscribe(
        &self,
        cx: &CallContext,
        sensor: String,
        count: u32,
        listener: ObjectRef<dyn SensorListener>,
    ) -> CallResult<u32> {
        let who = caller_of(cx);
        if !(1..=MAX_SUBSCRIPTION).contains(&count) {
            return Err(Fault::new(
                ERROR_INVALID_PARAMETER,
                format!("a subscription of {count} readings: 1 to {MAX_SUBSCRIPTION}"),
            ));
        }
        if !SENSORS.contains(&sensor.as_str()) {
            return Err(no_sensor(&sensor));
        }
        let listener = listener
            .client()
            .map_err(|e| Fault::new(ERROR_INVALID_PARAMETER, format!("the listener: {e}")))?;
        elog!("device-service: {who} subscribed to {count} readings of {sensor}");
        let device = self.clone();
        tokio::spawn(async move {
            for _ in 0..count {
                tokio::time::sleep(SUBSCRIPTION_INTERVAL).await;
                let Ok(r) = device.reading(&sensor, &who) else { return };
                if let Err(e) = listener.on_reading(r).await {
                    elog!("device-service: the listener of {who} is gone: {e}");
                    return;
                }
            }
            elog!("device-service: sent {who} its {count} readings of {sensor}");
        });
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_contosos() {
        use appipc_model::identity::PublisherId;
        let contoso = PublisherId::from_publisher("CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH");
        assert_eq!(SENSOR_ACCESS, format!("Contoso.sensorAccess_{contoso}"));
        assert_eq!(DEVICE_FAMILY, format!("Contoso.Device_{contoso}"));
        assert_eq!(
            endpoint_security(),
            format!("D:(A;;GA;;;OW)(A;;0x1;;;CAP:{SENSOR_ACCESS})"),
            "the SDDL docs/rpc.md shows"
        );
    }

    /// The interface in one process (no broker): reads, faults and the callbacks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_faults_and_callbacks() {
        let c = ObjectRef::<dyn SensorService>::new(Arc::new(Device::new())).client().unwrap();
        assert_eq!(c.sensors().await.unwrap(), SENSORS);
        let r = c.read("temperature".into()).await.unwrap();
        assert_eq!((r.sequence, r.value, r.unit.as_str()), (1, 21.1, "°C"));
        let e = c.read("pressure".into()).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(ERROR_NOT_FOUND), "{e}");

        struct Collect(tokio::sync::mpsc::UnboundedSender<Reading>);
        #[appipc::async_trait]
        impl SensorListener for Collect {
            async fn on_reading(&self, _cx: &CallContext, reading: Reading) -> CallResult<()> {
                let _ = self.0.send(reading);
                Ok(())
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let listener = || ObjectRef::new(Arc::new(Collect(tx.clone())) as Arc<dyn SensorListener>);
        let e = c.subscribe("humidity".into(), 0, listener()).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(ERROR_INVALID_PARAMETER), "{e}");
        let e = c.subscribe("pressure".into(), 1, listener()).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(ERROR_NOT_FOUND), "{e}");
        assert_eq!(c.subscribe("humidity".into(), 3, listener()).await.unwrap(), 3);
        let mut got = Vec::new();
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
            got.push(r.expect("a callback within 30 s").expect("the listener is alive"));
        }
        assert!(got.iter().all(|r| r.sensor == "humidity" && r.unit == "%"), "{got:?}");
        assert!(got.windows(2).all(|w| w[0].sequence < w[1].sequence), "{got:?}");

        // Once the service has sent its readings it drops its reference: the listener, whose
        // only other holder was the call, is released here (its sender goes: `recv` ends).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let only = ObjectRef::new(Arc::new(Collect(tx)) as Arc<dyn SensorListener>);
        assert_eq!(c.subscribe("temperature".into(), 2, only).await.unwrap(), 2);
        let mut n = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(_) => panic!("the listener was not released after {n} readings"),
            }
        }
        assert_eq!(n, 2);
    }

    /// The blocking client, on a thread without a runtime: its listener is served in the
    /// background and called back while the thread waits.
    #[test]
    fn the_blocking_client_is_called_back_too() {
        struct Forward(std::sync::mpsc::Sender<Reading>);
        #[appipc::async_trait]
        impl SensorListener for Forward {
            async fn on_reading(&self, _cx: &CallContext, reading: Reading) -> CallResult<()> {
                let _ = self.0.send(reading);
                Ok(())
            }
        }
        let c =
            ObjectRef::<dyn SensorService>::new(Arc::new(Device::new())).blocking_client().unwrap();
        assert_eq!(c.read("humidity".into()).unwrap().unit, "%");
        let (tx, rx) = std::sync::mpsc::channel();
        let listener = ObjectRef::new(Arc::new(Forward(tx)) as Arc<dyn SensorListener>);
        assert_eq!(c.subscribe("temperature".into(), 2, listener).unwrap(), 2);
        for _ in 0..2 {
            let r = rx.recv_timeout(Duration::from_secs(30)).expect("a callback within 30 s");
            assert_eq!(r.sensor, "temperature");
        }
        // Released once the service is done.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(30)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
