//! Signed custom capability descriptors (SCCD): which packages a custom capability's owner
//! lets have it, as pure functions over data.
//!
//! Windows grants a custom capability (`Company.capName_<publisherId>`) at install only when
//! the package carries a valid `CustomCapability.SCCD` naming it: an XML document listing
//! `CustomCapabilities`, `AuthorizedEntities` (package family name + certificate hash, or
//! `AllowAny`), an optional `DeveloperModeOnly`, and a `Catalog` signature. appipc's
//! descriptor is the same document in TOML, signed with ed25519 by the capability **owner**'s
//! key (the publisher whose id ends the capability name), which the user must trust for that
//! publisher (`appipc trust add`):
//!
//! ```toml
//! format = "appipc-sccd-1"
//! custom-capabilities = ["Contoso.sensorAccess_cvnpggrrsm18p"]
//! developer-mode-only = false          # optional
//!
//! [authorized-entities]
//! allow-any = false                    # true: every package (then no entity)
//! entity = [
//!   { package-family-name = "Fabrikam.Client_ahb7zkq8hx36y",
//!     certificate-signature-hash = "<the package signer's key id: SHA-256 of its public key>" },
//! ]
//!
//! [signature]                          # the Catalog's counterpart (appipc sccd sign)
//! publisher = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH"
//! key = "<base64 ed25519 public key>"
//! binding = "<base64: the key's signature over its publisher>"
//! signature = "<base64 ed25519 signature over the canonical bytes>"
//! ```
//!
//! The signature covers [`Descriptor::canonical_bytes`], not the TOML text: comments, key
//! order and spacing may change, any value may not. [`import_windows_xml`] reads Windows' XML
//! (unsigned: Windows' catalog signature cannot carry over).
//!
//! This module decides nothing about a running process: the broker records what it grants at
//! install, and capability SIDs ([`crate::sid::capability_sid`]) do the rest.

use std::fmt;

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};

use crate::identity::{PackageFamilyName, PublisherId};
use crate::manifest::CustomCapabilityName;
use crate::package_file::{KeyId, PublicKey, SecretKey};

mod xml;

pub use xml::import_windows_xml;

/// `format` of a descriptor.
pub const SCCD_FORMAT: &str = "appipc-sccd-1";
/// Largest descriptor file a reader accepts (bytes).
pub const MAX_DESCRIPTOR_SIZE: usize = 256 * 1024;
/// Most capabilities one descriptor names.
pub const MAX_CAPABILITIES: usize = 256;
/// Most authorized entities one descriptor lists.
pub const MAX_ENTITIES: usize = 1024;

/// A descriptor that cannot be read: not one of this format, or with a value out of its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed descriptor: {0}")]
pub struct MalformedDescriptor(pub String);

fn malformed(m: impl Into<String>) -> MalformedDescriptor {
    MalformedDescriptor(m.into())
}

/// One `AuthorizedEntity`: a package family, and the hash of the key that must have signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedEntity {
    /// `AppPackageFamilyName`.
    pub package_family_name: PackageFamilyName,
    /// `CertificateSignatureHash`: in appipc the signer's key id (SHA-256 of its public key).
    pub certificate_signature_hash: KeyId,
}

/// `AuthorizedEntities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizedEntities {
    /// `AllowAny="true"`: every package.
    AllowAny,
    /// These packages, each signed by the key named (at least one).
    Entities(Vec<AuthorizedEntity>),
}

/// What a descriptor says, without its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `CustomCapabilities` (at least one, no duplicates).
    pub custom_capabilities: Vec<CustomCapabilityName>,
    /// `AuthorizedEntities`.
    pub authorized_entities: AuthorizedEntities,
    /// `DeveloperModeOnly`: honoured only when the broker is in developer mode.
    pub developer_mode_only: bool,
}

/// The owner's signature over a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorSignature {
    /// The key that signed, bound to the publisher it speaks for.
    pub signer: PublicKey,
    /// ed25519 over [`Descriptor::canonical_bytes`].
    pub signature: [u8; 64],
}

