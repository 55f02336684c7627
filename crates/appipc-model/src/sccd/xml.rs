//! Windows' `CustomCapability.SCCD` (XML) read into a [`Descriptor`], by a small strict parser
//! for exactly that document: an optional XML declaration, comments, elements with quoted
//! attributes, the five predefined entities and character references; no DTD, no CDATA, no
//! processing instructions, no nesting past the schema's three levels. Anything else is
//! refused, so the parser needs no recursion and bounds its work by the input's length.

use super::{
    AuthorizedEntities, AuthorizedEntity, Descriptor, MAX_CAPABILITIES, MAX_DESCRIPTOR_SIZE,
    MAX_ENTITIES, MalformedDescriptor, malformed,
};
use crate::identity::PackageFamilyName;
use crate::manifest::CustomCapabilityName;
use crate::package_file::KeyId;

/// The namespaces of Windows' SCCD schema (2016, and 2018 which added `AllowAny`).
pub const SCCD_NAMESPACES: [&str; 2] =
    ["http://schemas.microsoft.com/appx/2016/sccd", "http://schemas.microsoft.com/appx/2018/sccd"];

/// Deepest element nesting the schema has (descriptor, list, item).
const MAX_DEPTH: usize = 3;

#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Refuses attributes other than `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<(), MalformedDescriptor> {
        match self.attrs.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
            Some((n, _)) => Err(malformed(format!("<{}>: unknown attribute {n}", self.name))),
            None => Ok(()),
        }
    }

    fn no_text(&self) -> Result<(), MalformedDescriptor> {
        if self.text.trim().is_empty() {
            Ok(())
        } else {
            Err(malformed(format!("<{}> holds text; it must not", self.name)))
        }
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// Moves past the next `lit`; an error if there is none.
    fn past(&mut self, lit: &str, what: &str) -> Result<&str, MalformedDescriptor> {
        let start = self.pos;
        match self.rest().find(lit) {
            Some(i) => {
                self.pos += i + lit.len();
                Ok(&self.s[start..start + i])
            }
            None => Err(malformed(format!("unterminated {what}"))),
        }
    }

    fn name(&mut self) -> Result<String, MalformedDescriptor> {
        let r = self.rest();
        let len = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')))
            .unwrap_or(r.len());
        if len == 0 || !r.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return Err(malformed(format!("expected a name at byte {}", self.pos)));
        }
        let name = r[..len].to_owned();
        self.pos += len;
        Ok(name)
    }
}

/// Replaces the predefined entities and character references.
fn unescape(s: &str) -> Result<String, MalformedDescriptor> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or_else(|| malformed("'&' without ';'"))?;
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .filter(|c| *c != '\0')
                    .ok_or_else(|| malformed(format!("unknown entity &{ent};")))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads the one root element.
