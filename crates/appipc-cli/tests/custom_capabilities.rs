//! Custom capabilities granted by signed custom capability descriptors (issue 20), end to end
//! and from the attacker's side: a real broker installs real signed packages carrying
//! descriptors, and a confined app (`access-probe`) of each opens, or is refused, a named
//! object ACL'd to the custom capability's SID. Every refusal reason is shown at install and
//! explained by `appipc why`.

use std::path::{Path, PathBuf};

use appipc::named_objects::FILE_MAP_READ;
use appipc_model::identity::PublisherId;
use appipc_model::package_file::{PublicKey, SecretKey};
use appipc_model::sccd::{AuthorizedEntities, AuthorizedEntity, Descriptor};
use appipc_testkit::{SigningKey, TestBroker, assemble_manifest, bin_dir, unique};
use appipc_wire::protocol::named_objects::{self as no, NamedObjectKind};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Contoso's custom capability: its owner is Contoso's publisher id.
fn cap() -> String {
    format!("Contoso.sensorAccess_{}", PublisherId::from_publisher(CONTOSO))
}

fn pfn(name: &str, publisher: &str) -> String {
    format!("{name}_{}", PublisherId::from_publisher(publisher))
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

/// An unsigned descriptor for `cap` authorizing `entities` ((PFN, signer key id)), or any
/// package when `None`.
fn descriptor(cap: &str, entities: Option<&[(&str, &str)]>, dev_only: bool) -> String {
    let mut t = format!(
        "format = \"appipc-sccd-1\"\ncustom-capabilities = [\"{cap}\"]\n\
         developer-mode-only = {dev_only}\n\n[authorized-entities]\n"
    );
    match entities {
        None => t.push_str("allow-any = true\n"),
        Some(es) => {
            for (p, h) in es {
                t.push_str(&format!(
                    "[[authorized-entities.entity]]\npackage-family-name = \"{p}\"\n\
                     certificate-signature-hash = \"{h}\"\n"
                ));
            }
        }
    }
    t
}

/// Writes `text` to a new file and signs it with `appipc sccd sign` as `owner`.
fn signed(b: &TestBroker, text: &str, owner: &SigningKey) -> String {
    let path = b.root.path().join(format!("{}.sccd.toml", unique("d")));
    std::fs::write(&path, text).unwrap();
    let (code, out, err) =
        cli(b, &["sccd", "sign", path.to_str().unwrap(), "--key", owner.secret.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::read_to_string(&path).unwrap()
}

/// Builds, packs with `signer` and installs a package `name` of `publisher` whose app is the
/// access probe, declaring `caps` and carrying `descriptors` (file name, text). Returns its
/// family name and the install's stderr.
fn install(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    caps: &[String],
    descriptors: &[(&str, String)],
    signer: Option<&SigningKey>,
) -> (String, String) {
    let dir = package_dir(b, name, publisher, caps, descriptors);
    let target = match signer {
        Some(k) => b.pack(&dir, k),
        None => dir,
    };
    let (code, out, err) = cli(b, &["install", target.to_str().unwrap()]);
    assert_eq!(code, 0, "the package installs whatever its descriptors say: {out}{err}");
    (pfn(name, publisher), err)
}

/// The package folder [`install`] packs.
fn package_dir(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    caps: &[String],
    descriptors: &[(&str, String)],
) -> PathBuf {
    let names: Vec<String> = descriptors.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
    let descriptor_key = if names.is_empty() {
        String::new()
    } else {
        format!("custom-capability-descriptor = [{}]\n", names.join(", "))
    };
    let text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.0\"\n\n\
         [capabilities]\ncustom = [{}]\n{descriptor_key}\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n",
        caps.join(", ")
    );
    let dir: PathBuf = b.root.path().join(unique("pkg"));
    std::fs::create_dir_all(&dir).unwrap();
    for (n, t) in descriptors {
        std::fs::write(dir.join(n), t).unwrap();
    }
    assemble_manifest(&text, &dir, &bin_dir()).unwrap()
}

/// A file mapping only the custom capability's holders open (the user's side: Everyone); it
/// lives as long as the creating session, kept with its runtime in this value.
struct Object {
    name: String,
    _session: appipc::Session,
    _rt: tokio::runtime::Runtime,
}

impl std::ops::Deref for Object {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

fn object_for_capability(b: &TestBroker) -> Object {
    let name = format!(r"Session\sensor{}", unique(""));
    let rt = rt();
    let session = rt.block_on(async { b.session() });
    rt.block_on(async {
        let request = no::Create {
            kind: NamedObjectKind::FileMapping { size: 4096, writable: false },
            name: name.clone(),
            sddl: Some(format!("D:(A;;GR;;;WD)(A;;GR;;;CAP:{})", cap())),
        };
        session.call_with_fds(request, &[]).await.unwrap();
    });
    Object { name, _session: session, _rt: rt }
}

/// Whether the package's confined app opens the object (else it must be refused with 5).
fn opens(b: &TestBroker, pfn: &str, object: &str) -> bool {
    let read = format!("{FILE_MAP_READ:#x}");
    let out = b.run_app(pfn, &["map", object, &read]);
    if out.contains(&format!("map {object} {read} => fd read-only")) {
        return true;
    }
    assert!(out.contains(&format!("map {object} {read} => error 5")), "{out}");
    false
}

/// Asserts the install said the capability was not granted, with `reason`, that the app is
/// refused the object, and that `appipc why` explains the refusal with the same reason.
fn refused(b: &TestBroker, pfn: &str, stderr: &str, object: &str, reason: &str) {
    let line = format!("capability {} declared but not granted", cap());
    assert!(stderr.contains(&line) && stderr.contains(reason), "{reason}: {stderr}");
    assert!(!opens(b, pfn, object), "{pfn} opened an object of a capability it was refused");
    let (code, why, _) = cli(b, &["why", "--package", pfn]);
    assert_eq!(code, 0);
    assert!(
        why.contains(&format!("declares the capability {}", cap())) && why.contains(reason),
        "why explains the refusal ({reason}): {why}"
    );
}

/// Owner (Contoso) and client publisher (Fabrikam) keys, both trusted.
fn keys(b: &TestBroker) -> (SigningKey, SigningKey) {
    let owner = b.new_key(CONTOSO);
    let client = b.new_key(FABRIKAM);
    b.trust(&owner);
    b.trust(&client);
    (owner, client)
}

#[test]
fn a_valid_descriptor_grants_exactly_the_package_it_names() {
    let b = TestBroker::start();
    let (owner, client) = keys(&b);
    let object = object_for_capability(&b);
    let good_pfn = pfn("Fabrikam.Client", FABRIKAM);
    let d = signed(&b, &descriptor(&cap(), Some(&[(&good_pfn, &key_id(&client))]), false), &owner);

    // The package it names, signed by the key it names: granted, and the object opens.
    let (good, err) = install(
        &b,
        "Fabrikam.Client",
        FABRIKAM,
        &[cap()],
        &[("CustomCapability.SCCD", d.clone())],
        Some(&client),
    );
    assert!(!err.contains("not granted"), "{err}");
    let (_, json, _) = cli(&b, &["list", "--json"]);
    assert!(json.contains(&cap()), "{json}");
    assert!(opens(&b, &good, &object), "the granted package opens its capability's object");
    let folder = package_dir(
        &b,
        "Fabrikam.Client",
        FABRIKAM,
        &[cap()],
        &[("CustomCapability.SCCD", d.clone())],
    );
    let (code, checked, _) = cli(&b, &["check", folder.to_str().unwrap()]);
    assert_eq!(code, 0, "{checked}");
    assert!(
        checked.contains(&format!(
            "descriptor CustomCapability.SCCD: signed by key {}",
            key_id(&owner)
        )),
        "{checked}"
    );

    // Attacker: another package copies the same descriptor (wrong family name).
    let (other, err) = install(
        &b,
        "Fabrikam.Copycat",
        FABRIKAM,
        &[cap()],
        &[("CustomCapability.SCCD", d.clone())],
        Some(&client),
    );
    refused(&b, &other, &err, &object, "wrong package family name");

    // Attacker: the named family, signed by another key trusted for the same publisher (a
    // second build of the client by someone else).
    let b2 = TestBroker::start();
    let (owner2, client2) = keys(&b2);
    let mallory = b2.new_key(FABRIKAM);
    b2.trust(&mallory);
    let object2 = object_for_capability(&b2);
    let second_pfn = pfn("Fabrikam.Second", FABRIKAM);
    let hash2 = key_id(&client2);
    let entities = [(good_pfn.as_str(), hash2.as_str()), (second_pfn.as_str(), hash2.as_str())];
    let d2 = signed(&b2, &descriptor(&cap(), Some(&entities), false), &owner2);
    let files = [("CustomCapability.SCCD", d2)];
    let (same_family, err) =
        install(&b2, "Fabrikam.Second", FABRIKAM, &[cap()], &files, Some(&mallory));
    refused(&b2, &same_family, &err, &object2, "wrong signer hash");
    // The same content installed again, signed by the other key (a re-signing, no upgrade):
    // the grant is decided again for the new signer.
    let (genuine, err) =
        install(&b2, "Fabrikam.Client", FABRIKAM, &[cap()], &files, Some(&client2));
    assert!(!err.contains("not granted"), "{err}");
    assert!(opens(&b2, &genuine, &object2));
    let (resigned, err) =
        install(&b2, "Fabrikam.Client", FABRIKAM, &[cap()], &files, Some(&mallory));
    assert!(err.contains(&key_id(&mallory)), "the install went through as a re-signing: {err}");
    refused(&b2, &resigned, &err, &object2, "wrong signer hash");

    // A package declaring the capability with no descriptor, and one whose descriptor names
    // another capability.
    let (bare, err) = install(&b, "Fabrikam.Bare", FABRIKAM, &[cap()], &[], Some(&client));
    let folder = package_dir(&b, "Fabrikam.Bare", FABRIKAM, &[cap()], &[]);
    let (_, checked, _) = cli(&b, &["check", folder.to_str().unwrap()]);
    assert!(checked.contains(&format!("capability {}: not in any descriptor", cap())), "{checked}");
    refused(&b, &bare, &err, &object, "not in any descriptor");
    let other_cap = format!("Contoso.other_{}", PublisherId::from_publisher(CONTOSO));
    let elsewhere_pfn = pfn("Fabrikam.Elsewhere", FABRIKAM);
    let d3 = signed(
        &b,
        &descriptor(&other_cap, Some(&[(&elsewhere_pfn, &key_id(&client))]), false),
        &owner,
    );
    let (elsewhere, err) =
        install(&b, "Fabrikam.Elsewhere", FABRIKAM, &[cap()], &[("a.toml", d3)], Some(&client));
    refused(&b, &elsewhere, &err, &object, "not in any descriptor");

    // Grants and reasons survive a restart of the broker.
    drop(object);
    let mut b = b;
    b.stop();
    b.restart();
    let object = object_for_capability(&b);
    assert!(opens(&b, &good, &object));
    assert!(!opens(&b, &other, &object));
    let (_, why, _) = cli(&b, &["why", "--package", &other]);
    assert!(why.contains("wrong package family name"), "{why}");
}

#[test]
fn only_the_owners_trusted_key_signs_and_a_change_breaks_the_signature() {
    let b = TestBroker::start();
    let (owner, client) = keys(&b);
    let object = object_for_capability(&b);
    let entity = |name: &str| (pfn(name, FABRIKAM), key_id(&client));

    // Attacker: Fabrikam claims Contoso's capability with a descriptor Fabrikam signed (its
    // key is trusted, for Fabrikam). `appipc sccd sign` refuses; the attacker signs it with
    // the library.
    let (p, h) = entity("Fabrikam.Claim");
    let text = descriptor(&cap(), Some(&[(&p, &h)]), false);
    let path = b.root.path().join("claim.toml");
    std::fs::write(&path, &text).unwrap();
    let (code, _, err) = cli(
        &b,
        &["sccd", "sign", path.to_str().unwrap(), "--key", client.secret.to_str().unwrap()],
    );
    assert_ne!(code, 0, "sccd sign refuses a key that does not own the capability");
    assert!(err.contains("only the owner's key"), "{err}");
    let forged = Descriptor {
        custom_capabilities: vec![cap().parse().unwrap()],
        authorized_entities: AuthorizedEntities::Entities(vec![AuthorizedEntity {
            package_family_name: p.parse().unwrap(),
            certificate_signature_hash: h.parse().unwrap(),
        }]),
        developer_mode_only: false,
    }
    .sign(&secret(&client))
    .to_toml();
    let (claim, err) =
        install(&b, "Fabrikam.Claim", FABRIKAM, &[cap()], &[("c.toml", forged)], Some(&client));
    refused(&b, &claim, &err, &object, "key not owning the capability");

    // Attacker: a Contoso key of their own (right publisher, not trusted).
    let rogue = b.new_key(CONTOSO);
    let (p, h) = entity("Fabrikam.Rogue");
    let d = signed(&b, &descriptor(&cap(), Some(&[(&p, &h)]), false), &rogue);
    let (r, err) =
        install(&b, "Fabrikam.Rogue", FABRIKAM, &[cap()], &[("r.toml", d)], Some(&client));
    refused(&b, &r, &err, &object, "untrusted owner key");

    // Attacker: a descriptor the owner signed for another package, edited to name theirs.
    let (p, h) = entity("Fabrikam.Original");
    let d = signed(&b, &descriptor(&cap(), Some(&[(&p, &h)]), false), &owner);
    let tampered = d.replace("Fabrikam.Original", "Fabrikam.Tamper");
    assert_ne!(tampered, d);
    let (t, err) =
        install(&b, "Fabrikam.Tamper", FABRIKAM, &[cap()], &[("t.toml", tampered)], Some(&client));
    refused(&b, &t, &err, &object, "bad signature");
    // `sccd check` says the same of the file.
    let path = b.root.path().join("tampered.toml");
    std::fs::write(&path, d.replace("Fabrikam.Original", "Fabrikam.Tamper")).unwrap();
    let (code, out, _) = cli(&b, &["sccd", "check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad signature"), "{out}");

    // A malformed descriptor next to a valid one: the valid one grants, the install reports
    // nothing for the capability; alone, it is reported.
    let (p, h) = entity("Fabrikam.Mixed");
    let good = signed(&b, &descriptor(&cap(), Some(&[(&p, &h)]), false), &owner);
    let (mixed, err) = install(
        &b,
        "Fabrikam.Mixed",
        FABRIKAM,
        &[cap()],
        &[("broken.toml", "format = 1".into()), ("good.toml", good)],
        Some(&client),
    );
    assert!(!err.contains("not granted"), "{err}");
    assert!(opens(&b, &mixed, &object));
    let (broken, err) = install(
        &b,
        "Fabrikam.Broken",
        FABRIKAM,
        &[cap()],
        &[("broken.toml", "<CustomCapabilityDescriptor/>".into())],
        Some(&client),
    );
    refused(&b, &broken, &err, &object, "malformed descriptor");
    let _ = std::fs::remove_file(Path::new(&path));
}

#[test]
fn allow_any_and_developer_mode_only() {
    let b = TestBroker::start();
    let (owner, client) = keys(&b);
    let object = object_for_capability(&b);

    // AllowAny: any package, even one installed unsigned from a folder.
    let any = signed(&b, &descriptor(&cap(), None, false), &owner);
    let (anyone, err) = install(&b, "Someone.App", FABRIKAM, &[cap()], &[("any.toml", any)], None);
    assert!(!err.contains("not granted"), "{err}");
    assert!(opens(&b, &anyone, &object));

    // DeveloperModeOnly outside developer mode: refused; in developer mode: granted.
    let dev_pfn = pfn("Fabrikam.DevOnly", FABRIKAM);
    let dev = signed(&b, &descriptor(&cap(), Some(&[(&dev_pfn, &key_id(&client))]), true), &owner);
    b.set_developer_mode(false);
    let (refused_pfn, err) = install(
        &b,
        "Fabrikam.DevOnly",
        FABRIKAM,
        &[cap()],
        &[("dev.toml", dev.clone())],
        Some(&client),
    );
    refused(&b, &refused_pfn, &err, &object, "developer-mode-only");
    let path = b.root.path().join("dev.toml");
    std::fs::write(&path, &dev).unwrap();
    let (code, out, _) = cli(&b, &["sccd", "check", path.to_str().unwrap(), "--package", &dev_pfn]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("developer-mode-only"), "{out}");

    b.set_developer_mode(true);
    let (code, out, _) = cli(&b, &["sccd", "check", path.to_str().unwrap(), "--package", &dev_pfn]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid for"), "{out}");
    let (granted, err) =
        install(&b, "Fabrikam.DevOnly2", FABRIKAM, &[cap()], &[("dev.toml", dev)], Some(&client));
    // The descriptor names Fabrikam.DevOnly, not DevOnly2.
    refused(&b, &granted, &err, &object, "wrong package family name");
    let dev2_pfn = pfn("Fabrikam.DevOnly3", FABRIKAM);
    let dev2 =
        signed(&b, &descriptor(&cap(), Some(&[(&dev2_pfn, &key_id(&client))]), true), &owner);
    let (granted, err) =
        install(&b, "Fabrikam.DevOnly3", FABRIKAM, &[cap()], &[("dev.toml", dev2)], Some(&client));
    assert!(!err.contains("not granted"), "{err}");
    assert!(opens(&b, &granted, &object));
}

#[test]
fn windows_sccd_imports_unsigned() {
    let b = TestBroker::start();
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<CustomCapabilityDescriptor xmlns="http://schemas.microsoft.com/appx/2016/sccd">
  <CustomCapabilities><CustomCapability Name="{}"/></CustomCapabilities>
  <AuthorizedEntities>
    <AuthorizedEntity AppPackageFamilyName="{}" CertificateSignatureHash="{}"/>
  </AuthorizedEntities>
  <Catalog>FFFF</Catalog>
</CustomCapabilityDescriptor>
"#,
        cap(),
        pfn("Fabrikam.Client", FABRIKAM),
        "ab".repeat(32)
    );
    let src = b.root.path().join("CustomCapability.SCCD");
    std::fs::write(&src, xml).unwrap();
    let out = b.root.path().join("imported.toml");
    let (code, _, err) =
        cli(&b, &["sccd", "import", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unsigned"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains(&cap()) && text.contains(&"ab".repeat(32)), "{text}");
    let (code, check, _) = cli(&b, &["sccd", "check", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(check.contains("not signed"), "{check}");
    // Signed by the owner, it is valid.
    let owner = b.new_key(CONTOSO);
    b.trust(&owner);
    let (code, _, err) =
        cli(&b, &["sccd", "sign", out.to_str().unwrap(), "--key", owner.secret.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, check, _) = cli(&b, &["sccd", "check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{check}");
    // Malformed XML says where.
    std::fs::write(&src, "<CustomCapabilityDescriptor>").unwrap();
    let (code, _, err) = cli(&b, &["sccd", "import", src.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("namespace") || err.contains("not closed"), "{err}");
}
