//! Packaged COM: out-of-process servers (`windows.comServer`) and interface registrations
//! (`windows.comInterface`).

use super::names::{Guid, PackagePath};

/// `desktop7:Scope` of a COM server extension: who sees its classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ComScope {
    /// `user` (default): only users who have the package registered.
    #[default]
    User,
    /// `machine`: every user; needs the custom capability
    /// `Microsoft.classicAppCompatElevated_8wekyb3d8bbwe`.
    Machine,
}

/// `desktop7:CompatMode` of a COM server extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ComCompatMode {
    /// `modern` (default).
    #[default]
    Modern,
    /// `classic`: needs the custom capability `Microsoft.classicAppCompat_8wekyb3d8bbwe`.
    Classic,
}

/// One `windows.comServer` extension of an application (`[[application.com-server]]`).
/// Cross-references (ProgId → class, ProgId → ProgId) resolve inside one such block only.
/// Declaring one requires the restricted capability `runFullTrust`; servers run
/// *Activate-As-Package* with the identity of the enclosing application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComServer {
    /// Who sees the classes.
    pub scope: ComScope,
    /// Compatibility mode.
    pub compat_mode: ComCompatMode,
    /// `com:ExeServer` elements, 0 to 1000.
    pub exe_servers: Vec<ExeServer>,
    /// `com:ProgId` elements, 0 to 10000.
    pub prog_ids: Vec<ProgId>,
}

impl ComServer {
    /// Every class of every exe server in this block.
    pub fn classes(&self) -> impl Iterator<Item = (&ExeServer, &ComClass)> {
        self.exe_servers.iter().flat_map(|s| s.classes.iter().map(move |c| (s, c)))
    }

    /// The exe server and class registered for `clsid` in this block.
    pub fn find_class(&self, clsid: Guid) -> Option<(&ExeServer, &ComClass)> {
        self.classes().find(|(_, c)| c.id == clsid)
    }

    /// The CLSID a ProgID stands for (following `current-version` links), compared
    /// case-insensitively as the registry does.
    pub fn resolve_prog_id(&self, prog_id: &str) -> Option<Guid> {
        self.resolved_prog_ids().get(&prog_id.to_ascii_lowercase()).copied().flatten()
    }

    /// Every ProgID of this block (lower-case) and the CLSID it stands for, `None` for one
    /// whose `current-version` links reach no class (a missing name or a cycle). Linear in
    /// the number of ProgIDs: each link is followed once.
    pub fn resolved_prog_ids(&self) -> std::collections::HashMap<String, Option<Guid>> {
        use std::collections::HashMap;
        let targets: HashMap<String, &ProgIdTarget> =
            self.prog_ids.iter().map(|p| (p.id.to_ascii_lowercase(), &p.target)).collect();
        let mut done: HashMap<String, Option<Guid>> = HashMap::with_capacity(targets.len());
        for start in targets.keys() {
            if done.contains_key(start) {
                continue;
            }
            // Follow the links until a class, a name resolved already, a missing name or a
            // name seen on this walk (a cycle); then every name walked gets the answer.
            let mut walked: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut name = start.clone();
            let answer = loop {
                if let Some(a) = done.get(&name) {
                    break *a;
                }
                let Some(target) = targets.get(&name) else { break None };
                if !seen.insert(name.clone()) {
                    break None;
                }
                walked.push(name.clone());
                match target {
                    ProgIdTarget::Clsid(g) => break Some(*g),
                    ProgIdTarget::CurrentVersion(next) => name = next.to_ascii_lowercase(),
                }
            };
            for n in walked {
                done.insert(n, answer);
            }
        }
        done
    }
}

/// `com:ExeServer`: an executable that serves COM classes (`LocalServer32` + AppID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeServer {
    /// The server executable inside the package.
    pub executable: PackagePath,
    /// Command-line arguments (Windows: one `Arguments` string; here an argv list).
    pub arguments: Vec<String>,
    /// `DisplayName`: the AppID's default value.
    pub display_name: Option<String>,
    /// `LaunchAndActivationPermission`: SDDL text of who may launch and activate the server.
    /// Only its outline is checked here; parsing SDDL belongs to the security descriptor code.
    pub launch_and_activation_permission: Option<String>,
    /// `com:Class` elements, 1 to 10000.
    pub classes: Vec<ComClass>,
}

/// `com:Class` inside an exe server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComClass {
    /// `Id`: the CLSID, unique in the package.
    pub id: Guid,
    /// `DisplayName`.
    pub display_name: Option<String>,
    /// `ProgId` associated with the class.
    pub prog_id: Option<String>,
    /// `VersionIndependentProgId`.
    pub version_independent_prog_id: Option<String>,
    /// `AutoConvertTo`: CLSID objects of this class convert to.
    pub auto_convert_to: Option<Guid>,
}

