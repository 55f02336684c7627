use proptest::prelude::*;

use super::regfile::{self, RegEntry, RegVersion};
use super::*;

fn hkcu(sub: &str) -> KeyPath {
    KeyPath::parse(&format!("HKEY_CURRENT_USER\\{sub}")).unwrap()
}

#[test]
fn paths_are_case_insensitive_and_keep_their_case() {
    let a = KeyPath::parse("hkcu\\Software\\Contoso").unwrap();
    let b = KeyPath::parse("HKEY_CURRENT_USER\\SOFTWARE\\contoso").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "HKEY_CURRENT_USER\\Software\\Contoso");
    assert_eq!(a.folded_path(), "SOFTWARE\\CONTOSO");
    assert!(a.is_at_or_under(&KeyPath::parse("HKCU\\software").unwrap()));
    assert!(!a.is_at_or_under(&KeyPath::parse("HKCU\\softwar").unwrap()));
    assert_eq!(fold("straße"), "STRAßE");
    assert_eq!(KeyPath::parse("HKLM").unwrap().depth(), 0);
    // One trailing backslash is ignored.
    assert_eq!(hkcu("A\\").parts(), ["A"]);
}

#[test]
fn hostile_key_names_are_87_and_dot_dot_is_a_name() {
    let root = KeyPath::root(Root::CurrentUser);
    for bad in ["\\Software", "a\\\\b", "a\0b", "a\nb", &"x".repeat(256)] {
        let e = root.join(bad).unwrap_err();
        assert_eq!(e.code, Win32Error::InvalidParameter, "{bad:?}");
    }
    assert!(root.join(&"x".repeat(255)).is_ok());
    // 255 UTF-16 units, counted as Windows counts: a non-BMP character is two.
    assert!(root.join(&"😀".repeat(128)).is_err());
    let dots = root.join("a\\..\\..").unwrap();
    assert_eq!(dots.parts(), ["a", "..", ".."]);
    assert_eq!(dots.depth(), 3);
    let deep = vec!["k"; MAX_DEPTH].join("\\");
    let p = root.join(&deep).unwrap();
    assert_eq!(p.join("one-more").unwrap_err().code, Win32Error::InvalidParameter);
    assert!(KeyPath::parse("HKEY_CLASSES_ROOT\\x").is_err());
    assert!(KeyPath::parse("HKCUX\\x").is_err());
    assert!(check_value_name(&"v".repeat(MAX_VALUE_NAME)).is_ok());
    assert!(check_value_name(&"v".repeat(MAX_VALUE_NAME + 1)).is_err());
    assert!(check_value_name("a\0").is_err());
}

#[test]
fn values_have_windows_layouts_and_limits() {
    assert_eq!(RegValue::sz("A").data, [0x41, 0, 0, 0]);
    assert_eq!(RegValue::multi_sz(&["a", "b"]).data, [0x61, 0, 0, 0, 0x62, 0, 0, 0, 0, 0]);
    assert_eq!(RegValue::multi_sz(&["a", "b"]).as_multi().unwrap(), ["a", "b"]);
    assert_eq!(RegValue::multi_sz::<&str>(&[]).as_multi().unwrap(), Vec::<String>::new());
    assert_eq!(RegValue::dword(0x2a).data, [0x2a, 0, 0, 0]);
    assert_eq!(RegValue::dword_big_endian(0x2a).data, [0, 0, 0, 0x2a]);
    assert_eq!(RegValue::dword_big_endian(0x2a).as_u64(), Some(0x2a));
    assert_eq!(RegValue::qword(1 << 40).as_u64(), Some(1 << 40));
    assert_eq!(RegValue::expand_sz("%X%").as_str().unwrap(), "%X%");
    assert_eq!(ValueType::Qword.value(), 11);
    assert_eq!(ValueType::from_value(8).unwrap_err().code, Win32Error::InvalidParameter);
    assert_eq!(ValueType::from_name("reg_multi_sz"), Some(ValueType::MultiSz));
    assert_eq!(ValueType::from_name("DWORD"), Some(ValueType::Dword));
    assert!(RegValue::new(ValueType::Dword, vec![1, 2]).is_err());
    assert!(RegValue::new(ValueType::Qword, vec![0; 4]).is_err());
    assert!(RegValue::new(ValueType::Binary, vec![0; MAX_VALUE_DATA]).is_ok());
    let e = RegValue::new(ValueType::Binary, vec![0; MAX_VALUE_DATA + 1]).unwrap_err();
    assert_eq!(e.code, Win32Error::InvalidParameter);
}

