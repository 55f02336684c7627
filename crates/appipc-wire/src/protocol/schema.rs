//! The types the protocol carries besides its requests and events — outputs, their nested
//! structs and enumerations — read from this crate's own source (compiled in), so that
//! `docs/wire.md` can give every field's position and every variant's number, and the CDDL
//! schema ([`cddl`], RFC 8610) can be generated: one definition, the Rust one.
//!
//! A struct or enum is taken when it derives minicbor's `Encode` and is written in the crate's
//! style: `#[n(K)]` on a line of its own before each field or variant. [`types`] checks what it
//! reads (indices contiguous from 0, every named type defined), so that a definition written
//! otherwise fails the documentation test instead of vanishing from the schema.

use std::collections::BTreeMap;

use super::{FieldSchema, MECHANISMS};

/// The sources read, by module path.
const SOURCES: &[(&str, &str)] = &[
    ("caller", include_str!("../caller.rs")),
    ("protocol::broker", include_str!("broker.rs")),
    ("protocol::packages", include_str!("packages.rs")),
    ("protocol::launch", include_str!("launch.rs")),
    ("protocol::app_service", include_str!("app_service.rs")),
    ("protocol::full_trust", include_str!("full_trust.rs")),
    ("protocol::storage", include_str!("storage.rs")),
    ("protocol::named_objects", include_str!("named_objects.rs")),
    ("protocol::pipes", include_str!("pipes.rs")),
    ("protocol::diagnostics", include_str!("diagnostics.rs")),
    ("protocol::launcher", include_str!("launcher.rs")),
    ("protocol::loopback", include_str!("loopback.rs")),
    ("protocol::registry", include_str!("registry.rs")),
    ("protocol::rpc", include_str!("rpc.rs")),
    ("protocol::com", include_str!("com.rs")),
    ("status", include_str!("../status.rs")),
    ("app_service", include_str!("../app_service.rs")),
];

/// Types encoded by hand, with their CDDL.
const MANUAL: &[(&str, &str, &str)] = &[
    (
        "WindowsCode",
        "[0] / [1, uint] / [2, uint] / [3, uint]",
        "`[0]` none, `[1, code]` Win32, `[2, code]` HRESULT, `[3, value]` a status value of the \
         request's enumeration",
    ),
    ("ValueSet", "valueset", "a ValueSet map (*ValueSet encoding*)"),
    ("ByteVec", "bstr", "a byte string"),
];

/// The Windows status enumerations (encoded as their Windows number, listed under *Error kinds
/// and codes*).
const STATUS_ENUMS: &[&str] = &[
    "AppServiceConnectionStatus",
    "AppServiceResponseStatus",
    "AppServiceClosedStatus",
    "StatelessAppServiceResponseStatus",
    "BackgroundTaskCancellationReason",
    "FullTrustLaunchResult",
    "LaunchUriStatus",
    "LaunchQuerySupportStatus",
    "LaunchQuerySupportType",
];

/// One field or variant: its number, name, Rust type (fields) and documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Position in the array (fields) or variant number.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Rust type (empty for a variant).
    pub ty: String,
    /// Documentation, one paragraph.
    pub doc: String,
    /// A variant's fields.
    pub fields: Vec<Member>,
}

/// What a type is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// An array of the fields in index order.
    Struct(Vec<Member>),
    /// The variant's number alone (`#[cbor(index_only)]`).
    IndexOnly(Vec<Member>),
    /// `[variant, [fields…]]`.
    Enum(Vec<Member>),
}

/// A type of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeSchema {
    /// Its name.
    pub name: String,
    /// The module it is defined in (`protocol::packages`).
    pub module: &'static str,
    /// Documentation, one paragraph.
    pub doc: String,
    /// Its shape.
    pub shape: Shape,
}

fn paragraph(lines: &[String]) -> String {
    let text = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>();
    unlink(&text.join(" "))
}

