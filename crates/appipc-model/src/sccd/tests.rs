use super::*;

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam";

fn key(publisher: &str, seed: u8) -> SecretKey {
    SecretKey::from_seed(publisher, [seed; 32]).unwrap()
}

fn cap(owner: &str) -> CustomCapabilityName {
    format!("Contoso.sensorAccess_{}", PublisherId::from_publisher(owner)).parse().unwrap()
}

fn pfn(name: &str, publisher: &str) -> PackageFamilyName {
    format!("{name}_{}", PublisherId::from_publisher(publisher)).parse().unwrap()
}

fn for_client(client_signer: &KeyId) -> Descriptor {
    Descriptor {
        custom_capabilities: vec![cap(CONTOSO)],
        authorized_entities: AuthorizedEntities::Entities(vec![AuthorizedEntity {
            package_family_name: pfn("Fabrikam.Client", FABRIKAM),
            certificate_signature_hash: *client_signer,
        }]),
        developer_mode_only: false,
    }
}

fn candidate<'a>(family: &'a PackageFamilyName, signer: Option<&'a KeyId>) -> Candidate<'a> {
    Candidate { family_name: family, signer, developer_mode: false }
}

#[test]
fn a_descriptor_signed_by_the_owner_authorizes_the_named_package_only() {
    let owner = key(CONTOSO, 1);
    let client_key = key(FABRIKAM, 2).id();
    let d = for_client(&client_key).sign(&owner);
    let trusted = [owner.public_key()];
    let client = pfn("Fabrikam.Client", FABRIKAM);
    check(&d, &cap(CONTOSO), &trusted, Some(candidate(&client, Some(&client_key)))).unwrap();
    // Round trip through the file.
    let back = SignedDescriptor::parse(&d.to_toml()).unwrap();
    assert_eq!(back, d);
    check(&back, &cap(CONTOSO), &trusted, Some(candidate(&client, Some(&client_key)))).unwrap();

    // Another family.
    let other = pfn("Mallory.App", FABRIKAM);
    let e = check(&d, &cap(CONTOSO), &trusted, Some(candidate(&other, Some(&client_key))));
    assert!(matches!(e, Err(Refusal::WrongPackageFamilyName { .. })), "{e:?}");
    // The family, signed by another key; or unsigned.
    let mallory = key(FABRIKAM, 3).id();
    let e = check(&d, &cap(CONTOSO), &trusted, Some(candidate(&client, Some(&mallory))));
    assert!(matches!(e, Err(Refusal::WrongSignerHash { .. })), "{e:?}");
    let e = check(&d, &cap(CONTOSO), &trusted, Some(candidate(&client, None)));
    assert!(e.unwrap_err().to_string().contains("unsigned"));
}

#[test]
fn the_signing_key_must_be_trusted_for_the_capabilitys_owner() {
    let client_key = key(FABRIKAM, 2).id();
    let client = pfn("Fabrikam.Client", FABRIKAM);
    let c = Some(candidate(&client, Some(&client_key)));
    // Not trusted at all.
    let owner = key(CONTOSO, 1);
    let d = for_client(&client_key).sign(&owner);
    assert!(matches!(check(&d, &cap(CONTOSO), &[], c), Err(Refusal::UntrustedOwnerKey { .. })));
    // Trusted, but for Fabrikam: Fabrikam signs for Contoso's capability.
    let fabrikam = key(FABRIKAM, 4);
    let d = for_client(&client_key).sign(&fabrikam);
    let e = check(&d, &cap(CONTOSO), &[fabrikam.public_key()], c).unwrap_err();
    assert!(matches!(e, Refusal::KeyNotOwner { .. }), "{e}");
    assert!(e.to_string().contains(PublisherId::from_publisher(CONTOSO).as_str()), "{e}");
    // Contoso's key bytes re-bound to Fabrikam and trusted so: still not Contoso's.
    let same_bytes = key(FABRIKAM, 1);
    let d = for_client(&client_key).sign(&same_bytes);
    let e = check(&d, &cap(CONTOSO), &[same_bytes.public_key()], c).unwrap_err();
    assert!(matches!(e, Refusal::KeyNotOwner { .. }), "{e}");
    // The key material trusted for Contoso, the descriptor carrying its Fabrikam binding:
    // the trust store entry is (publisher, key), so it is not trusted.
    let e = check(&d, &cap(CONTOSO), &[owner.public_key()], c).unwrap_err();
    assert!(matches!(e, Refusal::UntrustedOwnerKey { .. }), "{e}");
}

