//! `appipc`: install, launch, inspect and diagnose packaged apps on Linux.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use appipc::json;
use appipc::management::{PackageInfo, ProcessInfo};
use appipc::{ActivateOptions, ApplicationActivationManager, PackageManager, Session, TrustLevel};
use appipc_model::identity::{PackageFamilyName, PackageFullName, PackageName, PublisherId};
use clap::{Parser, Subcommand};

mod com;
mod daemon;
mod daemon_args;
mod demo;
mod exit;
mod logging;
mod logs;
mod loopback;
mod packaging;
mod reg;
mod relay;
mod rpc;
mod sccd;
mod style;
mod systemd;
mod target;

#[derive(Parser, Debug)]
#[command(
    name = "appipc",
    version = daemon_args::VERSION,
    about = "Install, launch and inspect packaged apps; the Windows packaged-app IPC model on Linux.",
    long_about = "Install, launch and inspect packaged apps; the Windows packaged-app IPC model on Linux.\n\n\
        Commands that need the per-user broker (appipcd) start one in the background when none \
        answers on $APPIPC_RUNTIME_DIR/broker.sock (default $XDG_RUNTIME_DIR/appipc/), and say so.\n\n\
        Environment: APPIPC_HOME (state; default $XDG_DATA_HOME/appipc), APPIPC_RUNTIME_DIR \
        (sockets), APPIPC_LOG (log filter, e.g. debug)."
)]
struct Cli {
    /// Print the result as JSON instead of text, on every command (the same schema as the
    /// protocol's types: docs/cli.md); errors too, as {"error": …} on stderr.
    #[arg(long, global = true)]
    json: bool,
    /// When to colour the output: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    color: style::ColorChoice,
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
    /// Signed custom capability descriptors (Windows' CustomCapability.SCCD): sign one as the
    /// capabilities' owner, check one against the trust store, import Windows' XML.
    #[command(subcommand)]
    Sccd(sccd::SccdCommand),
    /// Developer mode: whether package folders may install unsigned (off by default).
    #[command(subcommand, name = "dev-mode")]
    DevMode(packaging::DevModeCommand),
    /// Check a package folder's manifest without installing it (and say who signed its
    /// custom capability descriptors and what they name).
    Check {
        /// The package folder.
        dir: PathBuf,
    },
    /// List installed packages.
    List,
    /// Remove a package: ends its running processes, then deletes its files and app data
    /// (a removal the broker could not finish is finished at its next start).
    Remove {
        /// The package: its family name (Name_PublisherId) or its full name
        /// (Name_Version_Architecture_ResourceId_PublisherId, which must be the installed one).
        package: String,
    },
    /// Launch an application: PACKAGE (its first application) or PACKAGE!AppId, the package
    /// by its family name or its full name.
    Launch {
        /// Wait for the app to exit and exit with its status, relaying stdin/stdout/stderr
        /// (through a new pty where they are a terminal, else pipes: never the terminal itself),
        /// window-size changes and SIGHUP/SIGINT/SIGQUIT/SIGTERM.
        #[arg(long)]
        wait: bool,
        /// PFN, PFN!AppId, or the package's full name instead of PFN.
        target: String,
        /// Arguments for the app (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Launch a URI as an unpackaged caller (`Launcher.LaunchUriAsync`): the package that
    /// declares its scheme (`[[application.protocol]]`) is activated. With --for-results
    /// (`LaunchUriForResultsAsync`, --target required) waits for the target to report and
    /// prints its result (typed JSON values, docs/wire.md). Exits 0 on Success; 69
    /// AppUnavailable or ProtocolUnavailable (with the broker's reason; `appipc why` explains
    /// it); 64 E_INVALIDARG (no --target for results or data, a bad URI, data over 100 KiB).
    LaunchUri {
        /// The URI, scheme:rest (at most 2048 bytes; no control characters or spaces).
        uri: String,
        /// LauncherOptions.TargetApplicationPackageFamilyName: the package that must handle it.
        #[arg(long, value_name = "PFN")]
        target: Option<String>,
        /// Launch for results and wait for the target's report (or its exit).
        #[arg(long)]
        for_results: bool,
        /// The input ValueSet, a JSON object of plain or typed values ({"n": 5}); `-` reads
        /// it from stdin.
        #[arg(long, value_name = "JSON")]
        json_data: Option<String>,
        /// Only ask whether a handler is there (QueryUriSupportAsync) and print the
        /// LaunchQuerySupportStatus; and list the handlers of the scheme.
        #[arg(long)]
        query: bool,
    },
    /// Show what a package's processes launched without a terminal wrote to their stdout and
    /// stderr ($XDG_STATE_HOME/appipc/logs/PFN.log, rotated past 1 MiB into .1 … .3).
    Logs {
        /// The package: its family name or its full name.
        package: String,
        /// Keep printing what is appended, until interrupted.
        #[arg(short, long)]
        follow: bool,
    },
    /// List the processes the broker started (a restarted broker's included: it adopts the
    /// running processes of the broker before it).
    Ps,
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
    Objects,
    /// Show the broker's recent refusals (or all decisions), each with the rule that decided
    /// and what would have allowed it.
    Why {
        /// Only decisions whose caller or object is this package (family name, full name or
        /// PFN!AppId: the family counts).
        #[arg(long, value_name = "PACKAGE")]
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
    /// Loopback between packages: why a connect is allowed or refused, and exemptions
    /// (Windows' CheckNetIsolation LoopbackExempt).
    #[command(subcommand)]
    Loopback(loopback::LoopbackCommand),
    /// The registry (Windows' reg.exe): query, add, delete, export and import keys and values,
    /// in your global view or a package's merged one (--package; --explain shows which layer
    /// each value came from).
    #[command(subcommand)]
    Reg(reg::RegCommand),
    /// RPC endpoints guarded by security descriptors (Windows' ncalrpc endpoints): list
    /// them.
    #[command(subcommand)]
    Rpc(rpc::RpcCommand),
    /// Packaged COM (out-of-process servers declared in manifests): list the installed
    /// classes and the running servers with their counts.
    #[command(subcommand)]
    Com(com::ComCommand),
    /// Show who the broker thinks this process is.
    Whoami,
    /// Show whether a broker answers, and where.
    Status,
    /// Run the broker in the foreground (what appipcd does, with the same options).
    Daemon(daemon_args::DaemonArgs),
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
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell); see
    /// scripts/install.sh for where each shell looks for it.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (appipc.1, appipc-COMMAND.1 for every command, appipcd.1) into
    /// DIR, e.g. ~/.local/share/man/man1.
    Man {
        /// The folder (created if missing).
        dir: PathBuf,
    },
    /// Write the systemd user units (appipcd.service, Type=notify, and appipcd.socket, for
    /// socket activation) into DIR, e.g. ~/.config/systemd/user, with ExecStart naming the
    /// appipcd beside this appipc.
    #[command(name = "systemd-units")]
    SystemdUnits {
        /// The folder (created if missing).
        dir: PathBuf,
    },
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
    List,
    /// Revoke a token.
    Remove {
        /// The token.
        token: String,
    },
}

#[derive(Subcommand, Debug)]
enum PublisherCacheCommand {
    /// List publisher cache folders: publisher id, folder, size, declaring packages.
    List,
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
    /// Open a connection as an unpackaged client, send one message (--message), print the
    /// status and the response (typed JSON values, {"Int32": 5}; with --json all of it as one
    /// JSON object; docs/wire.md has the mapping). Exits 0 on
    /// Success; else by class (docs/cli.md): 66 AppNotInstalled, 69 AppUnavailable or
    /// AppServiceUnavailable, 77 NotAuthorized, 65 MessageSizeTooLarge, 75
    /// ResourceLimitsExceeded, 1 any other status.
    Call {
        /// The provider's package: its family name or its full name.
        package: String,
        /// The app service name.
        service: String,
        /// The message, a JSON object of plain or typed values ({"n": 5, "w": {"Int16": 3}};
        /// docs/wire.md); `-` reads it from stdin. Default: {}.
        #[arg(short, long, value_name = "JSON")]
        message: Option<String>,
    },
    /// List declared app services and live connections.
    List,
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
    // The broker (`appipc daemon`) starts its session keeper from this same program (its
    // environment says so, before any argument is parsed).
    if let Some(code) = appipc_broker::keeper::main_if_keeper() {
        return code;
    }
    let cli: Cli = daemon_args::parse_or_exit();
    style::set_color(cli.color);
    style::set_json(cli.json);
    match &cli.command {
        Command::Daemon(args) => logging::init(args.log.as_deref(), "info"),
        _ => logging::init(None, "warn"),
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line at a time: a message may list several problems, one per line.
            let text = exit::message(&e);
            let class = exit::Class::of(&e);
            if style::json() {
                let error = serde_json::json!({
                    "error": text, "class": class.name(), "exit_status": class.code(),
                });
                eprintln!("{error}");
            } else {
                let lines: Vec<_> = text.split('\n').map(show).collect();
                let prefix = style::paint("appipc:", style::Paint::Red, style::stderr_color());
                eprintln!("{prefix} {}", lines.join("\n"));
            }
            class.exit()
        }
    }
}

