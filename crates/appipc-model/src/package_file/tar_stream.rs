//! A tar reader that trusts nothing in its input and never reads without a bound.
//!
//! `tar::Archive` reads a GNU long name or a PAX header into memory whatever size its header
//! claims, and follows the archive's own idea of what an entry is. This loop reads one 512-byte
//! block at a time, parses it with `tar::Header`, and accepts only what a package file may
//! hold: regular files, each optionally named by one preceding GNU long-name entry of at most
//! [`MAX_LONG_NAME`] bytes. Everything else is refused before its data is read.

use std::io::{self, Read};

use super::error::{EntryKind, PackageFileError};

const BLOCK: u64 = 512;
/// Longest GNU long-name entry: a package path has at most 256 characters (1024 UTF-8 bytes),
/// plus the terminating NUL.
pub(super) const MAX_LONG_NAME: u64 = 1025;
/// Most zero bytes accepted after the end-of-archive marker (tar writers pad to a record
/// size, 10 KiB for GNU tar).
pub(super) const MAX_TRAILING_ZEROS: u64 = 1024 * 1024;

/// A regular-file entry's header, as the archive states it (nothing checked against the block
/// map yet).
#[derive(Debug)]
pub(super) struct RawEntry {
    /// The name: from the long-name entry if there is one, else from the header.
    pub(super) name: Vec<u8>,
    /// The size field.
    pub(super) size: u64,
    /// The permission bits of the mode field (`& 0o7777`).
    pub(super) mode: u32,
}

impl RawEntry {
    pub(super) fn lossy_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug)]
pub(super) struct TarStream<R> {
    inner: R,
    offset: u64,
    /// Data bytes of the current entry not read yet.
    remaining: u64,
    /// Padding bytes after the current entry's data.
    padding: u64,
    /// The end-of-archive marker was read.
    ended: bool,
}

