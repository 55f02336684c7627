//! The user's deployment policy: the keys trusted to sign packages for their publishers, and
//! developer mode (installing unsigned package folders). Changing either is for the user's own
//! unpackaged processes only.
//!
//! ```no_run
//! # async fn demo() -> appipc::Result<()> {
//! use appipc::{Session, trust::{DeveloperMode, TrustStore}};
//! let session = Session::connect().await?;
//! let text = std::fs::read_to_string("contoso.public.toml").unwrap();
//! let key = TrustStore::add(&session, &text).await?;
//! println!("packages signed by {} now install as {:?}", key.key_id, key.publisher);
//! assert!(!DeveloperMode::is_enabled(&session).await?);
//! # Ok(()) }
//! ```

pub use appipc_wire::protocol::packages::TrustedKey;
use appipc_wire::protocol::packages::{
    GetDeveloperMode, ListTrustedKeys, SetDeveloperMode, TrustKey, UntrustKey,
};

use crate::error::Result;
use crate::session::Session;

/// The trust store (Windows: the certificate stores a package's signature must chain to).
#[derive(Debug, Clone, Copy)]
pub struct TrustStore;

impl TrustStore {
    /// Trusts the public key in `public_key_file_text` (the text of a key's `.public.toml`)
    /// for the publisher it names. Trusting a key twice changes nothing.
    pub async fn add(session: &Session, public_key_file_text: &str) -> Result<TrustedKey> {
        session.call(TrustKey { public_key: public_key_file_text.to_owned() }).await
    }

    /// The trusted keys.
    pub async fn list(session: &Session) -> Result<Vec<TrustedKey>> {
        session.call(ListTrustedKeys {}).await
    }

    /// Stops trusting the key with this id (or unique prefix of at least 8 hex digits).
    /// Packages it signed stay installed. Returns the entries removed.
    pub async fn remove(session: &Session, key_id: &str) -> Result<Vec<TrustedKey>> {
        session.call(UntrustKey { key_id: key_id.to_owned() }).await
    }
}

/// Developer mode: off by default; on, package folders install unsigned.
#[derive(Debug, Clone, Copy)]
pub struct DeveloperMode;

impl DeveloperMode {
    /// Whether developer mode is on.
    pub async fn is_enabled(session: &Session) -> Result<bool> {
        Ok(session.call(GetDeveloperMode {}).await?.enabled)
    }

    /// Turns it on or off.
    pub async fn set(session: &Session, enabled: bool) -> Result<()> {
        session.call(SetDeveloperMode { enabled }).await.map(drop)
    }
}