/// A descriptor as a file holds it: signed, or not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDescriptor {
    /// What it says.
    pub descriptor: Descriptor,
    /// `None`: not signed (a draft, or imported from Windows' XML).
    pub signature: Option<DescriptorSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    format: String,
    custom_capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    developer_mode_only: bool,
    authorized_entities: EntitiesFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<SignatureFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EntitiesFile {
    #[serde(default)]
    allow_any: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entity: Vec<EntityFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EntityFile {
    package_family_name: String,
    certificate_signature_hash: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    publisher: String,
    key: String,
    binding: String,
    signature: String,
}

fn base64_fixed<const N: usize>(field: &str, text: &str) -> Result<[u8; N], MalformedDescriptor> {
    let bytes = BASE64
        .decode(text.as_bytes())
        .map_err(|e| malformed(format!("signature.{field}: not base64: {e}")))?;
    bytes.as_slice().try_into().map_err(|_| {
        malformed(format!("signature.{field}: must be {N} bytes, found {}", bytes.len()))
    })
}

impl Descriptor {
    /// Checks the rules a descriptor's values follow: at least one capability, none twice
    /// (case-insensitive), at most [`MAX_CAPABILITIES`]; `AllowAny` or 1 to [`MAX_ENTITIES`]
    /// entities, no family twice with the same hash.
    pub fn validate(&self) -> Result<(), MalformedDescriptor> {
        let caps = &self.custom_capabilities;
        if caps.is_empty() || caps.len() > MAX_CAPABILITIES {
            return Err(malformed(format!(
                "custom-capabilities: 1 to {MAX_CAPABILITIES} allowed, found {}",
                caps.len()
            )));
        }
        for (i, c) in caps.iter().enumerate() {
            if caps[..i].iter().any(|d| d.as_str().eq_ignore_ascii_case(c.as_str())) {
                return Err(malformed(format!("custom-capabilities: {c} is named twice")));
            }
        }
        if let AuthorizedEntities::Entities(e) = &self.authorized_entities
            && (e.is_empty() || e.len() > MAX_ENTITIES)
        {
            return Err(malformed(format!(
                "authorized-entities: allow-any = true, or 1 to {MAX_ENTITIES} entities \
                 allowed, found {}",
                e.len()
            )));
        }
        Ok(())
    }

    /// The bytes the owner signs: `appipc-sccd-1`, NUL, then for each capability in order
    /// `capability` NUL name NUL; `allow-any` NUL (`1` or `0`) NUL; for each entity
    /// `entity` NUL family name NUL hash (64 lower-case hex digits) NUL; and
    /// `developer-mode-only` NUL (`1` or `0`) NUL. No value can hold a NUL (each is
    /// validated), so the encoding is unambiguous.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut m = Vec::new();
        let mut field = |parts: &[&str]| {
            for p in parts {
                m.extend_from_slice(p.as_bytes());
                m.push(0);
            }
        };
        field(&[SCCD_FORMAT]);
        for c in &self.custom_capabilities {
            field(&["capability", c.as_str()]);
        }
        let any = matches!(self.authorized_entities, AuthorizedEntities::AllowAny);
        field(&["allow-any", if any { "1" } else { "0" }]);
        if let AuthorizedEntities::Entities(es) = &self.authorized_entities {
            for e in es {
                let hash = e.certificate_signature_hash.to_string();
                field(&["entity", e.package_family_name.as_str(), &hash]);
            }
        }
        field(&["developer-mode-only", if self.developer_mode_only { "1" } else { "0" }]);
        m
    }

    /// Signs the descriptor with its owner's key.
    pub fn sign(self, key: &SecretKey) -> SignedDescriptor {
        let signature = key.sign(&self.canonical_bytes());
        SignedDescriptor {
            descriptor: self,
            signature: Some(DescriptorSignature { signer: key.public_key(), signature }),
        }
    }
}

