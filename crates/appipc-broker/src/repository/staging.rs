//! The broker's private copy of a package, made before anything about it is decided: from a
//! package file the client handed over as an fd, or from a folder (developer mode). Every
//! check and the install itself use this copy; the source is never read again.
//!
//! Both paths end in the same [`Staged`]: the copy in a staging folder under the packages
//! folder, its [`BlockMap`] (for a package file the signed one; for a folder one computed from
//! the bytes copied), and its manifest read from the copy and checked against that block map.
//! All of it is blocking I/O: callers run it on the broker's bounded blocking pool.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use appipc_model::manifest::{self, MANIFEST_FILE, Manifest, PackagePath};
use appipc_model::package_file::{
    self, BLOCK_MAP_FILE, BlockMap, BlockMapEntry, FileMode, Limits, MAX_MANIFEST_SIZE,
    PackageFileError, PublicKey, SIGNATURE_FILE, SignedPackage,
};
use appipc_sys::dirfd::{BoundedReader, Dir, DirError, FileKind, WalkLimits};
use sha2::{Digest, Sha256};

use super::{io, remove_tree};
use crate::error::PackagesError;

type Result<T, E = PackagesError> = std::result::Result<T, E>;

/// A staging folder that is removed when dropped, unless [`StagingDir::keep`] took it.
#[derive(Debug)]
pub(crate) struct StagingDir {
    path: Option<PathBuf>,
}

impl StagingDir {
    /// Creates a new, empty staging folder under `parent` (mode 0700).
    pub(crate) fn create(parent: &Path) -> Result<StagingDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = parent.join(format!(".staging-{}", super::random_suffix()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| io(format!("creating {}", path.display()), e))?;
        Ok(StagingDir { path: Some(path) })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("not taken")
    }

    /// Takes the folder out of this guard: the caller moves it into place or removes it.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.path.take().expect("not taken")
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take()
            && let Err(e) = remove_tree(&p)
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove a staging folder");
        }
    }
}

/// A package copied into the broker's staging folder and read from there.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) dir: StagingDir,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_text: String,
    pub(crate) block_map: BlockMap,
    pub(crate) signer: Option<PublicKey>,
}

impl Staged {
    /// The content hash recorded for the package: SHA-256 of its block map, hex.
    pub(crate) fn content_hash(&self) -> String {
        content_hash(&self.block_map)
    }
}

/// SHA-256 of a block map's canonical bytes, lower-case hex: the same for a folder and for a
/// package file of the same files.
pub(crate) fn content_hash(map: &BlockMap) -> String {
    map.digest().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a file with `pread` from its own offset: the client's file offset (shared with the fd
/// it passed) neither moves nor matters.
#[derive(Debug)]
pub(crate) struct PositionalReader {
    file: File,
    offset: u64,
}

impl Read for PositionalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// A package file whose block map, signature and manifest were read and checked; the other
/// files are still in the file.
#[derive(Debug)]
pub(crate) struct OpenedFile {
    pub(crate) signed: SignedPackage<PositionalReader>,
    pub(crate) manifest: Manifest,
    pub(crate) manifest_text: String,
}

impl OpenedFile {
    /// The content hash the install would record.
    pub(crate) fn content_hash(&self) -> String {
        content_hash(self.signed.block_map())
    }
}

/// The error for a refused package file.
fn refused(e: PackageFileError) -> PackagesError {
    PackagesError::PackageFile(e)
}

/// Opens the package file the client passed: it must be a regular file; the block map, the
/// signature (which must verify with the key it carries) and the manifest are read; the
/// manifest must be valid and every file it names must be in the block map.
/// Told how far a copy got: files and bytes so far, and whether the copy is done.
pub(crate) type Progress<'a> = &'a mut dyn FnMut(u64, u64, bool);

pub(crate) fn open_file(file: File, limits: &Limits) -> Result<OpenedFile> {
    let meta = file.metadata().map_err(|e| io("fstat of the package file", e))?;
    if !meta.file_type().is_file() {
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        let kind = if ft.is_fifo() {
            "a FIFO or pipe"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a folder (install folders by path, in developer mode)"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(PackagesError::BadRequest(format!(
            "the attached fd is {kind}; attach the package file itself, opened for reading"
        )));
    }
    let signed =
        package_file::open(PositionalReader { file, offset: 0 }, limits).map_err(refused)?;
    let text = std::str::from_utf8(signed.manifest_bytes())
        .map_err(|e| refused(PackageFileError::ManifestNotUtf8 { offset: e.valid_up_to() }))?
        .to_owned();
    let map = signed.block_map();
    let manifest = manifest::parse_with_files(&text, &|p| map.lookup(p))
        .map_err(|e| refused(PackageFileError::InvalidManifest(e)))?;
    Ok(OpenedFile { signed, manifest, manifest_text: text })
}

