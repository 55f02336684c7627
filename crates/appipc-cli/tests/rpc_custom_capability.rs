//! The device-service example end to end (issue 20): `Contoso.Device`'s confined app
//! (`device-service`) serves the typed interface `SensorService` on an endpoint ACL'd to
//! Contoso's custom capability; confined apps of other packages (`sensor-client`) connect to
//! it. A real broker installs real signed packages carrying descriptors:
//!
//! * the package a valid descriptor names (its family and its signer) connects, reads a sensor
//!   through the typed interface and is called back through the `ObjectRef` it passed;
//! * a package refused the capability at install, for each reason (wrong family name, wrong
//!   signer hash, bad signature, untrusted owner key, a key not owning the capability,
//!   developer-mode-only outside developer mode, no descriptor), is refused at connect with 5;
//!   the install says why, `appipc why` says why, and the server never sees it.
//!
//! Every wait has a deadline (the CLI is run here, not through the testkit's helpers, which
//! wait without one): a process that does not finish is killed and the test fails with what it
//! printed, the server's log and the broker's. Outcomes only: no test asserts how long anything
//! took.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appipc_model::identity::PublisherId;
use appipc_model::package_file::{PublicKey, SecretKey};
use appipc_model::sccd::{AuthorizedEntities, AuthorizedEntity, Descriptor, SignedDescriptor};
use appipc_testkit::{
    CONTOSO_DEVICE, FABRIKAM_SENSORS, FABRIKAM_SENSORS_DESCRIPTOR_DRAFT,
    FABRIKAM_SENSORS_DESCRIPTOR_FILE, SigningKey, TestBroker, assemble_manifest, bin_dir, unique,
};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";
const ENDPOINT: &str = "contoso.device";

/// How long any one command may take before the test calls it hung.
const PATIENCE: Duration = Duration::from_secs(120);

fn cap() -> String {
    format!("Contoso.sensorAccess_{}", PublisherId::from_publisher(CONTOSO))
}

fn pfn(name: &str, publisher: &str) -> String {
    format!("{name}_{}", PublisherId::from_publisher(publisher))
}

fn device() -> String {
    pfn("Contoso.Device", CONTOSO)
}

fn key_id(k: &SigningKey) -> String {
    PublicKey::from_file_text(&std::fs::read_to_string(&k.public).unwrap())
        .unwrap()
        .id()
        .to_string()
}

fn secret(k: &SigningKey) -> SecretKey {
    SecretKey::from_file_text(&std::fs::read_to_string(&k.secret).unwrap()).unwrap()
}

