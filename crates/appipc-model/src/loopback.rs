//! Loopback isolation (`uap4:LoopbackAccessRules`, `CheckNetIsolation LoopbackExempt`) as a
//! pure decision: [`decide`]`(connect) -> Decision`, reached through
//! [`crate::policy::Operation::LoopbackConnect`].
//!
//! The broker gathers the facts about both ends of a loopback connect (who the client is, who
//! owns the listener on that port, what each declares and was granted, which exemptions are in
//! force) and this module applies Windows' rules (`MECHANISMS.md` §6):
//!
//! * a package always reaches itself (all its processes share one network namespace);
//! * UDP between two different packages is never delivered, rules or not (the rules are TCP
//!   only);
//! * a process that is not in an app container (unpackaged, or packaged full trust) is not
//!   isolated on its own side;
//! * two app containers of different packages connect only if both were granted
//!   `privateNetworkClientServer`, the client declares an `out` rule naming the server's family
//!   and the server an `in` rule naming the client's;
//! * an app container may connect out to a listener that is not in an app container only with
//!   `privateNetworkClientServer` and either the outbound exemption (`appipc loopback exempt
//!   add`, Windows `-a`) or, for a packaged full-trust listener, an `out` rule naming it;
//! * a client that is not in an app container reaches an app container's listener only if that
//!   package was granted `privateNetworkClientServer` and either `appipc loopback serve-inbound`
//!   runs for it (Windows `-is`) or, for a packaged full-trust client, the server's `in` rule
//!   names the client's family.
//!
//! A refusal is answered with `ECONNREFUSED` at once (Windows drops the packet and the connect
//! times out); its rule names every missing declaration and on which side, and the manifest
//! reference points at the first of them.

use crate::identity::PackageFamilyName;
use crate::manifest::{Direction, LoopbackRule, PRIVATE_NETWORK_CLIENT_SERVER};
use crate::policy::{Decision, ManifestRef};
use appipc_wire::status::{ErrorKind, WindowsCode};

/// `WSAECONNREFUSED`: what Windows' `connect` reports for a refused connection.
pub const WSAECONNREFUSED: u32 = 10061;

/// One end of a loopback connection, as the broker found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackEnd<'a> {
    /// A process without package identity (or no listener owner known: the host's).
    Unpackaged,
    /// A process of an installed package.
    Package(PackageEnd<'a>),
}

/// The package side of a [`LoopbackEnd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageEnd<'a> {
    /// The package's family.
    pub family_name: &'a PackageFamilyName,
    /// Whether the process is in an app container (`false`: packaged full trust).
    pub confined: bool,
    /// Whether the package was granted `privateNetworkClientServer`.
    pub capability: bool,
    /// Its `[[loopback-rule]]`s.
    pub rules: &'a [LoopbackRule],
    /// As a client: the outbound exemption (`appipc loopback exempt add`); as a server: the
    /// inbound one (`appipc loopback serve-inbound` is running).
    pub exempt: bool,
}

/// The transport of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP (`SOCK_STREAM`).
    Tcp,
    /// UDP (`SOCK_DGRAM`).
    Udp,
}

/// A loopback connect to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Who connects.
    pub client: LoopbackEnd<'a>,
    /// Who owns the listener.
    pub server: LoopbackEnd<'a>,
    /// The port, when known.
    pub port: Option<u16>,
    /// TCP or UDP.
    pub transport: Transport,
}

impl LoopbackEnd<'_> {
    fn name(&self) -> String {
        match self {
            LoopbackEnd::Unpackaged => "an unpackaged process".to_owned(),
            LoopbackEnd::Package(p) => p.family_name.to_string(),
        }
    }

    fn family(&self) -> Option<&PackageFamilyName> {
        match self {
            LoopbackEnd::Unpackaged => None,
            LoopbackEnd::Package(p) => Some(p.family_name),
        }
    }

    fn confined(&self) -> Option<&PackageEnd<'_>> {
        match self {
            LoopbackEnd::Package(p) if p.confined => Some(p),
            _ => None,
        }
    }
}

