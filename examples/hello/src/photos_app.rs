//! `photos-app PICKER_PFN`: Fabrikam's app that asks Contoso's picker for a photo
//! (`Launcher::launch_uri_for_results`), reads the file the answer's token names, and shows what
//! the broker refuses: a launch for results that names no target (`E_INVALIDARG`), and one of a
//! protocol that returns no results (`ProtocolUnavailable`).

use std::io::Read;

use appipc::{Launcher, LauncherOptions, Session, SharedStorageAccessManager, ValueSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("photos-app: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> appipc::Result<()> {
    let picker = std::env::args().nth(1).unwrap_or_default();
    let session = Session::connect().await?;
    let mut want = ValueSet::new();
    want.insert("want", "photo");
    let options = LauncherOptions::for_package(picker.clone());
    let r = Launcher::launch_uri_for_results(&session, "contoso-pick:photo", &options, Some(want))
        .await?;
    println!("photos-app: LaunchUriForResults contoso-pick:photo -> {}", r.status);
    let Some(result) = r.result else {
        println!("photos-app: the picker closed without an answer");
        return Ok(());
    };
    let get = |k: &str| result.get(k).and_then(|v| v.as_string()).unwrap_or_default().to_owned();
    println!("photos-app: picked {} for {} (token {})", get("name"), get("for"), get("token"));
    let file = SharedStorageAccessManager::redeem_token_for_file(&session, &get("token")).await?;
    let mut text = String::new();
    let _ = file.into_file().read_to_string(&mut text);
    println!("photos-app: read through the token: {:?}", text.trim_end());

    let none = LauncherOptions::default();
    match Launcher::launch_uri_for_results(&session, "contoso-pick:photo", &none, None).await {
        Ok(r) => println!("photos-app: without a target: {}", r.status),
        Err(e) => println!("photos-app: without a target: refused, {}", e.windows_code()),
    }
    let r =
        Launcher::launch_uri_for_results(&session, "contoso-view:photo", &options, None).await?;
    println!("photos-app: contoso-view: for results -> {}", r.status);
    Ok(())
}
