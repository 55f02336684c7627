//! Writing a package file: the same inputs give the same bytes.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::manifest::{self, MANIFEST_FILE, PackagePath};

use super::block_map::{BlockMap, BlockMapEntry, FileMode};
use super::error::PackageFileError;
use super::keys::SecretKey;
use super::signature::PackageSignature;
use super::{BLOCK_MAP_FILE, Limits, MAX_MANIFEST_SIZE, SIGNATURE_FILE, authorize_publisher};

type Opener<'a> = Box<dyn FnMut() -> io::Result<Box<dyn Read + 'a>> + 'a>;

enum Content<'a> {
    Bytes(Vec<u8>),
    /// Opened twice: once to hash, once to write; both reads must give the same bytes.
    Source {
        size: u64,
        open: Opener<'a>,
    },
}

struct Pending<'a> {
    path: PackagePath,
    mode: FileMode,
    content: Content<'a>,
}

/// Builds a package file from a manifest and a list of files, and signs it.
///
/// ```
/// use appipc_model::package_file::{self, FileMode, Limits, PackageWriter, SecretKey};
/// let manifest = r#"
/// [package]
/// name = "Contoso.Hello"
/// publisher = "CN=Contoso"
/// version = "1.0.0.0"
///
/// [[application]]
/// id = "App"
/// executable = "bin/hello"
/// "#;
/// let key = SecretKey::from_seed("CN=Contoso", [1; 32]).unwrap();
/// let mut w = PackageWriter::new(manifest);
/// w.add_bytes("bin/hello".parse().unwrap(), FileMode::Executable, b"#!/bin/sh\necho hi\n");
/// let mut file = Vec::new();
/// w.write(&key, &mut file).unwrap();
///
/// let mut names = Vec::new();
/// let verified = package_file::read_package(file.as_slice(), &Limits::default(), |e, data| {
///     names.push(e.path.to_string());
///     std::io::copy(data, &mut std::io::sink()).map(drop)
/// })
/// .unwrap();
/// assert_eq!(names, ["appipc.toml", "bin/hello"]);
/// assert_eq!(verified.signer.id(), key.id());
/// ```
pub struct PackageWriter<'a> {
    manifest: Vec<u8>,
    files: Vec<Pending<'a>>,
    limits: Limits,
}

