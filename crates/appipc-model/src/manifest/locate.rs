//! Finding a key path (`application[0].app-service[1].allow-unpackaged-callers`) in a
//! manifest's text, so that a decision resting on a declaration can name its line.

use toml::de::{DeTable, DeValue};

use super::error::Location;

/// Where `key` is declared in the manifest `text`: its key's location, or for an indexed
/// element (`application[1]`) the element's. `None` when the text does not declare it.
pub fn locate(text: &str, key: &str) -> Option<Location> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let segments: Vec<&str> = key.split('.').collect();
    let mut offset = None;
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((n, rest)) => (n, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (*segment, None),
        };
        let (k, mut v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        offset = Some(k.span().start);
        if let Some(ix) = index {
            match v.get_ref() {
                DeValue::Array(a) => {
                    v = a.get(ix)?;
                    offset = Some(v.span().start);
                }
                _ => return None,
            }
        }
        if i + 1 == segments.len() {
            break;
        }
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    offset.map(|o| Location::of_offset(text, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[package]
name = "Contoso.Echo"
publisher = "CN=Contoso"
version = "1.0.0.0"

[capabilities]
general = ["internetClient"]

[[application]]
id = "App"
executable = "bin/echo"

[[application.app-service]]
name = "com.contoso.a"

[[application.app-service]]
name = "com.contoso.b"
allow-unpackaged-callers = false
"#;

    #[test]
    fn finds_keys_tables_and_array_elements() {
        assert_eq!(locate(TEXT, "capabilities").map(|l| l.line), Some(6));
        assert_eq!(locate(TEXT, "capabilities.general").map(|l| l.line), Some(7));
        let b = locate(TEXT, "application[0].app-service[1]").unwrap();
        assert!(b.line == 16 || b.line == 17, "{b:?}");
        assert_eq!(
            locate(TEXT, "application[0].app-service[1].allow-unpackaged-callers").map(|l| l.line),
            Some(18)
        );
        assert_eq!(locate(TEXT, "publisher-cache"), None);
        assert_eq!(locate(TEXT, "application[3]"), None);
        assert_eq!(locate("not toml [", "package"), None);
    }
}
