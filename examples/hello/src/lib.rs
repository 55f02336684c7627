//! Shared code of the example apps: the echo service every Contoso provider serves.
#![forbid(unsafe_code)]

use std::sync::{Arc, Weak};

use appipc::app_service::{AppServiceProvider, AppServiceRequestReceivedEventArgs};
use appipc::{AppServiceConnection, Session, ValueSet};

/// Serves `name` until the broker cancels this host or the session ends; each connection on
/// its own task. Prints the cancellation reason.
pub async fn serve(session: &Session, name: &str) -> appipc::Result<()> {
    let mut provider = AppServiceProvider::register(session, name).await?;
    loop {
        tokio::select! {
            details = provider.accept() => {
                let Some(details) = details else { break };
                tokio::spawn(async move {
                    let caller = details.caller_package_family_name.clone();
                    let has_internet = details.check_caller_for_capability("internetClient");
                    let conn = Arc::new(details.into_connection());
                    let weak = Arc::downgrade(&conn);
                    conn.on_request_received(move |args| echo(args, &caller, has_internet, &weak));
                    let status = conn.service_closed().await;
                    eprintln!("echo-service: connection closed ({status})");
                });
            }
            reason = session.canceled() => {
                eprintln!("echo-service: canceled: {reason}");
                break;
            }
        }
    }
    Ok(())
}

/// A number unique to this process (in an app container every process is pid 1 of its own
/// pid namespace, so the pid does not tell instances apart).
pub fn instance() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish() >> 1)
}

/// The echo handler. Requests may carry control keys:
/// `$crash` (exit at once), `$delay_ms` (answer later, through a deferral), `$no_response`
/// (complete without a reply), `$call_back` (send a request to the client first and include
/// its reply), `$pid` (add this process's pid).
fn echo(
    args: AppServiceRequestReceivedEventArgs,
    caller: &str,
    has_internet: bool,
    conn: &Weak<AppServiceConnection>,
) {
    let message = args.request.message();
    if message.has_key("$crash") {
        std::process::exit(101);
    }
    if message.has_key("$no_response") {
        return;
    }
    let mut reply = message.clone();
    reply.insert("caller", caller.to_owned());
    reply.insert("callerHasInternetClient", has_internet);
    reply.insert("pid", std::process::id());
    reply.insert("instance", instance());
    reply.insert("activation", std::env::var("APPIPC_ACTIVATION").unwrap_or_default());
    let delay = message.get("$delay_ms").and_then(|v| v.as_uint32());
    let call_back = message.has_key("$call_back");
    if delay.is_none() && !call_back {
        args.request.send_response(reply);
        return;
    }
    let deferral = args.get_deferral();
    let conn = conn.clone();
    tokio::spawn(async move {
        if let Some(ms) = delay {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(ms))).await;
        }
        if call_back && let Some(conn) = conn.upgrade() {
            let mut question = ValueSet::new();
            question.insert("question", "who are you?");
            let r = conn.send_message(question).await;
            reply.insert("callBackStatus", r.status.value());
            reply.insert("callBackReply", r.message);
        }
        args.request.send_response(reply);
        deferral.complete();
    });
}
