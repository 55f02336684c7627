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
        let mut name = prog_id;
        for _ in 0..=self.prog_ids.len() {
            let entry = self.prog_ids.iter().find(|p| p.id.eq_ignore_ascii_case(name))?;
            match &entry.target {
                ProgIdTarget::Clsid(g) => return Some(*g),
                ProgIdTarget::CurrentVersion(next) => name = next,
            }
        }
        None
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