impl SignedDescriptor {
    /// Parses a descriptor file (its signature is read, not verified: see [`check`]).
    pub fn parse(text: &str) -> Result<SignedDescriptor, MalformedDescriptor> {
        if text.len() > MAX_DESCRIPTOR_SIZE {
            return Err(malformed(format!(
                "{} bytes; at most {MAX_DESCRIPTOR_SIZE} are allowed",
                text.len()
            )));
        }
        let f: File = toml::from_str(text).map_err(|e| malformed(e.message().to_owned()))?;
        if f.format != SCCD_FORMAT {
            return Err(malformed(format!("format {:?}: expected {SCCD_FORMAT:?}", f.format)));
        }
        let custom_capabilities = f
            .custom_capabilities
            .iter()
            .map(|c| {
                c.parse::<CustomCapabilityName>()
                    .map_err(|e| malformed(format!("custom-capabilities: {c:?} {}", e.rule)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let authorized_entities = match (
            f.authorized_entities.allow_any,
            f.authorized_entities.entity,
        ) {
            (true, e) if !e.is_empty() => {
                return Err(malformed(
                    "authorized-entities: allow-any = true lists no entity (it authorizes every \
                     package)",
                ));
            }
            (true, _) => AuthorizedEntities::AllowAny,
            (false, e) => {
                AuthorizedEntities::Entities(e.iter().map(entity).collect::<Result<Vec<_>, _>>()?)
            }
        };
        let signature = f.signature.map(|s| signature(&s)).transpose()?;
        let descriptor = Descriptor {
            custom_capabilities,
            authorized_entities,
            developer_mode_only: f.developer_mode_only,
        };
        descriptor.validate()?;
        Ok(SignedDescriptor { descriptor, signature })
    }

    /// The descriptor file's text.
    pub fn to_toml(&self) -> String {
        let d = &self.descriptor;
        let (allow_any, entity) = match &d.authorized_entities {
            AuthorizedEntities::AllowAny => (true, Vec::new()),
            AuthorizedEntities::Entities(es) => (
                false,
                es.iter()
                    .map(|e| EntityFile {
                        package_family_name: e.package_family_name.to_string(),
                        certificate_signature_hash: e.certificate_signature_hash.to_string(),
                    })
                    .collect(),
            ),
        };
        let f = File {
            format: SCCD_FORMAT.to_owned(),
            custom_capabilities: d.custom_capabilities.iter().map(|c| c.to_string()).collect(),
            developer_mode_only: d.developer_mode_only,
            authorized_entities: EntitiesFile { allow_any, entity },
            signature: self.signature.as_ref().map(|s| SignatureFile {
                publisher: s.signer.publisher().as_str().to_owned(),
                key: BASE64.encode(&s.signer.key_bytes()),
                binding: BASE64.encode(&s.signer.binding()),
                signature: BASE64.encode(&s.signature),
            }),
        };
        let body = toml::to_string(&f).expect("strings and booleans serialize to TOML");
        let head = match &self.signature {
            Some(s) => format!(
                "# appipc custom capability descriptor, signed by key {} for {:?}\n",
                s.signer.id(),
                s.signer.publisher().as_str()
            ),
            None => "# appipc custom capability descriptor, unsigned: its capabilities' owner \
                     signs it with appipc sccd sign\n"
                .to_owned(),
        };
        format!("{head}{body}")
    }
}

fn entity(e: &EntityFile) -> Result<AuthorizedEntity, MalformedDescriptor> {
    let package_family_name =
        e.package_family_name.parse::<PackageFamilyName>().map_err(|err| {
            malformed(format!("authorized-entities.entity: package-family-name: {err}"))
        })?;
    let certificate_signature_hash =
        e.certificate_signature_hash.parse::<KeyId>().map_err(|err| {
            malformed(format!(
                "authorized-entities.entity: certificate-signature-hash: {err} (the SHA-256 of \
                 the package signer's public key: its key id, 64 hex digits)"
            ))
        })?;
    Ok(AuthorizedEntity { package_family_name, certificate_signature_hash })
}

fn signature(s: &SignatureFile) -> Result<DescriptorSignature, MalformedDescriptor> {
    let key = base64_fixed::<32>("key", &s.key)?;
    let binding = base64_fixed::<64>("binding", &s.binding)?;
    let signature = base64_fixed::<64>("signature", &s.signature)?;
    let signer = PublicKey::from_parts(&s.publisher, key, binding)
        .map_err(|e| malformed(format!("signature: {e}")))?;
    Ok(DescriptorSignature { signer, signature })
}

/// Why a descriptor does not grant a capability to a package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The file is not a valid descriptor.
    #[error("{0}")]
    Malformed(#[from] MalformedDescriptor),
    /// No signature.
    #[error("the descriptor is not signed (its capabilities' owner signs it: appipc sccd sign)")]
    Unsigned,
    /// The signature does not verify: the descriptor was changed after it was signed.
    #[error(
        "bad signature: the signature of key {key_id} does not verify over the descriptor (it \
         was altered after signing, or signed by another key)"
    )]
    BadSignature {
        /// The key the signature names.
        key_id: KeyId,
    },
    /// The signing key is not in the trust store (for the publisher it names).
    #[error(
        "untrusted owner key: the descriptor is signed by key {key_id} for {publisher:?}, which \
         is not trusted (appipc trust add its public key)"
    )]
    UntrustedOwnerKey {
        /// The key.
        key_id: KeyId,
        /// The publisher it speaks for.
        publisher: String,
    },
    /// The signing key is trusted, but for a publisher that does not own the capability.
    #[error(
        "key not owning the capability: {capability} belongs to publisher id {owner}, but the \
         descriptor is signed by key {key_id}, trusted for {publisher:?} (publisher id \
         {publisher_id}); only the owner's key signs for its capabilities"
    )]
    KeyNotOwner {
        /// The capability.
        capability: String,
        /// The publisher id after its last `_`.
        owner: PublisherId,
        /// The key.
        key_id: KeyId,
        /// The publisher the key is trusted for.
        publisher: String,
        /// That publisher's id.
        publisher_id: PublisherId,
    },
    /// No authorized entity names the package's family.
    #[error("wrong package family name: the descriptor authorizes {authorized}, not {family_name}")]
    WrongPackageFamilyName {
        /// The package's family name.
        family_name: String,
        /// The families the descriptor authorizes.
        authorized: String,
    },
    /// An entity names the family, but with another signer's hash.
    #[error(
        "wrong signer hash: the descriptor authorizes {family_name} signed by key {expected}, but \
         {found}"
    )]
    WrongSignerHash {
        /// The package's family name.
        family_name: String,
        /// The hashes the descriptor names for it.
        expected: String,
        /// What the package was signed with.
        found: String,
    },
    /// `DeveloperModeOnly` outside developer mode.
    #[error(
        "developer-mode-only: the descriptor is honoured only in developer mode, which is off \
         (appipc dev-mode on)"
    )]
    DeveloperModeOnly,
}

