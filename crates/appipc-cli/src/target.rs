//! Packages as the user names them on the command line: the family name, the full name, or
//! either followed by `!AppId` where one application is meant (`appipc_model::identity::
//! PackageReference`). Every command that takes a package parses it here, so each accepts
//! the same forms and refuses the others with the same words.

use anyhow::Result;
use appipc::{PackageManager, Session};
use appipc_model::identity::PackageReference;

use crate::exit::{Class, fail};

/// Whether a command takes one application of a package, or the package as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takes {
    /// A package (family or full name); `PFN!AppId` is refused.
    Package,
    /// A package (its first application) or one application of it.
    Application,
}

/// Parses `text` for `command`.
pub(crate) fn parse(text: &str, command: &str, takes: Takes) -> Result<PackageReference> {
    let r: PackageReference =
        text.parse().map_err(|e: appipc_model::identity::IdentityError| {
            fail(Class::Data, format!("{command}: {e}"))
        })?;
    if takes == Takes::Package && r.app_id.is_some() {
        return Err(fail(
            Class::Data,
            format!(
                "{command} takes a package, not one of its applications: write {} (a family \
                 name) or its full name, without !{}",
                r.family_name(),
                r.app_id.as_ref().map(|a| a.as_str()).unwrap_or_default()
            ),
        ));
    }
    Ok(r)
}

/// The installed package `r` names, as (family name, full name): a full name must be the
/// installed version's.
pub(crate) async fn installed(session: &Session, r: &PackageReference) -> Result<(String, String)> {
    let family = r.family_name();
    let pkgs = PackageManager::new(session).find_packages().await?;
    let Some(p) = pkgs.iter().find(|p| p.family_name.eq_ignore_ascii_case(family.as_str())) else {
        return Err(fail(
            Class::NotFound,
            format!("no package of the family {family} is installed"),
        ));
    };
    if let Some(full) = r.full_name()
        && !full.to_string().eq_ignore_ascii_case(&p.full_name)
    {
        return Err(fail(
            Class::NotFound,
            format!(
                "{full} is not installed; its family {family} is installed as {} (name the family \
                 for whatever version is installed)",
                p.full_name
            ),
        ));
    }
    Ok((p.family_name.clone(), p.full_name.clone()))
}

/// `r` as the broker takes it (`PFN` or `PFN!AppId`), after checking a full name against the
/// installed version.
pub(crate) async fn for_broker(session: &Session, r: &PackageReference) -> Result<String> {
    let family = match r.full_name() {
        Some(_) => installed(session, r).await?.0,
        None => r.family_name().to_string(),
    };
    Ok(match &r.app_id {
        Some(app) => format!("{family}!{app}"),
        None => family,
    })
}