#[test]
fn a_change_after_signing_breaks_the_signature() {
    let owner = key(CONTOSO, 1);
    let client_key = key(FABRIKAM, 2).id();
    let mallory_pfn = pfn("Mallory.App", FABRIKAM);
    let signed = for_client(&client_key).sign(&owner);
    let text = signed.to_toml();
    let tampered = text.replace(pfn("Fabrikam.Client", FABRIKAM).as_str(), mallory_pfn.as_str());
    assert_ne!(tampered, text);
    let d = SignedDescriptor::parse(&tampered).unwrap();
    let c = Some(candidate(&mallory_pfn, Some(&client_key)));
    let e = check(&d, &cap(CONTOSO), &[owner.public_key()], c).unwrap_err();
    assert!(matches!(e, Refusal::BadSignature { .. }), "{e}");
    // allow-any flipped on.
    let any = text.replace("allow-any = false", "allow-any = true");
    let any = any
        .lines()
        .filter(|l| {
            !l.contains("package-family-name")
                && !l.contains("certificate-signature-hash")
                && !l.starts_with("[[authorized-entities.entity]]")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let d = SignedDescriptor::parse(&any).unwrap();
    assert_eq!(d.descriptor.authorized_entities, AuthorizedEntities::AllowAny);
    assert!(matches!(
        check(&d, &cap(CONTOSO), &[owner.public_key()], c),
        Err(Refusal::BadSignature { .. })
    ));
    // Comments and order do not matter.
    let commented = format!("# a comment\n{text}");
    let d = SignedDescriptor::parse(&commented).unwrap();
    let client = pfn("Fabrikam.Client", FABRIKAM);
    check(&d, &cap(CONTOSO), &[owner.public_key()], Some(candidate(&client, Some(&client_key))))
        .unwrap();
}

#[test]
fn allow_any_and_developer_mode_only() {
    let owner = key(CONTOSO, 1);
    let mut d = Descriptor {
        custom_capabilities: vec![cap(CONTOSO)],
        authorized_entities: AuthorizedEntities::AllowAny,
        developer_mode_only: false,
    };
    let anyone = pfn("Anyone.App", FABRIKAM);
    let trusted = [owner.public_key()];
    check(&d.clone().sign(&owner), &cap(CONTOSO), &trusted, Some(candidate(&anyone, None)))
        .unwrap();
    d.developer_mode_only = true;
    let s = d.sign(&owner);
    let e = check(&s, &cap(CONTOSO), &trusted, Some(candidate(&anyone, None)));
    assert_eq!(e, Err(Refusal::DeveloperModeOnly));
    let dev = Candidate { developer_mode: true, ..candidate(&anyone, None) };
    check(&s, &cap(CONTOSO), &trusted, Some(dev)).unwrap();
    assert_eq!(SignedDescriptor::parse(&s.to_toml()).unwrap(), s);
}

#[test]
fn grant_reports_every_reason_and_the_descriptor() {
    let owner = key(CONTOSO, 1);
    let client_key = key(FABRIKAM, 2).id();
    let client = pfn("Fabrikam.Client", FABRIKAM);
    let c = candidate(&client, Some(&client_key));
    let trusted = [owner.public_key()];
    let none = grant(&cap(CONTOSO), &[], &trusted, c).unwrap_err();
    assert!(none.contains("not in any descriptor"), "{none}");
    let good = PackageDescriptor {
        path: "good.toml".into(),
        read: Ok(for_client(&client_key).sign(&owner)),
    };
    let bad =
        PackageDescriptor { path: "bad.toml".into(), read: SignedDescriptor::parse("format = 1") };
    grant(&cap(CONTOSO), &[bad.clone(), good.clone()], &trusted, c).unwrap();
    let e = grant(&cap(CONTOSO), std::slice::from_ref(&bad), &trusted, c).unwrap_err();
    assert!(
        e.starts_with("bad.toml: malformed descriptor") && e.contains("not in any descriptor"),
        "{e}"
    );
    let other: CustomCapabilityName =
        format!("Contoso.other_{}", PublisherId::from_publisher(CONTOSO)).parse().unwrap();
    let e = grant(&other, std::slice::from_ref(&good), &trusted, c).unwrap_err();
    assert!(e.contains("none of the package's descriptors (good.toml) names it"), "{e}");
    let e = grant(&cap(CONTOSO), std::slice::from_ref(&good), &[], c).unwrap_err();
    assert!(e.starts_with("good.toml: untrusted owner key"), "{e}");
}

#[test]
fn malformed_descriptors_are_refused() {
    let owner = key(CONTOSO, 1);
    let text = for_client(&key(FABRIKAM, 2).id()).sign(&owner).to_toml();
    for (bad, says) in [
        (text.replace("appipc-sccd-1", "appipc-sccd-2"), "format"),
        (text.replace("custom-capabilities = [", "custom-capabilities = [\"x\", "), "custom-capabilities"),
        (text.replace("format =", "colour = 1\nformat ="), "unknown field"),
        (text.replace("allow-any = false", "allow-any = true"), "allow-any = true lists no entity"),
        ("format = \"appipc-sccd-1\"\ncustom-capabilities = []\n[authorized-entities]\nallow-any = true\n".into(), "1 to"),
        ("format = \"appipc-sccd-1\"\ncustom-capabilities = [\"Contoso.a_cvnpggrrsm18p\"]\n[authorized-entities]\n".into(), "entities"),
    ] {
        let e = SignedDescriptor::parse(&bad).unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}\n{bad}");
    }
    let unsigned = for_client(&key(FABRIKAM, 2).id());
    let d = SignedDescriptor { descriptor: unsigned, signature: None };
    let parsed = SignedDescriptor::parse(&d.to_toml()).unwrap();
    assert_eq!(check(&parsed, &cap(CONTOSO), &[owner.public_key()], None), Err(Refusal::Unsigned));
}

const WINDOWS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<CustomCapabilityDescriptor xmlns="http://schemas.microsoft.com/appx/2018/sccd" xmlns:s="http://schemas.microsoft.com/appx/2018/sccd">
  <!-- a comment -->
  <CustomCapabilities>
    <CustomCapability Name="microsoft.hsaTestCustomCapability_q536wpkpf5cy2"/>
  </CustomCapabilities>
  <AuthorizedEntities>
    <AuthorizedEntity AppPackageFamilyName="Microsoft.SDKSamples.CustomCapability.CPP_8wekyb3d8bbwe" CertificateSignatureHash="ca9fc964db7e0c2938778f4559946833e7a8cfde0f3eaa07650766d4764e86c4"></AuthorizedEntity>
  </AuthorizedEntities>
  <s:DeveloperModeOnly Value="true" />
  <Catalog>FFFF</Catalog>
</CustomCapabilityDescriptor>
"#;

#[test]
fn windows_xml_imports_unsigned() {
    let d = import_windows_xml(WINDOWS).unwrap();
    assert_eq!(
        d.custom_capabilities[0].as_str(),
        "microsoft.hsaTestCustomCapability_q536wpkpf5cy2"
    );
    assert!(d.developer_mode_only);
    let AuthorizedEntities::Entities(e) = &d.authorized_entities else { panic!() };
    assert_eq!(
        e[0].package_family_name.as_str(),
        "Microsoft.SDKSamples.CustomCapability.CPP_8wekyb3d8bbwe"
    );
    assert_eq!(
        e[0].certificate_signature_hash.to_string(),
        "ca9fc964db7e0c2938778f4559946833e7a8cfde0f3eaa07650766d4764e86c4"
    );
    let any =
        WINDOWS.replace("<AuthorizedEntities>", "<AuthorizedEntities AllowAny=\"true\">").replace(
            &WINDOWS[WINDOWS.find("<AuthorizedEntity ").unwrap()
                ..WINDOWS.find("</AuthorizedEntity>").unwrap() + 19],
            "",
        );
    assert_eq!(import_windows_xml(&any).unwrap().authorized_entities, AuthorizedEntities::AllowAny);
}

#[test]
fn windows_xml_is_read_strictly() {
    for (bad, says) in [
        (
            WINDOWS
                .replace("2018/sccd\" xmlns:s", "2019/sccd\" xmlns:s")
                .replace("xmlns:s=\"http://schemas.microsoft.com/appx/2018/sccd\"", ""),
            "namespace",
        ),
        (WINDOWS.replace("<Catalog>FFFF</Catalog>", ""), ""),
        (WINDOWS.replace("</CustomCapabilities>", "</CustomCapabilitiez>"), "closed by"),
        (
            WINDOWS.replace(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
                "<!DOCTYPE x [<!ENTITY a \"b\">]>",
            ),
            "DTD",
        ),
        (
            WINDOWS.replace(
                "<s:DeveloperModeOnly Value=\"true\" />",
                "<DeveloperModeOnly Value=\"maybe\"/>",
            ),
            "true or false",
        ),
        (
            WINDOWS
                .replace("<s:DeveloperModeOnly Value=\"true\" />", "")
                .replace("<Catalog>", "<DeveloperModeOnly Value=\"true\"/><Catalog>")
                .replace("<AuthorizedEntities>", "<Catalog/><AuthorizedEntities>"),
            "out of order",
        ),
        (WINDOWS.replace("Name=\"microsoft", "Name=\"&bogus;microsoft"), "entity"),
        (WINDOWS.replace("<!-- a comment -->", "<x:Other/>"), "prefix"),
        (WINDOWS.replace("<Catalog>FFFF</Catalog>", "<Catalog><a><b/></a></Catalog>"), "too deep"),
        (WINDOWS.replace("</CustomCapabilityDescriptor>", ""), "not closed"),
        (format!("{WINDOWS}<more/>"), "after the root"),
        (
            WINDOWS.replace("CertificateSignatureHash=\"ca9f", "CertificateSignatureHash=\"zz9f"),
            "CertificateSignatureHash",
        ),
    ] {
        match import_windows_xml(&bad) {
            Ok(_) if says.is_empty() => {}
            Ok(d) => panic!("accepted ({says}): {d:?}\n{bad}"),
            Err(e) => assert!(!says.is_empty() && e.to_string().contains(says), "{says}: {e}"),
        }
    }
    // Any prefix of the document, and any single byte changed, is refused or read without a
    // panic.
    for i in 0..WINDOWS.len() {
        if WINDOWS.is_char_boundary(i) {
            let _ = import_windows_xml(&WINDOWS[..i]);
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn capability() -> impl Strategy<Value = CustomCapabilityName> {
        ("[A-Za-z][A-Za-z0-9-]{0,8}", "[A-Za-z0-9][A-Za-z0-9-]{0,8}", any::<bool>()).prop_map(
            |(company, name, owner)| {
                let publisher = if owner { CONTOSO } else { FABRIKAM };
                format!("{company}.{name}_{}", PublisherId::from_publisher(publisher))
                    .parse()
                    .unwrap()
            },
        )
    }

    fn entity() -> impl Strategy<Value = AuthorizedEntity> {
        ("[A-Za-z][A-Za-z0-9]{0,8}\\.[A-Za-z0-9]{1,8}", any::<[u8; 32]>()).prop_map(|(n, h)| {
            AuthorizedEntity {
                package_family_name: pfn(&n, FABRIKAM),
                certificate_signature_hash: KeyId::of(&h),
            }
        })
    }

    fn descriptor() -> impl Strategy<Value = Descriptor> {
        (
            proptest::collection::vec(capability(), 1..6),
            proptest::option::of(proptest::collection::vec(entity(), 1..6)),
            any::<bool>(),
        )
            .prop_map(|(mut caps, entities, developer_mode_only)| {
                let mut seen = std::collections::HashSet::new();
                caps.retain(|c| seen.insert(c.as_str().to_ascii_lowercase()));
                Descriptor {
                    custom_capabilities: caps,
                    authorized_entities: match entities {
                        None => AuthorizedEntities::AllowAny,
                        Some(e) => AuthorizedEntities::Entities(e),
                    },
                    developer_mode_only,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A descriptor writes text that reads back to it, signed or not; the owner's signature
        /// verifies for its own capabilities and for no other descriptor's values.
        #[test]
        fn round_trip_and_signature(d in descriptor(), other in descriptor()) {
            let unsigned = SignedDescriptor { descriptor: d.clone(), signature: None };
            prop_assert_eq!(&SignedDescriptor::parse(&unsigned.to_toml()).unwrap(), &unsigned);
            let owner = key(CONTOSO, 1);
            let signed = d.clone().sign(&owner);
            let back = SignedDescriptor::parse(&signed.to_toml()).unwrap();
            prop_assert_eq!(&back, &signed);
            let trusted = [owner.public_key()];
            for c in &d.custom_capabilities {
                let r = check(&back, c, &trusted, None);
                if c.owner_publisher_id() == PublisherId::from_publisher(CONTOSO) {
                    prop_assert!(r.is_ok(), "{:?}", r);
                } else {
                    let not_owner = matches!(r, Err(Refusal::KeyNotOwner { .. }));
                    prop_assert!(not_owner, "{:?}", r);
                }
            }
            // The signature moved onto other values does not verify.
            if other.canonical_bytes() != d.canonical_bytes() {
                let moved = SignedDescriptor { descriptor: other.clone(), signature: signed.signature };
                for c in &other.custom_capabilities {
                    let bad = matches!(check(&moved, c, &trusted, None), Err(Refusal::BadSignature { .. }));
                    prop_assert!(bad);
                }
            }
        }
    }
}
