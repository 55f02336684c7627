//! `bridge-app`: Contoso.Bridge's app. `bridge-app FILE` tries to read FILE itself (the app
//! container does not let it), then launches its full-trust helper, which reads FILE and
//! delivers the content through this app's in-process app service.

use appipc::app_service::AppServiceProvider;
use appipc::{FullTrustLaunchResult, FullTrustProcessLauncher, Session, ValueSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            appipc_examples::elog!("bridge-app: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> appipc::Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--group") {
        // Launch the helper with a declared parameter group and report the result.
        let session = Session::connect().await?;
        let group = args.get(1).cloned().unwrap_or_default();
        let r =
            FullTrustProcessLauncher::launch_for_current_app_with_parameter_group(&session, &group)
                .await?;
        println!("  app: parameter group {group:?}: {}", r.launch_result);
        // The helper's lifetime is tied to ours (tie-lifetime-to-caller): stay until it is
        // done, or the broker would end it with us before it has had its say.
        if let Some(pid) = r.pid {
            let pm = appipc::PackageManager::new(&session);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while pm.running_processes().await?.iter().any(|p| p.pid == pid)
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if args.first().map(String::as_str) == Some("--linger-helper") {
        // Launch a helper that stays, then exit: the broker ends the helper with us.
        let session = Session::connect().await?;
        let r = FullTrustProcessLauncher::launch_for_current_app_with_arguments(
            &session,
            &["--linger".into()],
        )
        .await?;
        println!("  app: lingering helper pid {}", r.pid.unwrap_or(0));
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let file = args.first().cloned().unwrap_or_default();
    match std::fs::read_to_string(&file) {
        Ok(_) => println!("  app: read {file} itself (it should not be able to!)"),
        Err(e) => println!("  app: cannot read {file} from the app container: {e}"),
    }
    let session = Session::connect().await?;
    let mut inbox = AppServiceProvider::register(&session, "com.contoso.bridge.inbox").await?;
    let r = FullTrustProcessLauncher::launch_for_current_app_with_arguments(
        &session,
        std::slice::from_ref(&file),
    )
    .await?;
    println!("  app: launched the full-trust helper: {}", r.launch_result);
    if r.launch_result != FullTrustLaunchResult::Success {
        return Ok(std::process::ExitCode::from(3));
    }
    let details = tokio::time::timeout(std::time::Duration::from_secs(20), inbox.accept())
        .await
        .ok()
        .flatten()
        .ok_or(appipc::Error::Disconnected)?;
    let from = details.caller_package_family_name.clone();
    let conn = details.into_connection();
    let mut requests = conn.requests();
    let Some(args) = requests.recv().await else { return Ok(std::process::ExitCode::from(4)) };
    let content =
        args.request.message().get("content").and_then(|v| v.as_string()).unwrap_or("").to_owned();
    println!(
        "  app: the helper ({from}) delivered {} bytes; first line: {:?}",
        content.len(),
        content.lines().next().unwrap_or("")
    );
    let mut ok = ValueSet::new();
    ok.insert("thanks", true);
    args.request.send_response(ok);
    drop(args);
    conn.service_closed().await;
    Ok(std::process::ExitCode::SUCCESS)
}
