//! Signing and installing packages: `appipc key new`, `pack`, `trust add|list|remove`,
//! `dev-mode on|off|status`, and `install FILE|DIR` with the consent it asks for.
//!
//! `key new` and `pack` work offline (no broker); everything else goes through the SDK.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use appipc::management::{InstallOutcome, PackageInfo, PackagePreview};
use appipc::trust::{DeveloperMode, TrustStore};
use appipc::{AddPackageOptions, PackageManager, Session};
use appipc_model::manifest::{self, MANIFEST_FILE, PackageEntry, PackagePath};
use appipc_model::package_file::{
    BLOCK_MAP_FILE, EXTENSION, FileMode, MAX_KEY_FILE_SIZE, MAX_MANIFEST_SIZE, PackageWriter,
    SIGNATURE_FILE, SecretKey,
};
use appipc_sys::dirfd::{Dir, WalkLimits, read_to_end_bounded};
use clap::{Args, Subcommand};

/// The environment variable naming the secret key `pack` signs with when `--key` is absent.
pub(crate) const KEY_VAR: &str = "APPIPC_SIGNING_KEY";

/// `appipc pack`.
#[derive(Args, Debug)]
pub(crate) struct PackArgs {
    /// The package folder (with appipc.toml and the files it names).
    pub(crate) dir: PathBuf,
    /// The package file to write (default: FULL_NAME.appipc in the current folder).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The secret key file to sign with (from `appipc key new`; default $APPIPC_SIGNING_KEY).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<PathBuf>,
}

/// `appipc install`.
#[derive(Args, Debug)]
pub(crate) struct InstallArgs {
    /// A package file (.appipc, signed by a trusted key) or, in developer mode, a package
    /// folder.
    pub(crate) path: PathBuf,
    /// Grant the restricted capabilities the package asks for without asking (for scripts).
    #[arg(long)]
    pub(crate) yes: bool,
}

/// `appipc key`.
#[derive(Subcommand, Debug)]
pub(crate) enum KeyCommand {
    /// Make a signing key pair for a publisher: PREFIX.secret.toml (keep it private) and
    /// PREFIX.public.toml (give it to users, who trust it with `appipc trust add`).
    New {
        /// The publisher the key speaks for, exactly as packages name it
        /// (e.g. "CN=Contoso Ltd, O=Contoso, C=CH").
        #[arg(long)]
        publisher: String,
        /// Where to write the two files (default: from the publisher's CN, in the current
        /// folder).
        #[arg(short = 'o', long, value_name = "PREFIX")]
        output: Option<PathBuf>,
    },
}

/// `appipc trust`.
#[derive(Subcommand, Debug)]
pub(crate) enum TrustCommand {
    /// Trust a public key file: packages it signs install as the publisher it names.
    Add {
        /// The public key file (PREFIX.public.toml).
        public_key: PathBuf,
    },
    /// List the trusted keys.
    List,
    /// Stop trusting a key (installed packages it signed stay installed).
    Remove {
        /// The key id, or at least its first 8 hex digits.
        key_id: String,
    },
}

/// `appipc dev-mode`.
#[derive(Subcommand, Debug)]
pub(crate) enum DevModeCommand {
    /// Let package folders install unsigned (`appipc install DIR`).
    On,
    /// Only signed package files install (the default).
    Off,
    /// Say whether developer mode is on.
    Status,
}

/// A file name from the publisher's `CN=` (`CN=Contoso Ltd, O=…` → `contoso-ltd`).
fn default_key_prefix(publisher: &str) -> String {
    let cn = publisher
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("CN=").or_else(|| part.strip_prefix("cn=")))
        .unwrap_or(publisher);
    let mut slug = String::new();
    for c in cn.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    if slug.is_empty() { "appipc-key".to_owned() } else { slug.to_owned() }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {} (it is never overwritten)", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `appipc key new`.
