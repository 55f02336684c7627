//! The `appipc.signature` entry: the signer's public key (as in its public key file) and the
//! ed25519 signature of the exact bytes of `appipc.blockmap` (appipc's `AppxSignature.p7x`).

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

use super::error::KeyError;
use super::keys::{PublicKey, SecretKey};

/// `format` of the signature entry.
pub const SIGNATURE_FORMAT: &str = "appipc-signature-1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    format: String,
    publisher: String,
    key: String,
    binding: String,
    signature: String,
}

/// A parsed signature entry.
#[derive(Debug, Clone)]
pub(super) struct PackageSignature {
    pub(super) signer: PublicKey,
    pub(super) signature: [u8; 64],
}

impl PackageSignature {
    /// Signs `block_map` (its canonical bytes).
    pub(super) fn sign(key: &SecretKey, block_map: &[u8]) -> PackageSignature {
        PackageSignature { signer: key.public_key(), signature: key.sign(block_map) }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        toml::to_string(&SignatureFile {
            format: SIGNATURE_FORMAT.to_owned(),
            publisher: self.signer.publisher().as_str().to_owned(),
            key: BASE64.encode(&self.signer.key_bytes()),
            binding: BASE64.encode(&self.signer.binding()),
            signature: BASE64.encode(&self.signature),
        })
        .expect("strings serialize to TOML")
        .into_bytes()
    }

    /// Parses the entry; checks the key's binding but not the signature.
    pub(super) fn parse(bytes: &[u8]) -> Result<PackageSignature, KeyError> {
        let syntax = |message: String| KeyError::Syntax { what: "signature", message };
        let text = std::str::from_utf8(bytes).map_err(|e| syntax(e.to_string()))?;
        let f: SignatureFile = toml::from_str(text).map_err(|e| syntax(e.message().into()))?;
        if f.format != SIGNATURE_FORMAT {
            return Err(KeyError::Format { found: f.format, expected: SIGNATURE_FORMAT });
        }
        let decode = |field: &'static str, text: &str, len: usize| {
            let bytes = BASE64.decode(text.as_bytes()).map_err(|e| KeyError::Encoding {
                field,
                reason: format!("not valid encoding: {e}"),
            })?;
            if bytes.len() == len {
                Ok(bytes)
            } else {
                Err(KeyError::Encoding {
                    field,
                    reason: format!("must be {len} bytes, found {}", bytes.len()),
                })
            }
        };
        let key: [u8; 32] = decode("key", &f.key, 32)?.try_into().expect("length checked");
        let binding: [u8; 64] =
            decode("binding", &f.binding, 64)?.try_into().expect("length checked");
        let signature: [u8; 64] =
            decode("signature", &f.signature, 64)?.try_into().expect("length checked");
        let signer = PublicKey::from_parts(&f.publisher, key, binding)?;
        Ok(PackageSignature { signer, signature })
    }

    /// Whether the signature verifies over `block_map`.
    pub(super) fn verifies(&self, block_map: &[u8]) -> bool {
        self.signer.verifies(block_map, &self.signature)
    }
}
