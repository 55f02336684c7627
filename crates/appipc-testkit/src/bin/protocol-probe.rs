//! `protocol-probe`: both sides of protocol activation through the SDK, run as packaged apps
//! (confined) for `crates/appipc-cli/tests/protocol.rs`.
//!
//! As a target (started by the broker for a URI), what it does is the URI's text after the
//! scheme, up to `?` (everything it says goes to stderr, the package's log, as `probe: …`):
//!
//! ```text
//! echo      report {uri, kind, caller, data (the input), instance}
//! twice     report, then report again raw at the broker; log `second report: ERROR`
//! exit      exit without reporting
//! hang      never report (sleep until killed)
//! big       report 200 KiB (logs the refusal), then report {big_refused: MESSAGE}
//! redeem    redeem the token in data["token"], report {content: the file's text}
//! cancel    wait until the caller goes away; log `canceled`, then try to report and log
//!           `report after cancel: ERROR`
//! register  register for activations, report {instance}, then report every later activation
//!           with {instance, uri} (a plain one is logged `plain activation URI`)
//! plain     (a plain launch) log `plain URI caller=PFN data=KEYS`
//! ```
//!
//! `protocol-probe open URI` launches the URI plainly with no target and prints
//! `open URI -> STATUS`.
//!
//! As a caller (launched with arguments): `protocol-probe call URI TARGET_PFN [KEY=VALUE…]`
//! launches the URI for results with those string values and prints one line
//! `result STATUS reported=BOOL caller=… content=…` (the result's `caller` and `content`
//! values).
#![forbid(unsafe_code)]

use appipc::launcher::{Launcher, LauncherOptions};
use appipc::wire::protocol::launcher::ReportCompleted;
use appipc::{ActivatedEventArgs, AppInstance, PropertyValue, Session, ValueSet};

fn s(v: &ValueSet, k: &str) -> String {
    v.get(k).and_then(PropertyValue::as_string).unwrap_or_default().to_owned()
}

fn action(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or("", |(_, r)| r);
    rest.split('?').next().unwrap_or_default()
}

fn instance() -> String {
    format!("{}-{}", std::process::id(), std::env::var("APPIPC_ACTIVATION_ID").unwrap_or_default())
}

async fn call(session: &Session, args: &[String]) {
    let (Some(uri), Some(target)) = (args.get(2), args.get(3)) else {
        eprintln!("probe: usage: protocol-probe call URI TARGET_PFN [KEY=VALUE...]");
        std::process::exit(2);
    };
    let mut data = ValueSet::new();
    for kv in &args[4..] {
        if let Some((k, v)) = kv.split_once('=') {
            data.insert(k, v);
        }
    }
    let options = LauncherOptions::for_package(target.clone());
    match Launcher::launch_uri_for_results(session, uri, &options, Some(data)).await {
        Ok(r) => {
            let v = r.result.clone().unwrap_or_default();
            println!(
                "result {} reported={} caller={} content={}",
                r.status.name(),
                r.result.is_some(),
                s(&v, "caller"),
                s(&v, "content")
            );
        }
        Err(e) => println!("error {}: {e}", e.windows_code()),
    }
}

