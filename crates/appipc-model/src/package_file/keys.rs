//! Signing keys: an ed25519 key pair whose public half names the publisher it speaks for.
//!
//! A public key file is appipc's counterpart of a self-signed code-signing certificate: the
//! publisher string (the certificate's subject), the 32-byte ed25519 public key, and a
//! *binding*, the key's own signature over both, so that neither can be changed without the
//! secret key. Its [`KeyId`] (SHA-256 of the 32 public key bytes) plays the part of the
//! certificate's hash. Both files are small TOML documents; `docs/packaging.md` gives their
//! exact form.

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE64, HEXLOWER, HEXLOWER_PERMISSIVE};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::Publisher;

use super::error::KeyError;

/// `format` of a public key file.
pub const PUBLIC_KEY_FORMAT: &str = "appipc-public-key-1";
/// `format` of a secret key file.
pub const SECRET_KEY_FORMAT: &str = "appipc-secret-key-1";
/// Largest key or signature file a reader needs to accept: a publisher has at most 8192
/// characters (32 KiB of UTF-8), the rest is under 300 bytes.
pub const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;

/// The message a key's binding signs: `appipc-public-key-1`, a NUL byte, the publisher's UTF-8
/// bytes, a NUL byte, the 32 public key bytes. The key has a fixed length at the end, so the
/// encoding is unambiguous even for a publisher that contained a NUL byte.
fn binding_message(publisher: &str, key: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(PUBLIC_KEY_FORMAT.len() + publisher.len() + 34);
    m.extend_from_slice(PUBLIC_KEY_FORMAT.as_bytes());
    m.push(0);
    m.extend_from_slice(publisher.as_bytes());
    m.push(0);
    m.extend_from_slice(key);
    m
}

/// The id of a key: SHA-256 of its 32 public key bytes, shown as 64 lower-case hex digits.
///
/// This is the value a custom capability descriptor names as `CertificateSignatureHash` for
/// packages signed with this key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The id of these public key bytes.
    pub fn of(public_key: &[u8; 32]) -> KeyId {
        KeyId(Sha256::digest(public_key).into())
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = KeyError;
    /// 64 hex digits, either case.
    fn from_str(s: &str) -> Result<KeyId, KeyError> {
        decode_fixed::<32>("key id", s, &HEXLOWER_PERMISSIVE).map(KeyId)
    }
}

fn decode_fixed<const N: usize>(
    field: &'static str,
    text: &str,
    encoding: &data_encoding::Encoding,
) -> Result<[u8; N], KeyError> {
    let bytes = encoding
        .decode(text.as_bytes())
        .map_err(|e| KeyError::Encoding { field, reason: format!("not valid encoding: {e}") })?;
    bytes.as_slice().try_into().map_err(|_| KeyError::Encoding {
        field,
        reason: format!("must be {N} bytes, found {}", bytes.len()),
    })
}

fn decode_base64<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], KeyError> {
    decode_fixed::<N>(field, text, &BASE64)
}

fn check_format(found: &str, expected: &'static str) -> Result<(), KeyError> {
    if found == expected {
        Ok(())
    } else {
        Err(KeyError::Format { found: found.to_owned(), expected })
    }
}

/// The public half of a signing key, bound to the publisher it speaks for.
///
/// Equality compares the publisher and the key (the binding is a deterministic function of
/// both). A trust store entry is such a value: trusting a key trusts it for its publisher only.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    publisher: Publisher,
    key: VerifyingKey,
    binding: [u8; 64],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyFile {
    format: String,
    publisher: String,
    key: String,
    binding: String,
}

impl PublicKey {
    /// Builds a public key from its parts, checking that the publisher is a valid
    /// distinguished name, that the key is a usable ed25519 key, and that the binding verifies.
    pub fn from_parts(
        publisher: &str,
        key: [u8; 32],
        binding: [u8; 64],
    ) -> Result<PublicKey, KeyError> {
        let publisher: Publisher = publisher.parse()?;
        let vk = VerifyingKey::from_bytes(&key).map_err(|_| KeyError::InvalidKey)?;
        if vk.is_weak() {
            return Err(KeyError::InvalidKey);
        }
        let sig = Signature::from_bytes(&binding);
        vk.verify_strict(&binding_message(publisher.as_str(), &key), &sig)
            .map_err(|_| KeyError::BadBinding)?;
        Ok(PublicKey { publisher, key: vk, binding })
    }