#[test]
fn writes_go_where_msix_sends_them() {
    let k = hkcu("Software\\Contoso");
    let lm = KeyPath::parse("HKLM\\Software\\Contoso").unwrap();
    assert_eq!(write_target(None, &k, false).unwrap(), Layer::Global);
    assert_eq!(write_target(None, &lm, true).unwrap(), Layer::Global);
    let mut r = Virtualized { hkcu_writes_private: true, excluded: Vec::new(), confined: true };
    assert_eq!(write_target(Some(&r), &k, false).unwrap(), Layer::Private);
    assert_eq!(write_target(Some(&r), &lm, true).unwrap_err().code, Win32Error::AccessDenied);
    assert_eq!(write_target(Some(&r), &lm, false).unwrap_err().code, Win32Error::AccessDenied);
    r.confined = false;
    assert_eq!(write_target(Some(&r), &lm, false).unwrap(), Layer::Global);
    assert_eq!(write_target(Some(&r), &lm, true).unwrap_err().code, Win32Error::AccessDenied);
    r.excluded.push(hkcu("software\\CONTOSO"));
    assert_eq!(write_target(Some(&r), &k.join("Shared").unwrap(), false).unwrap(), Layer::Global);
    assert_eq!(write_target(Some(&r), &hkcu("Software\\Contoso2"), false).unwrap(), Layer::Private);
    r.excluded.clear();
    r.hkcu_writes_private = false;
    assert_eq!(write_target(Some(&r), &k, false).unwrap(), Layer::Global);
}

/// Red team finding 4: an app container saw the user's whole HKCU under its private hive.
#[test]
fn an_app_container_sees_only_the_global_hkcu_keys_its_package_shares() {
    let secret = hkcu("Software\\Secret");
    let lm = KeyPath::parse("HKLM\\Software\\Other").unwrap();
    assert_eq!(global_at(None, &secret), Sees::All);
    let mut r = Virtualized { hkcu_writes_private: true, excluded: Vec::new(), confined: false };
    assert_eq!(global_at(Some(&r), &secret), Sees::All, "full trust: the merged view");
    r.confined = true;
    assert_eq!(global_at(Some(&r), &secret), Sees::Nothing);
    assert_eq!(global_at(Some(&r), &secret.join("Deeper").unwrap()), Sees::Nothing);
    assert_eq!(global_at(Some(&r), &lm), Sees::All, "HKLM is readable to app containers");
    assert_eq!(global_at(Some(&r), &KeyPath::root(Root::CurrentUser)), Sees::Names);
    assert_eq!(global_at(Some(&r), &hkcu("SOFTWARE")), Sees::Names);
    assert_eq!(global_at(Some(&r), &hkcu("Other")), Sees::Nothing);
    r.excluded.push(hkcu("Software\\Shared\\Team"));
    assert_eq!(global_at(Some(&r), &hkcu("software\\shared")), Sees::Names);
    assert_eq!(global_at(Some(&r), &hkcu("Software\\Shared\\TEAM\\x")), Sees::All);
    assert_eq!(global_at(Some(&r), &hkcu("Software\\Shared\\Other")), Sees::Nothing);
    r.excluded.clear();
    r.hkcu_writes_private = false;
    assert_eq!(global_at(Some(&r), &secret), Sees::All, "virtualization off: all of HKCU");
}

const SAMPLE: &str = "Windows Registry Editor Version 5.00\r\n\
\r\n\
; a comment\r\n\
[HKEY_CURRENT_USER\\Software\\Contoso]\r\n\
@=\"default\"\r\n\
\"Name\"=\"a \\\"quoted\\\" C:\\\\path\"\r\n\
\"Count\"=dword:0000002A\r\n\
\"Blob\"=hex:de,ad,\\\r\n\
  be,ef\r\n\
\"Path\"=hex(2):25,00,41,00,25,00,00,00\r\n\
\"List\"=hex(7):61,00,00,00,62,00,00,00,00,00\r\n\
\"Big\"=hex(b):01,00,00,00,00,00,00,00\r\n\
\"Gone\"=-\r\n\
\r\n\
[-HKEY_CURRENT_USER\\Software\\Old]\r\n";

