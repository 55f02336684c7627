//! `appipc sccd sign|check|import`: signed custom capability descriptors (docs/rpc.md).
//!
//! `sign` and `import` work offline; `check` asks the broker for the trust store, developer
//! mode and the package's signer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use appipc::management::PackageInfo;
use appipc::trust::{DeveloperMode, TrustStore};
use appipc::{PackageManager, Session};
use appipc_model::identity::PackageFamilyName;
use appipc_model::package_file::{KeyId, PublicKey};
use appipc_model::sccd::{self, SignedDescriptor};
use appipc_sys::dirfd::read_to_end_bounded;
use clap::Subcommand;

/// `appipc sccd`.
#[derive(Subcommand, Debug)]
pub(crate) enum SccdCommand {
    /// Sign a descriptor (TOML) with the key of its capabilities' owner: the publisher whose
    /// id ends each capability name (Company.capName_<publisherId>). Rewrites the file (or
    /// writes --output) with the signature; an existing signature is replaced.
    Sign {
        /// The descriptor file (TOML; from `appipc sccd import` or written by hand).
        descriptor: PathBuf,
        /// The owner's secret key file (from `appipc key new`; default $APPIPC_SIGNING_KEY).
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
        /// Write the signed descriptor here instead of over DESCRIPTOR.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Say whether a descriptor is valid here: signed, the signature verifies, the key is
    /// trusted for the publisher owning each capability; with --package, whether it grants
    /// them to that package (its family, its signer's key id, developer mode). Prints each
    /// reason otherwise; exits 1 when a capability would not be granted.
    Check {
        /// The descriptor file (TOML).
        descriptor: PathBuf,
        /// The package family name to check it for (its signer is the installed package's,
        /// unless --signer is given).
        #[arg(long, value_name = "PFN")]
        package: Option<String>,
        /// The key id (SHA-256 of the public key) the package is signed with.
        #[arg(long, value_name = "KEY_ID", requires = "package")]
        signer: Option<String>,
    },
    /// Convert Windows' CustomCapability.SCCD (XML) into appipc's TOML descriptor, printed or
    /// written to --output. The result is UNSIGNED: Windows' Catalog signature cannot carry
    /// over; the capabilities' owner signs it with `appipc sccd sign`. Each
    /// CertificateSignatureHash is kept as written: change it to the key id of the appipc key
    /// that signs the package.
    Import {
        /// The Windows descriptor (XML).
        sccd: PathBuf,
        /// Write the TOML descriptor here (never overwritten) instead of printing it.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn read_text(path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bytes = read_to_end_bounded(f, sccd::MAX_DESCRIPTOR_SIZE as u64)
        .with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))
}

fn read_descriptor(path: &Path) -> Result<SignedDescriptor> {
    SignedDescriptor::parse(&read_text(path)?).with_context(|| format!("{}", path.display()))
}