/// The package a descriptor is checked for.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its family name.
    pub family_name: &'a PackageFamilyName,
    /// The id of the key that signed it (`None`: installed from a folder, unsigned).
    pub signer: Option<&'a KeyId>,
    /// Whether the broker is in developer mode.
    pub developer_mode: bool,
}

/// Checks a descriptor for `capability`: signed, the signature verifies, the key is trusted
/// (in `trusted`, each key trusted for the publisher it names) and speaks for the capability's
/// owner, and, when `candidate` is given, it authorizes that package (its family and signer,
/// or `AllowAny`) and developer mode allows it. The capability must be one the descriptor
/// names (the caller looks it up).
// A refusal carries the strings it explains; it is rare (at install, once per capability).
#[allow(clippy::result_large_err)]
pub fn check(
    d: &SignedDescriptor,
    capability: &CustomCapabilityName,
    trusted: &[PublicKey],
    candidate: Option<Candidate<'_>>,
) -> Result<(), Refusal> {
    let Some(sig) = &d.signature else { return Err(Refusal::Unsigned) };
    let key_id = sig.signer.id();
    if !sig.signer.verifies(&d.descriptor.canonical_bytes(), &sig.signature) {
        return Err(Refusal::BadSignature { key_id });
    }
    let publisher = sig.signer.publisher().as_str().to_owned();
    if !trusted.contains(&sig.signer) {
        return Err(Refusal::UntrustedOwnerKey { key_id, publisher });
    }
    let owner = capability.owner_publisher_id();
    let publisher_id = sig.signer.publisher().publisher_id();
    if !owner.eq_ignore_case(&publisher_id) {
        return Err(Refusal::KeyNotOwner {
            capability: capability.to_string(),
            owner,
            key_id,
            publisher,
            publisher_id,
        });
    }
    let Some(c) = candidate else { return Ok(()) };
    if let AuthorizedEntities::Entities(es) = &d.descriptor.authorized_entities {
        let family: Vec<&AuthorizedEntity> =
            es.iter().filter(|e| e.package_family_name.eq_ignore_case(c.family_name)).collect();
        if family.is_empty() {
            let authorized: Vec<&str> = es.iter().map(|e| e.package_family_name.as_str()).collect();
            return Err(Refusal::WrongPackageFamilyName {
                family_name: c.family_name.to_string(),
                authorized: authorized.join(", "),
            });
        }
        if !family.iter().any(|e| Some(&e.certificate_signature_hash) == c.signer) {
            let expected: Vec<String> =
                family.iter().map(|e| e.certificate_signature_hash.to_string()).collect();
            return Err(Refusal::WrongSignerHash {
                family_name: c.family_name.to_string(),
                expected: expected.join(" or "),
                found: match c.signer {
                    Some(k) => format!("it is signed by key {k}"),
                    None => "it is unsigned (installed from a folder), so no signer hash can \
                             match"
                        .to_owned(),
                },
            });
        }
    }
    if d.descriptor.developer_mode_only && !c.developer_mode {
        return Err(Refusal::DeveloperModeOnly);
    }
    Ok(())
}

