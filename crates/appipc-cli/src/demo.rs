//! `appipc demo`: a broker on a temporary home, the example packages, and for each rule what
//! is allowed and what is refused, with the reason.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc::management::InstallOutcome;
use appipc::trust::{DeveloperMode, TrustStore};
use appipc::{
    ActivateOptions, AddPackageOptions, ApplicationActivationManager, PackageManager, Session,
};
use appipc_model::package_file::SecretKey;
use appipc_testkit::{
    CONTOSO_DEVICE, EXAMPLES, FABRIKAM_LOOP_CLIENT, FABRIKAM_SENSORS,
    FABRIKAM_SENSORS_DESCRIPTOR_DRAFT, FABRIKAM_SENSORS_DESCRIPTOR_FILE, FABRIKAM_TOOLS, HELLO,
    assemble_manifest,
};

/// `text` in an ANSI style when stdout is a terminal.
fn styled(code: &str, text: &str) -> String {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn step(n: u32, title: &str) {
    println!("\n{}", styled("1", &format!("== {n}. {title}")));
}

fn allowed(what: &str) {
    println!("   {}  {what}", styled("32", "ALLOWED"));
}

fn refused(what: &str, why: &dyn std::fmt::Display) {
    println!("   {}  {what}\n            reason: {why}", styled("31", "REFUSED"));
}

struct DemoBroker {
    child: std::process::Child,
}

impl Drop for DemoBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the demo.
pub(crate) fn run() -> Result<ExitCode> {
    let bins = std::env::current_exe()
        .context("finding the appipc executable")?
        .parent()
        .context("executable has a folder")?
        .to_path_buf();
    if !bins.join("hello-app").is_file() {
        bail!(
            "the example binaries are not next to {} (hello-app is missing); build the whole \
             workspace first: cargo build --workspace",
            bins.display()
        );
    }
    let root =
        tempfile::Builder::new().prefix("appipc-demo-").tempdir().context("temporary folder")?;
    let home = root.path().join("home");
    let run_dir = root.path().join("run");
    let socket = run_dir.join("broker.sock");

    println!("appipc demo: the Windows packaged-app model on Linux, end to end.");
    step(1, "start a broker on a temporary home");
    let log = std::fs::File::create(root.path().join("broker.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("daemon")
        .env("APPIPC_HOME", &home)
        .env("APPIPC_RUNTIME_DIR", &run_dir)
        .env("APPIPC_LOG", "info")
        .env_remove("APPIPC_SESSION_FD")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the broker")?;
    let mut broker = DemoBroker { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while appipc_sys::socket::seqpacket_connect(&socket).is_err() {
        if broker.child.try_wait()?.is_some() || Instant::now() > deadline {
            bail!(
                "the broker did not start; log:\n{}",
                std::fs::read_to_string(root.path().join("broker.log"))?
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "   appipcd pid {} serving {} (state in {})",
        broker.child.id(),
        socket.display(),
        home.display()
    );

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(scenario(root.path(), &bins, &socket));
    let _ = rt.block_on(async {
        let s = Session::connect_to(&socket)?;
        appipc::broker::shutdown(&s).await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(broker);
    result?;
    println!("\nEvery decision above was logged by the broker with its reason");
    println!("(run `APPIPC_LOG=debug appipc daemon` to watch them live).");
    Ok(ExitCode::SUCCESS)
}

async fn launch_and_wait(session: &Session, target: &str, args: &[&str]) -> Result<i32> {
    let aam = ApplicationActivationManager::new(session);
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    std::io::stdout().flush()?;
    let (relay, stdio) = crate::relay::Relay::start(false)?;
    let options = ActivateOptions { stdio: Some(stdio), notify_exit: true };
    let (pid, _) = aam.activate_application(target, &args, options).await?;
    let status = session.wait_for_exit(pid).await?;
    relay.finish();
    Ok(status.code.unwrap_or(-1))
}

async fn scenario(root: &Path, bins: &Path, socket: &Path) -> Result<()> {
    let session = Session::connect_to(socket)?;
    let pm = PackageManager::new(&session);

    step(
        2,
        "sign the example packages with their publishers' keys, trust the keys, install the files",
    );
    let keys = Keys::make(root)?;
    for k in [&keys.contoso, &keys.fabrikam] {
        let t = TrustStore::add(&session, &k.public_key().to_file_text()).await?;
        println!(
            "   $ appipc trust add {}   (key {}…)",
            keys.public_file(k).display(),
            &t.key_id[..16]
        );
    }
    let mut families = Vec::new();
    for ex in EXAMPLES {
        let dir = assemble_manifest(ex.manifest, &root.join(ex.name), bins)?;
        let file = keys.pack(&dir, root, ex.name)?;
        let r = install_file(&pm, &file).await?;
        allowed(&format!("install {}.appipc -> {}", ex.name, r.full_name));
        families.push(r.family_name);
    }
    let (hello, tools) = (families[0].clone(), families[1].clone());
    let (services, client, bridge) =
        (families[2].clone(), families[3].clone(), families[4].clone());

    step(
        3,
        "what does not install: an unsigned folder, another publisher's claim, a tampered file",
    );
    let loose = assemble_manifest(HELLO.manifest, &root.join("loose"), bins)?;
    match pm.add_package(&loose).await {
        Ok(r) => bail!("a folder installed without developer mode: {}", r.full_name),
        Err(e) => {
            refused("install the folder of Contoso.Hello (developer mode is off)", &coded(&e))
        }
    }
    // Anyone can make a key that names Contoso; only the user's trust makes it Contoso's.
    let mallory = SecretKey::generate(CONTOSO).context("making a key")?;
    let claim_text = HELLO.manifest.replace("version = \"1.0.0.0\"", "version = \"9.0.0.0\"");
    let claim = assemble_manifest(&claim_text, &root.join("claim"), bins)?;
    let claim_file = root.join("claim.appipc");
    crate::packaging::pack_dir(&claim, &mallory, &claim_file)?;
    match pm.add_package(&claim_file).await {
        Ok(r) => bail!("a package signed by an untrusted key installed: {}", r.full_name),
        Err(e) => refused(
            "install Contoso.Hello 9.0.0.0 signed by someone else's key for Contoso",
            &coded(&e),
        ),
    }
    let tampered = root.join("hello-tampered.appipc");
    let mut bytes = std::fs::read(root.join("hello.appipc"))?;
    flip_a_byte_of(&mut bytes, "bin/hello-app")?;
    std::fs::write(&tampered, bytes)?;
    match pm.add_package(&tampered).await {
        Ok(r) => bail!("a tampered package file installed: {}", r.full_name),
        Err(e) => {
            refused("install hello.appipc with one byte of bin/hello-app changed", &coded(&e))
        }
    }

    step(4, "list installed packages");
    crate::print_packages(&pm.find_packages().await?);

    step(5, "launch an app-container app: it prints who the broker says it is");
    let spare = assemble_manifest(HELLO.manifest, &root.join("spare"), bins)?;
    println!(
        "   $ appipc launch --wait {hello} -- --child --packages --try-install {}",
        spare.display()
    );
    launch_and_wait(
        &session,
        &hello,
        &["--child", "--packages", "--try-install", spare.to_str().unwrap_or("")],
    )
    .await?;
    println!("   (the child inherited the session, as Windows children inherit the token; the app");
    println!("    container saw only its own package and was refused deployment)");

    step(
        6,
        "the app container: the host's files are not there, the full-trust helper fetches them",
    );
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "a line only the user's own programs may read\n")?;
    println!("   $ appipc launch --wait {hello} -- --try-read {}", secret.display());
    launch_and_wait(&session, &hello, &["--try-read", secret.to_str().unwrap_or("")]).await?;
    println!("   $ appipc launch --wait {bridge} -- {}", secret.display());
    launch_and_wait(&session, &bridge, &[secret.to_str().unwrap_or("")]).await?;
    println!(
        "   (the app runs in namespaces of its own, behind Landlock and seccomp; its full-trust"
    );
    println!("    helper, declared in the same package, runs outside with the package's identity)");

    step(7, "launch a full-trust tool of another publisher");
    println!("   $ appipc launch --wait {tools}!Tool -- --packages");
    launch_and_wait(&session, &format!("{tools}!Tool"), &["--packages"]).await?;

    step(8, "app services: a client of another publisher calls Contoso's providers");
    println!("   $ appipc launch --wait {client}");
    launch_and_wait(&session, &client, &[]).await?;
    println!(
        "   (the broker started each provider on demand -- out of process, and the in-process"
    );
    println!("    one in the background -- then stepped aside: the data went peer to peer)");
    app_services(&session, &services).await?;

    step(
        9,
        "files between apps: a token through an app service, a token from the user, the publisher cache",
    );
    let note = root.join("home/data").join(&hello).join("LocalState/note.txt");
    println!(
        "   $ appipc launch --wait {hello} -- --write-note ... --send-token {}",
        note.display()
    );
    launch_and_wait(
        &session,
        &hello,
        &["--write-note", "a note for Fabrikam", "--send-token", note.to_str().unwrap_or("")],
    )
    .await?;
    let f = std::fs::File::open(&secret)?;
    let token = appipc::SharedStorageAccessManager::add_file(&session, &f).await?;
    allowed(&format!("the user shares {} read-only: token {token}", secret.display()));
    println!("   $ appipc launch --wait {hello} -- --redeem {token} --redeem {token}");
    launch_and_wait(&session, &hello, &["--redeem", &token, "--redeem", &token]).await?;
    println!("   (tokens are single-use; the redeemer gets the file by fd, read-only as shared)");
    println!(
        "   $ appipc launch --wait {hello} -- --cache-write Shared ... --cache-read Elsewhere"
    );
    launch_and_wait(
        &session,
        &hello,
        &["--cache-write", "Shared", "for every Contoso app", "--cache-read", "Elsewhere"],
    )
    .await?;
    for c in appipc::ApplicationData::publisher_cache_folders(&session).await? {
        println!(
            "   publisher cache {} / {}: {} bytes, declared by {}",
            c.publisher_id,
            c.folder,
            c.size,
            c.packages.join(", ")
        );
    }

    step(
        10,
        "shared memory and an event across packages: refused without an entry, allowed with one",
    );
    let viewer = format!("{tools}!Viewer");
    let viewer_sid = appipc_model::sid::appcontainer_sid(&tools).to_string();
    let prefix = appipc::named_objects::named_object_path(&session, &hello).await?;
    let aam = ApplicationActivationManager::new(&session);
    // Built entry by entry; the SDDL text is what a Windows developer would write. As on
    // Windows, an app container needs both a user-side entry (here OW: the owner, the user)
    // and an entry for its package; it gets what both grant.
    use appipc::named_objects::{GENERIC_ALL, GENERIC_READ, GENERIC_WRITE, SecurityDescriptor};
    let sddl = SecurityDescriptor::new()
        .allow_owner(GENERIC_ALL)
        .allow_package(&viewer_sid, GENERIC_READ)
        .to_sddl();
    let event_sddl = SecurityDescriptor::new()
        .allow_owner(GENERIC_ALL)
        .allow_package(&viewer_sid, GENERIC_WRITE)
        .to_sddl();
    println!(
        "   Contoso.Hello creates Local\\frame (default: its package only) and Local\\shared ({sddl})"
    );
    println!("   and waits on the event Local\\ready ({event_sddl}) for Fabrikam's signal");
    let (holder_relay, holder_stdio) = crate::relay::Relay::start(false)?;
    let (holder, _) = aam
        .activate_application(
            &hello,
            &[
                "--map-create".into(),
                r"Local\frame".into(),
                "4096".into(),
                "a private frame".into(),
                "--map-create".into(),
                r"Local\shared".into(),
                "4096".into(),
                "a frame for Fabrikam".into(),
                "--sddl".into(),
                sddl,
                "--event-wait".into(),
                r"Local\ready".into(),
                "--sddl".into(),
                event_sddl,
            ],
            ActivateOptions { stdio: Some(holder_stdio), notify_exit: true },
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = appipc::named_objects::list(&session).await?.iter().any(|o| o.name == "ready");
        if listed || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        r"   $ appipc launch --wait {viewer} -- --map-open {prefix}\frame r --map-open {prefix}\shared r --event-set {prefix}\ready"
    );
    launch_and_wait(
        &session,
        &viewer,
        &[
            "--map-open",
            &format!(r"{prefix}\frame"),
            "r",
            "--map-open",
            &format!(r"{prefix}\shared"),
            "r",
            "--event-set",
            &format!(r"{prefix}\ready"),
        ],
    )
    .await?;
    // Contoso.Hello prints that it was signalled and exits.
    if tokio::time::timeout(Duration::from_secs(10), session.wait_for_exit(holder)).await.is_err() {
        println!("   (Contoso.Hello did not see the signal in 10 s)");
    }
    holder_relay.finish();
    println!("   (error 5 is ERROR_ACCESS_DENIED; the granted mapping is read-only for Fabrikam)");

    step(11, "developer mode: folders install unsigned, checked as strictly, marked as such");
    DeveloperMode::set(&session, true).await?;
    println!("   $ appipc dev-mode on");
    let bad = root.join("broken");
    std::fs::create_dir_all(&bad)?;
    std::fs::write(
        bad.join("appipc.toml"),
        "[package]\nname = \"Contoso.Broken\"\npublisher = \"CN=Contoso\"\nversion = \"1.0.0.0\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/hello-app\"\n\n\
         [[application.app-service]]\nname = \".echo\"\n",
    )?;
    match pm.add_package(&bad).await {
        Ok(r) => bail!("a broken manifest was installed: {}", r.full_name),
        Err(e) => refused("install broken/appipc.toml", &e),
    }
    let newer_text = HELLO.manifest.replace("version = \"1.0.0.0\"", "version = \"1.1.0.0\"");
    let newer = assemble_manifest(&newer_text, &root.join("loose-1.1"), bins)?;
    match pm.add_package(&newer).await {
        Ok(r) => bail!("an unsigned folder replaced a signed package: {}", r.full_name),
        Err(e) => {
            refused("install a folder of Contoso.Hello 1.1.0.0 over the signed 1.0.0.0", &coded(&e))
        }
    }
    let unsigned_text =
        HELLO.manifest.replace("name = \"Contoso.Hello\"", "name = \"Contoso.Sketch\"");
    let unsigned = assemble_manifest(&unsigned_text, &root.join("sketch"), bins)?;
    let r = pm.add_package(&unsigned).await?;
    allowed(&format!("install the folder of {}: listed as unsigned (developer mode)", r.full_name));
    DeveloperMode::set(&session, false).await?;
    println!("   $ appipc dev-mode off");

    step(12, "upgrade, reinstall and downgrade");
    let v2_text = FABRIKAM_TOOLS.manifest.replace("version = \"2.1.0.0\"", "version = \"2.2.0.0\"");
    let v2 =
        keys.pack(&assemble_manifest(&v2_text, &root.join("tools-v2"), bins)?, root, "tools-v2")?;
    let r = install_file(&pm, &v2).await?;
    assert_eq!(r.outcome, InstallOutcome::Upgraded);
    allowed(&format!(
        "upgrade {} -> {} (app data kept)",
        r.replaced.unwrap_or_default(),
        r.full_name
    ));
    let r = install_file(&pm, &v2).await?;
    allowed(&format!("install {} again: {:?} (idempotent)", r.full_name, r.outcome));
    let v1 = root.join("fabrikam-tools.appipc");
    match pm.add_package(&v1).await {
        Ok(r) => bail!("a downgrade was installed: {}", r.full_name),
        Err(e) => refused("install Fabrikam.Tools 2.1.0.0 over 2.2.0.0", &e),
    }

    step(13, "the broker tracks the processes it started; removing a package stops them");
    let aam = ApplicationActivationManager::new(&session);
    let (pid, aumid) = aam
        .activate_application(&hello, &["--sleep".into(), "60".into()], ActivateOptions::default())
        .await?;
    for p in pm.running_processes().await? {
        println!("   running: pid {} {} ({})", p.pid, p.app_user_model_id, p.trust.as_str());
        println!("            confinement: {}", p.confinement);
    }
    let (full, stopped) = pm.remove_package(&hello).await?;
    allowed(&format!("remove {full}: stopped {stopped} process (pid {pid}, {aumid})"));
    match aam.activate_application(&hello, &[], ActivateOptions::default()).await {
        Ok(_) => bail!("a removed package launched"),
        Err(e) => refused(&format!("launch {hello} after removal"), &e),
    }
    launch_for_results(&session, &families[5], &families[6]).await?;
    registry(&session, &pm, &keys, root, bins).await?;
    loopback(root, bins, &session, &keys, &families[7], &families[8]).await?;
    device_service(root, bins, &session, &keys).await?;
    packaged_com(root, bins, &session, &keys).await
}

/// Step 17: an RPC endpoint guarded by Contoso's custom capability, a typed interface and a
/// callback; the capability granted by a descriptor Contoso signed for Fabrikam's app.
async fn device_service(root: &Path, bins: &Path, session: &Session, keys: &Keys) -> Result<()> {
    use appipc_model::sccd::SignedDescriptor;
    const ENDPOINT: &str = "contoso.device";
    step(17, "RPC: Fabrikam's app calls Contoso's device service, by a capability Contoso signed");
    let pm = PackageManager::new(session);
    let dir = assemble_manifest(CONTOSO_DEVICE.manifest, &root.join("contoso-device"), bins)?;
    let r = install_file(&pm, &keys.pack(&dir, root, "contoso-device")?).await?;
    allowed(&format!("install contoso-device.appipc -> {}", r.full_name));
    let device = r.family_name;
    // Contoso, the capability's owner, signs a descriptor naming Fabrikam's package and key.
    let fabrikam_key = keys.fabrikam.public_key().id().to_string();
    let draft = FABRIKAM_SENSORS_DESCRIPTOR_DRAFT.replace("FABRIKAM_KEY_ID", &fabrikam_key);
    let signed = SignedDescriptor::parse(&draft)?.descriptor.sign(&keys.contoso).to_toml();
    let cap = SignedDescriptor::parse(&signed)?.descriptor.custom_capabilities[0].to_string();
    println!(
        "   $ appipc sccd sign {FABRIKAM_SENSORS_DESCRIPTOR_FILE} --key contoso.secret.toml\
         \n     (Contoso grants {cap} to Fabrikam.Sensors signed by key {}…)",
        &fabrikam_key[..16]
    );
    let mut installed = Vec::new();
    // The client, and the same app in a package of another name carrying the same descriptor.
    for (name, text) in [
        ("fabrikam-sensors", FABRIKAM_SENSORS.manifest.to_owned()),
        ("sensor-spy", FABRIKAM_SENSORS.manifest.replace("Fabrikam.Sensors", "Fabrikam.SensorSpy")),
    ] {
        let dir = assemble_manifest(&text, &root.join(name), bins)?;
        std::fs::write(dir.join(FABRIKAM_SENSORS_DESCRIPTOR_FILE), &signed)?;
        let r = install_file(&pm, &keys.pack(&dir, root, name)?).await?;
        allowed(&format!("install {name}.appipc -> {}", r.full_name));
        match r.not_granted.first() {
            None => allowed(&format!("grant {cap} to {}: the descriptor names it", r.family_name)),
            Some(n) => refused(&format!("grant {} to {}", n.name, r.family_name), &n.reason),
        }
        installed.push(r.family_name);
    }
    let (sensors, spy) = (&installed[0], &installed[1]);
    if !spy.starts_with("Fabrikam.SensorSpy_") {
        bail!("the second package is {spy}");
    }
    let aam = ApplicationActivationManager::new(session);
    aam.activate_application(&device, &["30".to_owned()], ActivateOptions::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let endpoint = loop {
        let list = appipc::rpc::list(session).await?;
        if let Some(e) = list.into_iter().find(|e| e.name == ENDPOINT) {
            break e;
        }
        if Instant::now() > deadline {
            bail!("{device} did not register {ENDPOINT}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("   {device} serves {ENDPOINT} with {}", endpoint.sddl);
    println!("   $ appipc launch --wait {sensors}");
    launch_and_wait(session, sensors, &[]).await?;
    println!("   $ appipc launch --wait {spy}");
    launch_and_wait(session, spy, &[]).await?;
    let filter = appipc::diagnostics::DecisionFilter {
        package_family_name: Some(spy.clone()),
        denials_only: true,
    };
    let d = appipc::diagnostics::recent(session, &filter, 1).await?;
    let Some(d) = d.last() else { bail!("the refusal of {spy} is not in the decision log") };
    println!("   $ appipc why --package {spy}");
    refused(&format!("{}.{} {} from {spy}", d.mechanism, d.operation, d.object), &d.rule);
    if let Some(r) = &d.remedy {
        println!("            to allow: {r}");
    }
    println!(
        "   (the broker checked the endpoint's descriptor once, at connect; the calls and the"
    );
    println!("    callbacks then went peer to peer, typed, over the connection it handed out)");
    Ok(())
}

/// The first method of Contoso's `SpellChecker` (`appipc_examples::spellcheck`, which the CLI
/// does not link). A client declares the methods it calls, in their order, under the
/// interface's UUID and version, as a MIDL client is compiled from the server's IDL.
#[appipc::interface(uuid = "a882858a-cfdd-4ec0-9550-c63f72c6edd3", version = "1.0")]
trait SpellChecker {
    /// The serving process as it sees itself.
    async fn server_info(
        &self,
        cx: &appipc::rpc::CallContext,
    ) -> appipc::rpc::CallResult<SpellServerInfo>;
}

/// The part of the spell checker's `ServerInfo` the demo shows (fields by name).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SpellServerInfo {
    pid: u32,
    package_family_name: String,
    app_id: String,
    activation: String,
    arguments: Vec<String>,
}

/// `appipc com list`, as the command prints it, indented as the demo's output is.
async fn print_com_list(session: &Session) -> Result<appipc::com::ComList> {
    let list = appipc::com::list(session).await?;
    for line in crate::com::render(&list, false) {
        println!("   {line}");
    }
    Ok(list)
}

/// Step 18: packaged COM. Contoso's full-trust package declares a spell checker class; the
/// broker starts its server as that package for an activation, a confined client the
/// permission names uses it and is called back, one it does not name is refused, and the
/// server exits when its last object is released.
async fn packaged_com(root: &Path, bins: &Path, session: &Session, keys: &Keys) -> Result<()> {
    use appipc::com;
    const PROG_ID: &str = "Contoso.SpellChecker";
    step(18, "COM: Fabrikam's app creates Contoso's spell checker by ProgID, served as Contoso");
    let pm = PackageManager::new(session);
    let server_text = include_str!("../../../examples/contoso-spellcheck/appipc.toml");
    let writer_text = include_str!("../../../examples/fabrikam-writer/appipc.toml");
    let mut installed = Vec::new();
    // The server, the client its permission names, and the same client under another name.
    for (name, text) in [
        ("contoso-spellcheck", server_text.to_owned()),
        ("fabrikam-writer", writer_text.to_owned()),
        ("fabrikam-scribbler", writer_text.replace("Fabrikam.Writer", "Fabrikam.Scribbler")),
    ] {
        let dir = assemble_manifest(&text, &root.join(name), bins)?;
        let r = install_file(&pm, &keys.pack(&dir, root, name)?).await?;
        allowed(&format!("install {name}.appipc -> {}", r.full_name));
        installed.push(r.family_name);
    }
    let (server, writer, scribbler) = (&installed[0], &installed[1], &installed[2]);
    if !scribbler.starts_with("Fabrikam.Scribbler_") {
        bail!("the third package is {scribbler}");
    }
    println!("   $ appipc com list   (the catalog: the classes of the installed packages)");
    print_com_list(session).await?;

    // This process (unpackaged: the user side of the permission decides) creates an object;
    // the broker starts the server.
    let clsid = com::clsid_from_prog_id(session, PROG_ID).await?;
    let mine = com::co_create_instance::<dyn SpellChecker>(session, &clsid).await?.client()?;
    let info = mine.server_info().await?;
    allowed(&format!(
        "CoCreateInstance({{{clsid}}}) from the demo: the broker started pid {}",
        info.pid
    ));
    println!(
        "            as {}!{} (Activate-As-Package), full trust, APPIPC_ACTIVATION={}, \
         arguments {:?}",
        info.package_family_name, info.app_id, info.activation, info.arguments
    );
    if info.package_family_name != *server {
        bail!("the server runs as {:?}, not as {server}", info.package_family_name);
    }
    println!("   $ appipc com list");
    let list = print_com_list(session).await?;
    if !list.servers.iter().any(|s| s.pid == info.pid) {
        bail!("pid {} is not listed as a running server", info.pid);
    }

    println!("   $ appipc launch --wait {writer}");
    launch_and_wait(session, writer, &[]).await?;
    println!(
        "   (the same server, pid {}: it registered its class REGCLS_MULTIPLEUSE, so every",
        info.pid
    );
    println!("    activation reaches it while it runs; each got an object of its own)");
    println!("   $ appipc launch --wait {scribbler}");
    launch_and_wait(session, scribbler, &[]).await?;
    let filter = appipc::diagnostics::DecisionFilter {
        package_family_name: Some(scribbler.clone()),
        denials_only: true,
    };
    let d = appipc::diagnostics::recent(session, &filter, 1).await?;
    let Some(d) = d.last() else { bail!("the refusal of {scribbler} is not in the decision log") };
    println!("   $ appipc why --package {scribbler}");
    refused(&format!("{}.{} {} from {scribbler}", d.mechanism, d.operation, d.object), &d.rule);
    if let Some(r) = &d.remedy {
        println!("            to allow: {r}");
    }
    let unknown = "00000000-0000-0000-0000-000000000001";
    match com::co_create_instance::<dyn SpellChecker>(session, unknown).await {
        Ok(_) => bail!("an unknown class was created"),
        Err(e) => refused(&format!("CoCreateInstance({{{unknown}}})"), &e),
    }

    // The demo's object is the last: releasing it takes the server's count to zero.
    drop(mine);
    wait_for_com_server_exit(session, info.pid).await?;
    allowed(&format!(
        "release the last object: the server (pid {}) suspended and revoked its class and exited",
        info.pid
    ));
    println!("   $ appipc com list");
    print_com_list(session).await?;
    // The next activation starts a new server process.
    let again = com::co_create_instance::<dyn SpellChecker>(session, &clsid).await?.client()?;
    let pid = again.server_info().await?.pid;
    if pid == info.pid {
        bail!("the activation after the exit reached pid {pid} again");
    }
    allowed(&format!("CoCreateInstance({{{clsid}}}) again: a new server, pid {pid}"));
    drop(again);
    wait_for_com_server_exit(session, pid).await?;
    println!("   (the broker checked the permission and started the server; the calls and the");
    println!("    callbacks then went peer to peer, typed, over the connection it handed out)");
    Ok(())
}

/// Waits (10 s at most) until the COM server `pid` is neither listed nor running.
async fn wait_for_com_server_exit(session: &Session, pid: u32) -> Result<()> {
    let pm = PackageManager::new(session);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = appipc::com::list(session).await?.servers.iter().any(|s| s.pid == pid);
        if !listed && !pm.running_processes().await?.iter().any(|p| p.pid == pid) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the COM server (pid {pid}) still runs 10 s after its last object was released");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Step 15: two processes of one package talk through its private registry hive.
async fn registry(
    session: &Session,
    pm: &PackageManager,
    keys: &Keys,
    root: &Path,
    bins: &Path,
) -> Result<()> {
    use appipc::registry::{HKEY_CURRENT_USER, RegKey, RegValue};
    const KEY: &str = r"Software\Contoso\Settings";
    step(15, "the registry: two processes of Contoso.Settings talk through its private hive");
    let manifest = include_str!("../../../examples/contoso-settings/appipc.toml");
    let dir = assemble_manifest(manifest, &root.join("contoso-settings"), bins)?;
    let shipped = include_bytes!("../../../examples/contoso-settings/Registry.reg");
    std::fs::write(dir.join("Registry.reg"), shipped)?;
    let file = keys.pack(&dir, root, "contoso-settings")?;
    let r = install_file(pm, &file).await?;
    allowed(&format!("install contoso-settings.appipc (with its Registry.reg) -> {}", r.full_name));
    let family = r.family_name;
    println!("   $ appipc launch --wait {family}");
    launch_and_wait(session, &family, &[]).await?;
    match RegKey::current_user(session).open(KEY).await {
        Ok(_) => bail!("the package's HKCU write reached the user's own HKCU"),
        Err(e) => refused(&format!("open HKCU\\{KEY} in the user's own view"), &e),
    }
    println!("   $ appipc reg query HKCU\\{KEY} --package {family} --explain");
    let view = RegKey::package_view(session, HKEY_CURRENT_USER, &family).await?;
    for v in view.open(KEY).await?.enum_values().await? {
        let layer = v.layer.clone();
        let (name, text) = (v.name.clone(), RegValue::from(v).as_str().unwrap_or_default());
        println!("       {name}    REG_SZ    {text}    [{layer}]");
    }
    println!("   (its private hive: kept across upgrades, deleted with the package)");
    Ok(())
}

/// Step 16: loopback between packages of two publishers: refused with its reason, then allowed.
async fn loopback(
    root: &Path,
    bins: &Path,
    session: &Session,
    keys: &Keys,
    server: &str,
    client: &str,
) -> Result<()> {
    step(16, "loopback: Fabrikam's app connects to Contoso's TCP server on 127.0.0.1");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let aam = ApplicationActivationManager::new(session);
    let args = [port.to_string(), "30".to_owned()];
    aam.activate_application(server, &args, ActivateOptions::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !appipc::loopback::inbound_ports(session, server).await?.contains(&port) {
        if Instant::now() > deadline {
            bail!("{server} did not listen on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("   {server} listens on 127.0.0.1:{port} in its own network namespace");
    // The same client app in a package that declares no rule for the server.
    let text = FABRIKAM_LOOP_CLIENT
        .manifest
        .replace("Fabrikam.LoopClient", "Fabrikam.LoopStranger")
        .replace("direction = \"out\"", "direction = \"in\"");
    let dir = assemble_manifest(&text, &root.join("loop-stranger"), bins)?;
    let file = keys.pack(&dir, root, "loop-stranger")?;
    let stranger = install_file(&PackageManager::new(session), &file).await?.family_name;
    let p = port.to_string();
    launch_and_wait(session, &stranger, &[&p]).await?;
    let v = appipc::loopback::why(session, Some(&stranger), Some(server), Some(port)).await?;
    refused(&format!("connect from {stranger}"), &v.rule);
    if let Some(r) = &v.remedy {
        println!("            to allow: {r}");
    }
    launch_and_wait(session, client, &[&p]).await?;
    let v = appipc::loopback::why(session, Some(client), Some(server), Some(port)).await?;
    allowed(&format!("connect from {client}: {}", v.rule));
    Ok(())
}

/// Step 14: protocol activation for results between two publishers.
async fn launch_for_results(session: &Session, picker: &str, photos: &str) -> Result<()> {
    step(14, "launch for results: Fabrikam's app asks Contoso's picker for a photo, by URI");
    println!("   $ appipc launch --wait {photos} -- {picker}");
    launch_and_wait(session, photos, &[picker]).await?;
    println!("   (the broker started the picker confined for contoso-pick:, told it who asked,");
    println!("    and held the call open until it reported; the photo came as a file token)");
    let r = appipc::Launcher::launch_uri_detailed(
        session,
        "contoso-pick:photo",
        &appipc::LauncherOptions::for_package(picker),
        None,
    )
    .await?;
    match r.extended_error {
        Some(why) => refused("launch contoso-pick:photo without results", &why),
        None => bail!("a return-results = \"always\" protocol was launched plainly"),
    }
    Ok(())
}

/// The demo's signing keys, one per publisher of the examples.
struct Keys {
    contoso: SecretKey,
    fabrikam: SecretKey,
    dir: std::path::PathBuf,
}

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";

impl Keys {
    /// New keys, written as `appipc key new` writes them (the demo shows their files).
    fn make(root: &Path) -> Result<Keys> {
        let dir = root.join("keys");
        std::fs::create_dir_all(&dir)?;
        let keys = Keys {
            contoso: SecretKey::generate(CONTOSO).context("making a key")?,
            fabrikam: SecretKey::generate(FABRIKAM).context("making a key")?,
            dir,
        };
        for k in [&keys.contoso, &keys.fabrikam] {
            println!("   $ appipc key new --publisher {:?}", k.publisher().as_str());
            std::fs::write(keys.public_file(k), k.public_key().to_file_text())?;
        }
        Ok(keys)
    }

    fn public_file(&self, k: &SecretKey) -> std::path::PathBuf {
        let name = if k.publisher().as_str() == CONTOSO { "contoso" } else { "fabrikam" };
        self.dir.join(format!("{name}.public.toml"))
    }

    /// Packs `dir` into `root/NAME.appipc`, signed with its publisher's key.
    fn pack(&self, dir: &Path, root: &Path, name: &str) -> Result<std::path::PathBuf> {
        let m = appipc_model::manifest::load(dir)?;
        let key = if m.identity.publisher == CONTOSO { &self.contoso } else { &self.fabrikam };
        let file = root.join(format!("{name}.appipc"));
        crate::packaging::pack_dir(dir, key, &file)?;
        Ok(file)
    }
}

/// Installs a package file, consenting to its restricted capabilities as `install --yes` does.
async fn install_file(pm: &PackageManager, file: &Path) -> Result<appipc::DeploymentResult> {
    let preview = pm.inspect_package(file).await?;
    for c in &preview.consent_needed {
        println!(
            "   consent  {} asks for {}: lets it {} (the demo grants it, as --yes does)",
            preview.family_name, c.name, c.allows
        );
    }
    let consent = preview.consent_needed.iter().map(|c| c.name.clone()).collect();
    Ok(pm.add_package_with(file, &AddPackageOptions { consent }).await?)
}

/// An install refusal with its HRESULT.
fn coded(e: &appipc::Error) -> String {
    match e.windows_code() {
        appipc::WindowsCode::HResult(c) => format!("{e} (HRESULT {c:#010X})"),
        _ => e.to_string(),
    }
}

/// Changes one byte of the named entry's content in a package file (tar: 512-byte headers,
/// name at 0, octal size at 124, data padded to 512).
fn flip_a_byte_of(archive: &mut [u8], name: &str) -> Result<()> {
    let mut at = 0usize;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let entry = String::from_utf8_lossy(&header[..100]).trim_end_matches('\0').to_owned();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size =
            usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)?;
        if entry == name && size > 0 {
            archive[at + 512 + size / 2] ^= 0x01;
            return Ok(());
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    bail!("{name} is not in the package file")
}

/// Calls from this (unpackaged) process: one allowed, and each refusal with its Windows status.
async fn app_services(session: &Session, services: &str) -> Result<()> {
    use appipc::app_service::{
        AppServiceConnection, AppServiceConnectionStatus, AppServiceResponseStatus,
    };
    use appipc::wire::ValueSet;
    let mut conn = AppServiceConnection::new(services, "com.contoso.echo");
    let status = conn.open(session).await;
    if status != AppServiceConnectionStatus::Success {
        bail!("opening com.contoso.echo: {status}");
    }
    let mut m = ValueSet::new();
    m.insert("greeting", "hello from the demo");
    m.insert("caller", "Forged.Name_8wekyb3d8bbwe");
    let r = conn.send_message(m).await;
    allowed(&format!(
        "unpackaged call to com.contoso.echo: {}; caller as the broker attests it: {:?} (the forged one was overwritten)",
        r.status,
        r.message.get("caller").and_then(|v| v.as_string()).unwrap_or("?")
    ));
    let mut big = ValueSet::new();
    big.insert("blob", vec![0u8; 20 << 20]);
    let r = conn.send_message(big).await;
    if r.status != AppServiceResponseStatus::MessageSizeTooLarge {
        bail!("a 20 MiB message was not refused: {}", r.status);
    }
    refused("send a 20 MiB message to a service with a 16 MiB limit", &r.status);
    conn.close();
    for (pfn, name, why) in [
        (services, "com.contoso.echo.private", "a service that takes packaged callers only"),
        (services, "com.contoso.nope", "a service the package does not declare"),
        ("Nobody.Here_8wekyb3d8bbwe", "com.contoso.echo", "a package that is not installed"),
    ] {
        let status = AppServiceConnection::new(pfn, name).open(session).await;
        if status == AppServiceConnectionStatus::Success {
            bail!("{name} in {pfn} opened");
        }
        refused(&format!("open {name} ({why})"), &status);
    }
    Ok(())
}
