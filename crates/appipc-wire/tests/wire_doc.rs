//! `docs/wire.md` holds the protocol reference, the types and the CDDL schema generated from
//! the definitions, and `docs/wire.cddl` the same schema as a file; this test fails when they
//! differ from the code (a request, reply, event, type, field or code missing or moved), and
//! rewrites them with `APPIPC_BLESS=1`.

use appipc_wire::protocol::{doc, schema};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/wire.md");
const CDDL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/wire.cddl");

fn bless() -> bool {
    std::env::var_os("APPIPC_BLESS").is_some()
}

/// Replaces the block between the markers named `what` in `text` with `generated`; `Err` when
/// it differs and nothing may be rewritten.
fn section(text: &mut String, what: &str, generated: &str) -> Result<(), String> {
    let begin = format!("<!-- BEGIN GENERATED: {what} -->\n");
    let end = format!("<!-- END GENERATED: {what} -->");
    let start = text.find(&begin).ok_or(format!("no begin marker for {what}"))? + begin.len();
    let stop = text.find(&end).ok_or(format!("no end marker for {what}"))?;
    if text[start..stop] == *generated {
        return Ok(());
    }
    if !bless() {
        return Err(format!(
            "docs/wire.md's {what} is stale; regenerate it with APPIPC_BLESS=1 cargo test -p \
             appipc-wire --test wire_doc"
        ));
    }
    text.replace_range(start..stop, generated);
    Ok(())
}

#[test]
fn the_generated_parts_of_docs_wire_md_are_current() {
    let mut text = std::fs::read_to_string(DOC).expect("docs/wire.md");
    let before = text.clone();
    let reference = doc::reference_markdown();
    let types = schema::types_markdown();
    let cddl = schema::cddl();
    let problems: Vec<String> = [
        section(&mut text, "protocol reference", &reference),
        section(&mut text, "types", &types),
        section(&mut text, "cddl", &format!("```cddl\n{cddl}```\n")),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if text != before {
        std::fs::write(DOC, &text).expect("writing docs/wire.md");
    }
    match std::fs::read_to_string(CDDL) {
        Ok(c) if c == cddl => {}
        _ if bless() => std::fs::write(CDDL, &cddl).expect("writing docs/wire.cddl"),
        _ => panic!(
            "docs/wire.cddl is stale; APPIPC_BLESS=1 cargo test -p appipc-wire --test wire_doc"
        ),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every request and event name appears, and every type the protocol carries.
    for (_, m) in appipc_wire::protocol::MECHANISMS {
        for r in m.requests {
            assert!(reference.contains(&format!("`{}`", r.name)), "{}", r.name);
        }
        for e in m.events {
            assert!(reference.contains(&format!("`{}`", e.name)), "{}", e.name);
        }
    }
    for t in schema::types() {
        assert!(types.contains(&format!("**`{}`**", t.name)), "{}", t.name);
    }
}
