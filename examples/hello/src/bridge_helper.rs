//! `bridge-helper`: Contoso.Bridge's full-trust process. `bridge-helper FILE` reads FILE
//! (it runs outside the app container) and delivers it to the app's in-process app service;
//! `bridge-helper --hello TEXT` just prints TEXT.

use appipc::{AppServiceConnection, AppServiceConnectionStatus, Session, ValueSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--linger") {
        std::thread::sleep(std::time::Duration::from_secs(60));
        return std::process::ExitCode::SUCCESS;
    }
    if args.first().map(String::as_str) == Some("--hello") {
        println!("bridge-helper: {}", args.get(1).cloned().unwrap_or_default());
        return std::process::ExitCode::SUCCESS;
    }
    match run(args.first().cloned().unwrap_or_default()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("bridge-helper: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(file: String) -> Result<(), String> {
    let content = std::fs::read_to_string(&file).map_err(|e| format!("reading {file}: {e}"))?;
    let session = Session::connect().await.map_err(|e| e.to_string())?;
    let me = appipc::Package::current(&session).await.map_err(|e| e.to_string())?;
    let mut conn = AppServiceConnection::new(&me.id().family_name, "com.contoso.bridge.inbox");
    let status = conn.open(&session).await;
    if status != AppServiceConnectionStatus::Success {
        return Err(format!("opening the app's inbox: {status}"));
    }
    let mut m = ValueSet::new();
    m.insert("content", content);
    let r = conn.send_message(m).await;
    conn.close();
    if r.message.get("thanks").is_none() {
        return Err(format!("the app did not take it: {}", r.status));
    }
    Ok(())
}