/// Rustdoc links as plain code: "[`Ping`]" and "[`X`](crate::x::X)" become "`Ping`", "`X`".
fn unlink(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("[`") {
        let Some(j) = rest[i..].find("`]") else { break };
        out.push_str(&rest[..i]);
        out.push_str(&rest[i + 1..i + j + 1]);
        rest = &rest[i + j + 2..];
        if rest.starts_with('(')
            && let Some(k) = rest.find(')')
        {
            rest = &rest[k + 1..];
        }
    }
    out.push_str(rest);
    out
}

fn doc_line(t: &str) -> Option<String> {
    t.strip_prefix("///").map(|d| d.strip_prefix(' ').unwrap_or(d).to_owned())
}

fn index_of(t: &str) -> Option<u32> {
    t.strip_prefix("#[n(")?.strip_suffix(")]")?.parse().ok()
}

/// Fields of a struct body or a variant body: `/// doc`, `#[n(K)]`, `[pub] name: Type,`.
fn parse_fields<'a>(lines: &mut impl Iterator<Item = &'a str>, end: &str) -> Vec<Member> {
    let (mut doc, mut index, mut out) = (Vec::new(), None, Vec::new());
    for line in lines.by_ref() {
        let t = line.trim();
        if t == end {
            break;
        }
        if let Some(d) = doc_line(t) {
            doc.push(d);
        } else if let Some(i) = index_of(t) {
            index = Some(i);
        } else if let Some((name, ty)) = t.trim_start_matches("pub ").split_once(": ") {
            if let Some(i) = index.take() {
                let ty = ty.trim_end_matches(',').to_owned();
                out.push(Member {
                    index: i,
                    name: name.to_owned(),
                    ty,
                    doc: paragraph(&doc),
                    fields: Vec::new(),
                });
            }
            doc.clear();
        }
    }
    out
}

fn parse_variants<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Vec<Member> {
    let (mut doc, mut index, mut out) = (Vec::new(), None, Vec::new());
    while let Some(line) = lines.next() {
        let t = line.trim();
        if line == "}" {
            break;
        }
        if let Some(d) = doc_line(t) {
            doc.push(d);
        } else if let Some(i) = index_of(t) {
            index = Some(i);
        } else if let Some(i) = index.take() {
            let (name, fields) = match t.strip_suffix(" {") {
                Some(name) => (name, parse_fields(lines, "},")),
                None => (t.trim_end_matches(','), Vec::new()),
            };
            out.push(Member {
                index: i,
                name: name.to_owned(),
                ty: String::new(),
                doc: paragraph(&doc),
                fields,
            });
            doc.clear();
        }
    }
    out
}

/// Every struct and enum of [`SOURCES`] that derives minicbor's `Encode`, checked.
///
/// # Panics
/// When a definition is not in the expected style (indices not contiguous from 0), or names a
/// type that is neither defined nor known: the documentation test fails on it.
pub fn types() -> Vec<TypeSchema> {
    let mut out = Vec::new();
    for (module, text) in SOURCES {
        let (mut doc, mut encodes, mut index_only) = (Vec::new(), false, false);
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(d) = doc_line(line) {
                doc.push(d);
                continue;
            }
            if line.starts_with("#[derive(") {
                encodes = line.contains("Encode");
                continue;
            }
            if line.starts_with("#[cbor(index_only)]") {
                index_only = true;
                continue;
            }
            let item = line.strip_prefix("pub struct ").map(|n| (n, true));
            let item = item.or_else(|| line.strip_prefix("pub enum ").map(|n| (n, false)));
            if let Some((rest, is_struct)) = item
                && encodes
                && let Some(name) = rest.strip_suffix(" {")
            {
                let shape = match (is_struct, index_only) {
                    (true, _) => Shape::Struct(parse_fields(&mut lines, "}")),
                    (false, true) => Shape::IndexOnly(parse_variants(&mut lines)),
                    (false, false) => Shape::Enum(parse_variants(&mut lines)),
                };
                out.push(TypeSchema { name: name.to_owned(), module, doc: paragraph(&doc), shape });
            } else if let Some((_, true)) = item
                && encodes
                && rest_is_empty_struct(line)
            {
                let name =
                    line["pub struct ".len()..].trim_end_matches(" {}").trim_end_matches(';');
                out.push(TypeSchema {
                    name: name.to_owned(),
                    module,
                    doc: paragraph(&doc),
                    shape: Shape::Struct(Vec::new()),
                });
            }
            if !line.starts_with("#[") {
                doc.clear();
                encodes = false;
                index_only = false;
            }
        }
    }
    out.retain(|t| t.name != "Frame");
    check(&out);
    out
}

