//! `settings-app` (`Contoso.Settings`): two processes of one package talk through the
//! registry, as packaged desktop apps do on Windows with MSIX registry virtualization.
//!
//! ```text
//! settings-app            read the shipped HKLM keys, watch HKCU\Software\Contoso\Settings,
//!                         start a child (same package: it inherits the identity) that writes
//!                         Theme there, print what the notification brought and where it lives
//! settings-app --write T  (the child) set Theme = T, and try the shipped HKLM key (refused)
//! ```

use std::process::ExitCode;
use std::time::Duration;

use appipc::Session;
use appipc::registry::{NotifyFilter, RegKey, RegValue};

const KEY: &str = r"Software\Contoso\Settings";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("--write") => write(args.get(1).map_or("dark", String::as_str)).await,
        _ => watch().await,
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            appipc_examples::elog!("settings-app: {e}");
            ExitCode::from(2)
        }
    }
}

async fn watch() -> appipc::Result<()> {
    let session = Session::connect().await?;
    let shipped = RegKey::local_machine(&session).open(KEY).await?;
    let edition = shipped.query_value_info("Edition", None).await?;
    println!(
        "settings-app: HKLM\\{KEY} Edition = {:?} [{}]",
        RegValue::from(edition.clone()).as_str().unwrap_or_default(),
        edition.layer
    );
    let (key, _) = RegKey::current_user(&session).create(KEY).await?;
    let mut changes = key.notify_change(NotifyFilter::LAST_SET, false).await?;
    println!("settings-app: watching HKCU\\{KEY}; starting a second process of the package");
    let exe = std::env::current_exe()
        .map_err(|source| appipc::Error::Io { what: "finding this executable", source })?;
    let mut child = std::process::Command::new(exe)
        .args(["--write", "dark"])
        .spawn()
        .map_err(|source| appipc::Error::Io { what: "starting the writer", source })?;
    let changed = tokio::time::timeout(Duration::from_secs(20), changes.next()).await;
    let _ = child.wait();
    if !matches!(changed, Ok(Some(_))) {
        println!("settings-app: no change notification came");
        return Ok(());
    }
    let theme = key.query_value_info("Theme", None).await?;
    println!(
        "settings-app: notified: Theme = {:?} [{}]",
        RegValue::from(theme.clone()).as_str().unwrap_or_default(),
        theme.layer
    );
    Ok(())
}

async fn write(theme: &str) -> appipc::Result<()> {
    let session = Session::connect().await?;
    let (key, _) = RegKey::current_user(&session).create(KEY).await?;
    key.set_value("Theme", &RegValue::sz(theme)).await?;
    println!("settings-app (writer): set HKCU\\{KEY} Theme = {theme:?}");
    let shipped = RegKey::local_machine(&session).open(KEY).await?;
    match shipped.set_value("Edition", &RegValue::sz("Pro")).await {
        Ok(()) => println!("settings-app (writer): changed the shipped Edition (unexpected)"),
        Err(e) => println!("settings-app (writer): set HKLM\\{KEY} Edition refused: {e}"),
    }
    Ok(())
}