#[test]
fn a_version_5_file_reads_as_regedit_writes_it() {
    let f = regfile::parse(SAMPLE.as_bytes()).unwrap();
    assert_eq!(f.version, RegVersion::V5);
    let RegEntry::Key { path, values } = &f.entries[0] else { panic!() };
    assert_eq!(path, &hkcu("Software\\Contoso"));
    assert_eq!(values[0], (String::new(), Some(RegValue::sz("default"))));
    assert_eq!(values[1].1.as_ref().unwrap().as_str().unwrap(), "a \"quoted\" C:\\path");
    assert_eq!(values[2].1, Some(RegValue::dword(42)));
    assert_eq!(values[3].1, Some(RegValue::binary(&[0xde, 0xad, 0xbe, 0xef])));
    assert_eq!(values[4].1, Some(RegValue::expand_sz("%A%")));
    assert_eq!(values[5].1, Some(RegValue::multi_sz(&["a", "b"])));
    assert_eq!(values[6].1, Some(RegValue::qword(1)));
    assert_eq!(values[7], ("Gone".to_owned(), None));
    assert_eq!(f.entries[1], RegEntry::DeleteKey(hkcu("Software\\Old")));
    // The same as UTF-16LE with a BOM, and UTF-8 with a BOM.
    assert_eq!(regfile::parse(&regfile::to_utf16le(SAMPLE)).unwrap(), f);
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(SAMPLE.as_bytes());
    assert_eq!(regfile::parse(&bom).unwrap(), f);
}

#[test]
fn regedit4_text_data_is_ansi() {
    let text = "REGEDIT4\n\n[HKEY_LOCAL_MACHINE\\Software\\A]\n\"P\"=hex(2):25,41,25,00\n\"S\"=\"caf\u{e9}\"\n";
    let bytes: Vec<u8> = text.chars().map(|c| c as u8).collect();
    let f = regfile::parse(&bytes).unwrap();
    assert_eq!(f.version, RegVersion::Regedit4);
    let RegEntry::Key { values, .. } = &f.entries[0] else { panic!() };
    assert_eq!(values[0].1, Some(RegValue::expand_sz("%A%")));
    assert_eq!(values[1].1, Some(RegValue::sz("café")));
}

#[test]
fn malformed_files_name_the_line() {
    let cases = [
        ("", 1),
        ("hello\n", 1),
        ("REGEDIT4\n\"v\"=\"x\"\n", 2),
        ("REGEDIT4\n[HKCU\\a\n", 2),
        ("REGEDIT4\n[HKEY_CLASSES_ROOT\\a]\n", 2),
        ("REGEDIT4\n[HKCU\\a]\n\"v\"=dword:123456789\n", 3),
        ("REGEDIT4\n[HKCU\\a]\n\"v\"=hex:1g\n", 3),
        ("REGEDIT4\n[HKCU\\a]\n\"v\"=hex(8):00\n", 3),
        ("REGEDIT4\n[HKCU\\a]\n\"v\"=hex(4):00\n", 3),
        ("REGEDIT4\n[HKCU\\a]\n\"v=\"x\"\n", 3),
        ("REGEDIT4\n[HKCU\\a]\n\"v\"=\"x\\n\"\n", 3),
        ("REGEDIT4\n[HKCU\\a]\n\n\n\"v\"\"x\"\n", 5),
        ("REGEDIT4\n[-HKCU\\a]\n\"v\"=-\n", 3),
        ("REGEDIT4\n[HKCU\\a\\\\b]\n", 2),
    ];
    for (text, line) in cases {
        let e = regfile::parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(!e.problem.is_empty());
    }
    assert!(regfile::parse(&[0xFF, 0xFE, 0x41]).is_err());
}

#[test]
fn the_writer_falls_back_to_hex_where_text_would_not_read_back() {
    let line = regfile::value_line_text("v", &RegValue::new(ValueType::Sz, vec![0x41, 0]).unwrap());
    assert_eq!(line, "\"v\"=hex(1):41,00");
    let line = regfile::value_line_text("", &RegValue::sz("a\nb"));
    assert!(line.starts_with("@=hex(1):"), "{line}");
    let line = regfile::value_line_text("q\"\\", &RegValue::sz("x"));
    assert_eq!(line, "\"q\\\"\\\\\"=\"x\"");
    assert_eq!(regfile::value_line_text("n", &RegValue::none()), "\"n\"=hex(0):");
    let long = regfile::value_line_text("b", &RegValue::binary(&[0xab; 100]));
    assert!(long.split("\r\n").all(|l| l.chars().count() <= 80), "{long}");
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.@\\[\\]\"=;%ßéΣ😀-]{1,12}"
}

