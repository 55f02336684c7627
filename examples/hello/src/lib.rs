//! Shared code of the example apps: the echo service every Contoso provider serves, and
//! Contoso's device service ([`device`]: a typed RPC interface behind a custom capability).
#![forbid(unsafe_code)]

pub mod device;
pub mod spellcheck;

use std::sync::{Arc, Weak};

use appipc::app_service::{
    AppServiceProvider, AppServiceRequestReceivedEventArgs, AppServiceTriggerDetails,
};
use appipc::{ActivatedEventArgs, AppInstance, AppServiceConnection, Session, User, ValueSet};
use tokio::sync::Notify;

/// `eprintln!` in one `write(2)`. The processes of a package launched without a terminal share
/// one log file (each appends to it), and the standard `eprintln!` writes a line in several
/// pieces, between which another process's line can land.
#[macro_export]
macro_rules! elog {
    ($($arg:tt)*) => { $crate::write_line(format_args!($($arg)*)) };
}

/// Writes `args` and a newline to stderr in one call (see [`elog!`]).
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut line = args.to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Serves `name` until the broker cancels this host or the session ends; each connection is a
/// background task of its own. Prints the cancellation reason.
pub async fn serve(session: &Session, name: &str) -> appipc::Result<()> {
    let mut provider = AppServiceProvider::register(session, name).await?;
    loop {
        tokio::select! {
            details = provider.accept() => {
                let Some(details) = details else { break };
                tokio::spawn(run_task(details));
            }
            reason = session.canceled() => {
                elog!("echo-service: canceled: {reason}");
                break;
            }
        }
    }
    Ok(())
}

/// One connection's background task, in the shape of Windows' app service sample: take a
/// deferral so that the task stays, complete it when the task is canceled, when the connection
/// closes, or when a request says `$complete` (then the client sees `ServiceClosed(Completed)`).
async fn run_task(details: AppServiceTriggerDetails) {
    let task = details.task_instance();
    let deferral = task.get_deferral();
    let watcher = task.clone();
    tokio::spawn(async move {
        let reason = watcher.canceled().await;
        elog!("echo-service: task canceled: {reason}");
    });
    let caller = details.caller_package_family_name.clone();
    let has_internet = details.check_caller_for_capability("internetClient");
    let user = task.user().cloned();
    let conn = Arc::new(details.into_connection());
    let weak = Arc::downgrade(&conn);
    let done = Arc::new(Notify::new());
    let complete = done.clone();
    conn.on_request_received(move |args| {
        echo(args, &caller, has_internet, user.as_ref(), &weak, &complete);
    });
    tokio::select! {
        _ = conn.service_closed() => {}
        _ = task.canceled() => {}
        () = done.notified() => {}
    }
    // The last deferral: the task ends and its connection closes.
    deferral.complete();
    elog!("echo-service: connection closed ({})", conn.service_closed().await);
}

/// How this process was activated, as the broker says (`AppInstance`).
fn activation() -> &'static str {
    match AppInstance::get_activated_event_args() {
        Some(ActivatedEventArgs::Launch(l)) if l.full_trust_process => "fulltrust",
        Some(ActivatedEventArgs::Launch(_)) => "launch",
        Some(ActivatedEventArgs::Background(_)) => "background",
        Some(ActivatedEventArgs::BackgroundTask(_)) => "appservice",
        _ => "",
    }
}

/// A number unique to this process (in an app container every process is pid 1 of its own
/// pid namespace, so the pid does not tell instances apart).
pub fn instance() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish() >> 1)
}

/// The echo handler. Requests may carry control keys:
/// `$plain` (the message back unchanged, nothing added), `$crash` (exit at once), `$delay_ms` (answer later, through a deferral), `$no_response`
/// (complete without a reply), `$call_back` (send a request to the client first and include
/// its reply), `$complete` (answer, then complete the task: the connection ends `Completed`).
/// Every reply names the caller's user as the broker attests it (`callerUid`,
/// `callerUserName`).
fn echo(
    args: AppServiceRequestReceivedEventArgs,
    caller: &str,
    has_internet: bool,
    user: Option<&User>,
    conn: &Weak<AppServiceConnection>,
    complete: &Arc<Notify>,
) {
    if args.request.message().has_key("$plain") {
        // The message back as it came, nothing added (what a raw echo does: the benchmark).
        let mut request = args.request;
        let message = request.take_message();
        request.send_response(message);
        return;
    }
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
    reply.insert("activation", activation());
    if let Some(u) = user {
        reply.insert("callerUid", u.uid);
        reply.insert("callerUserName", u.name.clone().unwrap_or_default());
    }
    if message.has_key("$complete") {
        args.request.send_response(reply);
        // The response goes out as the request completes, before the task ends.
        drop(args);
        complete.notify_one();
        return;
    }
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