fn rest_is_empty_struct(line: &str) -> bool {
    line.ends_with(" {}") || line.ends_with(';')
}

fn members(shape: &Shape) -> &[Member] {
    match shape {
        Shape::Struct(m) | Shape::IndexOnly(m) | Shape::Enum(m) => m,
    }
}

/// The names a Rust type refers to (`Option<Vec<PackageInfo>>` → `PackageInfo`).
fn named(ty: &str) -> Vec<&str> {
    ty.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        .filter(|w| !matches!(*w, "Option" | "Vec" | "String"))
        .collect()
}

fn check(types: &[TypeSchema]) {
    let known = |n: &str| {
        types.iter().any(|t| t.name == n)
            || MANUAL.iter().any(|m| m.0 == n)
            || STATUS_ENUMS.contains(&n)
    };
    let mut referenced: Vec<String> = Vec::new();
    for t in types {
        let m = members(&t.shape);
        for (i, member) in m.iter().enumerate() {
            // Fields are positions: 0, 1, 2, …; variants are numbers, in increasing order.
            match t.shape {
                Shape::Struct(_) => {
                    assert_eq!(member.index as usize, i, "{}: #[n] of {}", t.name, member.name);
                }
                _ => assert!(
                    i == 0 || m[i - 1].index < member.index,
                    "{}: variant {} out of order",
                    t.name,
                    member.name
                ),
            }
            referenced.push(member.ty.clone());
            for (j, f) in member.fields.iter().enumerate() {
                assert_eq!(f.index as usize, j, "{}::{}: #[n] of {}", t.name, member.name, f.name);
                referenced.push(f.ty.clone());
            }
        }
    }
    for (_, m) in MECHANISMS {
        for r in m.requests {
            referenced.push(r.output.to_owned());
            referenced.extend(r.fields.iter().map(|f| f.ty.to_owned()));
        }
        for e in m.events {
            referenced.extend(e.fields.iter().map(|f| f.ty.to_owned()));
        }
    }
    for ty in &referenced {
        for n in named(ty) {
            assert!(known(n), "type {n} (in {ty}) is not defined where schema.rs reads");
        }
    }
}

/// A CDDL rule name: `PackageInfo` → `package-info`.
fn rule(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A Rust type in CDDL.
fn cddl_type(ty: &str) -> String {
    let ty = ty.replace(' ', "");
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        return format!("{} / null", cddl_type(inner));
    }
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        return format!("[* {}]", cddl_type(inner));
    }
    match ty.as_str() {
        "String" => "tstr".to_owned(),
        "bool" => "bool".to_owned(),
        "u8" | "u16" | "u32" | "u64" => "uint".to_owned(),
        "i8" | "i16" | "i32" | "i64" => "int".to_owned(),
        "f32" | "f64" => "float".to_owned(),
        "()" => "[]".to_owned(),
        n if STATUS_ENUMS.contains(&n) => "uint".to_owned(),
        n => MANUAL
            .iter()
            .find(|m| m.0 == n)
            .map_or_else(|| rule(n), |m| if m.1.contains(' ') { rule(n) } else { m.1.to_owned() }),
    }
}

