//! `docs/wire.md` holds the protocol reference generated from the definitions; this test fails
//! when the two differ (a request, reply, event or code missing from the document), and
//! rewrites the document with `APPIPC_BLESS=1`.

const BEGIN: &str = "<!-- BEGIN GENERATED: protocol reference -->\n";
const END: &str = "<!-- END GENERATED: protocol reference -->";

#[test]
fn the_protocol_reference_in_docs_wire_md_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/wire.md");
    let text = std::fs::read_to_string(path).expect("docs/wire.md");
    let start = text.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = text.find(END).expect("the end marker");
    let generated = appipc_wire::protocol::doc::reference_markdown();
    if text[start..end] != generated {
        if std::env::var_os("APPIPC_BLESS").is_some() {
            let new = format!("{}{generated}{}", &text[..start], &text[end..]);
            std::fs::write(path, new).expect("writing docs/wire.md");
            return;
        }
        panic!(
            "docs/wire.md's protocol reference is stale; regenerate it with \
             APPIPC_BLESS=1 cargo test -p appipc-wire --test wire_doc"
        );
    }
    // Every request and event name appears.
    for (_, m) in appipc_wire::protocol::MECHANISMS {
        for r in m.requests {
            assert!(generated.contains(&format!("`{}`", r.name)), "{}", r.name);
        }
    }
}