async fn target(session: &Session, args: ActivatedEventArgs) {
    let (uri, data, caller, op) = match args {
        ActivatedEventArgs::ProtocolForResults(a) => {
            (a.uri, a.data, a.caller_package_family_name, a.operation)
        }
        ActivatedEventArgs::Protocol(a) => {
            let keys: Vec<String> =
                a.data.iter().flat_map(|d| d.keys().map(str::to_owned)).collect();
            eprintln!(
                "probe: plain {} caller={} data={}",
                a.uri,
                a.caller_package_family_name,
                keys.join(",")
            );
            return;
        }
        other => {
            eprintln!("probe: not a protocol activation: {other:?}");
            return;
        }
    };
    let data = data.unwrap_or_default();
    let mut answer = ValueSet::new();
    answer.insert("uri", uri.as_str());
    answer.insert("caller", caller.as_str());
    answer.insert("instance", instance());
    answer.insert("data", PropertyValue::ValueSet(data.clone()));
    match action(&uri) {
        "echo" => report(&op, answer).await,
        "twice" => {
            report(&op, answer).await;
            let again = session
                .call(ReportCompleted { operation_id: op.id(), data: Some(ValueSet::new()) })
                .await;
            eprintln!(
                "probe: second report: {}",
                again.map_or_else(|e| format!("{}: {e}", e.windows_code()), |()| "accepted".into())
            );
        }
        "exit" => std::process::exit(0),
        "hang" => std::future::pending::<()>().await,
        "big" => {
            // Just over the limit, sent raw: the broker refuses it.
            let mut big = ValueSet::new();
            big.insert("blob", PropertyValue::UInt8Array(vec![7; 101 * 1024]));
            let raw =
                session.call(ReportCompleted { operation_id: op.id(), data: Some(big) }).await;
            let refused = match raw {
                Ok(()) => "accepted".to_owned(),
                Err(e) => format!("{}: {e}", e.windows_code()),
            };
            eprintln!("probe: big report: {refused}");
            // Far over (larger than a broker message): the SDK refuses it without sending.
            let mut huge = ValueSet::new();
            huge.insert("blob", PropertyValue::UInt8Array(vec![7; 200 * 1024]));
            let r = op.report_completed(huge).await;
            eprintln!(
                "probe: huge report: {}",
                r.map_or_else(|e| format!("{}: {e}", e.windows_code()), |()| "accepted".into())
            );
            // The guard in the SDK is spent; the broker still waits: report raw.
            let mut small = ValueSet::new();
            small.insert("big_refused", refused);
            let r =
                session.call(ReportCompleted { operation_id: op.id(), data: Some(small) }).await;
            eprintln!("probe: small report: {r:?}");
        }
        "redeem" => {
            let token = s(&data, "token");
            let content =
                match appipc::SharedStorageAccessManager::redeem_token_for_file(session, &token)
                    .await
                {
                    Ok(f) => {
                        use std::io::Read;
                        let mut text = String::new();
                        let _ = f.into_file().read_to_string(&mut text);
                        text
                    }
                    Err(e) => format!("redeem failed: {e}"),
                };
            answer.insert("content", content);
            report(&op, answer).await;
        }
        "cancel" => {
            op.canceled().await;
            eprintln!("probe: canceled");
            let r = op.report_completed(answer).await;
            eprintln!(
                "probe: report after cancel: {}",
                r.map_or_else(|e| format!("{}: {e}", e.windows_code()), |()| "accepted".into())
            );
        }
        "register" => {
            let mut rx = match AppInstance::register_for_activation(session).await {
                Ok(rx) => rx,
                Err(e) => {
                    eprintln!("probe: register failed: {e}");
                    return;
                }
            };
            report(&op, answer).await;
            while let Some(next) = rx.next().await {
                match next {
                    ActivatedEventArgs::ProtocolForResults(a) => {
                        let mut v = ValueSet::new();
                        v.insert("instance", instance());
                        v.insert("uri", a.uri.as_str());
                        v.insert("caller", a.caller_package_family_name.as_str());
                        if action(&a.uri) == "register-hold" {
                            eprintln!("probe: holding {}", a.operation.id());
                        } else {
                            report(&a.operation, v).await;
                        }
                    }
                    ActivatedEventArgs::Protocol(a) => {
                        eprintln!("probe: plain activation {}", a.uri)
                    }
                    _ => {}
                }
            }
        }
        other => eprintln!("probe: unknown action {other:?}"),
    }
}

async fn report(op: &appipc::ProtocolForResultsOperation, v: ValueSet) {
    match op.report_completed(v).await {
        Ok(()) => eprintln!("probe: reported"),
        Err(e) => eprintln!("probe: report failed: {e}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let session = match Session::connect().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("probe: no session: {e}");
            std::process::exit(1);
        }
    };
    if args.get(1).map(String::as_str) == Some("call") {
        call(&session, &args).await;
        return;
    }
    if args.get(1).map(String::as_str) == Some("open") {
        // `protocol-probe open URI`: a plain launch with no target (`launch_uri`).
        let uri = args.get(2).cloned().unwrap_or_default();
        let r =
            Launcher::launch_uri_detailed(&session, &uri, &LauncherOptions::default(), None).await;
        match r {
            Ok(r) => println!("open {uri} -> {}", r.status.name()),
            Err(e) => println!("open {uri} -> error {}", e.windows_code()),
        }
        return;
    }
    match AppInstance::activated(&session).await {
        Ok(Some(a)) => target(&session, a).await,
        Ok(None) => eprintln!("probe: not activated for a URI"),
        Err(e) => eprintln!("probe: activation: {e}"),
    }
}
