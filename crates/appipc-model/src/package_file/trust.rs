//! Whether a verified signer may install a package: the rule, as pure functions.

use super::error::PackageFileError;
use super::keys::PublicKey;

/// The signing key's publisher must equal the manifest's `Identity@Publisher` exactly,
/// character for character (Windows compares the certificate's subject with the manifest's
/// publisher string the same way): no case folding, no reordering of the names' parts.
pub fn authorize_publisher(
    key_publisher: &str,
    manifest_publisher: &str,
) -> Result<(), PackageFileError> {
    if key_publisher == manifest_publisher {
        Ok(())
    } else {
        Err(PackageFileError::PublisherMismatch {
            key_publisher: key_publisher.to_owned(),
            manifest_publisher: manifest_publisher.to_owned(),
        })
    }
}

/// A package file installs only when its signature verifies (done by
/// [`open`](super::open)) with a key that speaks for exactly the manifest's publisher
/// ([`authorize_publisher`]) and that the user trusts for that publisher: `trust_store` holds
/// the user's trusted keys (or only those with the signer's id), each trusted for the publisher
/// it names. The publisher check comes first, since it does not depend on the trust store.
///
/// Developer-mode folder installs have no signer and do not go through this.
pub fn authorize_signer<'a>(
    signer: &PublicKey,
    manifest_publisher: &str,
    trust_store: impl IntoIterator<Item = &'a PublicKey>,
) -> Result<(), PackageFileError> {
    authorize_publisher(signer.publisher().as_str(), manifest_publisher)?;
    if trust_store.into_iter().any(|t| t == signer) {
        Ok(())
    } else {
        Err(PackageFileError::UntrustedKey {
            key_id: signer.id(),
            publisher: signer.publisher().as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package_file::SecretKey;

    const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";

    #[test]
    fn the_signer_must_be_trusted_for_the_manifests_publisher() {
        let contoso = SecretKey::from_seed(CONTOSO, [1; 32]).unwrap().public_key();
        let store = [contoso.clone()];
        authorize_signer(&contoso, CONTOSO, &store).unwrap();

        // Attacker: a package claiming Contoso, signed by a key of their own.
        let mallory = SecretKey::from_seed(CONTOSO, [2; 32]).unwrap().public_key();
        let err = authorize_signer(&mallory, CONTOSO, &store).unwrap_err();
        assert!(matches!(err, PackageFileError::UntrustedKey { .. }), "{err}");
        assert!(err.to_string().contains(&mallory.id().to_string()), "{err}");

        // The same key material trusted for another publisher does not count for Contoso.
        let same_key_other_publisher =
            SecretKey::from_seed("CN=Fabrikam", [1; 32]).unwrap().public_key();
        assert_eq!(same_key_other_publisher.id(), contoso.id());
        let err = authorize_signer(&contoso, CONTOSO, &[same_key_other_publisher]).unwrap_err();
        assert!(matches!(err, PackageFileError::UntrustedKey { .. }), "{err}");

        // An empty store trusts nothing.
        assert!(authorize_signer(&contoso, CONTOSO, &[]).is_err());
    }

    #[test]
    fn publisher_mismatch_quotes_both_strings() {
        let contoso = SecretKey::from_seed(CONTOSO, [1; 32]).unwrap().public_key();
        for claimed in ["CN=Contoso Ltd, O=Contoso, L=Zurich, C=ch", "CN=Contoso Ltd,O=Contoso"] {
            let err = authorize_signer(&contoso, claimed, [&contoso]).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, PackageFileError::PublisherMismatch { .. }), "{text}");
            assert!(text.contains(&format!("{CONTOSO:?}")), "{text}");
            assert!(text.contains(&format!("{claimed:?}")), "{text}");
        }
    }
}