impl Connect<'_> {
    /// What the connect is about, for the decision log: `B:PORT (tcp)`.
    pub fn object(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let t = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        };
        format!("loopback {}{port} ({t})", self.server.name())
    }

    /// The server's family, or "".
    pub fn object_package(&self) -> String {
        self.server.family().map(ToString::to_string).unwrap_or_default()
    }
}

/// Index of `p`'s rule of `direction` that names `peer`, if any.
pub fn find_rule(
    p: &PackageEnd<'_>,
    direction: Direction,
    peer: &PackageFamilyName,
) -> Option<usize> {
    p.rules.iter().position(|r| {
        r.direction == direction
            && r.package_family_name.as_str().eq_ignore_ascii_case(peer.as_str())
    })
}

/// One thing that is missing for a connect, on one side.
struct Missing {
    /// Whose manifest.
    package: String,
    /// Its key (for `appipc.toml:LINE:COL`).
    key: &'static str,
    /// In words.
    what: String,
    /// How to add it.
    fix: String,
}

fn capability(p: &PackageEnd<'_>, side: &str) -> Option<Missing> {
    (!p.capability).then(|| Missing {
        package: p.family_name.to_string(),
        key: "capabilities",
        what: format!(
            "the {side} {} was not granted the capability {PRIVATE_NETWORK_CLIENT_SERVER}",
            p.family_name
        ),
        fix: format!(
            "declare {PRIVATE_NETWORK_CLIENT_SERVER} under [capabilities] in {}'s appipc.toml",
            p.family_name
        ),
    })
}

fn rule(
    p: &PackageEnd<'_>,
    side: &str,
    direction: Direction,
    peer: &PackageFamilyName,
) -> Option<Missing> {
    find_rule(p, direction, peer).is_none().then(|| Missing {
        package: p.family_name.to_string(),
        key: "loopback-rule",
        what: format!(
            "the {side} {} has no {:?} loopback rule naming {peer}",
            p.family_name,
            direction.as_str()
        ),
        fix: format!(
            "add to {}'s appipc.toml: [[loopback-rule]] direction = \"{}\" package-family-name = \
             \"{peer}\"",
            p.family_name,
            direction.as_str()
        ),
    })
}

fn refused(rule: String, missing: Vec<Missing>) -> Decision {
    let mut d = Decision {
        allowed: false,
        granted: 0,
        rule,
        remedy: None,
        manifest: None,
        kind: ErrorKind::AccessDenied,
        code: WindowsCode::Win32(WSAECONNREFUSED),
    };
    if !missing.is_empty() {
        d.rule = format!(
            "{}: {}",
            d.rule,
            missing.iter().map(|m| m.what.as_str()).collect::<Vec<_>>().join("; ")
        );
        d.remedy = Some(missing.iter().map(|m| m.fix.as_str()).collect::<Vec<_>>().join("; "));
        d.manifest = Some(ManifestRef {
            package_family_name: missing[0].package.clone(),
            key: missing[0].key.to_owned(),
        });
    }
    d
}

fn allowed(rule: String) -> Decision {
    Decision {
        allowed: true,
        granted: 0,
        rule,
        remedy: None,
        manifest: None,
        kind: ErrorKind::AccessDenied,
        code: WindowsCode::None,
    }
}

/// Decides one loopback connect.
pub fn decide(c: &Connect<'_>) -> Decision {
    let (client, server) = (&c.client, &c.server);
    let same = match (client.family(), server.family()) {
        (Some(a), Some(b)) => a.as_str().eq_ignore_ascii_case(b.as_str()),
        _ => false,
    };
    let to = format!("{} to {}", client.name(), c.object());
    if same {
        return allowed(format!("{to}: a package always reaches itself"));
    }
    if c.transport == Transport::Udp && (client.confined().is_some() || server.confined().is_some())
    {
        return refused(
            format!(
                "{to}: UDP loopback between an app container and another package or process is \
                 never delivered (loopback rules and exemptions are for TCP only)"
            ),
            Vec::new(),
        );
    }
    match (client.confined(), server.confined()) {
        (None, None) => {
            allowed(format!("{to}: neither end is in an app container (not network isolated)"))
        }
        (Some(a), Some(b)) => {
            let missing: Vec<Missing> = [
                capability(a, "client"),
                rule(a, "client", Direction::Out, b.family_name),
                capability(b, "server"),
                rule(b, "server", Direction::In, a.family_name),
            ]
            .into_iter()
            .flatten()
            .collect();
            if missing.is_empty() {
                allowed(format!(
                    "{to}: both were granted {PRIVATE_NETWORK_CLIENT_SERVER}, the client's out rule \
                     names the server and the server's in rule names the client"
                ))
            } else {
                refused(format!("{to} is refused"), missing)
            }
        }
        (Some(a), None) => out_of_container(&to, a, server),
        (None, Some(b)) => into_container(&to, client, b),
    }
}