fn parse_tree(text: &str) -> Result<Element, MalformedDescriptor> {
    let mut c = Cursor { s: text.strip_prefix('\u{feff}').unwrap_or(text), pos: 0 };
    if c.eat("<?xml") {
        c.past("?>", "XML declaration")?;
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        if stack.is_empty() {
            c.skip_ws();
        }
        if c.rest().is_empty() {
            break;
        }
        if c.eat("<!--") {
            c.past("-->", "comment")?;
        } else if c.rest().starts_with("<!") || c.rest().starts_with("<?") {
            return Err(malformed("DTDs, CDATA and processing instructions are not accepted"));
        } else if c.eat("</") {
            let name = c.name()?;
            c.skip_ws();
            if !c.eat(">") {
                return Err(malformed(format!("</{name}: expected '>'")));
            }
            let el = stack.pop().ok_or_else(|| malformed(format!("</{name}> closes nothing")))?;
            if el.name != name {
                return Err(malformed(format!("<{}> closed by </{name}>", el.name)));
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(el),
                None => root = Some(el),
            }
        } else if c.eat("<") {
            if root.is_some() {
                return Err(malformed("content after the root element"));
            }
            let el = start_tag(&mut c)?;
            let empty = c.eat("/>");
            if !empty && !c.eat(">") {
                return Err(malformed(format!("<{}: expected '>' or '/>'", el.name)));
            }
            if stack.len() == MAX_DEPTH {
                return Err(malformed(format!("<{}> is nested too deep", el.name)));
            }
            if empty {
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            } else {
                stack.push(el);
            }
        } else {
            let t = c.rest();
            let end = t.find('<').unwrap_or(t.len());
            let text = unescape(&t[..end])?;
            c.pos += end;
            match stack.last_mut() {
                Some(el) => el.text.push_str(&text),
                None => return Err(malformed("text outside the root element")),
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(malformed(format!("<{}> is not closed", open.name)));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn start_tag(c: &mut Cursor<'_>) -> Result<Element, MalformedDescriptor> {
    let name = c.name()?;
    let mut attrs: Vec<(String, String)> = Vec::new();
    loop {
        let before = c.pos;
        c.skip_ws();
        if c.rest().starts_with('>') || c.rest().starts_with("/>") {
            break;
        }
        if c.pos == before {
            return Err(malformed(format!("<{name}: expected white space before an attribute")));
        }
        let a = c.name()?;
        c.skip_ws();
        if !c.eat("=") {
            return Err(malformed(format!("<{name} {a}: expected '='")));
        }
        c.skip_ws();
        let quote = if c.eat("\"") {
            "\""
        } else if c.eat("'") {
            "'"
        } else {
            return Err(malformed(format!("<{name} {a}=: expected a quoted value")));
        };
        let raw = c.past(quote, "attribute value")?;
        if raw.contains('<') {
            return Err(malformed(format!("<{name} {a}>: '<' in a value")));
        }
        let v = unescape(raw)?;
        if attrs.iter().any(|(n, _)| *n == a) {
            return Err(malformed(format!("<{name}>: attribute {a} twice")));
        }
        attrs.push((a, v));
    }
    Ok(Element { name, attrs, children: Vec::new(), text: String::new() })
}

/// Element names without a prefix bound to an SCCD namespace; any other prefix is refused.
fn local_names(el: &mut Element, prefixes: &[String]) -> Result<(), MalformedDescriptor> {
    let mut todo: Vec<&mut Element> = vec![el];
    while let Some(e) = todo.pop() {
        if let Some((p, local)) = e.name.split_once(':') {
            if !prefixes.iter().any(|x| x == p) {
                return Err(malformed(format!(
                    "<{}>: prefix {p} is not the SCCD namespace",
                    e.name
                )));
            }
            e.name = local.to_owned();
        }
        todo.extend(e.children.iter_mut());
    }
    Ok(())
}

fn boolean(el: &Element, attr: &str) -> Result<Option<bool>, MalformedDescriptor> {
    match el.attr(attr) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(v) => Err(malformed(format!("<{} {attr}={v:?}>: expected true or false", el.name))),
    }
}

/// Reads Windows' `CustomCapability.SCCD` into a descriptor, **unsigned**: its `Catalog` is
/// Microsoft's signature over the XML, which means nothing to appipc; the capability's owner
/// signs the result (`appipc sccd sign`). `CertificateSignatureHash` is kept as written, so
/// an entity names a Windows certificate until it is changed to the appipc signer's key id.
pub fn import_windows_xml(text: &str) -> Result<Descriptor, MalformedDescriptor> {
    if text.len() > MAX_DESCRIPTOR_SIZE {
        return Err(malformed(format!(
            "{} bytes; at most {MAX_DESCRIPTOR_SIZE} are allowed",
            text.len()
        )));
    }
    let mut root = parse_tree(text)?;
    let mut prefixes = Vec::new();
    let mut default_ns = None;
    for (n, v) in &root.attrs {
        if n == "xmlns" {
            default_ns = Some(v.clone());
        } else if let Some(p) = n.strip_prefix("xmlns:") {
            if SCCD_NAMESPACES.contains(&v.as_str()) {
                prefixes.push(p.to_owned());
            }
        } else {
            return Err(malformed(format!("<{}>: unknown attribute {n}", root.name)));
        }
    }
    let unprefixed_ok = default_ns.as_deref().is_some_and(|ns| SCCD_NAMESPACES.contains(&ns));
    if !unprefixed_ok && prefixes.is_empty() {
        return Err(malformed(format!(
            "<CustomCapabilityDescriptor> must be in the namespace {} (or {})",
            SCCD_NAMESPACES[0], SCCD_NAMESPACES[1]
        )));
    }
    let root_prefixed = root.name.contains(':');
    local_names(&mut root, &prefixes)?;
    if !unprefixed_ok && !root_prefixed {
        return Err(malformed("<CustomCapabilityDescriptor> is not in the SCCD namespace"));
    }
    if root.name != "CustomCapabilityDescriptor" {
        return Err(malformed(format!(
            "root <{}>: expected <CustomCapabilityDescriptor>",
            root.name
        )));
    }
    root.no_text()?;
    descriptor(&root)
}

fn descriptor(root: &Element) -> Result<Descriptor, MalformedDescriptor> {
    let order = ["CustomCapabilities", "AuthorizedEntities", "DeveloperModeOnly", "Catalog"];
    let mut last = None;
    for ch in &root.children {
        let i = order.iter().position(|n| *n == ch.name).ok_or_else(|| {
            malformed(format!("<{}>: unknown element; expected {}", ch.name, order.join(", ")))
        })?;
        if last.is_some_and(|l| l >= i) {
            return Err(malformed(format!(
                "<{}> out of order or twice: the sequence is {}",
                ch.name,
                order.join(", ")
            )));
        }
        last = Some(i);
    }
    let find = |n: &str| root.children.iter().find(|c| c.name == n);
    let caps = find("CustomCapabilities").ok_or_else(|| malformed("no <CustomCapabilities>"))?;
    caps.only(&[])?;
    caps.no_text()?;
    if caps.children.len() > MAX_CAPABILITIES {
        return Err(malformed(format!("more than {MAX_CAPABILITIES} <CustomCapability>")));
    }
    let mut custom_capabilities = Vec::new();
    for c in &caps.children {
        if c.name != "CustomCapability" || !c.children.is_empty() {
            return Err(malformed(format!("<CustomCapabilities> holds <{}>", c.name)));
        }
        c.only(&["Name"])?;
        c.no_text()?;
        let name = c.attr("Name").ok_or_else(|| malformed("<CustomCapability> without Name"))?;
        custom_capabilities.push(
            name.parse::<CustomCapabilityName>()
                .map_err(|e| malformed(format!("<CustomCapability Name={name:?}>: {}", e.rule)))?,
        );
    }
    let ents = find("AuthorizedEntities").ok_or_else(|| malformed("no <AuthorizedEntities>"))?;
    ents.only(&["AllowAny"])?;
    ents.no_text()?;
    let allow_any = boolean(ents, "AllowAny")?.unwrap_or(false);
    if ents.children.len() > MAX_ENTITIES {
        return Err(malformed(format!("more than {MAX_ENTITIES} <AuthorizedEntity>")));
    }
    let mut list = Vec::new();
    for e in &ents.children {
        list.push(authorized_entity(e)?);
    }
    let authorized_entities = match (allow_any, list.is_empty()) {
        (true, true) => AuthorizedEntities::AllowAny,
        (true, false) => {
            return Err(malformed("<AuthorizedEntities AllowAny=\"true\"> lists entities"));
        }
        (false, _) => AuthorizedEntities::Entities(list),
    };
    let developer_mode_only = match find("DeveloperModeOnly") {
        Some(d) => {
            d.only(&["Value"])?;
            d.no_text()?;
            if !d.children.is_empty() {
                return Err(malformed("<DeveloperModeOnly> holds elements"));
            }
            boolean(d, "Value")?.ok_or_else(|| malformed("<DeveloperModeOnly> without Value"))?
        }
        None => false,
    };
    if let Some(cat) = find("Catalog") {
        cat.only(&[])?;
        if !cat.children.is_empty() {
            return Err(malformed("<Catalog> holds elements"));
        }
    }
    let d = Descriptor { custom_capabilities, authorized_entities, developer_mode_only };
    d.validate()?;
    Ok(d)
}

fn authorized_entity(e: &Element) -> Result<AuthorizedEntity, MalformedDescriptor> {
    if e.name != "AuthorizedEntity" || !e.children.is_empty() {
        return Err(malformed(format!("<AuthorizedEntities> holds <{}>", e.name)));
    }
    e.only(&["AppPackageFamilyName", "CertificateSignatureHash"])?;
    e.no_text()?;
    let pfn = e
        .attr("AppPackageFamilyName")
        .ok_or_else(|| malformed("<AuthorizedEntity> without AppPackageFamilyName"))?;
    let hash = e
        .attr("CertificateSignatureHash")
        .ok_or_else(|| malformed("<AuthorizedEntity> without CertificateSignatureHash"))?;
    Ok(AuthorizedEntity {
        package_family_name: pfn.parse::<PackageFamilyName>().map_err(|err| {
            malformed(format!("<AuthorizedEntity AppPackageFamilyName={pfn:?}>: {err}"))
        })?,
        certificate_signature_hash: hash.parse::<KeyId>().map_err(|err| {
            malformed(format!(
                "<AuthorizedEntity CertificateSignatureHash={hash:?}>: {err} (a SHA-256, 64 hex \
                 digits)"
            ))
        })?,
    })
}