/// Replaces `path` with `text` (through a new file in the same folder).
fn replace(path: &Path, text: &str) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".appipc-sccd-")
        .tempfile_in(&parent)
        .with_context(|| format!("creating a file in {}", parent.display()))?;
    std::io::Write::write_all(tmp.as_file_mut(), text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `appipc sccd sign|import` (offline).
pub(crate) fn offline(command: SccdCommand) -> Result<()> {
    match command {
        SccdCommand::Sign { descriptor, key, output } => sign(&descriptor, key, output),
        SccdCommand::Import { sccd, output } => import(&sccd, output),
        SccdCommand::Check { .. } => unreachable!("check asks the broker"),
    }
}

fn sign(path: &Path, key: Option<PathBuf>, output: Option<PathBuf>) -> Result<()> {
    let key_path = match key
        .or_else(|| std::env::var_os(crate::packaging::KEY_VAR).map(PathBuf::from))
    {
        Some(k) => k,
        None => bail!(
            "sccd sign signs as the capabilities' owner: give its secret key with --key KEY (or \
             ${})",
            crate::packaging::KEY_VAR
        ),
    };
    let key = crate::packaging::read_secret_key(&key_path)?;
    let d = read_descriptor(path)?.descriptor;
    let id = key.publisher().publisher_id();
    for c in &d.custom_capabilities {
        let owner = c.owner_publisher_id();
        if !owner.eq_ignore_case(&id) {
            bail!(
                "{c} belongs to publisher id {owner}, but key {} speaks for {:?} (publisher id \
                 {id}): only the owner's key signs for a capability",
                key.id(),
                key.publisher().as_str()
            );
        }
    }
    let signed = d.sign(&key);
    let out = output.unwrap_or_else(|| path.to_path_buf());
    replace(&out, &signed.to_toml())?;
    if crate::style::json() {
        return crate::style::print_json(&serde_json::json!({
            "file": out.display().to_string(),
            "key_id": key.id().to_string(),
            "publisher": key.publisher().as_str(),
        }));
    }
    println!("signed {} with key {} for {:?}", out.display(), key.id(), key.publisher().as_str());
    Ok(())
}

fn import(path: &Path, output: Option<PathBuf>) -> Result<()> {
    let d = sccd::import_windows_xml(&read_text(path)?)
        .with_context(|| format!("{}", path.display()))?;
    let text = SignedDescriptor { descriptor: d, signature: None }.to_toml();
    match output {
        Some(out) => {
            use std::io::Write;
            let mut f =
                std::fs::OpenOptions::new().write(true).create_new(true).open(&out).with_context(
                    || format!("creating {} (it is never overwritten)", out.display()),
                )?;
            f.write_all(text.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "appipc: wrote {} unsigned (Windows' catalog signature does not carry over): \
                 sign it with appipc sccd sign {} --key OWNER_KEY",
                out.display(),
                out.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// What `appipc check DIR` says of a package's custom capabilities offline: each descriptor
/// (who signed it, what it names, or why it cannot be read) and each declared custom
/// capability no readable descriptor names (it will not be granted). Whether the signing key
/// is trusted is the broker's to say (`appipc sccd check`).
pub(crate) fn describe_package(dir: &Path, caps: &appipc_model::manifest::Capabilities) {
    let mut named: Vec<String> = Vec::new();
    for p in &caps.custom_capability_descriptors {
        let path = dir.join(p.as_str());
        match read_descriptor(&path) {
            Ok(d) => {
                let names: Vec<String> =
                    d.descriptor.custom_capabilities.iter().map(ToString::to_string).collect();
                let by = match &d.signature {
                    Some(s) => format!(
                        "signed by key {} for {:?}",
                        s.signer.id(),
                        s.signer.publisher().as_str()
                    ),
                    None => "unsigned (its capabilities' owner signs it: appipc sccd sign)".into(),
                };
                println!(
                    "  descriptor {p}: {by}; names {} (appipc sccd check {} --package PFN: \
                     whether this broker grants them)",
                    names.join(", "),
                    path.display()
                );
                named.extend(names);
            }
            Err(e) => println!("  descriptor {p}: {:#}", e),
        }
    }
    for c in &caps.custom {
        if !named.iter().any(|n| n.eq_ignore_ascii_case(c.as_str())) {
            println!(
                "  capability {c}: not in any descriptor; it will not be granted (a custom \
                 capability needs a descriptor signed by its owner: docs/rpc.md)"
            );
        }
    }
}

/// `appipc sccd check`: exits 1 when a capability would not be granted.
pub(crate) async fn check(
    session: &Session,
    path: &Path,
    package: Option<String>,
    signer: Option<String>,
) -> Result<std::process::ExitCode> {
    let d = read_descriptor(path)?;
    let trusted: Vec<PublicKey> = TrustStore::list(session)
        .await?
        .iter()
        .filter_map(|k| PublicKey::from_file_text(&k.public_key).ok())
        .collect();
    let developer_mode = DeveloperMode::is_enabled(session).await?;
    let family: Option<PackageFamilyName> = package
        .as_deref()
        .map(|p| p.parse().with_context(|| format!("--package {p}")))
        .transpose()?;
    let signer: Option<KeyId> = match (&signer, &family) {
        (Some(s), _) => Some(s.parse().with_context(|| format!("--signer {s}"))?),
        (None, Some(f)) => {
            let pkgs: Vec<PackageInfo> = PackageManager::new(session).find_packages().await?;
            pkgs.iter()
                .find(|p| p.family_name.eq_ignore_ascii_case(f.as_str()))
                .and_then(|p| p.signer.as_ref())
                .and_then(|s| s.key_id.parse().ok())
        }
        (None, None) => None,
    };
    let candidate = family.as_ref().map(|f| sccd::Candidate {
        family_name: f,
        signer: signer.as_ref(),
        developer_mode,
    });
    let mut results = Vec::new();
    for c in &d.descriptor.custom_capabilities {
        results.push((c.to_string(), sccd::check(&d, c, &trusted, candidate)));
    }
    let ok = results.iter().all(|(_, r)| r.is_ok());
    if crate::style::json() {
        crate::style::print_json(&serde_json::json!({
            "descriptor": path.display().to_string(),
            "package": family.as_ref().map(|f| f.to_string()),
            "valid": ok,
            "capabilities": results.iter().map(|(c, r)| serde_json::json!({
                "name": c,
                "granted": r.is_ok(),
                "reason": r.as_ref().err().map(ToString::to_string),
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        let whom = family.as_ref().map_or(String::new(), |f| format!(" for {f}"));
        for (c, r) in &results {
            match r {
                Ok(()) => println!("{c}: valid{whom}"),
                Err(e) => println!("{c}: not valid{whom}: {e}"),
            }
        }
    }
    Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}