/// An app container connecting to a listener that is not in one.
fn out_of_container(to: &str, a: &PackageEnd<'_>, server: &LoopbackEnd<'_>) -> Decision {
    let by_rule = match server {
        LoopbackEnd::Package(s) => find_rule(a, Direction::Out, s.family_name).is_some(),
        LoopbackEnd::Unpackaged => false,
    };
    let mut missing: Vec<Missing> = capability(a, "client").into_iter().collect();
    if !a.exempt && !by_rule {
        let mut m = Missing {
            package: a.family_name.to_string(),
            key: "loopback-rule",
            what: format!(
                "the client {} has no outbound loopback exemption (appipc loopback exempt add {})",
                a.family_name, a.family_name
            ),
            fix: format!("appipc loopback exempt add {}", a.family_name),
        };
        if let LoopbackEnd::Package(s) = server {
            m.what.push_str(&format!(" and no \"out\" loopback rule naming {}", s.family_name));
        }
        missing.push(m);
    }
    if missing.is_empty() {
        let how = if a.exempt {
            "the client has the outbound loopback exemption"
        } else {
            "the client's out rule names the full-trust server"
        };
        allowed(format!("{to}: {how} and was granted {PRIVATE_NETWORK_CLIENT_SERVER}"))
    } else {
        refused(format!("{to} is refused"), missing)
    }
}