/// Fields as a CDDL array body: trailing `Option`s may be left out (`?`), as the encoder
/// omits trailing absent fields.
fn cddl_fields(fields: &[(String, String)]) -> String {
    let optional_from = fields
        .iter()
        .rposition(|(_, ty)| !ty.replace(' ', "").starts_with("Option<"))
        .map_or(0, |i| i + 1);
    let parts: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let q = if i >= optional_from { "? " } else { "" };
            format!("{q}{name}: {}", cddl_type(ty))
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn of_members(m: &[Member]) -> Vec<(String, String)> {
    m.iter().map(|f| (f.name.clone(), f.ty.clone())).collect()
}

fn of_schema(f: &[FieldSchema]) -> Vec<(String, String)> {
    f.iter().map(|f| (f.name.to_owned(), f.ty.to_owned())).collect()
}

/// The whole protocol as a CDDL schema (RFC 8610): frames, every request with its arguments
/// and output, every event, every type they carry, the ValueSet encoding.
pub fn cddl() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "; The appipc broker protocol (docs/wire.md), generated from crates/appipc-wire."
    );
    let _ = writeln!(w, "; One socket message of a session is one `frame`.\n");
    let _ = writeln!(w, "frame = request-frame / reply-frame / event-frame");
    let _ = writeln!(w, "request-frame = [id: uint .gt 0, request: request]");
    let _ = writeln!(w, "reply-frame = [id: uint .gt 0, null, reply: reply]");
    let _ = writeln!(w, "event-frame = [0, null, null, event: event]");
    let _ = writeln!(w, "reply = [0, output: any] / [1, error-reply]");
    let _ = writeln!(w, "windows-code = {}\n", MANUAL[0].1);
    let mut requests = Vec::new();
    let mut events = Vec::new();
    for (index, m) in MECHANISMS {
        let mech = m.module.rsplit("::").next().unwrap_or(m.module);
        let _ = writeln!(w, "; {index} {mech}");
        for r in m.requests {
            let name = format!("{}-{}-request", mech.replace('_', "-"), rule(r.name));
            let _ = writeln!(
                w,
                "{name} = [{index}, {}, {}]",
                r.index,
                cddl_fields(&of_schema(r.fields))
            );
            let output = name.trim_end_matches("-request");
            let _ = writeln!(w, "{output}-output = {}", cddl_type(r.output));
            requests.push(name);
        }
        for e in m.events {
            let name = format!("{}-{}-event", mech.replace('_', "-"), rule(e.name));
            let _ = writeln!(
                w,
                "{name} = [{index}, {}, {}]",
                e.index,
                cddl_fields(&of_schema(e.fields))
            );
            events.push(name);
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "request = {}", requests.join(" /\n  "));
    let _ = writeln!(w, "event = {}\n", events.join(" /\n  "));
    let _ = writeln!(w, "; The types they carry.");
    let mut sorted: BTreeMap<String, TypeSchema> = BTreeMap::new();
    for t in types() {
        sorted.insert(rule(&t.name), t);
    }
    for (name, t) in &sorted {
        let body = match &t.shape {
            Shape::Struct(f) => cddl_fields(&of_members(f)),
            Shape::IndexOnly(v) => {
                let values: Vec<String> = v.iter().map(|v| v.index.to_string()).collect();
                let names: Vec<String> =
                    v.iter().map(|v| format!("{} {}", v.index, v.name)).collect();
                format!("{}  ; {}", values.join(" / "), names.join(", "))
            }
            Shape::Enum(v) => v
                .iter()
                .map(|v| format!("[{}, {}]", v.index, cddl_fields(&of_members(&v.fields))))
                .collect::<Vec<_>>()
                .join(" / "),
        };
        let _ = writeln!(w, "{name} = {body}");
    }
    let _ = writeln!(w, "\n; ValueSet (docs/wire.md, ValueSet encoding): a map of typed values.");
    let _ = writeln!(w, "valueset = {{* tstr => value}}");
    let _ = writeln!(
        w,
        "value = [0, null] / [1 / 2 / 3 / 4 / 5 / 6 / 7 / 10 / 14 / 15, int] / [8, float32] /\n  \
         [9, float64] / [11, bool] / [12, tstr] / [16, bstr .size 16] /\n  \
         [17 / 18, [float32, float32]] / [19, [float32, float32, float32, float32]] /\n  \
         [1025, bstr] / [1026 / 1027 / 1028 / 1029 / 1030 / 1031 / 1034 / 1038 / 1039, [* int]] /\n  \
         [1032, [* float32]] / [1033, [* float64]] / [1035, [* bool]] / [1036, [* tstr]] /\n  \
         [1040, [* bstr .size 16]] / [1041 / 1042, [* [float32, float32]]] /\n  \
         [1043, [* [float32, float32, float32, float32]]] / [32768, valueset]"
    );
    let _ = writeln!(w, "\n; An app-service connection, after app_service.Open (docs/wire.md).");
    let _ = writeln!(w, "channel = channel-frame");
    out
}