pub(super) fn padding_of(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

impl<R: Read> TarStream<R> {
    pub(super) fn new(inner: R) -> Self {
        TarStream { inner, offset: 0, remaining: 0, padding: 0, ended: false }
    }

    /// How many bytes have been read from the input.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads up to `buf.len()` bytes, retrying on `Interrupted`.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, PackageFileError> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PackageFileError::Read(e)),
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), PackageFileError> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_some(&mut buf[done..])?;
            if n == 0 {
                return Err(PackageFileError::Truncated { offset: self.offset });
            }
            done += n;
        }
        Ok(())
    }

    /// Reads data of the current entry: `Ok(0)` once all of it has been read.
    pub(super) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, PackageFileError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.read_some(&mut buf[..want])?;
        if n == 0 {
            return Err(PackageFileError::Truncated { offset: self.offset });
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Reads all the current entry's data; the caller has bounded its size. Memory grows with
    /// the bytes that actually arrive, not with the size the header claims.
    pub(super) fn read_data_to_vec(&mut self) -> Result<Vec<u8>, PackageFileError> {
        let mut v = Vec::with_capacity(usize::try_from(self.remaining.min(64 * 1024)).unwrap_or(0));
        let mut buf = [0u8; 8192];
        loop {
            let n = self.read_data(&mut buf)?;
            if n == 0 {
                return Ok(v);
            }
            v.extend_from_slice(&buf[..n]);
        }
    }

    /// Skips what is left of the current entry's data (bounded by its size) and checks that
    /// its padding is zero.
    fn finish_entry(&mut self) -> Result<(), PackageFileError> {
        let mut buf = [0u8; 8192];
        while self.read_data(&mut buf)? != 0 {}
        let pad = usize::try_from(self.padding).expect("less than 512");
        self.padding = 0;
        let start = self.offset;
        let mut block = [0u8; BLOCK as usize];
        self.read_exact(&mut block[..pad])?;
        if block[..pad].iter().any(|&b| b != 0) {
            return Err(PackageFileError::BadArchive { offset: start, reason: "non-zero padding" });
        }
        Ok(())
    }

    fn read_block(&mut self) -> Result<[u8; BLOCK as usize], PackageFileError> {
        let mut block = [0u8; BLOCK as usize];
        self.read_exact(&mut block)?;
        Ok(block)
    }

    /// The next regular-file entry, or `None` at the end-of-archive marker (two zero blocks,
    /// then only zero bytes, at most [`MAX_TRAILING_ZEROS`], up to the end of the input).
    pub(super) fn next_entry(&mut self) -> Result<Option<RawEntry>, PackageFileError> {
        if self.ended {
            return Ok(None);
        }
        self.finish_entry()?;
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            let start = self.offset;
            let block = self.read_block()?;
            if block.iter().all(|&b| b == 0) {
                if long_name.is_some() {
                    return Err(PackageFileError::BadArchive {
                        offset: start,
                        reason: "a long name entry followed by the end of the archive",
                    });
                }
                self.read_end(start)?;
                self.ended = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            check_header(&block, header, start)?;
            let bad = |reason| PackageFileError::BadHeader { offset: start, reason };
            let size = header.entry_size().map_err(|_| bad("the size field is not a number"))?;
            let type_byte = header.entry_type().as_byte();
            let name = || long_name.clone().unwrap_or_else(|| header.path_bytes().into_owned());
            match type_byte {
                b'L' => {
                    if long_name.is_some() {
                        return Err(bad("two long name entries in a row"));
                    }
                    if size > MAX_LONG_NAME {
                        return Err(PackageFileError::MetadataTooLarge {
                            file: "a GNU long name",
                            size,
                            limit: MAX_LONG_NAME,
                        });
                    }
                    self.remaining = size;
                    self.padding = padding_of(size);
                    let mut data = self.read_data_to_vec()?;
                    self.finish_entry()?;
                    if data.pop() != Some(0) || data.is_empty() || data.contains(&0) {
                        return Err(bad("a long name must be the name and one NUL byte"));
                    }
                    long_name = Some(data);
                }
                b'0' | b'\0' => {
                    let mode = header.mode().map_err(|_| bad("the mode field is not a number"))?;
                    self.remaining = size;
                    self.padding = padding_of(size);
                    return Ok(Some(RawEntry { name: name(), size, mode: mode & 0o7777 }));
                }
                other => {
                    return Err(PackageFileError::ForbiddenEntry {
                        path: String::from_utf8_lossy(&name()).into_owned(),
                        kind: EntryKind::from_type_byte(other),
                    });
                }
            }
        }
    }

    /// After the first zero block: the second one, then zeros only, to the end.
    fn read_end(&mut self, start: u64) -> Result<(), PackageFileError> {
        let second = self.read_block()?;
        if second.iter().any(|&b| b != 0) {
            return Err(PackageFileError::BadArchive {
                offset: start,
                reason: "a single zero block inside the archive",
            });
        }
        let mut trailing = 0u64;
        let mut buf = [0u8; 8192];
        loop {
            let at = self.offset;
            let n = self.read_some(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(PackageFileError::BadArchive {
                    offset: at,
                    reason: "data after the end of the archive",
                });
            }
            trailing += n as u64;
            if trailing > MAX_TRAILING_ZEROS {
                return Err(PackageFileError::BadArchive {
                    offset: at,
                    reason: "more than 1 MiB of padding after the end of the archive",
                });
            }
        }
    }
}

/// The header's checksum and magic: ustar (`ustar\0` `00`) or GNU (`ustar ` ` \0`).
fn check_header(block: &[u8], header: &tar::Header, offset: u64) -> Result<(), PackageFileError> {
    let bad = |reason| PackageFileError::BadHeader { offset, reason };
    let sum: u32 = block[..148].iter().chain(&block[156..]).map(|&b| u32::from(b)).sum::<u32>()
        + 8 * u32::from(b' ');
    if header.cksum().map_err(|_| bad("the checksum field is not a number"))? != sum {
        return Err(bad("checksum mismatch"));
    }
    if header.as_ustar().is_none() && header.as_gnu().is_none() {
        return Err(bad("neither a ustar nor a GNU tar header"));
    }
    Ok(())
}