/// Streams every file of an opened package file into a new staging folder under `parent`,
/// without following links (the folder is the broker's own, created just now); everything is
/// discarded unless every file matched its block map entry.
pub(crate) fn extract(opened: OpenedFile, parent: &Path, progress: Progress<'_>) -> Result<Staged> {
    let OpenedFile { signed, manifest, manifest_text } = opened;
    let (mut files, mut bytes) = (0u64, 0u64);
    let staging = StagingDir::create(parent)?;
    let dir = Dir::open(staging.path()).map_err(|e| dir_io("opening the staging folder", e))?;
    let verified = signed
        .extract(|entry, data| {
            let path = Path::new(entry.path.as_str());
            let mut out = dir.create_file(path, entry.mode.bits()).map_err(io::Error::other)?;
            bytes += io::copy(data, &mut out)?;
            files += 1;
            progress(files, bytes, false);
            out.sync_all()
        })
        .map_err(refused)?;
    progress(files, bytes, true);
    dir.sync().map_err(|e| dir_io("syncing the staging folder", e))?;
    Ok(Staged {
        dir: staging,
        manifest,
        manifest_text,
        block_map: verified.block_map,
        signer: Some(verified.signer),
    })
}

/// Reads every file of an opened package file and checks it against the block map, keeping
/// nothing: for the same package installed already, which is answered only once the file is
/// known to be intact.
pub(crate) fn verify(opened: OpenedFile) -> Result<()> {
    opened
        .signed
        .extract(|_, data| io::copy(data, &mut io::sink()).map(drop))
        .map(drop)
        .map_err(refused)
}

fn dir_io(what: &str, e: DirError) -> PackagesError {
    io(what.to_owned(), io::Error::other(e))
}

/// The refusal for a folder's problem, naming the folder.
fn invalid(source: &Path, what: impl std::fmt::Display) -> PackagesError {
    PackagesError::InvalidPackage(format!("{}: {what}", source.display()))
}

/// Opens a package folder the user named, for reading beneath it.
fn open_source(source: &Path) -> Result<Dir> {
    if !source.is_absolute() {
        return Err(PackagesError::BadRequest(format!(
            "package path {} is not absolute",
            source.display()
        )));
    }
    Dir::open(source).map_err(|e| match e {
        DirError::Io { source: ref s, .. } if s.kind() == io::ErrorKind::NotFound => {
            invalid(source, "no such folder")
        }
        DirError::WrongKind { kind: FileKind::Regular, .. } => {
            invalid(source, "not a folder (install a package file as a file)")
        }
        e => invalid(source, e),
    })
}

/// Looks at the folder's manifest before anything is copied, to refuse quickly what would be
/// refused anyway: absent, a link, not a regular file (a FIFO cannot block this open), larger
/// than 1 MiB. What is installed is still read from the copy.
fn precheck_manifest(src: &Dir, source: &Path) -> Result<()> {
    match src.open_file(Path::new(MANIFEST_FILE)) {
        Ok((_, info)) if info.size > MAX_MANIFEST_SIZE => Err(invalid(
            source,
            format!(
                "{MANIFEST_FILE} is {} bytes; at most {MAX_MANIFEST_SIZE} are allowed",
                info.size
            ),
        )),
        Ok(_) => Ok(()),
        Err(DirError::Io { source: ref s, .. }) if s.kind() == io::ErrorKind::NotFound => {
            Err(invalid(source, format!("no {MANIFEST_FILE} in the folder")))
        }
        Err(DirError::Symlink { .. }) => Err(invalid(
            source,
            format!(
                "{MANIFEST_FILE} is a symbolic link; a package may contain only regular files \
                     and folders"
            ),
        )),
        Err(DirError::WrongKind { kind, .. }) => {
            Err(invalid(source, format!("{MANIFEST_FILE} is {kind}, not a regular file")))
        }
        Err(e) => Err(invalid(source, e)),
    }
}