    /// The publisher this key speaks for (`Identity@Publisher` of the packages it signs).
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// SHA-256 of the public key bytes.
    pub fn id(&self) -> KeyId {
        KeyId::of(self.key.as_bytes())
    }

    /// The 32 ed25519 public key bytes.
    pub fn key_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key's signature over its publisher and key bytes.
    pub fn binding(&self) -> [u8; 64] {
        self.binding
    }

    /// Whether `signature` is this key's ed25519 signature of `message` (strict verification:
    /// no malleable or small-order encodings).
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
    }

    /// The public key file's text.
    pub fn to_file_text(&self) -> String {
        let body = toml::to_string(&PublicKeyFile {
            format: PUBLIC_KEY_FORMAT.to_owned(),
            publisher: self.publisher.as_str().to_owned(),
            key: BASE64.encode(self.key.as_bytes()),
            binding: BASE64.encode(&self.binding),
        })
        .expect("strings serialize to TOML");
        format!(
            "# appipc public key {}: packages this key signs install as {:?} once it is trusted\n\
             {body}",
            self.id(),
            self.publisher.as_str()
        )
    }

    /// Parses a public key file.
    pub fn from_file_text(text: &str) -> Result<PublicKey, KeyError> {
        let f: PublicKeyFile = toml::from_str(text)
            .map_err(|e| KeyError::Syntax { what: "public key", message: e.message().into() })?;
        check_format(&f.format, PUBLIC_KEY_FORMAT)?;
        PublicKey::from_parts(
            &f.publisher,
            decode_base64("key", &f.key)?,
            decode_base64("binding", &f.binding)?,
        )
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("publisher", &self.publisher.as_str())
            .field("id", &self.id())
            .finish()
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_file_text(s)
    }
}

/// A signing key: the ed25519 secret seed and the publisher it speaks for.
///
/// `Debug` shows the publisher and the key id, never the secret.
#[derive(Clone)]
pub struct SecretKey {
    publisher: Publisher,
    key: SigningKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    format: String,
    publisher: String,
    secret: String,
}