fn value() -> impl Strategy<Value = RegValue> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        bytes.clone().prop_map(|d| RegValue { ty: ValueType::None, data: d }),
        "[^\\x00-\\x1f]{0,20}".prop_map(|s| RegValue::sz(&s)),
        bytes.clone().prop_map(|d| RegValue { ty: ValueType::Sz, data: d }),
        "[^\\x00]{0,20}".prop_map(|s| RegValue::expand_sz(&s)),
        bytes.clone().prop_map(RegValue::binary_owned),
        any::<u32>().prop_map(RegValue::dword),
        any::<u32>().prop_map(RegValue::dword_big_endian),
        "[^\\x00]{0,20}".prop_map(|s| RegValue::link(&s)),
        proptest::collection::vec("[^\\x00]{0,8}", 0..4).prop_map(|v| RegValue::multi_sz(&v)),
        any::<u64>().prop_map(RegValue::qword),
    ]
}

impl RegValue {
    fn binary_owned(d: Vec<u8>) -> RegValue {
        RegValue { ty: ValueType::Binary, data: d }
    }
}

fn tree() -> impl Strategy<Value = RegTree> {
    let key = (any::<bool>(), proptest::collection::vec(name(), 1..4));
    let value_name = "[a-zA-Z0-9 _.@\\[\\]\"\\\\=;%ßéΣ😀-]{0,10}";
    let entry = (key, proptest::collection::vec((value_name, value()), 0..5));
    proptest::collection::vec(entry, 0..8).prop_map(|entries| {
        let mut t = RegTree::new();
        for ((lm, parts), values) in entries {
            let root = if lm { Root::LocalMachine } else { Root::CurrentUser };
            let path = KeyPath::root(root).join(&parts.join("\\")).expect("valid names");
            t.create(&path);
            for (n, v) in values {
                t.set(&path, &n, v);
            }
        }
        t
    })
}

proptest! {
    #[test]
    fn export_then_import_gives_the_same_tree(t in tree()) {
        let text = regfile::write(&t.to_entries());
        let f = regfile::parse(&regfile::to_utf16le(&text)).expect("what we write reads back");
        prop_assert_eq!(f.version, RegVersion::V5);
        let back = RegTree::from_entries(&f.entries);
        prop_assert_eq!(&back, &t);
        // And as UTF-8.
        let f = regfile::parse(text.as_bytes()).expect("UTF-8 too");
        prop_assert_eq!(RegTree::from_entries(&f.entries), t);
    }

    #[test]
    fn the_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = regfile::parse(&bytes);
        let mut text = b"Windows Registry Editor Version 5.00\n[HKCU\\a]\n".to_vec();
        text.extend(&bytes);
        let _ = regfile::parse(&text);
    }
}

#[test]
fn every_type_round_trips_through_a_file() {
    let mut t = RegTree::new();
    let k = hkcu("Software\\Every");
    let all = [
        RegValue::none(),
        RegValue::sz("text"),
        RegValue::expand_sz("%PATH%"),
        RegValue::binary(&[1, 2, 3]),
        RegValue::dword(7),
        RegValue::dword_big_endian(7),
        RegValue::link("\\Registry\\Machine"),
        RegValue::multi_sz(&["a", "", "c"]),
        RegValue::qword(u64::MAX),
    ];
    for (i, v) in all.iter().enumerate() {
        t.set(&k, &format!("v{i}"), v.clone());
    }
    let back = RegTree::from_entries(
        &regfile::parse(regfile::write(&t.to_entries()).as_bytes()).unwrap().entries,
    );
    assert_eq!(back, t);
    assert_eq!(back.get(&k).unwrap().values.len(), ValueType::ALL.len());
}

#[test]
fn the_tree_lists_children_in_case_insensitive_order() {
    let mut t = RegTree::new();
    for n in ["b", "A", "c", "B2"] {
        t.create(&hkcu(&format!("S\\{n}")));
    }
    t.create(&hkcu("S\\A\\deep"));
    let names: Vec<&str> = t.children(&hkcu("s")).iter().map(|k| k.path.name()).collect();
    assert_eq!(names, ["A", "b", "B2", "c"]);
    assert!(t.contains(&KeyPath::root(Root::CurrentUser)));
    assert!(!t.contains(&KeyPath::root(Root::LocalMachine)));
    t.delete_tree(&hkcu("S\\a"));
    assert!(t.get(&hkcu("S\\A\\deep")).is_none());
}

