//! `echo-client`: Fabrikam's app that finds Contoso's echo service through the catalog and
//! calls it, out of process and in process, and shows a refused open.
//!
//! `echo-client [SERVICE…]` calls the given services (default: echo and inproc).

use appipc::app_service::{AppServiceCatalog, AppServiceConnection, AppServiceConnectionStatus};
use appipc::{Session, ValueSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("echo-client: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Started in the background for `com.fabrikam.viewer`: redeems the token each request
/// carries and answers with the file's first line.
async fn view(session: &Session) -> appipc::Result<()> {
    let mut provider = appipc::AppServiceProvider::register(session, "com.fabrikam.viewer").await?;
    loop {
        tokio::select! {
            details = provider.accept() => {
                let Some(details) = details else { break };
                let from = details.caller_package_family_name.clone();
                let session = session.clone();
                tokio::spawn(async move {
                    let conn = details.into_connection();
                    let mut requests = conn.requests();
                    while let Some(args) = requests.recv().await {
                        let token = args.request.message().get("token").and_then(|v| v.as_string()).unwrap_or("").to_owned();
                        let mut reply = ValueSet::new();
                        match appipc::SharedStorageAccessManager::redeem_token_for_file(&session, &token).await {
                            Ok(f) => {
                                use std::io::BufRead;
                                let mut line = String::new();
                                let _ = std::io::BufReader::new(f.into_file()).read_line(&mut line);
                                let line = line.trim_end().to_owned();
                                println!("viewer: {from} shared a file; first line: {line:?}");
                                reply.insert("firstLine", line);
                            }
                            Err(e) => {
                                reply.insert("error", e.to_string());
                            }
                        }
                        args.request.send_response(reply);
                    }
                });
            }
            _ = session.canceled() => break,
        }
    }
    Ok(())
}

async fn run() -> appipc::Result<()> {
    let session = Session::connect().await?;
    if matches!(
        appipc::AppInstance::get_activated_event_args(),
        Some(appipc::ActivatedEventArgs::Background(_))
    ) {
        return view(&session).await;
    }
    let mut services: Vec<String> = std::env::args().skip(1).collect();
    services.retain(|s| s != "com.fabrikam.viewer");
    if services.is_empty() {
        services = vec!["com.contoso.echo".into(), "com.contoso.inproc".into()];
    }
    for name in services {
        let providers = AppServiceCatalog::find_app_service_providers(&session, &name).await?;
        let Some(provider) = providers.first() else {
            println!("  {name}: no installed package provides it");
            continue;
        };
        let mut conn = AppServiceConnection::new(&provider.package_family_name, &name);
        // The provider may call us back on the same connection.
        let status = conn.open(&session).await;
        if status != AppServiceConnectionStatus::Success {
            println!("  {name} in {}: open refused: {status}", provider.package_family_name);
            continue;
        }
        conn.on_request_received(|args| {
            let mut reply = ValueSet::new();
            reply.insert("answer", "Fabrikam's echo client");
            args.request.send_response(reply);
        });
        let mut message = ValueSet::new();
        message.insert("greeting", "hello from Fabrikam");
        message.insert("count", 3i16);
        message.insert("$call_back", true);
        let r = conn.send_message(message).await;
        let get = |k: &str| r.message.get(k).map(|v| format!("{v:?}")).unwrap_or_default();
        println!(
            "  {name} in {}: {} caller={} activation={} greeting={} count={} callBack={}",
            provider.package_family_name,
            r.status,
            get("caller"),
            get("activation"),
            get("greeting"),
            get("count"),
            get("callBackReply"),
        );
        conn.close();
    }
    // A service nobody declares, in a package that exists.
    let mut conn = AppServiceConnection::new("Contoso.Services_cvnpggrrsm18p", "com.contoso.nope");
    println!("  com.contoso.nope: open refused: {}", conn.open(&session).await);
    Ok(())
}