impl SecretKey {
    /// A new key pair for `publisher` from the operating system's random source.
    pub fn generate(publisher: &str) -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        SecretKey::from_seed(publisher, seed)
    }

    /// The key pair of this 32-byte ed25519 seed (RFC 8032 secret key) for `publisher`.
    pub fn from_seed(publisher: &str, seed: [u8; 32]) -> Result<SecretKey, KeyError> {
        Ok(SecretKey { publisher: publisher.parse()?, key: SigningKey::from_bytes(&seed) })
    }

    /// The publisher this key speaks for.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The id of its public half.
    pub fn id(&self) -> KeyId {
        KeyId::of(self.key.verifying_key().as_bytes())
    }

    /// The public half, with its binding.
    pub fn public_key(&self) -> PublicKey {
        let vk = self.key.verifying_key();
        let binding =
            self.key.sign(&binding_message(self.publisher.as_str(), vk.as_bytes())).to_bytes();
        PublicKey { publisher: self.publisher.clone(), key: vk, binding }
    }

    /// The ed25519 signature of `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The secret key file's text. Whoever writes it makes it readable by its owner only.
    pub fn to_file_text(&self) -> String {
        let body = toml::to_string(&SecretKeyFile {
            format: SECRET_KEY_FORMAT.to_owned(),
            publisher: self.publisher.as_str().to_owned(),
            secret: BASE64.encode(self.key.as_bytes()),
        })
        .expect("strings serialize to TOML");
        format!(
            "# appipc secret key {}: keep it private; it signs packages as {:?}\n{body}",
            self.id(),
            self.publisher.as_str()
        )
    }

    /// Parses a secret key file.
    pub fn from_file_text(text: &str) -> Result<SecretKey, KeyError> {
        let f: SecretKeyFile = toml::from_str(text)
            .map_err(|e| KeyError::Syntax { what: "secret key", message: e.message().into() })?;
        check_format(&f.format, SECRET_KEY_FORMAT)?;
        SecretKey::from_seed(&f.publisher, decode_base64("secret", &f.secret)?)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("publisher", &self.publisher.as_str())
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";

    fn contoso() -> SecretKey {
        SecretKey::from_seed(CONTOSO, [7; 32]).unwrap()
    }

    #[test]
    fn key_files_round_trip() {
        let sk = contoso();
        let text = sk.to_file_text();
        let back = SecretKey::from_file_text(&text).unwrap();
        assert_eq!(back.id(), sk.id());
        assert_eq!(back.publisher(), sk.publisher());

        let pk = sk.public_key();
        let text = pk.to_file_text();
        assert!(text.contains("format = \"appipc-public-key-1\""), "{text}");
        let back: PublicKey = text.parse().unwrap();
        assert_eq!(back, pk);
        assert_eq!(back.id(), sk.id());
        assert_eq!(back.id().to_string().parse::<KeyId>().unwrap(), back.id());
    }

    #[test]
    fn key_id_is_sha256_of_the_public_key() {
        // RFC 8032 test 1: secret 9d61b1…, public d75a98….
        let seed: [u8; 32] = HEXLOWER
            .decode(b"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
        let sk = SecretKey::from_seed("CN=Test", seed).unwrap();
        let pk = sk.public_key();
        assert_eq!(
            HEXLOWER.encode(&pk.key_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(pk.id().as_bytes(), &<[u8; 32]>::from(Sha256::digest(pk.key_bytes())));
    }

    #[test]
    fn a_relabelled_public_key_is_refused() {
        // Attacker's test: take Contoso's public key file and claim it speaks for Fabrikam.
        let text = contoso().public_key().to_file_text();
        let forged = text.replace(CONTOSO, "CN=Fabrikam");
        assert_ne!(forged, text);
        assert!(matches!(PublicKey::from_file_text(&forged), Err(KeyError::BadBinding)));
    }

    #[test]
    fn a_swapped_key_is_refused() {
        let a = contoso().public_key();
        let b = SecretKey::from_seed(CONTOSO, [8; 32]).unwrap().public_key();
        let err = PublicKey::from_parts(CONTOSO, b.key_bytes(), a.binding()).unwrap_err();
        assert!(matches!(err, KeyError::BadBinding));
    }

    #[test]
    fn malformed_key_files_name_the_problem() {
        let good = contoso().public_key().to_file_text();
        let cases = [
            (good.replace("appipc-public-key-1", "appipc-public-key-2"), "format"),
            (good.replace("format", "fmt"), "not an appipc public key file"),
            (format!("{good}extra = 1\n"), "not an appipc public key file"),
            (good.replace(CONTOSO, "Contoso"), "publisher"),
            (good.replace("key = \"", "key = \"AAAA"), "key: must be 32 bytes"),
            (good.replace("binding = \"", "binding = \"!"), "binding: not valid encoding"),
        ];
        for (text, want) in cases {
            let err = PublicKey::from_file_text(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
        assert!(matches!(
            SecretKey::from_file_text(&good),
            Err(KeyError::Syntax { what: "secret key", .. })
        ));
    }

    #[test]
    fn a_weak_key_is_refused() {
        // The identity point (small order) signs nothing meaningful.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_parts(CONTOSO, identity, [0; 64]),
            Err(KeyError::InvalidKey)
        ));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let sk = contoso();
        let dbg = format!("{sk:?}");
        assert!(dbg.contains("Contoso") && dbg.contains(&sk.id().to_string()), "{dbg}");
        assert!(!dbg.contains(&BASE64.encode(&[7; 32])), "{dbg}");
        assert!(!dbg.contains(&HEXLOWER.encode(&[7; 32])), "{dbg}");
    }

    #[test]
    fn generated_keys_differ() {
        let a = SecretKey::generate(CONTOSO).unwrap();
        let b = SecretKey::generate(CONTOSO).unwrap();
        assert_ne!(a.id(), b.id());
        assert!(a.public_key().verifies(b"m", &a.sign(b"m")));
        assert!(!b.public_key().verifies(b"m", &a.sign(b"m")));
    }
}