/// A usage error for `--json` on a command whose output is not data.
fn no_json(what: &str) -> anyhow::Error {
    exit::fail(exit::Class::Usage, format!("--json does not apply to {what}"))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Identity(c) => identity(c).map(|()| ExitCode::SUCCESS),
        Command::Check { dir } => check(&dir),
        Command::Daemon(_) if style::json() => {
            Err(no_json("daemon: the broker logs to stderr (APPIPC_LOG)"))
        }
        Command::Daemon(_) => daemon::run_foreground(),
        Command::Pack(args) => packaging::pack(args).map(|()| ExitCode::SUCCESS),
        Command::Key(c) => packaging::key(c).map(|()| ExitCode::SUCCESS),
        Command::Sccd(c) if !matches!(c, sccd::SccdCommand::Check { .. }) => {
            sccd::offline(c).map(|()| ExitCode::SUCCESS)
        }
        Command::Demo if style::json() => Err(no_json("demo: it tells a story")),
        Command::Demo => demo::run(),
        Command::Completions { .. } if style::json() => {
            Err(no_json("completions: the output is a shell script"))
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "appipc", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(anyhow::Error::from(e).context("writing the completion script"))
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Man { dir } => man(&dir).map(|()| ExitCode::SUCCESS),
        Command::SystemdUnits { dir } => systemd::write_units(&dir).map(|()| ExitCode::SUCCESS),
        // One relayed connection of `loopback serve-inbound`: no session, no runtime.
        Command::Loopback(loopback::LoopbackCommand::RelayInbound { .. }) => {
            loopback::relay_inbound().map(|()| ExitCode::SUCCESS)
        }
        other => runtime()?.block_on(client(other)),
    }
}

