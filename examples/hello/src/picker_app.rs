//! `picker-app`: Contoso's picker. Launched for results (`contoso-pick:`), it "picks" a photo:
//! writes it to its own `LocalState`, shares it read-only by file token and reports
//! `{token, name, for}` to the caller, whose package family name it has from the broker.
//! Launched plainly (`contoso-view:`), it says what it was asked to show.

use std::io::Write;

use appipc::{ActivatedEventArgs, AppInstance, Session, SharedStorageAccessManager, ValueSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("picker-app: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> appipc::Result<()> {
    let session = Session::connect().await?;
    match AppInstance::activated(&session).await? {
        Some(ActivatedEventArgs::ProtocolForResults(args)) => {
            appipc_examples::elog!(
                "picker-app: {} asks for {} (data: {:?})",
                display(&args.caller_package_family_name),
                args.uri,
                args.data.as_ref().and_then(|d| d.get("want")).and_then(|v| v.as_string())
            );
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
            let path = home.join("photo-1.txt");
            let mut f = std::fs::File::create(&path).map_err(|e| io(&e))?;
            writeln!(f, "a photo of the lake at dawn (picked by Contoso's picker)")
                .map_err(|e| io(&e))?;
            drop(f);
            let f = std::fs::File::open(&path).map_err(|e| io(&e))?;
            let token = SharedStorageAccessManager::add_file(&session, &f).await?;
            let mut answer = ValueSet::new();
            answer.insert("token", token.as_str());
            answer.insert("name", "photo-1.txt");
            answer.insert("for", args.caller_package_family_name.as_str());
            args.operation.report_completed(answer).await?;
            appipc_examples::elog!("picker-app: reported photo-1.txt by token");
        }
        Some(ActivatedEventArgs::Protocol(args)) => {
            appipc_examples::elog!(
                "picker-app: asked to show {} by {}",
                args.uri,
                display(&args.caller_package_family_name)
            );
        }
        other => appipc_examples::elog!("picker-app: not launched for a URI ({other:?})"),
    }
    Ok(())
}

fn display(pfn: &str) -> &str {
    if pfn.is_empty() { "an unpackaged process" } else { pfn }
}

fn io(e: &std::io::Error) -> appipc::Error {
    let source = std::io::Error::new(e.kind(), e.to_string());
    appipc::Error::Io { what: "writing the picked photo", source }
}