/// What a finished command said.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to its end, at most [`PATIENCE`]; a command still running then is killed and
/// the test fails with its output so far and the broker's log.
fn run(b: &TestBroker, mut cmd: Command, what: &str) -> Out {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let pump = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let stdout = pump(Box::new(child.stdout.take().unwrap()));
    let stderr = pump(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish in {} s (killed). stdout:\n{}\nstderr:\n{}\nserver's log:\n{}\nbroker's log:\n{}",
                PATIENCE.as_secs(),
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default(),
                b.app_log(&device()),
                b.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn cli(b: &TestBroker, args: &[&str]) -> Out {
    let mut cmd = b.cli();
    cmd.args(args);
    run(b, cmd, &format!("appipc {}", args.join(" ")))
}

/// Runs the CLI; fails the test unless it succeeds.
fn cli_ok(b: &TestBroker, args: &[&str]) -> String {
    let out = cli(b, args);
    assert_eq!(out.code, 0, "appipc {}: {}{}", args.join(" "), out.stdout, out.stderr);
    out.stdout
}

/// A new key for `publisher` (`appipc key new`), as [`TestBroker::new_key`] with a deadline.
fn new_key(b: &TestBroker, publisher: &str) -> SigningKey {
    let prefix = b.root.path().join(unique("key")).display().to_string();
    cli_ok(b, &["key", "new", "--publisher", publisher, "-o", &prefix]);
    SigningKey {
        secret: format!("{prefix}.secret.toml").into(),
        public: format!("{prefix}.public.toml").into(),
        publisher: publisher.to_owned(),
    }
}

fn trust(b: &TestBroker, k: &SigningKey) {
    cli_ok(b, &["trust", "add", k.public.to_str().unwrap()]);
}

fn developer_mode(b: &TestBroker, on: bool) {
    cli_ok(b, &["dev-mode", if on { "on" } else { "off" }]);
}

/// Contoso's key (the capability's owner) and Fabrikam's, both trusted.
fn keys(b: &TestBroker) -> (SigningKey, SigningKey) {
    let owner = new_key(b, CONTOSO);
    let client = new_key(b, FABRIKAM);
    trust(b, &owner);
    trust(b, &client);
    (owner, client)
}

/// Fabrikam.Sensors' descriptor draft for `family` and the signer `signer_key_id`, developer
/// mode only or not, unsigned.
fn draft(family: &str, signer_key_id: &str, dev_only: bool) -> Descriptor {
    let text = FABRIKAM_SENSORS_DESCRIPTOR_DRAFT
        .replace("FABRIKAM_KEY_ID", signer_key_id)
        .replace(&pfn("Fabrikam.Sensors", FABRIKAM), family);
    let mut d = SignedDescriptor::parse(&text).unwrap().descriptor;
    d.developer_mode_only = dev_only;
    d
}

/// Signs a descriptor file with `appipc sccd sign` (which refuses a key not owning it).
fn sign(b: &TestBroker, d: &Descriptor, owner: &SigningKey) -> String {
    let path = b.root.path().join(format!("{}.sccd.toml", unique("d")));
    std::fs::write(&path, SignedDescriptor { descriptor: d.clone(), signature: None }.to_toml())
        .unwrap();
    let out =
        cli(b, &["sccd", "sign", path.to_str().unwrap(), "--key", owner.secret.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    std::fs::read_to_string(&path).unwrap()
}

/// Installs the sensor client as package `name` (Fabrikam's), carrying `descriptor` (or none:
/// then its manifest names none), signed by `signer`. Returns its family name and what the
/// install said on stderr.
fn install_client(
    b: &TestBroker,
    name: &str,
    descriptor: Option<&str>,
    signer: &SigningKey,
) -> (String, String) {
    let mut text = FABRIKAM_SENSORS.manifest.replace("Fabrikam.Sensors", name);
    if descriptor.is_none() {
        let line =
            format!("custom-capability-descriptor = \"{FABRIKAM_SENSORS_DESCRIPTOR_FILE}\"\n");
        assert!(text.contains(&line));
        text = text.replace(&line, "");
    }
    let dir: PathBuf = b.root.path().join(unique("client"));
    let dir = assemble_manifest(&text, &dir, &bin_dir()).unwrap();
    if let Some(d) = descriptor {
        std::fs::write(dir.join(FABRIKAM_SENSORS_DESCRIPTOR_FILE), d).unwrap();
    }
    let file = b.root.path().join(format!("{}.appipc", unique("pkg")));
    let (d, k, f) =
        (dir.to_str().unwrap(), signer.secret.to_str().unwrap(), file.to_str().unwrap());
    cli_ok(b, &["pack", d, "--key", k, "-o", f]);
    let out = cli(b, &["install", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "the package installs whatever its descriptor says: {}", out.stderr);
    (pfn(name, FABRIKAM), out.stderr)
}

/// Installs Contoso.Device and starts its app in the background; returns once it serves the
/// endpoint.
fn start_device(b: &TestBroker) {
    let dir = assemble_manifest(
        CONTOSO_DEVICE.manifest,
        &b.root.path().join(unique("device")),
        &bin_dir(),
    )
    .unwrap();
    let out = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(b, &["launch", &device(), "--", "600"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = cli(b, &["--json", "rpc", "list"]);
        let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let listed = list.as_array().into_iter().flatten().find(|e| e["name"] == ENDPOINT);
        if let Some(e) = listed {
            assert_eq!(e["server_package_family_name"], device().as_str(), "{e}");
            let sddl = e["sddl"].as_str().unwrap_or_default();
            let cap_sid = appipc_model::sid::capability_sid(&cap());
            assert!(
                sddl.contains(&format!("D:(A;;GA;;;OW)(A;;0x1;;;{cap_sid})")),
                "the descriptor the example documents, the capability as its SID: {e}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not register {ENDPOINT}; its log:\n{}",
            device(),
            b.app_log(&device())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the sensor client of `pfn` confined, to its end.
fn connect_from(b: &TestBroker, pfn: &str) -> Out {
    cli(b, &["launch", "--wait", pfn])
}

/// Asserts `pfn` connected, read through the typed interface as itself, and was called back
/// three times by the device service.
fn admitted(b: &TestBroker, pfn: &str) {
    let out = connect_from(b, pfn);
    let said = format!("{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "{said}");
    assert!(
        out.stdout.contains(&format!("connected to {ENDPOINT} served by {}", device())),
        "{said}"
    );
    assert!(out.stdout.contains(&format!(", served to {pfn})")), "{said}");
    assert!(out.stdout.contains("sensors: temperature, humidity"), "{said}");
    // A fault of the server's own method comes through as its code.
    assert!(out.stdout.contains("read pressure: the device has no sensor"), "{said}");
    assert!(out.stdout.contains("(error 1168)"), "{said}");
    let callbacks = format!("callback from {}: temperature", device());
    assert_eq!(out.stdout.matches(&callbacks).count(), 3, "{said}");
    // The object's lifetime crosses the processes: once the service drops its reference,
    // the client's listener is released.
    assert!(out.stdout.contains("the service released the listener"), "{said}");
}

/// Asserts the install said the capability was not granted, with `reason`; that the client is
/// refused at connect with 5 and the server never saw it; and that `appipc why` explains it
/// with the same reason.
fn refused(b: &TestBroker, pfn: &str, install_said: &str, reason: &str) {
    let line = format!("capability {} declared but not granted", cap());
    assert!(
        install_said.contains(&line) && install_said.contains(reason),
        "{reason}: {install_said}"
    );
    let out = connect_from(b, pfn);
    let said = format!("{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, 1, "{reason}: {said}");
    assert!(out.stdout.contains(&format!("connect to {ENDPOINT} refused: error 5")), "{said}");
    // The broker's reason, in the client's log line, names the reason too.
    assert!(out.stderr.contains(reason), "{reason}: {said}");
    assert!(!b.app_log(&device()).contains(pfn), "the server saw {pfn}");
    let why = cli(b, &["why", "--package", pfn]);
    assert_eq!(why.code, 0, "{}", why.stderr);
    assert!(
        why.stdout.contains(ENDPOINT)
            && why.stdout.contains(&format!("declares the capability {}", cap()))
            && why.stdout.contains(reason),
        "why explains the refusal ({reason}): {}",
        why.stdout
    );
}

#[test]
fn only_the_package_a_valid_descriptor_names_connects() {
    let b = TestBroker::start();
    let (owner, client) = keys(&b);
    start_device(&b);

    // The package the descriptor names, signed by the key it names.
    let good = pfn("Fabrikam.Sensors", FABRIKAM);
    let d = sign(&b, &draft(&good, &key_id(&client), false), &owner);
    let (sensors, said) = install_client(&b, "Fabrikam.Sensors", Some(&d), &client);
    assert!(!said.contains("not granted"), "{said}");
    admitted(&b, &sensors);
    assert!(b.app_log(&device()).contains(&format!("{sensors} read temperature")));

    // Attacker: another package carries the same descriptor.
    let (copycat, said) = install_client(&b, "Fabrikam.Copycat", Some(&d), &client);
    refused(&b, &copycat, &said, "wrong package family name");

    // Attacker: the family a descriptor names, signed by another key trusted for Fabrikam.
    let mallory = new_key(&b, FABRIKAM);
    trust(&b, &mallory);
    let second = pfn("Fabrikam.Second", FABRIKAM);
    let d2 = sign(&b, &draft(&second, &key_id(&client), false), &owner);
    let (second, said) = install_client(&b, "Fabrikam.Second", Some(&d2), &mallory);
    refused(&b, &second, &said, "wrong signer hash");

    // No descriptor at all.
    let (bare, said) = install_client(&b, "Fabrikam.Bare", None, &client);
    refused(&b, &bare, &said, "not in any descriptor");

    // A developer-mode-only descriptor installed outside developer mode; turning developer
    // mode on afterwards grants nothing until the package is installed again.
    let dev = pfn("Fabrikam.DevOnly", FABRIKAM);
    let d3 = sign(&b, &draft(&dev, &key_id(&client), true), &owner);
    developer_mode(&b, false);
    let (dev, said) = install_client(&b, "Fabrikam.DevOnly", Some(&d3), &client);
    developer_mode(&b, true);
    refused(&b, &dev, &said, "developer-mode-only");

    // The user's own unpackaged process passes the user side alone (OW).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let s = b.session();
        let c = tokio::time::timeout(PATIENCE, appipc::rpc::connect(&s, ENDPOINT, None))
            .await
            .expect("connect within the deadline");
        assert!(c.is_ok(), "{c:?}");
    });
    // And the granted package still connects.
    admitted(&b, &sensors);
}

#[test]
fn descriptors_not_signed_by_the_owners_trusted_key_admit_nobody() {
    let b = TestBroker::start();
    let (owner, client) = keys(&b);
    start_device(&b);

    // Attacker: a descriptor the owner signed for another package, edited to name theirs.
    let original = pfn("Fabrikam.Original", FABRIKAM);
    let d = sign(&b, &draft(&original, &key_id(&client), false), &owner);
    let tampered = d.replace("Fabrikam.Original", "Fabrikam.Tamper");
    assert_ne!(tampered, d);
    let (t, said) = install_client(&b, "Fabrikam.Tamper", Some(&tampered), &client);
    refused(&b, &t, &said, "bad signature");

    // Attacker: a Contoso key of their own, which the user does not trust.
    let rogue = new_key(&b, CONTOSO);
    let name = pfn("Fabrikam.Rogue", FABRIKAM);
    let d = sign(&b, &draft(&name, &key_id(&client), false), &rogue);
    let (r, said) = install_client(&b, "Fabrikam.Rogue", Some(&d), &client);
    refused(&b, &r, &said, "untrusted owner key");

    // Attacker: Fabrikam signs for Contoso's capability with its own trusted key (with the
    // library: `appipc sccd sign` refuses a key not owning the capability).
    let claim = pfn("Fabrikam.Claim", FABRIKAM);
    let forged = Descriptor {
        custom_capabilities: vec![cap().parse().unwrap()],
        authorized_entities: AuthorizedEntities::Entities(vec![AuthorizedEntity {
            package_family_name: claim.parse().unwrap(),
            certificate_signature_hash: key_id(&client).parse().unwrap(),
        }]),
        developer_mode_only: false,
    }
    .sign(&secret(&client))
    .to_toml();
    let (c, said) = install_client(&b, "Fabrikam.Claim", Some(&forged), &client);
    refused(&b, &c, &said, "key not owning the capability");

    // The owner's own valid descriptor for a package still admits it, on the same endpoint.
    let good = pfn("Fabrikam.Sensors", FABRIKAM);
    let d = sign(&b, &draft(&good, &key_id(&client), false), &owner);
    let (sensors, said) = install_client(&b, "Fabrikam.Sensors", Some(&d), &client);
    assert!(!said.contains("not granted"), "{said}");
    admitted(&b, &sensors);
}