/// The types as Markdown: one table per type, fields in array order (or variants by number).
pub fn types_markdown() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "### Types\n");
    let _ = writeln!(
        out,
        "Every output, and every struct or enumeration a request, reply or event carries. A \
         struct is an array of its fields in this order (trailing absent `Option`s left out); \
         an enumeration marked *number* is the variant's number alone, any other is \
         `[variant, [fields…]]`.\n"
    );
    let cell = |s: &str| s.replace('|', "\\|");
    for t in types() {
        let (kind, m) = match &t.shape {
            Shape::Struct(m) => ("struct", m),
            Shape::IndexOnly(m) => ("enumeration, *number*", m),
            Shape::Enum(m) => ("enumeration, `[variant, [fields…]]`", m),
        };
        let _ = writeln!(out, "**`{}`** ({kind}, `{}`): {}\n", t.name, t.module, cell(&t.doc));
        match &t.shape {
            Shape::Struct(_) => {
                if m.is_empty() {
                    let _ = writeln!(out, "No fields: `[]`.\n");
                    continue;
                }
                let _ = writeln!(out, "| # | field | type | what |\n|---:|---|---|---|");
                for f in m {
                    let _ = writeln!(
                        out,
                        "| {} | `{}` | `{}` | {} |",
                        f.index,
                        f.name,
                        f.ty.replace(' ', ""),
                        cell(&f.doc)
                    );
                }
            }
            _ => {
                let _ = writeln!(out, "| number | variant | fields | what |\n|---:|---|---|---|");
                for v in m {
                    let fields: Vec<String> = v
                        .fields
                        .iter()
                        .map(|f| format!("{} `{}`: `{}`", f.index, f.name, f.ty.replace(' ', "")))
                        .collect();
                    let fields =
                        if fields.is_empty() { "—".to_owned() } else { fields.join("<br>") };
                    let _ = writeln!(
                        out,
                        "| {} | `{}` | {fields} | {} |",
                        v.index,
                        v.name,
                        cell(&v.doc)
                    );
                }
            }
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_are_read_with_their_fields_in_order() {
        let types = types();
        let get = |n: &str| types.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n}"));
        let Shape::Struct(f) = &get("CallerIdentity").shape else { panic!() };
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "pid",
                "uid",
                "package_full_name",
                "package_family_name",
                "app_id",
                "trust",
                "capabilities",
                "package_sid",
                "capability_sids",
                "session_id"
            ]
        );
        let Shape::IndexOnly(v) = &get("TrustLevel").shape else { panic!() };
        assert_eq!(
            v.iter().map(|v| (v.index, v.name.as_str())).collect::<Vec<_>>(),
            [(0, "Unpackaged"), (1, "AppContainer"), (2, "FullTrust")]
        );
        let Shape::Enum(v) = &get("NamedObjectKind").shape else { panic!() };
        assert_eq!(v[1].name, "Semaphore");
        assert_eq!(v[1].fields[1].name, "maximum");
        for n in ["PackageInfo", "ProcessInfo", "Pong", "ErrorReply", "ChannelFrame", "Launched"] {
            get(n);
        }
    }

    #[test]
    fn the_cddl_names_every_request_and_type() {
        let c = cddl();
        assert!(c.contains("broker-who-am-i-request = [0, 1, []]"), "{c}");
        assert!(c.contains("broker-who-am-i-output = caller-identity"), "{c}");
        assert!(c.contains("trust-level = 0 / 1 / 2"), "{c}");
        assert!(
            c.contains(
                "packages-install-request = [1, 0, [path: tstr, ? consent: [* tstr] / null]]"
            ),
            "{c}"
        );
        assert!(
            c.contains("launched = [pid: uint, app_user_model_id: tstr, ? log: tstr / null]"),
            "{c}"
        );
    }
}