/// `create` makes exactly the missing keys, from the path up to the first one there, and says
/// whether it made any (it stops at an existing ancestor: the fuzz target's deep-tree timeout).
#[test]
fn create_makes_the_missing_keys_and_stops_at_an_existing_one() {
    let mut t = RegTree::new();
    assert!(t.create(&hkcu("S\\a\\b")));
    let count = |t: &RegTree| t.to_entries().len();
    assert_eq!(count(&t), 3, "S, S\\a, S\\a\\b");
    assert!(!t.create(&hkcu("s\\A\\B")), "there already (case-insensitive)");
    assert!(!t.create(&hkcu("S\\a")));
    assert!(t.create(&hkcu("S\\a\\b\\c\\d")));
    assert_eq!(count(&t), 5);
    assert!(t.get(&hkcu("S\\A\\B\\C")).is_some(), "the ancestors of a new key are made too");
    assert!(!t.create(&KeyPath::root(Root::CurrentUser)), "a root is never stored");
    assert_eq!(count(&t), 5);
}

/// What the `regfile` fuzz target checks, on texts built from `.reg` tokens: a refusal names a
/// line; what parses writes to a file that reads back to the same tree, and writes the same.
fn fuzz_properties(bytes: &[u8]) {
    let f = match regfile::parse(bytes) {
        Ok(f) => f,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= bytes.len() + 1, "{e}");
            return;
        }
    };
    let tree = RegTree::from_entries(&f.entries);
    let text = regfile::write(&tree.to_entries());
    for b in [regfile::to_utf16le(&text), text.as_bytes().to_vec()] {
        let again = regfile::parse(&b).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let back = RegTree::from_entries(&again.entries);
        assert_eq!(back, tree, "{text}");
        assert_eq!(regfile::write(&back.to_entries()), text);
    }
}

proptest! {
    #[test]
    fn token_soup_keeps_the_fuzz_properties(
        v4 in any::<bool>(),
        tokens in proptest::collection::vec(prop_oneof![
            Just("["), Just("]"), Just("[-"), Just("HKCU\\"), Just("HKEY_LOCAL_MACHINE\\Software\\"),
            Just("\""), Just("="), Just("@"), Just("-"), Just("dword:"), Just("hex:"),
            Just("hex(2):"), Just("hex(7):"), Just("hex(b):"), Just("hex(0):"), Just(","),
            Just(",\\\r\n  "), Just("\r\n"), Just("\n"), Just("00"), Just("ff"), Just("1"),
            Just("a"), Just("\\\\"), Just("\\\""), Just(";"), Just(" "), Just("é"), Just("..")
        ], 0..60),
    ) {
        let mut text = if v4 { "REGEDIT4\n".to_owned() } else { "Windows Registry Editor Version 5.00\r\n".to_owned() };
        text.push_str(&tokens.concat());
        fuzz_properties(text.as_bytes());
        fuzz_properties(&regfile::to_utf16le(&text));
    }
}

/// Red team finding 1: each continued line re-scanned the whole joined line (94 s for 1 MiB).
/// Quadratic, this test runs for minutes; linear, it is instant.
#[test]
fn continuation_lines_are_read_in_linear_work() {
    for lead in ["", "\"v\"=hex:01,"] {
        let mut text = format!("REGEDIT4\n\n[HKEY_CURRENT_USER\\A]\n{lead}");
        text.push_str(&" ".repeat(100_000));
        text.push_str("\\\n");
        while text.len() < 1024 * 1024 {
            text.push_str("\\\n");
        }
        // Whatever it decides, it decides.
        let _ = regfile::parse(text.as_bytes());
    }
    // Joining still works as before.
    let f = regfile::parse(b"REGEDIT4\n[HKEY_CURRENT_USER\\A]\n\"v\"=hex:01,\\\n   02\n").unwrap();
    assert_eq!(f.entries.len(), 1);
}

/// Red team finding 5: a key's absolute path is at most 32 767 UTF-16 units, and messages
/// name keys shortened.
#[test]
fn absolute_paths_are_bounded_and_messages_shorten_them() {
    let name = "p".repeat(255);
    let mut at = KeyPath::root(Root::CurrentUser);
    let e = loop {
        match at.child(&name) {
            Ok(k) => at = k,
            Err(e) => break e,
        }
    };
    assert_eq!(e.code, Win32Error::InvalidParameter);
    assert!(e.message.len() < 1024, "{}", e.message.len());
    assert!(at.path_units() <= MAX_KEY_PATH && at.path_units() + 256 > MAX_KEY_PATH);
    assert_eq!(at.path_units(), at.to_string().encode_utf16().count());
    assert!(at.short().chars().count() < 300, "{}", at.short());
    assert_eq!(hkcu("A\\B").short(), "HKEY_CURRENT_USER\\A\\B");
    // Astral characters count two units each.
    let wide = "😀".repeat(127);
    assert_eq!(hkcu(&wide).path_units(), "HKEY_CURRENT_USER".len() + 1 + 254);
}