/// `com:ProgId`: a ProgID that names a class directly or through its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgId {
    /// `Id`, unique (case-insensitively) in the package.
    pub id: String,
    /// Exactly one of `Clsid` / `CurrentVersion`.
    pub target: ProgIdTarget,
}

/// What a [`ProgId`] points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgIdTarget {
    /// `Clsid`: a class of the same COM server block.
    Clsid(Guid),
    /// `CurrentVersion`: another ProgID of the same COM server block.
    CurrentVersion(String),
}

/// One `windows.comInterface` extension (`[[com-interface]]`, package level). Interface →
/// proxy stub / type library / synchronous-asynchronous references resolve inside one such
/// block only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComInterface {
    /// `com:ProxyStub` elements, 0 to 1000.
    pub proxy_stubs: Vec<ProxyStub>,
    /// `com:Interface` elements, 0 to 10000.
    pub interfaces: Vec<Interface>,
    /// `com:TypeLib` elements, 0 to 1000.
    pub type_libs: Vec<TypeLib>,
}

/// `com:ProxyStub`: marshalling code for interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStub {
    /// `Id`: the proxy stub's CLSID.
    pub id: Guid,
    /// `DisplayName`.
    pub display_name: Option<String>,
    /// `Path`: the file inside the package (a shared object on Linux).
    pub path: PackagePath,
}

/// `com:Interface`: an interface registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `Id`: the IID, unique in the package.
    pub id: Guid,
    /// `ProxyStubClsid`: a proxy stub of the same block (exclusive with
    /// `use_universal_marshaler`).
    pub proxy_stub_clsid: Option<Guid>,
    /// `UseUniversalMarshaler`: marshal from the type library (needs `type_lib`).
    pub use_universal_marshaler: bool,
    /// `com:TypeLib` child: the type library describing the interface.
    pub type_lib: Option<TypeLibRef>,
    /// `SynchronousInterface`: an interface of the same block.
    pub synchronous_interface: Option<Guid>,
    /// `AsynchronousInterface`: an interface of the same block.
    pub asynchronous_interface: Option<Guid>,
}

/// Reference from an interface to a type library of the same block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLibRef {
    /// `Id` of the type library.
    pub id: Guid,
    /// `VersionNumber`, one of the library's versions when given.
    pub version_number: Option<String>,
}

/// `com:TypeLib`: a type library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLib {
    /// `Id` (LIBID), unique in the package.
    pub id: Guid,
    /// `com:Version` elements, 1 to 1000.
    pub versions: Vec<TypeLibVersion>,
}

/// `com:Version` of a type library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLibVersion {
    /// `Number`, like `1.0`.
    pub number: String,
    /// The library file inside the package (Windows: `Win32Path` / `Win64Path`).
    pub path: PackagePath,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 000 ProgIDs, each the current version of the next, the last naming a class: each
    /// link is followed once (a walk per name took the broker minutes), a cycle reaches
    /// nothing, and names compare case-insensitively.
    #[test]
    fn a_long_current_version_chain_resolves_in_one_pass() {
        let clsid: Guid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301".parse().unwrap();
        let n = 10_000;
        let mut prog_ids: Vec<ProgId> = (0..n - 1)
            .map(|i| ProgId {
                id: format!("Contoso.P{i}"),
                target: ProgIdTarget::CurrentVersion(format!("CONTOSO.P{}", i + 1)),
            })
            .collect();
        prog_ids
            .push(ProgId { id: format!("Contoso.P{}", n - 1), target: ProgIdTarget::Clsid(clsid) });
        prog_ids.push(ProgId {
            id: "Loop.A".into(),
            target: ProgIdTarget::CurrentVersion("Loop.B".into()),
        });
        prog_ids.push(ProgId {
            id: "Loop.B".into(),
            target: ProgIdTarget::CurrentVersion("Loop.A".into()),
        });
        let block = ComServer { prog_ids, ..ComServer::default() };
        let all = block.resolved_prog_ids();
        assert_eq!(all.len(), n + 2);
        assert!(
            all.iter().filter(|(k, _)| k.starts_with("contoso.")).all(|(_, g)| *g == Some(clsid))
        );
        assert_eq!(block.resolve_prog_id("contoso.p0"), Some(clsid));
        assert_eq!(block.resolve_prog_id("Loop.A"), None);
        assert_eq!(block.resolve_prog_id("Missing"), None);
    }
}