/// Reads the manifest of a package folder (for a preview): bounded, without following links,
/// never blocking on a FIFO. Parsed and checked against the files the folder holds now, so that
/// one preview reports every problem (the install checks its own copy again).
pub(crate) fn read_folder_manifest(source: &Path) -> Result<(Manifest, String)> {
    let src = open_source(source)?;
    precheck_manifest(&src, source)?;
    let (f, _) = src.open_file(Path::new(MANIFEST_FILE)).map_err(|e| invalid(source, e))?;
    let bytes = appipc_sys::dirfd::read_to_end_bounded(f, MAX_MANIFEST_SIZE).map_err(|e| {
        invalid(source, format!("{MANIFEST_FILE}: {e} (at most {MAX_MANIFEST_SIZE} are allowed)"))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| invalid(source, format!("{MANIFEST_FILE} is not UTF-8 ({e})")))?;
    let lookup = |p: &str| match src.open_file(Path::new(p)) {
        Ok((_, info)) => Some(manifest::PackageEntry::File { executable: info.mode & 0o111 != 0 }),
        Err(_) if src.open_dir(Path::new(p)).is_ok() => Some(manifest::PackageEntry::Folder),
        Err(_) => None,
    };
    let m = manifest::parse_with_files(&text, &lookup)
        .map_err(|e| PackagesError::InvalidPackage(e.to_string()))?;
    Ok((m, text))
}

/// Whether the walk's next file may be copied: its name, the reserved names, the file count,
/// the manifest's size and the total size.
fn check_entry(
    source: &Path,
    name: &str,
    size: u64,
    files: u64,
    total: u64,
    limits: &Limits,
) -> Result<PackagePath> {
    let path: PackagePath = name.parse().map_err(|e| invalid(source, format!("{name:?}: {e}")))?;
    if name == BLOCK_MAP_FILE || name == SIGNATURE_FILE {
        return Err(invalid(
            source,
            format!("{name} is a reserved name (a package file's own entry)"),
        ));
    }
    if files >= limits.max_files {
        return Err(invalid(
            source,
            format!("the package has more than {} files", limits.max_files),
        ));
    }
    if name == MANIFEST_FILE && size > MAX_MANIFEST_SIZE {
        return Err(invalid(
            source,
            format!("{MANIFEST_FILE} is {size} bytes; at most {MAX_MANIFEST_SIZE} are allowed"),
        ));
    }
    if size > limits.max_total_size.saturating_sub(total) {
        return Err(invalid(
            source,
            format!("the package's files add up to more than {} bytes", limits.max_total_size),
        ));
    }
    Ok(path)
}

/// Copies at most `size` bytes of `file` (the size fstat gave) to `out`, hashing them; a file
/// that grows while it is copied fails with `FileTooLarge`.
fn copy_hashed(
    file: std::fs::File,
    size: u64,
    out: &mut std::fs::File,
) -> io::Result<(u64, [u8; 32])> {
    let mut reader = BoundedReader::new(file, size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        copied += n as u64;
    }
    Ok((copied, hasher.finalize().into()))
}

/// The manifest as copied, checked against the files copied: what was validated is what is
/// installed.
fn read_staged_manifest(
    dst: &Dir,
    source: &Path,
    block_map: &BlockMap,
) -> Result<(Manifest, String)> {
    let (f, _) = dst
        .open_file(Path::new(MANIFEST_FILE))
        .map_err(|e| dir_io("reading the copied manifest", e))?;
    let bytes = appipc_sys::dirfd::read_to_end_bounded(f, MAX_MANIFEST_SIZE)
        .map_err(|e| io("reading the copied manifest", e))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| invalid(source, format!("{MANIFEST_FILE} is not UTF-8 ({e})")))?;
    let manifest = manifest::parse_with_files(&text, &|p| block_map.lookup(p))
        .map_err(|e| PackagesError::InvalidPackage(e.to_string()))?;
    Ok((manifest, text))
}

/// Copies the package folder at `source` into a new staging folder under `parent`: every
/// open beneath a directory fd, no link followed, nothing that is not a regular file or a
/// folder, within `limits`; then reads the manifest from the copy and checks it against the
/// files copied.
pub(crate) fn stage_folder(
    source: &Path,
    parent: &Path,
    limits: &Limits,
    progress: Progress<'_>,
) -> Result<Staged> {
    let src = open_source(source)?;
    precheck_manifest(&src, source)?;
    let staging = StagingDir::create(parent)?;
    let dst = Dir::open(staging.path()).map_err(|e| dir_io("opening the staging folder", e))?;

    let mut entries: Vec<BlockMapEntry> = Vec::new();
    let mut total: u64 = 0;
    let mut failure: Option<PackagesError> = None;
    // Folders count against the walk's bound too: twice the file limit keeps it finite.
    let walk_limits =
        WalkLimits { max_entries: limits.max_files.saturating_mul(2), ..WalkLimits::default() };
    let walked = src.walk(walk_limits, |rel, file, info| {
        let fail = |e: PackagesError, failure: &mut Option<PackagesError>| {
            *failure = Some(e);
            io::Error::other("refused")
        };
        let name = rel.to_str().expect("walk gives UTF-8 names");
        let path = check_entry(source, name, info.size, entries.len() as u64, total, limits)
            .map_err(|e| fail(e, &mut failure))?;
        let mode = FileMode::from_unix(info.mode);
        let mut out = dst.create_file(rel, mode.bits()).map_err(io::Error::other)?;
        let (size, sha256) = match copy_hashed(file, info.size, &mut out) {
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                let e = invalid(source, format!("{name} grew while it was being copied"));
                return Err(fail(e, &mut failure));
            }
            r => r?,
        };
        out.sync_all()?;
        total += size;
        entries.push(BlockMapEntry { path, mode, size, sha256 });
        progress(entries.len() as u64, total, false);
        Ok(())
    });
    progress(entries.len() as u64, total, true);
    if let Some(f) = failure {
        return Err(f);
    }
    walked.map_err(|e| invalid(source, e))?;
    dst.sync().map_err(|e| dir_io("syncing the staging folder", e))?;

    let block_map = BlockMap::new(entries, limits).map_err(|e| match e {
        PackageFileError::ManifestMissing => {
            invalid(source, format!("no {MANIFEST_FILE} in the folder"))
        }
        e => invalid(source, e),
    })?;
    let (manifest, text) = read_staged_manifest(&dst, source, &block_map)?;
    Ok(Staged { dir: staging, manifest, manifest_text: text, block_map, signer: None })
}
