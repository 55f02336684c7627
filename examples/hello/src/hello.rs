//! `hello-app`: a packaged app that prints its identity as the broker attests it.
//!
//! ```text
//! hello-app                    print identity
//! hello-app --packages         list the packages this app may see
//! hello-app --try-install DIR  try to install a package (app containers are refused)
//! hello-app --try-developer-mode  try to turn developer mode on (packages are refused)
//! hello-app --try-trust TEXT   try to trust a public key (packages are refused)
//! hello-app --child            start a child process that prints its own identity
//! hello-app --sleep SECS       stay alive (for ps / remove)
//! hello-app --exit CODE        exit with CODE after printing
//! ```

use std::process::ExitCode;

use appipc::{Package, PackageManager, ProcessIdentity, Session};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            appipc_examples::elog!("hello-app: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> appipc::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let session = Session::connect().await?;
    let me = ProcessIdentity::query(&session).await?.0;
    let who = match Package::current(&session).await {
        Ok(p) => format!("{}!{}", p.id().family_name, p.app_id().unwrap_or("?")),
        Err(appipc::Error::NoPackageIdentity) => "an unpackaged process".to_owned(),
        Err(e) => return Err(e),
    };
    let child = args.first().map(String::as_str) == Some("--as-child");
    println!(
        "{}hello from {who}: pid {} trust {} package SID {} capabilities [{}]",
        if child { "  child: " } else { "" },
        std::process::id(),
        me.trust.as_str(),
        me.package_sid.as_deref().unwrap_or("-"),
        me.capabilities.join(", ")
    );
    if me.pid != std::process::id() && !child {
        println!("  (the broker attests pid {}, the process it started)", me.pid);
    }
    let mut i = 0;
    let mut code = 0u8;
    // Objects kept open until the process ends (their handles keep them alive).
    let mut held: Vec<appipc::named_objects::FileMapping> = Vec::new();
    while i < args.len() {
        match args[i].as_str() {
            "--packages" => {
                let pkgs = PackageManager::new(&session).find_packages().await?;
                let names: Vec<_> = pkgs.iter().map(|p| p.family_name.as_str()).collect();
                println!("  packages I may see: {}", names.join(", "));
            }
            "--try-install" => {
                i += 1;
                let dir = args.get(i).cloned().unwrap_or_default();
                match PackageManager::new(&session).add_package(dir.as_ref()).await {
                    Ok(r) => println!("  install allowed: {}", r.full_name),
                    Err(e) => println!("  install refused: {e}"),
                }
            }
            "--try-developer-mode" => {
                match appipc::trust::DeveloperMode::set(&session, true).await {
                    Ok(()) => println!("  developer mode: turned on"),
                    Err(e) => println!("  developer mode refused: {e}"),
                }
            }
            "--try-trust" => {
                i += 1;
                let text = args.get(i).cloned().unwrap_or_default();
                match appipc::trust::TrustStore::add(&session, &text).await {
                    Ok(k) => println!("  trust allowed: {}", k.key_id),
                    Err(e) => println!("  trust refused: {e}"),
                }
            }
            "--try-read" => {
                i += 1;
                let path = args.get(i).cloned().unwrap_or_default();
                match std::fs::read_to_string(&path) {
                    Ok(_) => println!("  read {path}: allowed"),
                    Err(e) => println!("  read {path}: refused: {e}"),
                }
            }
            "--cache-write" => {
                let name = args.get(i + 1).cloned().unwrap_or_default();
                let text = args.get(i + 2).cloned().unwrap_or_default();
                i += 2;
                let dir = appipc::ApplicationData::publisher_cache_folder(&session, &name).await?;
                match std::fs::write(dir.join("note.txt"), &text) {
                    Ok(()) => println!("  cache {name}: wrote {text:?}"),
                    Err(e) => println!("  cache {name}: write refused: {e}"),
                }
            }
            "--map-create" => {
                let name = args.get(i + 1).cloned().unwrap_or_default();
                let size: u64 = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(4096);
                let text = args.get(i + 3).cloned().unwrap_or_default();
                i += 3;
                let sddl = optional_sddl(&args, &mut i);
                match appipc::named_objects::FileMapping::create(
                    &session,
                    &name,
                    size,
                    true,
                    sddl.as_deref(),
                )
                .await
                {
                    Ok(c) => {
                        if let Some(b) = c.object.map_view()?.as_bytes_mut() {
                            let n = text.len().min(b.len());
                            b[..n].copy_from_slice(&text.as_bytes()[..n]);
                        }
                        println!(
                            "  mapping {name}: created (already exists: {})",
                            c.already_exists
                        );
                        held.push(c.object);
                    }
                    Err(e) => println!("  mapping {name}: create refused: {e}"),
                }
            }
            "--map-open" | "--map-write-ro" | "--map-writable-ro" => {
                let what = args[i].clone();
                let name = args.get(i + 1).cloned().unwrap_or_default();
                let access = if args.get(i + 2).map(String::as_str) == Some("rw") {
                    appipc::named_objects::FILE_MAP_READ | appipc::named_objects::FILE_MAP_WRITE
                } else {
                    appipc::named_objects::FILE_MAP_READ
                };
                i += if what == "--map-open" { 2 } else { 1 };
                match appipc::named_objects::FileMapping::open(&session, &name, access).await {
                    Ok(m) if what == "--map-writable-ro" => match m.map_view_writable() {
                        Ok(_) => println!("  mapping {name}: writable view allowed"),
                        Err(e) => println!("  mapping {name}: writable view refused: {e}"),
                    },
                    Ok(m) if what == "--map-write-ro" => {
                        let view = m.map_view()?;
                        println!("  mapping {name}: writing through a read-only view…");
                        view.write_through_anyway(0, b"x");
                        println!("  mapping {name}: the write went through (it must not)");
                    }
                    Ok(m) => {
                        let view = m.map_view()?;
                        let text: String = view
                            .as_bytes()
                            .iter()
                            .take_while(|b| **b != 0)
                            .map(|b| *b as char)
                            .collect();
                        println!("  mapping {name}: read {text:?} (writable: {})", m.is_writable());
                    }
                    Err(e) => println!("  mapping {name}: open refused: {e}"),
                }
            }
            "--event-wait" => {
                // Creates NAME (with --sddl) and waits until someone sets it.
                let name = args.get(i + 1).cloned().unwrap_or_default();
                i += 1;
                let sddl = optional_sddl(&args, &mut i);
                let ev = appipc::named_objects::Event::create(
                    &session,
                    &name,
                    false,
                    false,
                    sddl.as_deref(),
                )
                .await?;
                println!("  event {name}: waiting");
                match tokio::time::timeout(std::time::Duration::from_secs(20), ev.object.wait())
                    .await
                {
                    Ok(r) => {
                        r?;
                        println!("  event {name}: signalled");
                    }
                    Err(_) => println!("  event {name}: not signalled in 20 s"),
                }
            }
            "--event-set" => {
                i += 1;
                let name = args.get(i).cloned().unwrap_or_default();
                match appipc::named_objects::Event::open(
                    &session,
                    &name,
                    appipc::named_objects::EVENT_MODIFY_STATE,
                )
                .await
                {
                    Ok(ev) => {
                        ev.set().await?;
                        println!("  event {name}: set");
                    }
                    Err(e) => println!("  event {name}: open refused: {e}"),
                }
            }
            "--pipe-serve" => {
                // Serves one client of NAME (with --sddl): prints what it sends, answers "ack".
                let name = args.get(i + 1).cloned().unwrap_or_default();
                i += 1;
                let sddl = optional_sddl(&args, &mut i);
                let opts = appipc::named_pipes::PipeOptions {
                    message_mode: true,
                    sddl,
                    ..Default::default()
                };
                let mut server =
                    appipc::named_pipes::NamedPipeServer::create(&session, &name, &opts).await?;
                println!("  pipe {name}: listening");
                let mut conn = server.connect().await?;
                use std::io::{Read, Write};
                let mut buf = [0u8; 256];
                let n = conn.stream.read(&mut buf).unwrap_or(0);
                println!(
                    "  pipe {name}: {} (pid {}) sent {:?}",
                    if conn.client_package_family_name.is_empty() {
                        "an unpackaged client"
                    } else {
                        &conn.client_package_family_name
                    },
                    conn.client_pid,
                    String::from_utf8_lossy(&buf[..n])
                );
                let _ = conn.stream.write_all(b"ack");
            }
            "--pipe-send" => {
                let name = args.get(i + 1).cloned().unwrap_or_default();
                let text = args.get(i + 2).cloned().unwrap_or_default();
                i += 2;
                let access = appipc::named_pipes::GENERIC_READ | appipc::named_pipes::GENERIC_WRITE;
                match appipc::named_pipes::open(&session, &name, access).await {
                    Ok(mut s) => {
                        use std::io::{Read, Write};
                        let _ = s.write_all(text.as_bytes());
                        let mut buf = [0u8; 16];
                        let n = s.read(&mut buf).unwrap_or(0);
                        println!("  pipe {name}: answer {:?}", String::from_utf8_lossy(&buf[..n]));
                    }
                    Err(e) => println!("  pipe {name}: open refused: {e}"),
                }
            }
            "--cache-clear" => {
                i += 1;
                let name = args.get(i).cloned().unwrap_or_default();
                match appipc::ApplicationData::clear_publisher_cache_folder(&session, &name).await {
                    Ok(()) => println!("  cache {name}: cleared"),
                    Err(e) => println!("  cache {name}: clear refused: {e}"),
                }
            }
            "--cache-read" => {
                i += 1;
                let name = args.get(i).cloned().unwrap_or_default();
                match appipc::ApplicationData::publisher_cache_folder(&session, &name).await {
                    Ok(dir) => match std::fs::read_to_string(dir.join("note.txt")) {
                        Ok(t) => println!("  cache {name}: read {t:?}"),
                        Err(e) => println!("  cache {name}: nothing to read: {e}"),
                    },
                    Err(e) => println!("  cache {name}: refused: {e}"),
                }
            }
            "--write-note" => {
                i += 1;
                let text = args.get(i).cloned().unwrap_or_default();
                let home = std::env::var("HOME").unwrap_or_default();
                let path = std::path::Path::new(&home).join("note.txt");
                match std::fs::write(&path, format!("{text}\n")) {
                    Ok(()) => println!("  wrote {}", path.display()),
                    Err(e) => println!("  write {}: refused: {e}", path.display()),
                }
            }
            "--send-token" => {
                i += 1;
                let token = share(&session, args.get(i).map(String::as_str).unwrap_or("")).await?;
                let viewers = appipc::AppServiceCatalog::find_app_service_providers(
                    &session,
                    "com.fabrikam.viewer",
                )
                .await?;
                let Some(viewer) = viewers.first() else {
                    println!("  no viewer installed");
                    i += 1;
                    continue;
                };
                let mut conn = appipc::AppServiceConnection::new(
                    &viewer.package_family_name,
                    "com.fabrikam.viewer",
                );
                let status = conn.open(&session).await;
                if status != appipc::AppServiceConnectionStatus::Success {
                    println!("  opening the viewer: {status}");
                } else {
                    let mut m = appipc::ValueSet::new();
                    m.insert("token", token.clone());
                    let r = conn.send_message(m).await;
                    let get = |k: &str| {
                        r.message.get(k).and_then(|v| v.as_string()).unwrap_or("").to_owned()
                    };
                    println!(
                        "  sent token {}… to {}: {}; the viewer read the first line {:?}{}",
                        &token[..8],
                        viewer.package_family_name,
                        r.status,
                        get("firstLine"),
                        if get("error").is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", get("error"))
                        }
                    );
                }
            }
            "--share" => {
                i += 1;
                let token = share(&session, args.get(i).map(String::as_str).unwrap_or("")).await?;
                println!("  token {token}");
            }
            "--redeem" => {
                i += 1;
                let token = args.get(i).cloned().unwrap_or_default();
                match appipc::SharedStorageAccessManager::redeem_token_for_file(&session, &token)
                    .await
                {
                    Ok(file) => {
                        use std::io::{Read, Write};
                        println!(
                            "  redeemed: {} ({})",
                            file.name,
                            if file.writable { "read-write" } else { "read-only" }
                        );
                        let mut f = file.into_file();
                        let mut s = String::new();
                        let _ = f.read_to_string(&mut s);
                        println!("  redeemed: first line {:?}", s.lines().next().unwrap_or(""));
                        match f.write_all(b"x") {
                            Ok(()) => println!("  redeemed: write allowed"),
                            Err(e) => println!("  redeemed: write refused: {e}"),
                        }
                    }
                    Err(e) => println!("  redeem refused: {e}"),
                }
            }
            "--full-trust" => {
                let r = appipc::FullTrustProcessLauncher::launch_for_current_app(&session).await?;
                println!(
                    "  full-trust launch: {}{}",
                    r.launch_result,
                    r.extended_error.map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
            "--child" => {
                let exe = std::env::current_exe().map_err(|source| appipc::Error::Io {
                    what: "finding my executable",
                    source,
                })?;
                let status = std::process::Command::new(exe)
                    .arg("--as-child")
                    .status()
                    .map_err(|source| appipc::Error::Io { what: "starting a child", source })?;
                println!("  child exited with {status}");
            }
            "--sleep" => {
                i += 1;
                let secs: u64 = args.get(i).and_then(|s| s.parse().ok()).unwrap_or(30);
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            }
            "--exit" => {
                i += 1;
                code = args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            "--as-child" => {}
            other => println!("  argument: {other}"),
        }
        i += 1;
    }
    Ok(ExitCode::from(code))
}

/// Opens `path` read-only and shares it: a SharedStorageAccessManager token.
/// An optional `--sddl SD` after the argument at `*i`: taken (and `*i` moved past it) if there.
fn optional_sddl(args: &[String], i: &mut usize) -> Option<String> {
    if args.get(*i + 1).map(String::as_str) != Some("--sddl") {
        return None;
    }
    *i += 2;
    args.get(*i).cloned()
}

async fn share(session: &Session, path: &str) -> appipc::Result<String> {
    let file = std::fs::File::open(path)
        .map_err(|source| appipc::Error::Io { what: "opening the file to share", source })?;
    appipc::SharedStorageAccessManager::add_file(session, &file).await
}
