//! `appipc`: install, launch, inspect and diagnose packaged apps on Linux.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use appipc::json;
use appipc::management::{PackageInfo, ProcessInfo};
use appipc::{ActivateOptions, ApplicationActivationManager, PackageManager, Session, TrustLevel};
use appipc_model::identity::{PackageFamilyName, PackageFullName, PackageName, PublisherId};
use clap::{Parser, Subcommand};

mod daemon;
mod demo;
mod logging;
mod packaging;
mod relay;

#[derive(Parser, Debug)]
#[command(
    name = "appipc",
    version,
    about = "Install, launch and inspect packaged apps; the Windows packaged-app IPC model on Linux.",
    long_about = "Install, launch and inspect packaged apps; the Windows packaged-app IPC model on Linux.\n\n\
        Commands that need the per-user broker (appipcd) start one in the background when none \
        answers on $APPIPC_RUNTIME_DIR/broker.sock (default $XDG_RUNTIME_DIR/appipc/), and say so.\n\n\
        Environment: APPIPC_HOME (state; default $XDG_DATA_HOME/appipc), APPIPC_RUNTIME_DIR \
        (sockets), APPIPC_LOG (log filter, e.g. debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compute package identities exactly as Windows does (no broker needed).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Install a package file signed by a trusted key (or, in developer mode, a package
    /// folder), or upgrade to a newer version; asks before granting restricted capabilities.
    /// An upgrade first ends the running processes of the old version (app-service hosts are
    /// told ServicingUpdate and get a grace period); app data is kept.
    Install(packaging::InstallArgs),
    /// Pack a package folder into one signed package file (.appipc).
    Pack(packaging::PackArgs),
    /// Signing keys.
    #[command(subcommand)]
    Key(packaging::KeyCommand),
    /// The keys trusted to sign packages, each for its publisher.
    #[command(subcommand)]
    Trust(packaging::TrustCommand),
    /// Developer mode: whether package folders may install unsigned (off by default).
    #[command(subcommand, name = "dev-mode")]
    DevMode(packaging::DevModeCommand),
    /// Check a package folder's manifest without installing it.
    Check {
        /// The package folder.
        dir: PathBuf,
    },
    /// List installed packages.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a package: ends its running processes, then deletes its files and app data
    /// (a removal the broker could not finish is finished at its next start).
    Remove {
        /// Package family name.
        family_name: String,
    },
    /// Launch an application: PFN (its first application) or PFN!AppId.
    Launch {
        /// Wait for the app to exit and exit with its status, relaying stdin/stdout/stderr
        /// (through a new pty where they are a terminal, else pipes: never the terminal itself),
        /// window-size changes and SIGHUP/SIGINT/SIGQUIT/SIGTERM.
        #[arg(long)]
        wait: bool,
        /// PFN or PFN!AppId.
        target: String,
        /// Arguments for the app (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// List the processes the broker started (a restarted broker's included: it adopts the
    /// running processes of the broker before it).
    Ps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call app services and list them.
    #[command(subcommand, name = "app-service")]
    AppService(AppServiceCommand),
    /// Hand files to apps with SharedStorageAccessManager tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Publisher cache folders (shared by the packages of one publisher).
    #[command(subcommand, name = "publisher-cache")]
    PublisherCache(PublisherCacheCommand),
    /// List live named objects: namespace, name, type, creator, security descriptor, handles.
    Objects {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the broker's recent refusals (or all decisions), each with the rule that decided
    /// and what would have allowed it.
    Why {
        /// Print JSON (one object per decision).
        #[arg(long)]
        json: bool,
        /// Only decisions whose caller or object is this package (family name).
        #[arg(long, value_name = "PFN")]
        package: Option<String>,
        /// How many of the latest to show.
        #[arg(long, default_value_t = 20, value_name = "N")]
        last: u32,
        /// Allowed decisions too, not only refusals.
        #[arg(long)]
        all: bool,
        /// Keep printing decisions as the broker makes them.
        #[arg(long)]
        follow: bool,
    },
    /// Show who the broker thinks this process is.
    Whoami,
    /// Show whether a broker answers, and where.
    Status,
    /// Run the broker in the foreground (what appipcd does).
    Daemon,
    /// Ask the running broker to stop. The processes it started keep running, with their
    /// sessions (held by the broker's keeper process), and the next broker takes them over.
    Stop {
        /// End every process the broker started, and every session, before it stops.
        #[arg(long)]
        apps: bool,
    },
    /// Run the demonstration: a broker on a temporary home, the example packages, and what
    /// is allowed and what is refused.
    Demo,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Share FILE: prints a token an app can redeem once, within 14 days, for the file (read
    /// only unless --read-write).
    Add {
        /// The file.
        file: PathBuf,
        /// Let the redeemer write to it too.
        #[arg(long)]
        read_write: bool,
    },
    /// List outstanding tokens.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Remove {
        /// The token.
        token: String,
    },
}

#[derive(Subcommand, Debug)]
enum PublisherCacheCommand {
    /// List publisher cache folders: publisher id, folder, size, declaring packages.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Empty one folder of one publisher.
    Clear {
        /// The 13-character publisher id.
        publisher_id: String,
        /// The folder name.
        folder: String,
    },
}

#[derive(Subcommand, Debug)]
enum AppServiceCommand {
    /// Open a connection as an unpackaged client, send one message, print the status and the
    /// response as JSON (typed: {"Int32": 5}; see docs/wire.md for the mapping). Exits 0 on
    /// Success, 2 when the open or the send did not succeed.
    Call {
        /// The provider's package family name.
        family_name: String,
        /// The app service name.
        service: String,
        /// The message, a JSON object (plain or typed values).
        #[arg(long, default_value = "{}")]
        json: String,
    },
    /// List declared app services and live connections.
    List {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum IdentityCommand {
    /// The 13-character publisher id of a publisher distinguished name.
    PublisherId {
        /// The publisher, exactly as in the manifest (e.g. "CN=Contoso, O=Contoso, C=US").
        publisher: String,
    },
    /// NAME_<publisher id>.
    FamilyName {
        /// Package name.
        name: String,
        /// Publisher distinguished name.
        publisher: String,
    },
    /// NAME_VERSION_arch_RESOURCEID_<publisher id>.
    FullName {
        /// Package name.
        name: String,
        /// Four-part version.
        version: String,
        /// Processor architecture (x86, x64, arm, arm64, x86a64, neutral).
        arch: String,
        /// Publisher distinguished name.
        publisher: String,
        /// Resource id (empty by default, giving a double underscore).
        #[arg(long, default_value = "")]
        resource_id: String,
    },
    /// The AppContainer SID Windows derives from a name (a package family name).
    AppcontainerSid {
        /// The app container name.
        name: String,
    },
    /// The capability SID of a capability name, or with --group its group SID.
    CapabilitySid {
        /// Capability name.
        name: String,
        /// Print the group SID (S-1-5-32-…) instead.
        #[arg(long)]
        group: bool,
    },
}

fn main() -> ExitCode {
    // The broker (`appipc daemon`) starts its session keeper from this same program.
    if let Some(code) = appipc_broker::keeper::main_if_keeper() {
        return code;
    }
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Daemon) { "info" } else { "warn" };
    logging::init(default_level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("appipc: {}", show(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Identity(c) => identity(c).map(|()| ExitCode::SUCCESS),
        Command::Check { dir } => {
            let m = appipc_model::manifest::load(&dir)?;
            println!("{}: valid; full name {}", dir.display(), m.identity.full_name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon => daemon::run_foreground(),
        Command::Pack(args) => packaging::pack(args).map(|()| ExitCode::SUCCESS),
        Command::Key(c) => packaging::key(c).map(|()| ExitCode::SUCCESS),
        Command::Demo => demo::run(),
        other => runtime()?.block_on(client(other)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")
}

fn identity(c: IdentityCommand) -> Result<()> {
    use appipc_model::sid;
    let line = match c {
        IdentityCommand::PublisherId { publisher } => {
            PublisherId::from_publisher(&publisher).to_string()
        }
        IdentityCommand::FamilyName { name, publisher } => {
            let name: PackageName = name.parse()?;
            PackageFamilyName::from_publisher(&name, &publisher).to_string()
        }
        IdentityCommand::FullName { name, version, arch, publisher, resource_id } => {
            PackageFullName {
                name: name.parse()?,
                version: version.parse()?,
                architecture: arch.parse()?,
                resource_id: if resource_id.is_empty() { None } else { Some(resource_id.parse()?) },
                publisher_id: PublisherId::from_publisher(&publisher),
            }
            .to_string()
        }
        IdentityCommand::AppcontainerSid { name } => {
            if name.is_empty() {
                bail!("the app container name must not be empty (Windows answers E_INVALIDARG)");
            }
            sid::appcontainer_sid(&name).to_string()
        }
        IdentityCommand::CapabilitySid { name, group } => {
            if name.is_empty() {
                bail!("the capability name must not be empty");
            }
            let sids = sid::capability_sids(&name);
            if group { sids.group } else { sids.capability }.to_string()
        }
    };
    println!("{line}");
    Ok(())
}

async fn client(command: Command) -> Result<ExitCode> {
    if let Command::Stop { apps } = command {
        return match Session::connect().await {
            Ok(s) => {
                if apps {
                    appipc::broker::shutdown_everything(&s).await?;
                    println!("every process the broker started ended; broker stopped");
                } else {
                    appipc::broker::shutdown(&s).await?;
                    println!("broker stopped");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(appipc::Error::Connect { path, .. }) => {
                println!("no broker answers on {path}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.into()),
        };
    }
    if let Command::Status = command {
        return match Session::connect().await {
            Ok(s) => {
                let p = appipc::broker::ping(&s).await?;
                println!(
                    "broker pid {}, version {}, protocol {}, socket {}",
                    p.broker_pid,
                    p.version,
                    p.protocol,
                    appipc::session::public_socket_path().display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                println!("{e}");
                Ok(ExitCode::from(3))
            }
        };
    }
    let session = daemon::connect_or_start().await?;
    match command {
        Command::Install(args) => packaging::install(&session, args).await?,
        Command::Trust(c) => packaging::trust(&session, c).await?,
        Command::DevMode(c) => packaging::dev_mode(&session, c).await?,
        Command::List { json } => {
            let pkgs = PackageManager::new(&session).find_packages().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&packages_json(&pkgs))?);
            } else {
                print_packages(&pkgs);
            }
        }
        Command::Remove { family_name } => {
            let (full, stopped) = PackageManager::new(&session)
                .remove_package(&family_name)
                .await
                .with_context(|| format!("removing {family_name}"))?;
            println!("removed {full} (stopped {stopped} running process(es))");
        }
        Command::Launch { wait: true, target, args } => {
            return relay::launch_and_wait(&session, &target, &args).await;
        }
        Command::Launch { wait: false, target, args } => {
            let aam = ApplicationActivationManager::new(&session);
            let (pid, aumid) = aam
                .activate_application(&target, &args, ActivateOptions::default())
                .await
                .with_context(|| format!("launching {target}"))?;
            println!("launched {aumid} (pid {pid})");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ps { json } => {
            let pm = PackageManager::new(&session);
            let procs = pm.running_processes().await?;
            let signed = packaging::signed_families(&pm.find_packages().await?);
            if json {
                println!("{}", serde_json::to_string_pretty(&processes_json(&procs, &signed))?);
            } else {
                print_processes(&procs, &signed);
            }
        }
        Command::AppService(c) => return app_service(&session, c).await,
        Command::Token(c) => token(&session, c).await?,
        Command::Objects { json } => objects(&session, json).await?,
        Command::PublisherCache(c) => publisher_cache(&session, c).await?,
        Command::Why { json, package, last, all, follow } => {
            why(&session, json, package, last, all, follow).await?
        }
        Command::Whoami => {
            let me = appipc::ProcessIdentity::query(&session).await?.0;
            println!("pid {} uid {} trust {}", me.pid, me.uid, me.trust.as_str());
            if let Some(f) = &me.package_family_name {
                println!("package {f} app {}", me.app_id.as_deref().unwrap_or("?"));
            }
        }
        Command::Identity(_)
        | Command::Check { .. }
        | Command::Daemon
        | Command::Pack(_)
        | Command::Key(_)
        | Command::Demo
        | Command::Stop { .. }
        | Command::Status => {
            unreachable!("handled before connecting")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn trust_str(t: TrustLevel) -> &'static str {
    t.as_str()
}

pub(crate) fn print_packages(pkgs: &[PackageInfo]) {
    if pkgs.is_empty() {
        println!("no packages installed");
        return;
    }
    for p in pkgs {
        println!("{}", p.family_name);
        println!("  name         {} {}", p.name, p.version);
        println!("  publisher    {} ({})", p.publisher, p.publisher_id);
        println!("  full name    {}", p.full_name);
        println!("  signature    {}", packaging::signature(p));
        let list = |v: &[String]| if v.is_empty() { "(none)".to_owned() } else { v.join(", ") };
        println!("  capabilities {}", list(&p.capabilities));
        let refused: Vec<String> = p
            .capabilities
            .iter()
            .filter(|c| !p.granted_capabilities.iter().any(|g| g.eq_ignore_ascii_case(c)))
            .cloned()
            .collect();
        println!("  granted      {}", list(&p.granted_capabilities));
        if !refused.is_empty() {
            println!("  not granted  {}", list(&refused));
        }
        for a in &p.applications {
            println!(
                "  app          {}!{}  {}  ({})",
                p.family_name,
                a.id,
                a.executable,
                trust_str(a.trust)
            );
        }
    }
}

fn packages_json(pkgs: &[PackageInfo]) -> serde_json::Value {
    serde_json::Value::Array(
        pkgs.iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "version": p.version,
                    "publisher": p.publisher,
                    "publisher_id": p.publisher_id,
                    "family_name": p.family_name,
                    "full_name": p.full_name,
                    "display_name": p.display_name,
                    "capabilities": p.capabilities,
                    "granted_capabilities": p.granted_capabilities,
                    "package_sid": p.package_sid,
                    "install_location": p.install_location,
                    "data_location": p.data_location,
                    "installed_at": p.installed_at,
                    "signer": p.signer.as_ref().map(|s| serde_json::json!({
                        "key_id": s.key_id,
                        "publisher": s.publisher,
                    })),
                    "applications": p.applications.iter().map(|a| serde_json::json!({
                        "id": a.id,
                        "app_user_model_id": format!("{}!{}", p.family_name, a.id),
                        "executable": a.executable,
                        "trust": trust_str(a.trust),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn print_processes(procs: &[ProcessInfo], signed: &std::collections::HashMap<String, bool>) {
    println!("{:>8}  {:<12}  {:<48}  CONFINEMENT", "PID", "TRUST", "APP");
    for p in procs {
        let mark = if signed.get(&p.package_family_name.to_ascii_lowercase()) == Some(&false) {
            "  [unsigned (developer mode)]"
        } else {
            ""
        };
        println!(
            "{:>8}  {:<12}  {:<48}  {}{mark}",
            p.pid,
            trust_str(p.trust),
            p.app_user_model_id,
            p.confinement
        );
    }
}

fn processes_json(
    procs: &[ProcessInfo],
    signed: &std::collections::HashMap<String, bool>,
) -> serde_json::Value {
    serde_json::Value::Array(
        procs
            .iter()
            .map(|p| {
                serde_json::json!({
                    "pid": p.pid,
                    "app_user_model_id": p.app_user_model_id,
                    "package_family_name": p.package_family_name,
                    "trust": trust_str(p.trust),
                    "started_at": p.started_at,
                    "confinement": p.confinement,
                    "signed": signed.get(&p.package_family_name.to_ascii_lowercase()),
                })
            })
            .collect(),
    )
}

async fn app_service(session: &Session, command: AppServiceCommand) -> Result<ExitCode> {
    use appipc::app_service::{
        AppServiceConnection, AppServiceConnectionStatus, AppServiceResponseStatus,
    };
    match command {
        AppServiceCommand::Call { family_name, service, json } => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .with_context(|| format!("--json is not valid JSON: {json}"))?;
            let message = json::value_set_from_json(&value).context("--json")?;
            let mut conn = AppServiceConnection::new(&family_name, &service);
            let status = conn.open(session).await;
            if status != AppServiceConnectionStatus::Success {
                let out = serde_json::json!({
                    "stage": "open",
                    "status": status.name(),
                    "status_code": status.value(),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::from(2));
            }
            let r = conn.send_message(message).await;
            conn.close();
            let out = serde_json::json!({
                "stage": "send",
                "status": r.status.name(),
                "status_code": r.status.value(),
                "message": json::value_set_to_json(&r.message),
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(if r.status == AppServiceResponseStatus::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        AppServiceCommand::List { json } => {
            let appipc::app_service::AppServiceList { declared, connections } =
                appipc::AppServiceCatalog::list(session).await?;
            if json {
                let out = serde_json::json!({
                    "declared": declared.iter().map(|d| serde_json::json!({
                        "package_family_name": d.package_family_name,
                        "app_id": d.app_id,
                        "name": d.name,
                        "entry_point": d.entry_point,
                        "in_process": d.entry_point.is_none(),
                        "supports_multiple_instances": d.supports_multiple_instances,
                        "max_message_size": d.max_message_size,
                    })).collect::<Vec<_>>(),
                    "connections": connections.iter().map(|c| serde_json::json!({
                        "connection_id": c.connection_id,
                        "package_family_name": c.package_family_name,
                        "app_service_name": c.app_service_name,
                        "caller_package_family_name": c.caller_package_family_name,
                        "caller_pid": c.caller_pid,
                        "host_pid": c.host_pid,
                        "opened_at": c.opened_at,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<40}  {:<44}  {:<14}  MAX MESSAGE", "SERVICE", "PACKAGE!APP", "HOST");
            for d in &declared {
                let host = match &d.entry_point {
                    None => "in process".to_owned(),
                    Some(e) if d.supports_multiple_instances => format!("{e} (per connection)"),
                    Some(e) => e.clone(),
                };
                println!(
                    "{:<40}  {:<44}  {:<14}  {}",
                    d.name,
                    format!("{}!{}", d.package_family_name, d.app_id),
                    host,
                    d.max_message_size
                );
            }
            println!("\n{} live connection(s)", connections.len());
            for c in &connections {
                let caller = if c.caller_package_family_name.is_empty() {
                    "unpackaged"
                } else {
                    &c.caller_package_family_name
                };
                println!(
                    "  #{} {} of {}: caller {} (pid {}), host pid {}",
                    c.connection_id,
                    c.app_service_name,
                    c.package_family_name,
                    caller,
                    c.caller_pid,
                    c.host_pid
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn token(session: &Session, command: TokenCommand) -> Result<()> {
    use appipc::SharedStorageAccessManager as S;
    match command {
        TokenCommand::Add { file, read_write } => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(read_write)
                .open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            println!("{}", S::add_file(session, &f).await?);
        }
        TokenCommand::List { json } => {
            let tokens = S::tokens(session).await?;
            if json {
                let v: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "token": t.token, "source": t.source_package_family_name, "path": t.path,
                            "writable": t.writable, "created_at": t.created_at, "expires_at": t.expires_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if tokens.is_empty() {
                println!("no outstanding tokens");
            } else {
                for t in tokens {
                    let source = if t.source_package_family_name.is_empty() {
                        "user"
                    } else {
                        &t.source_package_family_name
                    };
                    println!(
                        "{}  {}  {}  from {}",
                        t.token,
                        if t.writable { "rw" } else { "ro" },
                        t.path,
                        source
                    );
                }
            }
        }
        TokenCommand::Remove { token } => {
            S::remove_file(session, &token).await?;
            println!("removed {token}");
        }
    }
    Ok(())
}

async fn publisher_cache(session: &Session, command: PublisherCacheCommand) -> Result<()> {
    match command {
        PublisherCacheCommand::List { json } => {
            let list = appipc::ApplicationData::publisher_cache_folders(session).await?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "publisher_id": c.publisher_id, "folder": c.folder, "path": c.path,
                            "size": c.size, "packages": c.packages,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("no publisher cache folders");
            } else {
                for c in list {
                    println!(
                        "{}  {}  {} bytes  {}  declared by {}",
                        c.publisher_id,
                        c.folder,
                        c.size,
                        c.path,
                        c.packages.join(", ")
                    );
                }
            }
        }
        PublisherCacheCommand::Clear { publisher_id, folder } => {
            appipc::ApplicationData::clear_publisher_cache_folder_of(
                session,
                &publisher_id,
                &folder,
            )
            .await?;
            println!("cleared {folder} of publisher {publisher_id}");
        }
    }
    Ok(())
}

fn object_type(t: appipc::named_objects::ObjectType) -> &'static str {
    match t {
        appipc::named_objects::ObjectType::Event => "event",
        appipc::named_objects::ObjectType::Semaphore => "semaphore",
        appipc::named_objects::ObjectType::FileMapping => "file mapping",
    }
}

async fn objects(session: &Session, json: bool) -> Result<()> {
    let list = appipc::named_objects::list(session).await?;
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|o| {
                serde_json::json!({
                    "namespace": o.namespace, "name": o.name, "type": object_type(o.object_type),
                    "creator_package_family_name": o.creator_package_family_name,
                    "creator_pid": o.creator_pid,
                    "sddl": o.sddl, "handles": o.handles, "size": o.size,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if list.is_empty() {
        println!("no named objects");
    } else {
        for o in list {
            let creator = if o.creator_package_family_name.is_empty() {
                format!("unpackaged pid {}", o.creator_pid)
            } else {
                format!("{} pid {}", o.creator_package_family_name, o.creator_pid)
            };
            println!(
                "{}\\{}  {}  {} handle(s)  created by {creator}",
                o.namespace,
                show(&o.name),
                object_type(o.object_type),
                o.handles
            );
            println!(
                "    {}{}",
                o.sddl,
                if o.size > 0 { format!("  size {}", o.size) } else { String::new() }
            );
        }
    }
    Ok(())
}

fn decision_json(d: &appipc::diagnostics::DecisionRecord) -> serde_json::Value {
    serde_json::json!({
        "seq": d.seq,
        "time_ms": d.time_ms,
        "caller": {
            "package_family_name": d.caller.package_family_name,
            "app_id": d.caller.app_id,
            "pid": d.caller.pid,
            "trust": d.caller.trust.as_str(),
        },
        "mechanism": d.mechanism,
        "operation": d.operation,
        "object": d.object,
        "object_package_family_name": d.object_package_family_name,
        "asked": d.asked,
        "granted": d.granted,
        "allowed": d.allowed,
        "rule": d.rule,
        "remedy": d.remedy,
        "manifest": d.manifest,
    })
}

/// Text a client chose, escaped for the terminal (`appipc::wire::text::printable`).
fn show(s: &str) -> std::borrow::Cow<'_, str> {
    appipc::wire::text::printable(s)
}

fn print_decision(d: &appipc::diagnostics::DecisionRecord) {
    let who = if d.caller.package_family_name.is_empty() {
        format!("unpackaged pid {}", d.caller.pid)
    } else {
        format!(
            "{}!{} pid {} ({})",
            d.caller.package_family_name,
            d.caller.app_id,
            d.caller.pid,
            d.caller.trust.as_str()
        )
    };
    let verdict = if d.allowed { "ALLOWED" } else { "REFUSED" };
    let object = if d.object.is_empty() { String::new() } else { format!(" {}", show(&d.object)) };
    let rights = match (d.asked, d.granted) {
        (Some(a), Some(g)) => format!(" (asked {a:#x}, granted {g:#x})"),
        _ => String::new(),
    };
    println!("#{} {verdict} {}.{}{object}{rights}", d.seq, d.mechanism, show(&d.operation));
    println!("    caller   {}", show(&who));
    println!("    rule     {}", show(&d.rule));
    if let Some(r) = &d.remedy {
        println!("    to allow {}", show(r));
    }
    if let Some(m) = &d.manifest {
        println!("    manifest {}", show(m));
    }
}

async fn why(
    session: &Session,
    json: bool,
    package: Option<String>,
    last: u32,
    all: bool,
    follow: bool,
) -> Result<()> {
    use appipc::diagnostics::{self, DecisionFilter};
    let filter = DecisionFilter { package_family_name: package, denials_only: !all };
    let show = |d: &diagnostics::DecisionRecord| -> Result<()> {
        if json {
            println!("{}", serde_json::to_string(&decision_json(d))?);
        } else {
            print_decision(d);
        }
        Ok(())
    };
    let mut stream = if follow { Some(diagnostics::follow(session, &filter).await?) } else { None };
    let recent = diagnostics::recent(session, &filter, last).await?;
    if recent.is_empty() && !json && !follow {
        println!("no {} recorded", if all { "decisions" } else { "refusals" });
    }
    let mut seen = 0;
    for d in &recent {
        show(d)?;
        seen = seen.max(d.seq);
    }
    if let Some(rx) = stream.as_mut() {
        while let Some(d) = rx.recv().await {
            if d.seq > seen {
                show(&d)?;
            }
        }
    }
    Ok(())
}