/// `appipc check DIR`: every problem of the manifest and of the files it names, one per line
/// as `DIR/appipc.toml:LINE:COLUMN: KEY: RULE`.
fn check(dir: &std::path::Path) -> Result<ExitCode> {
    use appipc_model::manifest::{self, MANIFEST_FILE, ManifestError};
    match manifest::load(dir) {
        Ok(m) if style::json() => {
            style::print_json(&serde_json::json!({
                "valid": true,
                "full_name": m.identity.full_name().to_string(),
                "family_name": m.identity.family_name().to_string(),
                "problems": [],
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(m) => {
            println!("{}: valid; full name {}", dir.display(), m.identity.full_name());
            sccd::describe_package(dir, &m.capabilities);
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ManifestError::Io { .. }) => Err(e.into()),
        Err(e) if style::json() => {
            let file = dir.join(MANIFEST_FILE).display().to_string();
            let problems: Vec<serde_json::Value> = e
                .problems()
                .iter()
                .map(|p| {
                    let at = p.location();
                    serde_json::json!({
                        "file": file,
                        "line": at.map(|l| l.line),
                        "column": at.map(|l| l.column),
                        "key": p.key(),
                        "rule": p.rule(),
                        "message": p.to_string(),
                    })
                })
                .collect();
            let more = match &e {
                ManifestError::Several { more, .. } => *more,
                _ => 0,
            };
            style::print_json(&serde_json::json!({
                "valid": false, "problems": problems, "more_problems": more,
            }))?;
            Ok(exit::Class::Data.exit())
        }
        Err(e) => {
            let problems = e.problems();
            let more = match &e {
                ManifestError::Several { more, .. } => *more,
                _ => 0,
            };
            for line in packaging::problem_lines(dir, &e.to_string()) {
                eprintln!("{}", show(&line));
            }
            let total = problems.len() + more;
            Err(exit::fail(
                exit::Class::Data,
                format!("{}: {total} problem(s)", dir.join(MANIFEST_FILE).display()),
            ))
        }
    }
}

/// `appipc man DIR`.
fn man(dir: &std::path::Path) -> Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
    clap_mangen::Man::new(daemon_args::Appipcd::command())
        .generate_to(dir)
        .with_context(|| format!("writing appipcd.1 into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with("appipc") && n.ends_with(".1"))
        .map(|n| dir.join(n).display().to_string())
        .collect();
    pages.sort();
    style::say(&serde_json::json!({ "files": &pages }), || {
        format!("wrote {} manual pages into {} (man appipc)", pages.len(), dir.display())
    })
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
    if style::json() {
        style::print_json(&serde_json::json!({ "value": line }))?;
    } else {
        println!("{line}");
    }
    Ok(())
}

async fn client(command: Command) -> Result<ExitCode> {
    if let Command::Stop { apps } = command {
        return match Session::connect().await {
            Ok(s) => {
                if apps {
                    stopped_or_gone(appipc::broker::shutdown_everything(&s).await).await?;
                    style::say(
                        &serde_json::json!({ "stopped": true, "apps_ended": true }),
                        || "every process the broker started ended; broker stopped".into(),
                    )?;
                } else {
                    stopped_or_gone(appipc::broker::shutdown(&s).await).await?;
                    style::say(
                        &serde_json::json!({ "stopped": true, "apps_ended": false }),
                        || "broker stopped".into(),
                    )?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(appipc::Error::Connect { path, .. }) => {
                style::say(&serde_json::json!({ "stopped": false, "socket": path }), || {
                    format!("no broker answers on {path}")
                })?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.into()),
        };
    }
    if let Command::Status = command {
        return match Session::connect().await {
            Ok(s) => {
                let p = appipc::broker::ping(&s).await?;
                let socket = appipc::session::public_socket_path().display().to_string();
                let data = serde_json::json!({ "broker": &p, "socket": &socket });
                style::say(&data, || {
                    format!(
                        "broker pid {}, version {}, protocol {}, socket {socket}",
                        p.broker_pid, p.version, p.protocol
                    )
                })?;
                Ok(ExitCode::SUCCESS)
            }
            // No broker: 69; one that is not ours to reach: 77 (exit::Class::of_sdk).
            Err(e) => Err(e.into()),
        };
    }
    let session = daemon::connect_or_start().await?;
    match command {
        Command::Install(args) => packaging::install(&session, args).await?,
        Command::Trust(c) => packaging::trust(&session, c).await?,
        Command::DevMode(c) => packaging::dev_mode(&session, c).await?,
        Command::Sccd(sccd::SccdCommand::Check { descriptor, package, signer }) => {
            return sccd::check(&session, &descriptor, package, signer).await;
        }
        Command::List => {
            let pkgs = PackageManager::new(&session).find_packages().await?;
            if style::json() {
                style::print_json(&pkgs)?;
            } else {
                print_packages(&pkgs);
            }
        }
        Command::Remove { package } => {
            let r = target::parse(&package, "remove", target::Takes::Package)?;
            let family = target::for_broker(&session, &r).await?;
            let (full, stopped) = PackageManager::new(&session)
                .remove_package(&family)
                .await
                .with_context(|| format!("removing {package}"))?;
            let data = serde_json::json!({ "full_name": &full, "stopped_processes": stopped });
            style::say(&data, || {
                format!("removed {full} (stopped {stopped} running process(es))")
            })?;
        }
        Command::Launch { wait, target: text, args } => {
            let r = target::parse(&text, "launch", target::Takes::Application)?;
            let target = target::for_broker(&session, &r).await?;
            if wait && style::json() {
                return Err(no_json("launch --wait: the app's own output is relayed as it is"));
            }
            if wait {
                return relay::launch_and_wait(&session, &target, &args).await;
            }
            let aam = ApplicationActivationManager::new(&session);
            let l = aam
                .launch(&target, &args, ActivateOptions::default())
                .await
                .with_context(|| format!("launching {target}"))?;
            if style::json() {
                style::print_json(&l)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("launched {} (pid {})", l.app_user_model_id, l.pid);
            if let Some(log) = &l.log {
                let family = l.app_user_model_id.split('!').next().unwrap_or_default();
                println!(
                    "its output goes to {log} (appipc logs {family} [--follow]; launch --wait \
                     runs it on this terminal)"
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Logs { package, follow } => {
            let path = logs::locate(&session, &package).await?;
            drop(session);
            logs::show(&path, follow, style::json()).await?;
        }
        Command::Ps => {
            let pm = PackageManager::new(&session);
            let procs = pm.running_processes().await?;
            let signed = packaging::signed_families(&pm.find_packages().await?);
            if style::json() {
                style::print_json(&processes_json(&procs, &signed))?;
            } else {
                print_processes(&procs, &signed);
            }
        }
        Command::AppService(c) => return app_service(&session, c).await,
        Command::LaunchUri { uri, target, for_results, json_data, query } => {
            return launch_uri(&session, &uri, target, for_results, json_data, query).await;
        }
        Command::Loopback(c) => return loopback::run(&session, c).await,
        Command::Reg(c) => return reg::run(&session, c).await,
        Command::Rpc(c) => rpc::run(&session, c).await?,
        Command::Com(c) => com::run(&session, c).await?,
        Command::Token(c) => token(&session, c).await?,
        Command::Objects => objects(&session).await?,
        Command::PublisherCache(c) => publisher_cache(&session, c).await?,
        Command::Why { package, last, all, follow } => {
            let package = package
                .map(|p| target::parse(&p, "why --package", target::Takes::Application))
                .transpose()?
                .map(|r| r.family_name().to_string());
            why(&session, style::json(), package, last, all, follow).await?
        }
        Command::Whoami => {
            let me = appipc::ProcessIdentity::query(&session).await?.0;
            if style::json() {
                style::print_json(&me)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("pid {} uid {} trust {}", me.pid, me.uid, me.trust.as_str());
            if let Some(f) = &me.package_family_name {
                println!("package {f} app {}", me.app_id.as_deref().unwrap_or("?"));
            }
        }
        Command::Identity(_)
        | Command::Check { .. }
        | Command::Daemon(_)
        | Command::Pack(_)
        | Command::Key(_)
        | Command::Sccd(_)
        | Command::Demo
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::SystemdUnits { .. }
        | Command::Stop { .. }
        | Command::Status => {
            unreachable!("handled before connecting")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A stop request's outcome: its reply, or, when the broker closed the session instead (it
/// was stopping: its sessions may close before the reply is out), the broker gone within a
/// few seconds (it no longer holds the runtime folder's lock).
async fn stopped_or_gone(r: appipc::Result<()>) -> appipc::Result<()> {
    match r {
        Err(appipc::Error::Disconnected | appipc::Error::Closed { .. }) => {
            let lock = appipc_sys::env::runtime_dir().join("broker.lock");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if appipc_sys::fs::lock_holder(&lock).ok().flatten().is_none() {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            r
        }
        r => r,
    }
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

fn print_processes(procs: &[ProcessInfo], signed: &std::collections::HashMap<String, bool>) {
    if procs.is_empty() {
        println!("no processes started by the broker are running");
        return;
    }
    let mut t = style::Table::new(&["PID", "TRUST", "APP", "STARTED", "CONFINEMENT"]).right(0);
    for p in procs {
        let mark = if signed.get(&p.package_family_name.to_ascii_lowercase()) == Some(&false) {
            "  [unsigned (developer mode)]"
        } else {
            ""
        };
        t.row(vec![
            p.pid.to_string(),
            trust_str(p.trust).to_owned(),
            p.app_user_model_id.clone(),
            style::utc(p.started_at),
            format!("{}{mark}", p.confinement),
        ]);
    }
    t.print();
}

/// `ps --json`: each `ProcessInfo` and whether its package is signed.
fn processes_json(
    procs: &[ProcessInfo],
    signed: &std::collections::HashMap<String, bool>,
) -> Vec<serde_json::Value> {
    procs
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["signed"] =
                serde_json::json!(signed.get(&p.package_family_name.to_ascii_lowercase()));
            v
        })
        .collect()
}

async fn app_service(session: &Session, command: AppServiceCommand) -> Result<ExitCode> {
    use appipc::app_service::{
        AppServiceConnection, AppServiceConnectionStatus, AppServiceResponseStatus,
    };
    match command {
        AppServiceCommand::Call { package, service, message } => {
            let r = target::parse(&package, "app-service call", target::Takes::Package)?;
            let family_name = target::for_broker(session, &r).await?;
            let text = match message.as_deref() {
                None => "{}".to_owned(),
                Some("-") => {
                    let mut t = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                        .context("reading the message from stdin")?;
                    t
                }
                Some(t) => t.to_owned(),
            };
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("--message is not valid JSON: {}", text.trim()))?;
            let message = json::value_set_from_json(&value).context("--message")?;
            let mut conn = AppServiceConnection::new(&family_name, &service);
            let status = conn.open(session).await;
            if status != AppServiceConnectionStatus::Success {
                let out = serde_json::json!({
                    "stage": "open",
                    "status": status.name(),
                    "status_code": status.value(),
                });
                style::say(&out, || format!("open: {} ({})", status.name(), status.value()))?;
                return Ok(exit::Class::of_open(status).exit());
            }
            let r = conn.send_message(message).await;
            conn.close();
            let reply = json::value_set_to_json(&r.message);
            let out = serde_json::json!({
                "stage": "send",
                "status": r.status.name(),
                "status_code": r.status.value(),
                "message": &reply,
            });
            style::say(&out, || {
                let body = serde_json::to_string_pretty(&reply).unwrap_or_default();
                format!("{} ({})\n{body}", r.status.name(), r.status.value())
            })?;
            Ok(match r.status {
                AppServiceResponseStatus::Success => ExitCode::SUCCESS,
                other => exit::Class::of_response(other).exit(),
            })
        }
        AppServiceCommand::List => {
            let list = appipc::AppServiceCatalog::list(session).await?;
            if style::json() {
                style::print_json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let appipc::app_service::AppServiceList { declared, connections } = list;
            if declared.is_empty() {
                println!("no app services declared");
            } else {
                let mut t =
                    style::Table::new(&["SERVICE", "PACKAGE!APP", "HOST", "MAX MESSAGE"]).right(3);
                for d in &declared {
                    let host = match &d.entry_point {
                        None => "in process".to_owned(),
                        Some(e) if d.supports_multiple_instances => format!("{e} (per connection)"),
                        Some(e) => e.clone(),
                    };
                    t.row(vec![
                        d.name.clone(),
                        format!("{}!{}", d.package_family_name, d.app_id),
                        host,
                        style::bytes(d.max_message_size),
                    ]);
                }
                t.print();
            }
            println!("\n{} live connection(s)", connections.len());
            if !connections.is_empty() {
                let mut t = style::Table::new(&[
                    "ID",
                    "SERVICE",
                    "PROVIDER",
                    "CALLER",
                    "CALLER PID",
                    "HOST PID",
                    "OPENED",
                ])
                .right(0)
                .right(4)
                .right(5);
                for c in &connections {
                    let caller = if c.caller_package_family_name.is_empty() {
                        "unpackaged".to_owned()
                    } else {
                        c.caller_package_family_name.clone()
                    };
                    t.row(vec![
                        c.connection_id.to_string(),
                        c.app_service_name.clone(),
                        c.package_family_name.clone(),
                        caller,
                        c.caller_pid.to_string(),
                        c.host_pid.to_string(),
                        style::utc(c.opened_at),
                    ]);
                }
                t.print();
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
            let token = S::add_file(session, &f).await?;
            style::say(&serde_json::json!({ "token": &token }), || token.clone())?;
        }
        TokenCommand::List => {
            let tokens = S::tokens(session).await?;
            if style::json() {
                style::print_json(&tokens)?;
            } else if tokens.is_empty() {
                println!("no outstanding tokens");
            } else {
                let mut table =
                    style::Table::new(&["TOKEN", "ACCESS", "FROM", "CREATED", "EXPIRES", "PATH"]);
                for t in tokens {
                    let source = if t.source_package_family_name.is_empty() {
                        "user".to_owned()
                    } else {
                        t.source_package_family_name.clone()
                    };
                    table.row(vec![
                        t.token.clone(),
                        if t.writable { "read-write" } else { "read" }.to_owned(),
                        source,
                        style::utc(t.created_at),
                        style::utc(t.expires_at),
                        t.path.clone(),
                    ]);
                }
                table.print();
            }
        }
        TokenCommand::Remove { token } => {
            S::remove_file(session, &token).await?;
            style::say(&serde_json::json!({ "removed": &token }), || format!("removed {token}"))?;
        }
    }
    Ok(())
}

async fn publisher_cache(session: &Session, command: PublisherCacheCommand) -> Result<()> {
    match command {
        PublisherCacheCommand::List => {
            let list = appipc::ApplicationData::publisher_cache_folders(session).await?;
            if style::json() {
                style::print_json(&list)?;
            } else if list.is_empty() {
                println!("no publisher cache folders");
            } else {
                let mut t =
                    style::Table::new(&["PUBLISHER ID", "FOLDER", "SIZE", "DECLARED BY", "PATH"])
                        .right(2);
                for c in list {
                    t.row(vec![
                        c.publisher_id.clone(),
                        c.folder.clone(),
                        style::bytes(c.size),
                        c.packages.join(", "),
                        c.path.clone(),
                    ]);
                }
                t.print();
            }
        }
        PublisherCacheCommand::Clear { publisher_id, folder } => {
            appipc::ApplicationData::clear_publisher_cache_folder_of(
                session,
                &publisher_id,
                &folder,
            )
            .await?;
            let data = serde_json::json!({ "cleared": { "publisher_id": &publisher_id, "folder": &folder } });
            style::say(&data, || format!("cleared {folder} of publisher {publisher_id}"))?;
        }
    }
    Ok(())
}

fn object_type(t: appipc::named_objects::ObjectType) -> &'static str {
    match t {
        appipc::named_objects::ObjectType::Event => "event",
        appipc::named_objects::ObjectType::Semaphore => "semaphore",
        appipc::named_objects::ObjectType::FileMapping => "file mapping",
        appipc::named_objects::ObjectType::Mutex => "mutex",
        appipc::named_objects::ObjectType::WaitableTimer => "waitable timer",
    }
}

async fn objects(session: &Session) -> Result<()> {
    let list = appipc::named_objects::list(session).await?;
    if style::json() {
        style::print_json(&list)?;
    } else if list.is_empty() {
        println!("no named objects");
    } else {
        let mut t = style::Table::new(&[
            "NAME",
            "TYPE",
            "HANDLES",
            "SIZE",
            "CREATOR",
            "CREATOR PID",
            "SECURITY DESCRIPTOR",
        ])
        .right(2)
        .right(3)
        .right(5);
        for o in list {
            let creator = if o.creator_package_family_name.is_empty() {
                "unpackaged".to_owned()
            } else {
                o.creator_package_family_name.clone()
            };
            t.row(vec![
                format!("{}\\{}", o.namespace, o.name),
                object_type(o.object_type).to_owned(),
                o.handles.to_string(),
                if o.size > 0 { style::bytes(o.size) } else { "-".to_owned() },
                creator,
                o.creator_pid.to_string(),
                o.sddl.clone(),
            ]);
        }
        t.print();
    }
    Ok(())
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
    let verdict = if d.allowed {
        style::paint("ALLOWED", style::Paint::Green, style::stdout_color())
    } else {
        style::paint("REFUSED", style::Paint::Red, style::stdout_color())
    };
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
            println!("{}", serde_json::to_string(d)?);
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

/// `appipc launch-uri`.
async fn launch_uri(
    session: &appipc::Session,
    uri: &str,
    target: Option<String>,
    for_results: bool,
    json_data: Option<String>,
    query: bool,
) -> anyhow::Result<ExitCode> {
    use appipc::launcher::{LaunchQuerySupportType, LaunchUriStatus, Launcher, LauncherOptions};
    if query {
        let kind = if for_results {
            LaunchQuerySupportType::UriForResults
        } else {
            LaunchQuerySupportType::Uri
        };
        let status = Launcher::query_uri_support(session, uri, kind, target.as_deref()).await?;
        let scheme = uri.split(':').next().unwrap_or_default();
        let handlers = Launcher::find_uri_scheme_handlers(session, scheme, kind).await?;
        let out = serde_json::json!({
            "status": status.name(),
            "status_code": status.value(),
            "handlers": &handlers,
        });
        style::say(&out, || {
            let mut s = format!("{} ({})", status.name(), status.value());
            for h in &handlers {
                s.push_str(&format!(
                    "\n  {}!{} ({}, return-results = {})",
                    h.package_family_name, h.app_id, h.display_name, h.return_results
                ));
            }
            s
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let data = match json_data.as_deref() {
        None => None,
        Some(text) => {
            let text = if text == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
                    .context("reading --json-data from stdin")?;
                t
            } else {
                text.to_owned()
            };
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("--json-data is not valid JSON: {}", text.trim()))?;
            Some(json::value_set_from_json(&value).context("--json-data")?)
        }
    };
    let mut options = LauncherOptions::default();
    options.target_application_package_family_name = target;
    let r = if for_results {
        Launcher::launch_uri_for_results(session, uri, &options, data).await
    } else {
        Launcher::launch_uri_detailed(session, uri, &options, data).await
    };
    let r = match r {
        Ok(r) => r,
        Err(e) if e.windows_code() == appipc::WindowsCode::HResult(0x8007_0057) => {
            return Err(exit::fail(exit::Class::Usage, format!("launch-uri: {e}")));
        }
        Err(e) => return Err(e.into()),
    };
    let result = r.result.as_ref().map(json::value_set_to_json);
    let out = serde_json::json!({
        "status": r.status.name(),
        "status_code": r.status.value(),
        "result": &result,
        "reason": &r.extended_error,
        "target_pid": r.target_pid,
    });
    style::say(&out, || {
        let mut s = format!("{} ({})", r.status.name(), r.status.value());
        if let Some(why) = &r.extended_error {
            s.push_str(&format!(": {why}"));
        }
        match &result {
            Some(v) => {
                s.push_str(&format!("\n{}", serde_json::to_string_pretty(v).unwrap_or_default()))
            }
            None if for_results && r.status == LaunchUriStatus::Success => {
                s.push_str("\n(the target exited without reporting a result)");
            }
            None => {}
        }
        s
    })?;
    Ok(match r.status {
        LaunchUriStatus::Success => ExitCode::SUCCESS,
        LaunchUriStatus::AppUnavailable | LaunchUriStatus::ProtocolUnavailable => {
            exit::Class::Unavailable.exit()
        }
        LaunchUriStatus::Unknown => exit::Class::Failed.exit(),
    })
}