pub(crate) fn key(command: KeyCommand) -> Result<()> {
    let KeyCommand::New { publisher, output } = command;
    let key = SecretKey::generate(&publisher).context("making the key")?;
    let prefix = output.unwrap_or_else(|| PathBuf::from(default_key_prefix(&publisher)));
    let (secret, public) =
        (with_suffix(&prefix, ".secret.toml"), with_suffix(&prefix, ".public.toml"));
    if public.exists() {
        bail!("{} exists already; choose another prefix with -o", public.display());
    }
    write_new(&secret, &key.to_file_text(), 0o600)?;
    write_new(&public, &key.public_key().to_file_text(), 0o644)?;
    if crate::style::json() {
        return crate::style::print_json(&serde_json::json!({
            "key_id": key.id().to_string(),
            "publisher": publisher,
            "secret_key": secret.display().to_string(),
            "public_key": public.display().to_string(),
        }));
    }
    println!("key {} for {:?}", key.id(), publisher);
    println!(
        "  secret key  {}  (keep it private: it signs packages as this publisher)",
        secret.display()
    );
    println!(
        "  public key  {}  (users trust it: appipc trust add {})",
        public.display(),
        public.display()
    );
    Ok(())
}

/// Reads a secret key file.
pub(crate) fn read_secret_key(path: &Path) -> Result<SecretKey> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bytes = read_to_end_bounded(f, MAX_KEY_FILE_SIZE)
        .with_context(|| format!("reading {}", path.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    SecretKey::from_file_text(&text).with_context(|| format!("{}", path.display()))
}

/// One file found in the folder to pack.
struct Found {
    rel: PathBuf,
    path: PackagePath,
    mode: FileMode,
    size: u64,
}

/// Packs and signs the folder `dir` into `out`; returns (files, bytes) packed. Every open is
/// beneath the folder's fd, without following links; the manifest must be valid and name only
/// files the folder holds, executables executable.
pub(crate) fn pack_dir(dir: &Path, key: &SecretKey, out: &Path) -> Result<(usize, u64)> {
    let src = Dir::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let (mf, info) = src
        .open_file(Path::new(MANIFEST_FILE))
        .with_context(|| format!("{}: {MANIFEST_FILE}", dir.display()))?;
    if info.size > MAX_MANIFEST_SIZE {
        bail!(
            "{}: {MANIFEST_FILE} is {} bytes; at most {MAX_MANIFEST_SIZE} are allowed",
            dir.display(),
            info.size
        );
    }
    let manifest_bytes = read_to_end_bounded(mf, MAX_MANIFEST_SIZE)
        .with_context(|| format!("reading {}/{MANIFEST_FILE}", dir.display()))?;
    let text = std::str::from_utf8(&manifest_bytes)
        .with_context(|| format!("{}/{MANIFEST_FILE} is not UTF-8", dir.display()))?;

    let mut found = Vec::new();
    src.walk(WalkLimits::default(), |rel, _file, info| {
        let name = rel.to_str().expect("walk gives UTF-8 names");
        if name == MANIFEST_FILE {
            return Ok(());
        }
        if name == BLOCK_MAP_FILE || name == SIGNATURE_FILE {
            return Err(std::io::Error::other(format!(
                "{name} is a reserved name (a package file's own entry); remove it from the folder"
            )));
        }
        let path: PackagePath = name.parse().map_err(|e: manifest::NameError| {
            std::io::Error::other(format!("not a package path: {}", e.rule))
        })?;
        found.push(Found {
            rel: rel.to_path_buf(),
            path,
            mode: FileMode::from_unix(info.mode),
            size: info.size,
        });
        Ok(())
    })
    .with_context(|| format!("reading {}", dir.display()))?;

    let files: HashSet<&str> = found.iter().map(|f| f.path.as_str()).collect();
    let exec: HashSet<&str> =
        found.iter().filter(|f| f.mode.is_executable()).map(|f| f.path.as_str()).collect();
    let lookup = |p: &str| -> Option<PackageEntry> {
        if p == MANIFEST_FILE || files.contains(p) {
            Some(PackageEntry::File { executable: exec.contains(p) })
        } else if found.iter().any(|f| f.path.as_str().starts_with(&format!("{p}/"))) {
            Some(PackageEntry::Folder)
        } else {
            None
        }
    };
    let m =
        manifest::parse_with_files(text, &lookup).with_context(|| format!("{}", dir.display()))?;
    if key.publisher().as_str() != m.identity.publisher {
        bail!(
            "the key {} speaks for {:?} but the manifest's publisher is {:?}; they must be equal, \
             character for character (make a key with: appipc key new --publisher {:?})",
            key.id(),
            key.publisher().as_str(),
            m.identity.publisher,
            m.identity.publisher
        );
    }

    let bytes: u64 = found.iter().map(|f| f.size).sum::<u64>() + manifest_bytes.len() as u64;
    let count = found.len() + 1;
    let mut writer = PackageWriter::new(manifest_bytes.clone());
    for f in &found {
        let (src, rel) = (&src, f.rel.clone());
        writer.add_file(f.path.clone(), f.mode, f.size, move || {
            src.open_file(&rel).map(|(file, _)| file).map_err(std::io::Error::other)
        });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".appipc-pack-")
        .tempfile_in(&parent)
        .with_context(|| format!("creating a file in {}", parent.display()))?;
    writer
        .write(key, std::io::BufWriter::new(tmp.as_file_mut()))
        .with_context(|| format!("packing {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // A package file is for others to install: readable by all, as tar would leave it.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    tmp.as_file().sync_all().with_context(|| format!("writing {}", out.display()))?;
    tmp.persist(out).with_context(|| format!("writing {}", out.display()))?;
    Ok((count, bytes))
}

/// `appipc pack`.
pub(crate) fn pack(args: PackArgs) -> Result<()> {
    let key_path = match args.key.or_else(|| std::env::var_os(KEY_VAR).map(PathBuf::from)) {
        Some(k) => k,
        None => bail!(
            "pack signs the package: give the secret key with --key KEY (or ${KEY_VAR}); make one \
             with: appipc key new --publisher \"CN=…\""
        ),
    };
    let key = read_secret_key(&key_path)?;
    let out = match args.output {
        Some(o) => o,
        None => {
            let m = manifest::parse(
                &std::fs::read_to_string(args.dir.join(MANIFEST_FILE))
                    .with_context(|| format!("reading {}/{MANIFEST_FILE}", args.dir.display()))?,
            )
            .with_context(|| format!("{}", args.dir.display()))?;
            PathBuf::from(format!("{}.{EXTENSION}", m.identity.full_name()))
        }
    };
    let (files, bytes) = pack_dir(&args.dir, &key, &out)?;
    if crate::style::json() {
        return crate::style::print_json(&serde_json::json!({
            "file": out.display().to_string(),
            "files": files,
            "bytes": bytes,
            "key_id": key.id().to_string(),
            "publisher": key.publisher().as_str(),
        }));
    }
    println!(
        "packed {} into {}: {files} files, {bytes} bytes, signed by key {} for {:?}",
        args.dir.display(),
        out.display(),
        key.id(),
        key.publisher().as_str()
    );
    Ok(())
}

/// `appipc trust …`.
pub(crate) async fn trust(session: &Session, command: TrustCommand) -> Result<()> {
    match command {
        TrustCommand::Add { public_key } => {
            let f = std::fs::File::open(&public_key)
                .with_context(|| format!("opening {}", public_key.display()))?;
            let text = String::from_utf8(
                read_to_end_bounded(f, MAX_KEY_FILE_SIZE)
                    .with_context(|| format!("reading {}", public_key.display()))?,
            )
            .with_context(|| format!("{} is not UTF-8", public_key.display()))?;
            let k = TrustStore::add(session, &text)
                .await
                .with_context(|| format!("trusting {}", public_key.display()))?;
            if crate::style::json() {
                return crate::style::print_json(&k);
            }
            println!(
                "trusted key {} for {:?}: packages it signs install as that publisher",
                k.key_id, k.publisher
            );
        }
        TrustCommand::List => {
            let keys = TrustStore::list(session).await?;
            if crate::style::json() {
                crate::style::print_json(&keys)?;
            } else if keys.is_empty() {
                println!("no trusted keys (add one: appipc trust add PUBLIC_KEY_FILE)");
            } else {
                let mut t = crate::style::Table::new(&["KEY ID", "PUBLISHER", "ADDED"]);
                for k in keys {
                    t.row(vec![
                        k.key_id.clone(),
                        k.publisher.clone(),
                        crate::style::utc(k.added_at),
                    ]);
                }
                t.print();
            }
        }
        TrustCommand::Remove { key_id } => {
            let removed = TrustStore::remove(session, &key_id)
                .await
                .with_context(|| format!("removing key {key_id}"))?;
            if crate::style::json() {
                return crate::style::print_json(&removed);
            }
            for k in removed {
                println!("removed key {} for {:?}", k.key_id, k.publisher);
            }
        }
    }
    Ok(())
}

/// `appipc dev-mode …`.
pub(crate) async fn dev_mode(session: &Session, command: DevModeCommand) -> Result<()> {
    let on = match command {
        DevModeCommand::On => {
            DeveloperMode::set(session, true).await?;
            true
        }
        DevModeCommand::Off => {
            DeveloperMode::set(session, false).await?;
            false
        }
        DevModeCommand::Status => DeveloperMode::is_enabled(session).await?,
    };
    if crate::style::json() {
        return crate::style::print_json(&serde_json::json!({ "enabled": on }));
    }
    if on {
        println!(
            "developer mode is on: package folders install unsigned (appipc install DIR) and are \
             listed as unsigned (developer mode)"
        );
    } else {
        println!(
            "developer mode is off: only package files signed by a trusted key install \
             (appipc pack, appipc trust add, appipc install FILE)"
        );
    }
    Ok(())
}

/// What `install` asks the user: the restricted capabilities to grant. `Ok(consent)` or a
/// refusal that says why nothing was installed.
fn ask_consent(preview: &PackagePreview, yes: bool) -> Result<Vec<String>> {
    if preview.consent_needed.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = preview.consent_needed.iter().map(|c| c.name.clone()).collect();
    let mut err = std::io::stderr().lock();
    let what = match &preview.installed {
        Some(old) => format!("{} (upgrading {old}) adds", preview.full_name),
        None => format!("{} asks for", preview.full_name),
    };
    writeln!(err, "{what} restricted capabilities that need your consent:")?;
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for c in &preview.consent_needed {
        writeln!(err, "  {:<width$}  lets it {}", c.name, c.allows)?;
    }
    if yes {
        writeln!(err, "granted (--yes)")?;
        return Ok(names);
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "not installed: {} needs your consent for {} and there is no terminal to ask on; \
             pass --yes to grant them",
            preview.full_name,
            names.join(", ")
        );
    }
    write!(err, "Grant them and install? [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the answer")?;
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(names)
    } else {
        bail!("not installed: you did not grant {}", names.join(", "))
    }
}

/// A deployment error with its `HRESULT` (as `Add-AppxPackage` reports it), and what to do
/// about a file the manifest names that the folder lacks.
fn deployment_error(e: appipc::Error) -> anyhow::Error {
    let hint = if e.to_string().contains(&manifest::FileProblem::Missing.to_string()) {
        MISSING_FILE_HINT
    } else {
        ""
    };
    let class = crate::exit::Class::of_sdk(&e);
    match e.windows_code() {
        appipc::WindowsCode::HResult(c) => {
            // The code on the first line: a message may go on with one problem per line.
            let text = e.to_string();
            let (first, rest) = text.split_once('\n').map_or((&*text, ""), |(f, r)| (f, r));
            let rest = if rest.is_empty() { String::new() } else { format!("\n{rest}") };
            crate::exit::fail(class, format!("{first} (HRESULT {c:#010X}){rest}{hint}"))
        }
        _ if !hint.is_empty() => crate::exit::fail(class, format!("{e}{hint}")),
        _ => e.into(),
    }
}

/// The lines of a manifest error with `appipc.toml:` made `DIR/appipc.toml:`, so that each
/// problem names its file (`file:line:column: key: rule`, as compilers write).
pub(crate) fn problem_lines(dir: &Path, message: &str) -> Vec<String> {
    let file = dir.join(MANIFEST_FILE);
    message
        .lines()
        .map(|l| match l.find(&format!("{MANIFEST_FILE}:")) {
            Some(i) => format!("{}{}{}", &l[..i], file.display(), &l[i + MANIFEST_FILE.len()..]),
            None => l.to_owned(),
        })
        .collect()
}

/// Said when a package folder lacks a file its manifest names.
pub(crate) const MISSING_FILE_HINT: &str = "\n  a package folder holds every file its manifest \
    names, at that path: copy the built binaries into it (the examples of the appipc repository \
    are laid out by `bash scripts/examples.sh`)";

/// `appipc install FILE|DIR [--yes]`.
pub(crate) async fn install(session: &Session, args: InstallArgs) -> Result<()> {
    let InstallArgs { path, yes } = args;
    let context = || format!("installing {}", path.display());
    // Each problem of a folder's manifest on a line of its own, naming the file.
    let name_file = |e: anyhow::Error| {
        if !path.is_dir() {
            return e;
        }
        let class = crate::exit::Class::of(&e);
        let text = crate::exit::message(&e);
        crate::exit::fail(class, problem_lines(&path, &text).join("\n"))
    };
    let pm = PackageManager::new(session);
    let preview = pm
        .inspect_package(&path)
        .await
        .map_err(deployment_error)
        .with_context(context)
        .map_err(name_file)?;
    let consent = ask_consent(&preview, yes)?;
    let r = with_progress(session, pm.add_package_with(&path, &AddPackageOptions { consent }))
        .await
        .map_err(deployment_error)
        .with_context(context)
        .map_err(name_file)?;
    if crate::style::json() {
        return crate::style::print_json(&serde_json::json!({
            "full_name": r.full_name,
            "family_name": r.family_name,
            "outcome": r.outcome,
            "replaced": r.replaced,
            "not_granted": r.not_granted,
            "signer": preview.signer,
        }));
    }
    match &preview.signer {
        Some(s) => eprintln!("appipc: signed by key {} for {:?}", s.key_id, s.publisher),
        None => eprintln!("appipc: unsigned (developer mode)"),
    }
    for n in &r.not_granted {
        eprintln!("appipc: capability {} declared but not granted: {}", n.name, n.reason);
    }
    match r.outcome {
        InstallOutcome::Installed => println!("installed {}", r.full_name),
        InstallOutcome::Upgraded => {
            println!("upgraded {} to {}", r.replaced.as_deref().unwrap_or("(unknown)"), r.full_name)
        }
        InstallOutcome::AlreadyInstalled => println!("{} is already installed", r.full_name),
    }
    Ok(())
}

/// How long an install runs before its progress is shown: 1 s, or `APPIPC_PROGRESS_AFTER_MS`.
fn progress_after() -> std::time::Duration {
    let ms = std::env::var("APPIPC_PROGRESS_AFTER_MS").ok().and_then(|v| v.parse().ok());
    std::time::Duration::from_millis(ms.unwrap_or(1000))
}

/// One line of progress: files and bytes copied, of the totals when the broker knows them.
fn progress_line(p: &appipc::session::InstallProgress) -> String {
    use crate::style::bytes;
    match (p.total_files, p.total_bytes) {
        (Some(f), Some(b)) => {
            format!("copying {}/{f} files, {}/{}", p.files, bytes(p.bytes), bytes(b))
        }
        _ => format!("copying {} files, {}", p.files, bytes(p.bytes)),
    }
}

/// Runs an install, showing on stderr how far the broker got copying the package
/// (`packages.InstallProgress`) once it has taken longer than [`progress_after`], only when
/// stderr is a terminal; the line is rewritten in place and ends with the final count.
async fn with_progress<T>(session: &Session, install: impl std::future::Future<Output = T>) -> T {
    if !std::io::stderr().is_terminal() {
        return install.await;
    }
    let after = progress_after();
    let progress = session.install_progress();
    let start = std::time::Instant::now();
    tokio::pin!(install);
    let mut shown = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            out = &mut install => {
                let last = progress.borrow().clone();
                if let Some(p) = last.filter(|_| shown || start.elapsed() >= after) {
                    eprintln!("\r\x1b[K{}: done", progress_line(&p));
                }
                return out;
            }
            _ = tick.tick() => {
                if start.elapsed() >= after && let Some(p) = progress.borrow().clone() {
                    eprint!("\r\x1b[K{}", progress_line(&p));
                    let _ = std::io::stderr().flush();
                    shown = true;
                }
            }
        }
    }
}

/// How `list` and `ps` show who signed a package.
pub(crate) fn signature(p: &PackageInfo) -> String {
    match &p.signer {
        Some(s) => format!("signed by key {} for {:?}", s.key_id, s.publisher),
        None => "unsigned (developer mode)".to_owned(),
    }
}

/// Whether each family of `pkgs` is signed, by lower-case family name (for `ps`).
pub(crate) fn signed_families(pkgs: &[PackageInfo]) -> std::collections::HashMap<String, bool> {
    pkgs.iter().map(|p| (p.family_name.to_ascii_lowercase(), p.signer.is_some())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefixes_come_from_the_common_name() {
        assert_eq!(default_key_prefix("CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH"), "contoso-ltd");
        assert_eq!(default_key_prefix("O=Fabrikam, CN=Fabrikam Inc."), "fabrikam-inc");
        assert_eq!(default_key_prefix("CN=!!!"), "appipc-key");
    }
}