/// One descriptor of a package: where it is, and what reading it gave.
#[derive(Debug, Clone)]
pub struct PackageDescriptor {
    /// Its path in the package.
    pub path: String,
    /// The parsed descriptor, or why it cannot be read.
    pub read: Result<SignedDescriptor, MalformedDescriptor>,
}

impl fmt::Display for PackageDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// Whether a package's descriptors grant it `capability`: `Ok` when one of them names it and
/// passes [`check`]; otherwise every reason, each after the descriptor's path (a malformed
/// descriptor is reported whatever it might have named).
pub fn grant(
    capability: &CustomCapabilityName,
    descriptors: &[PackageDescriptor],
    trusted: &[PublicKey],
    candidate: Candidate<'_>,
) -> Result<(), String> {
    if descriptors.is_empty() {
        return Err("not in any descriptor: the package carries no custom capability descriptor \
                    (capabilities.custom-capability-descriptor), and a custom capability is \
                    granted only by a valid signed custom capability descriptor of its owner"
            .to_owned());
    }
    let mut reasons = Vec::new();
    for pd in descriptors {
        let d = match &pd.read {
            Ok(d) => d,
            Err(e) => {
                reasons.push(format!("{pd}: {e}"));
                continue;
            }
        };
        let names = d
            .descriptor
            .custom_capabilities
            .iter()
            .any(|c| c.as_str().eq_ignore_ascii_case(capability.as_str()));
        if !names {
            continue;
        }
        match check(d, capability, trusted, Some(candidate)) {
            Ok(()) => return Ok(()),
            Err(e) => reasons.push(format!("{pd}: {e}")),
        }
    }
    let named_by_none = !descriptors.iter().any(|pd| {
        pd.read.as_ref().is_ok_and(|d| {
            d.descriptor
                .custom_capabilities
                .iter()
                .any(|c| c.as_str().eq_ignore_ascii_case(capability.as_str()))
        })
    });
    if named_by_none {
        let paths: Vec<&str> = descriptors.iter().map(|d| d.path.as_str()).collect();
        reasons.push(format!(
            "not in any descriptor: none of the package's descriptors ({}) names it",
            paths.join(", ")
        ));
    }
    Err(reasons.join("; "))
}

#[cfg(test)]
mod tests;
