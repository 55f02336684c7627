use super::*;

fn sid(s: &str) -> Sid {
    s.parse().unwrap()
}

fn err(text: &str) -> SddlError {
    SecurityDescriptor::parse(text).unwrap_err()
}

#[test]
fn every_part_of_the_grammar() {
    let p = SecurityDescriptor::parse(
        "O:S-1-22-1-1000G:BUD:PAI(A;OICI;GA;;;WD)(D;;0x2;;;AC)S:AR(ML;;NWNR;;;LW)",
    )
    .unwrap();
    let sd = &p.descriptor;
    assert_eq!(sd.owner, Some(sid("S-1-22-1-1000")));
    assert_eq!(sd.group, Some(sid("S-1-5-32-545")));
    assert!(sd.dacl_flags.protected && sd.dacl_flags.auto_inherited);
    assert!(!sd.dacl_flags.auto_inherit_req);
    assert!(sd.sacl_present && sd.sacl_flags.auto_inherit_req);
    let e = sd.entries();
    assert_eq!(e.len(), 2);
    assert!(e[0].allow && e[0].mask == 0x1000_0000 && e[0].sid == Sid::everyone());
    assert_eq!(e[0].flags, ace_flags::OBJECT_INHERIT | ace_flags::CONTAINER_INHERIT);
    assert!(!e[1].allow, "order as written: Windows does not reorder a DACL");
    assert_eq!(sd.label, Some(MandatoryLabel { level: 0x1000, policy: NO_WRITE_UP | NO_READ_UP }));
    // The inheritance flags and the group are noted, not refused.
    assert!(p.notes.iter().any(|n| n.contains("OICI")), "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.contains("group")), "{:?}", p.notes);
    // What prints parses back to the same descriptor.
    let again = SecurityDescriptor::from_sddl(&sd.to_sddl()).unwrap();
    assert_eq!(&again, sd, "{}", sd.to_sddl());
    assert_eq!(
        sd.to_sddl(),
        "O:S-1-22-1-1000G:BUD:PAI(A;OICI;GA;;;WD)(D;;0x2;;;AC)S:AR(ML;;NWNR;;;LW)"
    );
}

#[test]
fn null_dacl_empty_dacl_and_no_dacl_differ() {
    assert_eq!(SecurityDescriptor::from_sddl("D:NO_ACCESS_CONTROL").unwrap().dacl, Dacl::Null);
    assert_eq!(SecurityDescriptor::from_sddl("D:").unwrap().dacl, Dacl::Entries(vec![]));
    assert_eq!(SecurityDescriptor::from_sddl("O:BA").unwrap().dacl, Dacl::NotPresent);
    assert_eq!(SecurityDescriptor::from_sddl("").unwrap(), SecurityDescriptor::default());
    let e = err("D:NO_ACCESS_CONTROL(A;;GA;;;WD)");
    assert!(e.problem.contains("NULL ACL"), "{e}");
    assert_eq!(e.position, 20);
    let p = SecurityDescriptor::from_sddl("D:PNO_ACCESS_CONTROL").unwrap();
    assert_eq!(p.dacl, Dacl::Null);
    assert!(p.dacl_flags.protected);
    assert_eq!(SecurityDescriptor::from_sddl(&p.to_sddl()).unwrap(), p);
}

#[test]
fn rights_as_codes_hex_octal_and_decimal() {
    let mask = |r: &str| {
        SecurityDescriptor::from_sddl(&format!("D:(A;;{r};;;WD)")).unwrap().entries()[0].mask
    };
    assert_eq!(mask("0x1F0003"), 0x1F_0003);
    assert_eq!(mask("0X2"), 2);
    assert_eq!(mask("010"), 8, "a leading 0 is octal");
    assert_eq!(mask("16"), 16);
    assert_eq!(mask("0"), 0);
    assert_eq!(mask(""), 0, "MS-DTYP's ace-rights may be empty");
    assert_eq!(mask("GRGW"), 0xC000_0000);
    assert_eq!(mask("grgw"), 0xC000_0000, "tokens regardless of case (RFC 5234)");
    assert_eq!(mask("FA"), 0x1F_01FF);
    assert_eq!(mask("KR"), 0x2_0019);
    assert_eq!(mask("CCDCLCSWRPWPDTLOCR"), 0x1FF);
    assert_eq!(mask("SDRCWDWO"), 0xF_0000);
    for (bad, why) in [
        ("0x123456789", "1 to 8 hex digits"),
        ("0x", "1 to 8 hex digits"),
        ("08", "octal"),
        ("4294967296", "32 bits"),
        ("GAX", "two-letter"),
        ("ZZ", "unknown right"),
    ] {
        let e = err(&format!("D:(A;;{bad};;;WD)"));
        assert!(e.problem.contains(why), "{bad}: {e}");
        assert_eq!(e.position, 7, "{bad}: {e}");
    }
}

#[test]
fn every_alias_of_the_table_with_a_well_known_sid() {
    for (alias, text) in SID_ALIASES {
        let sd = SecurityDescriptor::from_sddl(&format!("D:(A;;GA;;;{alias})")).unwrap();
        assert_eq!(sd.entries()[0].sid.to_string(), *text, "{alias}");
        assert_eq!(sid_text(&sd.entries()[0].sid), *alias, "printed back as its alias");
        let lower = SecurityDescriptor::from_sddl(&format!("d:(a;;ga;;;{})", alias.to_lowercase()));
        assert_eq!(lower.unwrap(), sd, "{alias} in lower case");
    }
    for (alias, what) in DOMAIN_ALIASES {
        let e = err(&format!("D:(A;;GA;;;{alias})"));
        assert!(e.problem.contains(what) && e.problem.contains("domain"), "{alias}: {e}");
    }
    // appipc's extensions.
    let sd = SecurityDescriptor::from_sddl(
        "D:(A;;GR;;;PFN:Fabrikam.B_8tkjkmve8mrwr)(A;;GR;;;CAP:internetClient)",
    )
    .unwrap();
    assert_eq!(sd.entries()[0].sid, sid::appcontainer_sid("Fabrikam.B_8tkjkmve8mrwr"));
    assert_eq!(sd.entries()[1].sid.to_string(), "S-1-15-3-1");
    assert!(err("D:(A;;GR;;;PFN:not a pfn)").problem.contains("PFN:not a pfn"));
    assert!(err("D:(A;;GR;;;CAP:)").problem.contains("not a capability name"));
    assert!(err("D:(A;;GR;;;NOPE)").problem.contains("neither a SID"));
    assert!(err("D:(A;;GR;;;)").problem.contains("missing"));
}

#[test]
fn owner_and_group_run_up_to_the_next_part() {
    let sd = SecurityDescriptor::from_sddl("O:BAG:SYD:(A;;GA;;;WD)").unwrap();
    assert_eq!(sd.owner, Some(sid("S-1-5-32-544")));
    assert_eq!(sd.group, Some(Sid::local_system()));
    let sd = SecurityDescriptor::from_sddl("O:S-1-5-32-544G:S-1-0x123456789abc-7D:").unwrap();
    assert_eq!(sd.group, Some(sid("S-1-0x123456789abc-7")));
    assert_eq!(sd.dacl, Dacl::Entries(vec![]));
    let e = err("O:D:");
    assert!(e.problem.contains("owner SID is missing"), "{e}");
    let e = err("D:S:D:");
    assert!(e.problem.contains("a second D:"), "{e}");
    assert_eq!(e.position, 5);
    let e = err("X:(A;;GA;;;WD)");
    assert!(e.problem.contains("expected O:, G:, D: or S:"), "{e}");
    assert_eq!(e.position, 1);
    // Parts in any order, spaces between them.
    let sd = SecurityDescriptor::from_sddl(" S:(ML;;NW;;;LW) D:(A;;GA;;;WD) ").unwrap();
    assert_eq!(sd.label, Some(MandatoryLabel::LOW));
    assert_eq!(sd.entries().len(), 1);
}

#[test]
fn what_cannot_apply_is_set_aside_with_a_note() {
    let p = SecurityDescriptor::parse(concat!(
        "D:(A;IO;GA;;;WD)",
        "(OA;;GA;;;WD)",
        "(OA;;GA;bf967aba-0de6-11d0-a285-00aa003049e2;;WD)",
        "(XA;;GA;;;WD;(WIN://SYSAPPID Contains \"x(y)\"))",
        "(XD;;0x2;;;WD;(Member_of {SID(BA)}))",
        "(AU;SA;GA;;;WD)",
        "S:(AU;FA;GA;;;WD)(RA;CI;;;;S-1-1-0;(\"Project\",TS,0,\"Windows\"))",
        "(ML;;NW;;;LW)(ML;;NW;;;ME)",
    ))
    .unwrap();
    let e = p.descriptor.entries();
    assert_eq!(e.len(), 2, "{:?}", e);
    assert!(e[0].allow, "OA without an object type is an A");
    assert!(!e[1].allow && e[1].mask == 2, "XD is kept as an unconditional deny");
    assert_eq!(p.descriptor.label, Some(MandatoryLabel::LOW), "the first label counts");
    let notes = p.notes.join("\n");
    for needle in [
        "inherit-only",
        "directory-service",
        "grants nothing",
        "unconditional deny",
        "no effect in a DACL",
        "does not audit",
        "resource claims",
        "first label",
    ] {
        assert!(notes.contains(needle), "{needle} missing from\n{notes}");
    }
}

#[test]
fn malformed_text_is_refused_with_position_and_problem() {
    for (text, at, why) in [
        ("D:(A;;GA;;;WD", 3, "not closed"),
        ("D:(A;;GA;;WD)", 13, "six fields"),
        ("D:(A;;GA;;;WD;x)", 14, "six fields"),
        ("D:(Q;;GA;;;WD)", 4, "unknown entry type"),
        ("D:(A;XX;GA;;;WD)", 6, "unknown entry flag"),
        ("D:(A;;GA;bf967aba-0de6-11d0-a285-00aa003049e2;;WD)", 10, "no object types"),
        ("D:(OA;;GA;not-a-guid;;WD)", 11, "not a GUID"),
        ("D:(ML;;NW;;;LW)", 0, ""),
        ("S:(ML;;NW;;;WD)", 13, "integrity level"),
        ("S:(ML;;GA;;;LW)", 8, "NW, NR and NX"),
        ("D:(XA;;GA;;;WD)", 15, "condition"),
        ("D:(XA;;GA;;;WD;(x)", 19, "closing the entry"),
        ("D:(XA;;GA;;;WD;(x)", 19, ""),
        ("D:(XA;;GA;;;WD;((x))", 0, ""),
        ("D:Q(A;;GA;;;WD)", 3, "ACL flag"),
        ("D:(A;;GA;;;WD)junk", 15, "expected O:, G:, D: or S:"),
    ] {
        let r = SecurityDescriptor::parse(text);
        if why.is_empty() {
            // Either accepted (ML in a DACL is ignored) or refused; never a panic.
            continue;
        }
        let e = r.unwrap_err();
        assert!(e.problem.contains(why), "{text}: {e}");
        assert_eq!(e.position, at, "{text}: {e}");
        assert!(e.to_string().contains(&format!("at character {at}")), "{e}");
    }
    // ML in a DACL is set aside.
    let p = SecurityDescriptor::parse("D:(ML;;NW;;;LW)").unwrap();
    assert!(p.descriptor.entries().is_empty());
    assert!(p.notes[0].contains("no effect in a DACL"));
}

#[test]
fn a_refusal_quotes_a_bounded_part_of_a_long_text() {
    let text =
        format!("D:{}(A;;ZZ;;;WD){}", "(A;;GR;;;WD)".repeat(2000), "(A;;GR;;;WD)".repeat(2000));
    let e = err(&text);
    assert!(e.problem.contains("unknown right \"ZZ\""), "{e}");
    assert!(e.quoted.len() < QUOTED_SDDL_MAX + 64, "{} bytes quoted", e.quoted.len());
    assert!(e.quoted.contains("ZZ"), "the quote is around the problem: {}", e.quoted);
    assert!(e.quoted.contains(&format!("({} bytes)", text.len())), "{}", e.quoted);
    // Control characters are escaped, so a refusal cannot forge log lines.
    let e = err("D:(A;;GR;;;WD)\nforged");
    assert!(e.quoted.contains("\\n"), "{}", e.quoted);
    // Non-ASCII input: positions count characters, never split one.
    let e = err("D:(A;;GR;;;WD)é");
    assert_eq!(e.position, 15);
    let long = format!("D:{}é(", "(A;;GR;;;WD)".repeat(40));
    let _ = err(&long);
    // The refusal of a large descriptor quotes a part of it.
    let big = SecurityDescriptor::from_sddl(&format!("D:{}", "(A;;GR;;;WD)".repeat(5000))).unwrap();
    let q = quoted_sddl(&big);
    assert!(q.len() < QUOTED_SDDL_MAX + 32 && q.contains("(5000 entries)"), "{q}");
}
