//! Property tests: the parser never panics, and the validated names keep their promises.

use appipc_model::manifest::{self, AppServiceName, Guid, PackagePath, ProtocolName};
use proptest::prelude::*;

const COMPLETE: &str = include_str!("manifests/complete.toml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text is refused or accepted, never a panic, and errors carry a location
    /// inside the text.
    #[test]
    fn parse_never_panics(text in "\\PC{0,400}") {
        if let Err(e) = manifest::parse(&text) {
            let loc = e.location().unwrap();
            prop_assert!(loc.line >= 1 && loc.line <= text.lines().count().max(1) + 1);
        }
    }

    /// Deleting any one line of the complete example never panics; a refusal names a line.
    #[test]
    fn line_deletions_never_panic(i in 0usize..120) {
        let lines: Vec<&str> = COMPLETE.lines().collect();
        let i = i % lines.len();
        let text: String = lines
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != i)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        if let Err(e) = manifest::parse(&text) {
            prop_assert!(e.line().is_some(), "{e}");
        }
    }

    /// Changing one byte of the complete example never panics.
    #[test]
    fn byte_changes_never_panic(i in 0usize..4000, b in 0x20u8..0x7f) {
        let mut bytes = COMPLETE.as_bytes().to_vec();
        let i = i % bytes.len();
        bytes[i] = b;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = manifest::parse(&text);
        }
    }

    /// An accepted package path stays inside any root it is joined to.
    #[test]
    fn package_paths_stay_inside(s in "[a-z./\\\\:]{0,20}") {
        if let Ok(p) = s.parse::<PackagePath>() {
            prop_assert!(!s.starts_with('/'));
            prop_assert!(p.components().all(|c| !c.is_empty() && c != "." && c != ".."));
            let root = std::path::Path::new("/pkg/root");
            let joined = p.under(root);
            prop_assert!(joined.starts_with(root));
            prop_assert_eq!(joined.components().count(), root.components().count() + p.components().count());
        }
    }

    /// App service names: exactly the documented pattern.
    #[test]
    fn app_service_names_match_the_rule(s in "[A-Za-z0-9._\\-]{0,45}") {
        let expected = (2..=39).contains(&s.len()) && !s.starts_with('.') && !s.contains('_');
        prop_assert_eq!(s.parse::<AppServiceName>().is_ok(), expected);
    }

    /// Protocol names: exactly the documented pattern.
    #[test]
    fn protocol_names_match_the_rule(s in "[a-zA-Z0-9.+\\-:]{0,45}") {
        let expected = (2..=39).contains(&s.len())
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b));
        prop_assert_eq!(s.parse::<ProtocolName>().is_ok(), expected);
    }

    /// GUIDs round-trip through their text in either case.
    #[test]
    fn guids_round_trip(v in any::<u128>(), upper in any::<bool>()) {
        let g = Guid::from_u128(v);
        let text = if upper { g.to_string().to_uppercase() } else { g.to_string() };
        prop_assert_eq!(text.parse::<Guid>().unwrap(), g);
        prop_assert_eq!(g.as_u128(), v);
    }

    /// Message sizes: n KiB parses to n * 1024 within the bounds.
    #[test]
    fn message_sizes_scale(n in 0u64..2_000_000) {
        let r = manifest::parse_message_size(&format!("{n}KiB"));
        if (1..=1024 * 1024).contains(&n) {
            prop_assert_eq!(r.unwrap(), n * 1024);
        } else {
            prop_assert!(r.is_err());
        }
    }
}