/// A process that is not in an app container connecting to an app container's listener.
fn into_container(to: &str, client: &LoopbackEnd<'_>, b: &PackageEnd<'_>) -> Decision {
    let by_rule = match client {
        LoopbackEnd::Package(a) => find_rule(b, Direction::In, a.family_name).is_some(),
        LoopbackEnd::Unpackaged => false,
    };
    let mut missing: Vec<Missing> = capability(b, "server").into_iter().collect();
    if !b.exempt && !by_rule {
        let mut m = Missing {
            package: b.family_name.to_string(),
            key: "loopback-rule",
            what: format!(
                "the server {} accepts no inbound loopback from outside app containers \
                 (appipc loopback serve-inbound {} is not running)",
                b.family_name, b.family_name
            ),
            fix: format!("run appipc loopback serve-inbound {}", b.family_name),
        };
        if let LoopbackEnd::Package(a) = client {
            m.what
                .push_str(&format!(" and it has no \"in\" loopback rule naming {}", a.family_name));
        }
        missing.push(m);
    }
    if missing.is_empty() {
        let how = if b.exempt {
            "appipc loopback serve-inbound runs for the server"
        } else {
            "the server's in rule names the full-trust client"
        };
        allowed(format!("{to}: {how}, which was granted {PRIVATE_NETWORK_CLIENT_SERVER}"))
    } else {
        refused(format!("{to} is refused"), missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfn(s: &str) -> PackageFamilyName {
        s.parse().unwrap()
    }

    fn rules(list: &[(Direction, &PackageFamilyName)]) -> Vec<LoopbackRule> {
        list.iter()
            .map(|(d, p)| LoopbackRule { direction: *d, package_family_name: (*p).clone() })
            .collect()
    }

    fn end<'a>(f: &'a PackageFamilyName, cap: bool, rules: &'a [LoopbackRule]) -> LoopbackEnd<'a> {
        LoopbackEnd::Package(PackageEnd {
            family_name: f,
            confined: true,
            capability: cap,
            rules,
            exempt: false,
        })
    }

    fn tcp<'a>(client: LoopbackEnd<'a>, server: LoopbackEnd<'a>) -> Connect<'a> {
        Connect { client, server, port: Some(8080), transport: Transport::Tcp }
    }

    /// Rules {none, client out, server in, both} × capability {both, client only, server only,
    /// none}: only both rules and both capabilities connect; every refusal names what is
    /// missing on which side.
    #[test]
    fn rule_matrix() {
        let a = pfn("Contoso.Client_cvnpggrrsm18p");
        let b = pfn("Fabrikam.Server_8tkjkmve8mrwr");
        let out = rules(&[(Direction::Out, &b)]);
        let inn = rules(&[(Direction::In, &a)]);
        let none: Vec<LoopbackRule> = Vec::new();
        for (client_rule, server_rule) in
            [(false, false), (true, false), (false, true), (true, true)]
        {
            for (cap_a, cap_b) in [(true, true), (true, false), (false, true), (false, false)] {
                let ra = if client_rule { &out } else { &none };
                let rb = if server_rule { &inn } else { &none };
                let d = decide(&tcp(end(&a, cap_a, ra), end(&b, cap_b, rb)));
                let want = client_rule && server_rule && cap_a && cap_b;
                assert_eq!(
                    d.allowed, want,
                    "rules {client_rule}/{server_rule} caps {cap_a}/{cap_b}: {}",
                    d.rule
                );
                if want {
                    continue;
                }
                assert_eq!(d.code, WindowsCode::Win32(WSAECONNREFUSED));
                let says = |s: &str| d.rule.contains(s);
                assert_eq!(says(&format!("the client {a} was not granted")), !cap_a, "{}", d.rule);
                assert_eq!(says(&format!("the server {b} was not granted")), !cap_b, "{}", d.rule);
                assert_eq!(
                    says(&format!("the client {a} has no \"out\" loopback rule naming {b}")),
                    !client_rule,
                    "{}",
                    d.rule
                );
                assert_eq!(
                    says(&format!("the server {b} has no \"in\" loopback rule naming {a}")),
                    !server_rule,
                    "{}",
                    d.rule
                );
                let m = d.manifest.as_ref().expect("a manifest reference");
                let first_on_client = !cap_a || !client_rule;
                let whose = if first_on_client { &a } else { &b };
                assert_eq!(m.package_family_name, whose.to_string());
                assert!(d.remedy.is_some());
            }
        }
    }

    #[test]
    fn rules_must_name_each_other() {
        let a = pfn("Contoso.Client_cvnpggrrsm18p");
        let b = pfn("Fabrikam.Server_8tkjkmve8mrwr");
        let c = pfn("Other.Server_8tkjkmve8mrwr");
        // The client's out rule names another package; the server's in rule names itself.
        let ra = rules(&[(Direction::Out, &c), (Direction::In, &b)]);
        let rb = rules(&[(Direction::In, &b), (Direction::Out, &a)]);
        let d = decide(&tcp(end(&a, true, &ra), end(&b, true, &rb)));
        assert!(!d.allowed);
        assert!(d.rule.contains("no \"out\" loopback rule naming"), "{}", d.rule);
        assert!(d.rule.contains("no \"in\" loopback rule naming"), "{}", d.rule);
        // Family names compare case-insensitively.
        let upper = pfn("CONTOSO.CLIENT_cvnpggrrsm18p");
        let ra = rules(&[(Direction::Out, &b)]);
        let rb = rules(&[(Direction::In, &upper)]);
        assert!(decide(&tcp(end(&a, true, &ra), end(&b, true, &rb))).allowed);
    }

    #[test]
    fn same_package_always_and_udp_never() {
        let a = pfn("Contoso.Client_cvnpggrrsm18p");
        let b = pfn("Fabrikam.Server_8tkjkmve8mrwr");
        let d = decide(&tcp(end(&a, false, &[]), end(&a, false, &[])));
        assert!(d.allowed, "{}", d.rule);
        let mut udp = tcp(end(&a, false, &[]), end(&a, false, &[]));
        udp.transport = Transport::Udp;
        assert!(decide(&udp).allowed, "UDP inside a package");
        let ra = rules(&[(Direction::Out, &b)]);
        let rb = rules(&[(Direction::In, &a)]);
        let mut udp = tcp(end(&a, true, &ra), end(&b, true, &rb));
        assert!(decide(&udp).allowed);
        udp.transport = Transport::Udp;
        let d = decide(&udp);
        assert!(!d.allowed);
        assert!(d.rule.contains("UDP"), "{}", d.rule);
        // Also to or from the host, exemptions or not.
        let exempt = LoopbackEnd::Package(PackageEnd {
            family_name: &a,
            confined: true,
            capability: true,
            rules: &[],
            exempt: true,
        });
        let to_host = Connect {
            client: exempt,
            server: LoopbackEnd::Unpackaged,
            port: None,
            transport: Transport::Udp,
        };
        assert!(!decide(&to_host).allowed);
    }

    #[test]
    fn full_trust_is_not_isolated() {
        let a = pfn("Contoso.Client_cvnpggrrsm18p");
        let b = pfn("Fabrikam.Server_8tkjkmve8mrwr");
        let ft = |f| {
            LoopbackEnd::Package(PackageEnd {
                family_name: f,
                confined: false,
                capability: false,
                rules: &[],
                exempt: false,
            })
        };
        assert!(decide(&tcp(ft(&a), ft(&b))).allowed);
        assert!(decide(&tcp(LoopbackEnd::Unpackaged, ft(&b))).allowed);
        assert!(decide(&tcp(ft(&a), LoopbackEnd::Unpackaged)).allowed);
        // An app container's own side is still isolated towards a full-trust peer...
        let d = decide(&tcp(end(&a, true, &[]), ft(&b)));
        assert!(!d.allowed);
        assert!(d.rule.contains("no outbound loopback exemption"), "{}", d.rule);
        // ... unless its out rule names it.
        let ra = rules(&[(Direction::Out, &b)]);
        assert!(decide(&tcp(end(&a, true, &ra), ft(&b))).allowed);
        let rb = rules(&[(Direction::In, &a)]);
        assert!(decide(&tcp(ft(&a), end(&b, true, &rb))).allowed);
        assert!(!decide(&tcp(ft(&a), end(&b, false, &rb))).allowed, "the server's capability");
    }

    #[test]
    fn exemptions() {
        let a = pfn("Contoso.Client_cvnpggrrsm18p");
        let with = |cap, exempt| {
            LoopbackEnd::Package(PackageEnd {
                family_name: &a,
                confined: true,
                capability: cap,
                rules: &[],
                exempt,
            })
        };
        // Outbound to the host's listeners: `-a` and the capability.
        let d = decide(&tcp(with(true, false), LoopbackEnd::Unpackaged));
        assert!(!d.allowed);
        assert!(
            d.remedy.as_deref().unwrap().contains("appipc loopback exempt add"),
            "{:?}",
            d.remedy
        );
        assert!(decide(&tcp(with(true, true), LoopbackEnd::Unpackaged)).allowed);
        let d = decide(&tcp(with(false, true), LoopbackEnd::Unpackaged));
        assert!(!d.allowed);
        assert!(d.rule.contains(PRIVATE_NETWORK_CLIENT_SERVER), "{}", d.rule);
        // Inbound from the host's clients: `-is` and the capability.
        let d = decide(&tcp(LoopbackEnd::Unpackaged, with(true, false)));
        assert!(!d.allowed);
        assert!(d.remedy.as_deref().unwrap().contains("serve-inbound"), "{:?}", d.remedy);
        assert!(decide(&tcp(LoopbackEnd::Unpackaged, with(true, true))).allowed);
        assert!(!decide(&tcp(LoopbackEnd::Unpackaged, with(false, true))).allowed);
        // An exemption does not stand in for rules between two app containers.
        let b = pfn("Fabrikam.Server_8tkjkmve8mrwr");
        assert!(!decide(&tcp(with(true, true), end(&b, true, &[]))).allowed);
    }
}
