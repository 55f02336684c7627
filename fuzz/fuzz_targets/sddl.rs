//! Security descriptors in SDDL (`SecurityDescriptor::from_sddl`), as a client gives them when
//! it creates a named object or a pipe, and the access check (`check_access`, and the policy's
//! `OpenNamedObject` decision) on what parsed, with arbitrary desired-access masks, for an
//! unpackaged caller, a full-trust package and two app containers (with and without
//! capabilities), and every object type.
//!
//! Input: 4 bytes of desired access (little-endian), 1 byte choosing the caller, the SDDL text.
//!
//! Properties:
//! * what parses prints (`to_sddl`) to text that parses to the same descriptor and prints the
//!   same; a refusal names a position inside the text and a problem;
//! * an empty request (no rights, no `MAXIMUM_ALLOWED`) is refused;
//! * an app container is never granted what the same user's unconfined process is refused
//!   (its rights are the intersection of the user side, the app-container side and what its
//!   Low integrity leaves);
//! * an allowed request is granted every right it asked for (mapped to the object type);
//! * a smaller request than an allowed one is allowed (dropping any one right);
//! * what `MAXIMUM_ALLOWED` grants, asked for explicitly, is allowed too;
//! * the policy's decision agrees with the access check.
#![no_main]

use appipc_model::named_objects::{
    MAXIMUM_ALLOWED, NameKind, ObjectType, SecurityDescriptor, check_access, resolve,
};
use appipc_model::policy::{Operation, decide};
use appipc_model::principal::Principal;
use std::sync::LazyLock;

use appipc_wire::caller::TrustLevel;
use libfuzzer_sys::fuzz_target;

/// The callers, built once (their SIDs are hashes).
static CALLERS: LazyLock<[Principal; 4]> = LazyLock::new(|| [0, 1, 2, 3].map(principal));

fn principal(selector: u8) -> Principal {
    let packaged = |trust, caps: &[&str]| {
        Principal::packaged(
            1000,
            "Contoso.A_cvnpggrrsm18p".parse().expect("valid family name"),
            "App".parse().expect("valid app id"),
            trust,
            caps.iter().map(|c| (*c).to_owned()).collect(),
        )
    };
    match selector % 4 {
        0 => Principal::unpackaged(1000),
        1 => packaged(TrustLevel::FullTrust, &["runFullTrust"]),
        2 => packaged(TrustLevel::AppContainer, &[]),
        _ => packaged(TrustLevel::AppContainer, &["internetClient", "documentsLibrary"]),
    }
}

const TYPES: [ObjectType; 4] =
    [ObjectType::Event, ObjectType::Semaphore, ObjectType::FileMapping, ObjectType::Pipe];

fuzz_target!(|data: &[u8]| {
    let [m0, m1, m2, m3, selector, text @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let desired = u32::from_le_bytes([*m0, *m1, *m2, *m3]);
    let sd = match SecurityDescriptor::from_sddl(text) {
        Ok(sd) => sd,
        Err(e) => {
            assert!(!e.problem.is_empty());
            assert!((1..=text.chars().count() + 1).contains(&e.position), "{e}");
            return;
        }
    };
    let printed = sd.to_sddl();
    let again = SecurityDescriptor::from_sddl(&printed).expect("to_sddl parses");
    assert_eq!(again, sd, "{printed}");
    assert_eq!(again.to_sddl(), printed);

    let who = &CALLERS[usize::from(*selector % 4)];
    let name = resolve(who, "Local\\fuzz", NameKind::Object).expect("a valid name");
    let maximum = desired & MAXIMUM_ALLOWED != 0;
    for ty in TYPES {
        let c = check_access(who, &sd, ty, desired);
        let asked = ty.map_generic(desired & !MAXIMUM_ALLOWED);
        if asked == 0 && !maximum {
            assert!(!c.allowed, "an empty request is refused");
        }
        if who.is_confined() {
            let user = check_access(&CALLERS[0], &sd, ty, desired);
            if c.allowed {
                assert!(user.allowed, "{ty:?} {desired:#x}: confined yes, unconfined no");
                assert_eq!(c.granted & !user.granted, 0, "{ty:?} {desired:#x}: {}", c.rule);
            }
        }
        if c.allowed && who.is_confined() {
            assert_eq!(c.granted & asked, asked, "{ty:?} {desired:#x}: {}", c.rule);
            if maximum {
                assert_ne!(c.granted, 0);
                let explicit = c.granted & !MAXIMUM_ALLOWED;
                if explicit != 0 {
                    let e = check_access(who, &sd, ty, explicit);
                    assert!(e.allowed, "{ty:?}: MAXIMUM_ALLOWED granted {explicit:#x}: {}", e.rule);
                }
            } else {
                let smaller = desired & (desired - 1);
                if smaller != 0 {
                    let s = check_access(who, &sd, ty, smaller);
                    assert!(
                        s.allowed,
                        "{ty:?}: {desired:#x} allowed, {smaller:#x} not: {}",
                        s.rule
                    );
                }
            }
        }
        if !c.allowed && who.is_confined() {
            assert!(c.missing_entry.is_some() || !c.rule.is_empty());
        }
        let d = decide(who, &Operation::OpenNamedObject { name: &name, ty, sd: &sd, desired });
        assert_eq!(d.allowed, c.allowed, "{}", d.rule);
    }
});