impl std::fmt::Debug for PackageWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageWriter")
            .field("manifest_len", &self.manifest.len())
            .field("files", &self.files.iter().map(|p| p.path.as_str()).collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

impl<'a> PackageWriter<'a> {
    /// A package with this manifest (`appipc.toml`) and no other file yet.
    pub fn new(manifest: impl Into<Vec<u8>>) -> Self {
        PackageWriter { manifest: manifest.into(), files: Vec::new(), limits: Limits::default() }
    }

    /// The limits the result must fit (default: [`Limits::default`]), so that a package file
    /// is not written that readers with those limits refuse.
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// Adds a file held in memory.
    pub fn add_bytes(
        &mut self,
        path: PackagePath,
        mode: FileMode,
        data: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.files.push(Pending { path, mode, content: Content::Bytes(data.into()) });
        self
    }

    /// Adds a file of `size` bytes that `open` reads. `open` is called twice, once to hash the
    /// file and once to write it; if the two reads differ from each other or from `size`,
    /// [`write`](Self::write) fails with [`PackageFileError::SourceChanged`].
    pub fn add_file<F, R>(
        &mut self,
        path: PackagePath,
        mode: FileMode,
        size: u64,
        mut open: F,
    ) -> &mut Self
    where
        F: FnMut() -> io::Result<R> + 'a,
        R: Read + 'a,
    {
        let open: Opener<'a> = Box::new(move || open().map(|r| Box::new(r) as Box<dyn Read + 'a>));
        self.files.push(Pending { path, mode, content: Content::Source { size, open } });
        self
    }

    /// Checks the manifest (valid, within [`MAX_MANIFEST_SIZE`], its publisher the key's),
    /// hashes every file, and writes the signed package file to `out`. Returns its block map.
    pub fn write<W: Write>(self, key: &SecretKey, out: W) -> Result<BlockMap, PackageFileError> {
        let PackageWriter { manifest, mut files, limits } = self;
        if manifest.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(PackageFileError::ManifestTooLarge {
                size: manifest.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let text = std::str::from_utf8(&manifest)
            .map_err(|e| PackageFileError::ManifestNotUtf8 { offset: e.valid_up_to() })?;
        let parsed = manifest::parse(text).map_err(PackageFileError::InvalidManifest)?;
        authorize_publisher(key.publisher().as_str(), &parsed.identity.publisher)?;

        let mut entries = Vec::with_capacity(files.len() + 1);
        entries.push(BlockMapEntry::of(
            MANIFEST_FILE.parse().expect("valid"),
            FileMode::Regular,
            &manifest,
        ));
        for f in &mut files {
            let p = f.path.as_str();
            if p == MANIFEST_FILE || p == BLOCK_MAP_FILE || p == SIGNATURE_FILE {
                return Err(PackageFileError::ReservedName { path: p.to_owned() });
            }
            let (size, sha256) = match &mut f.content {
                Content::Bytes(b) => (b.len() as u64, Sha256::digest(b).into()),
                Content::Source { size, open } => (*size, hash_source(&f.path, *size, open)?),
            };
            entries.push(BlockMapEntry { path: f.path.clone(), mode: f.mode, size, sha256 });
        }
        let block_map = BlockMap::new(entries, &limits)?;
        let block_map_bytes = block_map.to_bytes();
        let signature = PackageSignature::sign(key, &block_map_bytes).to_bytes();

        files.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
        let mut tar = tar::Builder::new(out);
        let write = PackageFileError::Write;
        append(&mut tar, BLOCK_MAP_FILE, 0o644, &block_map_bytes).map_err(write)?;
        append(&mut tar, SIGNATURE_FILE, 0o644, &signature).map_err(write)?;
        append(&mut tar, MANIFEST_FILE, 0o644, &manifest).map_err(write)?;
        for f in &mut files {
            let expected = block_map.get(f.path.as_str()).expect("listed above");
            match &mut f.content {
                Content::Bytes(b) => {
                    append(&mut tar, f.path.as_str(), f.mode.bits(), b).map_err(write)?
                }
                Content::Source { open, .. } => {
                    let source = open().map_err(|source| PackageFileError::Source {
                        path: f.path.to_string(),
                        source,
                    })?;
                    let mut r = Checked {
                        inner: source,
                        remaining: expected.size,
                        hasher: Sha256::new(),
                        error: None,
                    };
                    let mut header = header(expected.size, f.mode.bits());
                    let res = tar.append_data(&mut header, f.path.as_str(), &mut r);
                    if let Some(e) = r.error.take() {
                        return Err(e.into_package_error(&f.path));
                    }
                    res.map_err(write)?;
                    // More bytes than the first read, or other bytes.
                    let mut one = [0u8; 1];
                    let more = read_retrying(&mut r.inner, &mut one).map_err(|source| {
                        PackageFileError::Source { path: f.path.to_string(), source }
                    })?;
                    if more != 0 || <[u8; 32]>::from(r.hasher.finalize()) != expected.sha256 {
                        return Err(PackageFileError::SourceChanged { path: f.path.to_string() });
                    }
                }
            }
        }
        tar.into_inner().map_err(write)?.flush().map_err(write)?;
        Ok(block_map)
    }
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    tar.append_data(&mut header(data.len() as u64, mode), path, data)
}

/// One entry as `append` writes it (header, data, zero padding to 512 bytes), for a `path`
/// that fits the header's name field.
pub(super) fn entry_bytes(path: &str, mode: u32, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut h = header(data.len() as u64, mode);
    h.set_path(path)?;
    h.set_cksum();
    let mut out = Vec::with_capacity(512 + data.len().div_ceil(512) * 512);
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    Ok(out)
}

fn read_retrying(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The first read of a source: its SHA-256, checking it has exactly `size` bytes.
fn hash_source(
    path: &PackagePath,
    size: u64,
    open: &mut Opener<'_>,
) -> Result<[u8; 32], PackageFileError> {
    let source_err = |source| PackageFileError::Source { path: path.to_string(), source };
    let mut r = open().map_err(source_err)?;
    let mut hasher = Sha256::new();
    let mut left = size;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // One byte more than expected is enough to see that the file grew.
        let want = usize::try_from(left.saturating_add(1)).unwrap_or(usize::MAX).min(buf.len());
        let n = read_retrying(&mut r, &mut buf[..want]).map_err(source_err)?;
        if n == 0 {
            break;
        }
        if n as u64 > left {
            return Err(PackageFileError::SourceChanged { path: path.to_string() });
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    if left != 0 {
        return Err(PackageFileError::SourceChanged { path: path.to_string() });
    }
    Ok(hasher.finalize().into())
}

enum CheckedError {
    Source(io::Error),
    Short,
}

impl CheckedError {
    fn into_package_error(self, path: &PackagePath) -> PackageFileError {
        match self {
            CheckedError::Source(source) => {
                PackageFileError::Source { path: path.to_string(), source }
            }
            CheckedError::Short => PackageFileError::SourceChanged { path: path.to_string() },
        }
    }
}

/// The second read of a source: exactly `remaining` bytes (the archive's header already says
/// so), hashed; a source that ends early is an error rather than a short entry.
struct Checked<'a> {
    inner: Box<dyn Read + 'a>,
    remaining: u64,
    hasher: Sha256,
    error: Option<CheckedError>,
}

impl Read for Checked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        match read_retrying(&mut self.inner, &mut buf[..want]) {
            Ok(0) => {
                self.error = Some(CheckedError::Short);
                Err(io::Error::from(io::ErrorKind::UnexpectedEof))
            }
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(CheckedError::Source(e));
                Err(copy)
            }
        }
    }
}
