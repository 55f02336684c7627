//! The protocol reference of `docs/wire.md`, generated from the definitions themselves
//! ([`super::MECHANISMS`] and the status enumerations), so the document cannot go stale: a
//! test compares the file with [`reference_markdown`].

use std::fmt::Write;

use super::{FieldSchema, MECHANISMS};
use crate::status::{
    AppServiceClosedStatus, AppServiceConnectionStatus, AppServiceResponseStatus,
    BackgroundTaskCancellationReason, ErrorKind, FullTrustLaunchResult, HResult,
    StatelessAppServiceResponseStatus, Win32Error,
};

/// One paragraph from doc-comment lines (the leading space of each removed).
fn paragraph(doc: &str) -> String {
    doc.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn fields(fields: &[FieldSchema]) -> String {
    if fields.is_empty() {
        return "—".to_owned();
    }
    fields
        .iter()
        .map(|f| format!("{} `{}`: `{}`", f.index, f.name, f.ty.replace(' ', "")))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

macro_rules! enum_table {
    ($out:expr, $ty:ty, $title:expr) => {{
        let _ = writeln!($out, "**`{}`** ({}): ", stringify!($ty), $title);
        let values: Vec<String> =
            <$ty>::ALL.iter().map(|v| format!("{} {}", v.name(), v.value())).collect();
        let _ = writeln!($out, "{}.\n", values.join(", "));
    }};
}

/// The generated part of `docs/wire.md`: every mechanism with its requests (number, fields in
/// array order, output, fds), events, and every error and status value.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Mechanisms\n");
    let _ = writeln!(out, "| number | mechanism | what |");
    let _ = writeln!(out, "|---:|---|---|");
    for (index, m) in MECHANISMS {
        let name = m.module.rsplit("::").next().unwrap_or(m.module);
        let _ = writeln!(out, "| {index} | `{name}` | {} |", cell(&paragraph(m.doc)));
    }
    for (index, m) in MECHANISMS {
        let name = m.module.rsplit("::").next().unwrap_or(m.module);
        let _ = writeln!(out, "\n### {index} `{name}`\n\n{}\n", paragraph(m.doc));
        let _ = writeln!(
            out,
            "| call | request | fields (array order) | output | fds in | fds out | what |"
        );
        let _ = writeln!(out, "|---:|---|---|---|---|---|---|");
        for r in m.requests {
            let _ = writeln!(
                out,
                "| {index}.{} | `{}` | {} | `{}` | {} | {} | {} |",
                r.index,
                r.name,
                fields(r.fields),
                r.output.replace(' ', ""),
                cell(r.fds),
                cell(r.reply_fds),
                cell(&paragraph(r.doc))
            );
        }
        if !m.events.is_empty() {
            let _ = writeln!(out, "\n| event | name | fields (array order) | fds | what |");
            let _ = writeln!(out, "|---:|---|---|---|---|");
            for e in m.events {
                let _ = writeln!(
                    out,
                    "| {index}.{} | `{}` | {} | {} | {} |",
                    e.index,
                    e.name,
                    fields(e.fields),
                    cell(e.fds),
                    cell(&paragraph(e.doc))
                );
            }
        }
    }
    let _ = writeln!(out, "\n### Error kinds and codes\n");
    let kinds: Vec<String> =
        ErrorKind::ALL.iter().map(|k| format!("{} {}", k.name(), k.value())).collect();
    let _ = writeln!(out, "**`ErrorKind`** (`ErrorReply.kind`): {}.\n", kinds.join(", "));
    let _ = writeln!(
        out,
        "**`WindowsCode`** (`ErrorReply.code`): `[0]` none, `[1, code]` Win32, `[2, code]` \
         HRESULT, `[3, value]` a status value of the request's enumeration.\n"
    );
    enum_table!(out, Win32Error, "Win32 codes, `[1, code]`");
    let hresults: Vec<String> =
        HResult::ALL.iter().map(|v| format!("{} {:#010x}", v.name(), v.value())).collect();
    let _ = writeln!(out, "**`HResult`** (`[2, code]`): {}.\n", hresults.join(", "));
    enum_table!(out, AppServiceConnectionStatus, "`app_service.Open` errors, `[3, value]`");
    enum_table!(out, AppServiceResponseStatus, "app-service channel responses");
    enum_table!(out, AppServiceClosedStatus, "app-service channel close");
    enum_table!(out, StatelessAppServiceResponseStatus, "stateless app-service messages");
    enum_table!(out, BackgroundTaskCancellationReason, "`app_service.Canceled`");
    enum_table!(
        out,
        FullTrustLaunchResult,
        "`full_trust.LaunchFullTrustProcess` errors, `[3, value]`"
    );
    out
}
