//! Access policy as pure functions: [`decide`]`(principal, operation) -> Decision`.
//!
//! The broker gathers the facts (who is calling, what the target declares, what a security
//! descriptor says) and enforces the decision; every rule lives here, so every one is
//! unit-tested without processes, and every decision carries the rule that made it, what would
//! have allowed a refusal, and the Windows code the refusal is answered with.

use appipc_wire::status::{
    AppServiceConnectionStatus, ErrorKind, FullTrustLaunchResult, HResult,
    LaunchQuerySupportStatus, LaunchUriStatus, Win32Error, WindowsCode,
};

use crate::manifest::{Capabilities, CustomCapabilityName, RUN_FULL_TRUST, ReturnResults};
use crate::named_objects::{
    self as objects, Namespace, ObjectName, ObjectType, SecurityDescriptor,
};
use crate::package_file::{self, PackageFileError, PublicKey};
use crate::principal::Principal;

/// The restricted capability that lets a packaged app deploy packages
/// (Windows: `packageManagement`).
pub const PACKAGE_MANAGEMENT: &str = "packageManagement";
/// The restricted capability that lets a packaged app see other packages
/// (Windows: `packageQuery`).
pub const PACKAGE_QUERY: &str = "packageQuery";

/// A declaration in a package's manifest that a decision rests on, by key path
/// (`application[0].app-service[1]`); the broker turns it into `appipc.toml:LINE:COL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRef {
    /// Whose manifest.
    pub package_family_name: String,
    /// The key path.
    pub key: String,
}

/// What an app-service open found at the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceTarget {
    /// No package of that family is installed.
    NotInstalled,
    /// The package is being installed, upgraded or removed.
    Deploying,
    /// The package does not declare a service of that name.
    NotDeclared,
    /// Declared, at this key of the provider's manifest.
    Declared {
        /// `allow-unpackaged-callers`.
        allows_unpackaged: bool,
        /// The service's key path.
        key: String,
    },
}

/// What a full-trust launch found in the caller's package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullTrustTarget {
    /// The package has no application of that id.
    NoSuchApplication,
    /// The application declares no full-trust process.
    NoFullTrustProcess,
    /// The parameter group is not declared.
    NoSuchParameterGroup(String),
    /// The executable is missing from the installed package.
    MissingExecutable(String),
    /// Everything is in place.
    Ready,
}

/// What a protocol launch found at its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriTarget {
    /// The named package is not installed (or, with none named, no package handles the
    /// scheme).
    NotInstalled,
    /// The package is being installed, upgraded or removed.
    Deploying,
    /// The package declares no protocol of that scheme.
    NoProtocol,
    /// Declared, at this key of the target's manifest.
    Declared {
        /// Its `return-results`.
        return_results: ReturnResults,
        /// The protocol's key path.
        key: String,
    },
    /// No package handles the scheme and none was named: the desktop's own handler
    /// (`xdg-open`, outside the sandbox) would get it.
    Desktop {
        /// Whether the scheme is one the desktop may get ([`DESKTOP_SCHEMES`]).
        scheme_allowed: bool,
    },
}

/// The schemes a plain launch hands to the desktop's handler when no package handles them
/// (Windows opens these in the default browser or mail app; no capability is needed). Others
/// (`file:` above all, which would open the host's files from an app container) are refused.
pub const DESKTOP_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// Who signed a package: the key's id (64 hex digits) and the publisher it speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedBy<'a> {
    /// The key id.
    pub key_id: &'a str,
    /// The publisher the key speaks for.
    pub publisher: &'a str,
}

/// What is being asked.
#[derive(Debug, Clone)]
pub enum Operation<'a> {
    /// Install or upgrade a package.
    InstallPackage,
    /// Install from a folder of loose files (Windows' `Add-AppxPackage -Register`), which only
    /// developer mode allows.
    InstallFromFolder {
        /// Whether developer mode is on.
        developer_mode: bool,
    },
    /// Accept the signer of a package file whose signature verified.
    AcceptSigner {
        /// The key the signature verifies with.
        signer: &'a PublicKey,
        /// The manifest's `Identity@Publisher`.
        publisher: &'a str,
        /// The user's trust store.
        trusted: &'a [PublicKey],
    },
    /// Replace the installed version of a family (an upgrade, or the same version again).
    ReplacePackage {
        /// The family.
        family_name: &'a str,
        /// Who signed the installed version (`None`: unsigned, from a folder).
        installed: Option<SignedBy<'a>>,
        /// Who signed the incoming one (`None`: unsigned, from a folder).
        incoming: Option<SignedBy<'a>>,
    },
    /// Grant the restricted capabilities a package declares that its installed version was
    /// not granted (all of them for a new package).
    GrantRestrictedCapabilities {
        /// The package's family.
        family_name: &'a str,
        /// The restricted capabilities that need consent.
        needed: &'a [String],
        /// Those the user consented to.
        consented: &'a [String],
    },
    /// Add a key to the trust store, or remove one.
    ChangeTrustStore {
        /// The key id.
        key_id: &'a str,
    },
    /// Turn developer mode on or off.
    SetDeveloperMode {
        /// On or off.
        enabled: bool,
    },
    /// Read the trust store and whether developer mode is on.
    ReadDeploymentPolicy,
    /// Remove a package.
    RemovePackage {
        /// Its family.
        family_name: &'a str,
    },
    /// See that a package is installed and read its details (listings).
    QueryPackage {
        /// Its family.
        family_name: &'a str,
    },
    /// Stop the broker.
    Shutdown,
    /// Start one of a package's applications directly (by AUMID).
    Launch {
        /// The target's family.
        family_name: &'a str,
    },
    /// `AppServiceConnection.OpenAsync`.
    OpenAppService {
        /// The provider's family, as asked.
        provider: &'a str,
        /// The service name, as asked.
        service: &'a str,
        /// What the broker found.
        target: ServiceTarget,
        /// The user the caller connects as (`AppServiceConnection.User`), when it set one.
        user: Option<u32>,
    },
    /// Register as the host of an app service of the caller's own package.
    HostAppService {
        /// The service name.
        service: &'a str,
        /// The application of the caller's package that declares it, if any.
        declared_by: Option<&'a str>,
    },
    /// Report a connection closed (a host's bookkeeping).
    ReportAppServiceClosed {
        /// The connection.
        connection_id: u64,
        /// Whether the caller's process hosts it.
        hosted_by_caller: bool,
    },
    /// `FullTrustProcessLauncher`.
    LaunchFullTrust {
        /// The application whose full-trust process is asked for.
        app: &'a str,
        /// What the broker found.
        target: FullTrustTarget,
    },
    /// `Launcher.LaunchUriAsync` / `LaunchUriForResultsAsync`.
    LaunchUri {
        /// The URI's scheme.
        scheme: &'a str,
        /// `LauncherOptions.TargetApplicationPackageFamilyName`, or the package the broker
        /// chose for the scheme when none was named.
        target_family: Option<&'a str>,
        /// Whether the caller named the target.
        target_named: bool,
        /// For results.
        for_results: bool,
        /// With an input `ValueSet`.
        with_data: bool,
        /// What the broker found.
        target: UriTarget,
    },
    /// `ProtocolForResultsOperation.ReportCompleted`.
    ReportProtocolResult {
        /// The operation.
        operation_id: u64,
        /// Whether the caller's process is the one the operation activated.
        activated_caller: bool,
    },
    /// Receive the caller's application's later protocol activations (single instance).
    RegisterForProtocolActivation {
        /// Whether the caller's application declares a protocol.
        declares_protocol: bool,
    },
    /// Get or clear a publisher cache folder of the caller's own package.
    UsePublisherCacheFolder {
        /// The folder.
        folder: &'a str,
        /// Whether the caller's package declares it.
        declared: bool,
    },
    /// Clear another publisher's cache folder (the user's own form).
    ClearPublisherCacheFolderOf {
        /// The publisher id.
        publisher_id: &'a str,
        /// The folder.
        folder: &'a str,
    },
    /// Revoke a file token.
    RemoveFileToken {
        /// The token.
        token: &'a str,
        /// The package that added it ("" for the user).
        source: &'a str,
    },
    /// Create a named object (or a pipe) under a name.
    CreateNamedObject {
        /// The resolved name.
        name: &'a ObjectName,
        /// Its type.
        ty: ObjectType,
    },
    /// Open a named object (or a pipe, or create an instance of one) with rights.
    OpenNamedObject {
        /// The resolved name.
        name: &'a ObjectName,
        /// Its type.
        ty: ObjectType,
        /// Its security descriptor.
        sd: &'a SecurityDescriptor,
        /// The rights asked.
        desired: u32,
    },
    /// Use a handle (close it, signal through it).
    UseHandle {
        /// The handle.
        handle: u64,
        /// Whether it is one of the caller's session.
        owned: bool,
    },
    /// Do something through a handle that needs one of its rights.
    UseHandleRight {
        /// The handle.
        handle: u64,
        /// What is being done (`SetEvent`, …).
        action: &'a str,
        /// The right it needs.
        needed: u32,
        /// The rights the handle has.
        granted: u32,
    },
    /// Register an RPC endpoint (`RpcServerUseProtseqEp`).
    RegisterRpcEndpoint {
        /// The endpoint name.
        endpoint: &'a str,
    },
    /// Connect to an RPC endpoint: its descriptor decides (`PORT_CONNECT`).
    ConnectRpcEndpoint {
        /// The endpoint name.
        endpoint: &'a str,
        /// The endpoint's security descriptor.
        sd: &'a SecurityDescriptor,
        /// The rights asked.
        desired: u32,
    },
    /// Activate a COM class (`CoCreateInstance`): the exe server's launch and activation
    /// permission decides (`COM_RIGHTS_*`).
    ActivateComClass {
        /// The CLSID.
        clsid: &'a str,
        /// The package declaring it.
        server: &'a str,
        /// The permission.
        sd: &'a SecurityDescriptor,
        /// The rights asked: launch (`EXECUTE | EXECUTE_LOCAL | ACTIVATE_LOCAL`) or activate
        /// (`EXECUTE | ACTIVATE_LOCAL`).
        desired: u32,
    },
    /// A TCP connect (or UDP send) over loopback to a listener of another process.
    LoopbackConnect(crate::loopback::Connect<'a>),
    /// Add, remove or clear loopback exemptions (`CheckNetIsolation LoopbackExempt`).
    ChangeLoopbackExemptions {
        /// The family, or "" for all of them.
        family_name: &'a str,
    },
    /// Write a registry key or value (create, set, delete) in a view.
    WriteRegistry {
        /// The key.
        key: &'a crate::registry::KeyPath,
        /// The view's write rules (`None`: the global view).
        rules: Option<&'a crate::registry::Virtualized>,
        /// Whether the package ships the key (its `Registry.reg`).
        shipped: bool,
        /// The package whose view it is ("" the global view).
        view: &'a str,
    },
    /// Open a package's registry view.
    OpenRegistryView {
        /// The package.
        family_name: &'a str,
    },
    /// Read a key of the global hive through a view (asked when the view does not show a key
    /// the global hive has: an app container's HKCU).
    ReadRegistry {
        /// The key.
        key: &'a crate::registry::KeyPath,
        /// The view's rules (`None`: the global view).
        rules: Option<&'a crate::registry::Virtualized>,
        /// The package whose view it is ("" the global view).
        view: &'a str,
    },
}

impl Operation<'_> {
    /// The mechanism (protocol module) the operation belongs to.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Operation::InstallPackage
            | Operation::InstallFromFolder { .. }
            | Operation::AcceptSigner { .. }
            | Operation::ReplacePackage { .. }
            | Operation::GrantRestrictedCapabilities { .. }
            | Operation::ChangeTrustStore { .. }
            | Operation::SetDeveloperMode { .. }
            | Operation::ReadDeploymentPolicy
            | Operation::RemovePackage { .. }
            | Operation::QueryPackage { .. } => "packages",
            Operation::Shutdown => "broker",
            Operation::Launch { .. } => "launch",
            Operation::OpenAppService { .. }
            | Operation::HostAppService { .. }
            | Operation::ReportAppServiceClosed { .. } => "app_service",
            Operation::LaunchFullTrust { .. } => "full_trust",
            Operation::LaunchUri { .. }
            | Operation::ReportProtocolResult { .. }
            | Operation::RegisterForProtocolActivation { .. } => "launcher",
            Operation::UsePublisherCacheFolder { .. }
            | Operation::ClearPublisherCacheFolderOf { .. }
            | Operation::RemoveFileToken { .. } => "storage",
            Operation::CreateNamedObject { name, ty }
            | Operation::OpenNamedObject { name, ty, .. } => {
                let _ = name;
                if *ty == ObjectType::Pipe { "pipes" } else { "named_objects" }
            }
            Operation::UseHandle { .. } | Operation::UseHandleRight { .. } => "named_objects",
            Operation::LoopbackConnect(_) | Operation::ChangeLoopbackExemptions { .. } => {
                "loopback"
            }
            Operation::RegisterRpcEndpoint { .. } | Operation::ConnectRpcEndpoint { .. } => "rpc",
            Operation::ActivateComClass { .. } => "com",
            Operation::WriteRegistry { .. }
            | Operation::OpenRegistryView { .. }
            | Operation::ReadRegistry { .. } => "registry",
        }
    }

    /// The operation's name, for the decision log.
    pub fn name(&self) -> &str {
        match self {
            Operation::InstallPackage => "install",
            Operation::InstallFromFolder { .. } => "install-folder",
            Operation::AcceptSigner { .. } => "accept-signer",
            Operation::ReplacePackage { .. } => "replace",
            Operation::GrantRestrictedCapabilities { .. } => "grant-restricted-capabilities",
            Operation::ChangeTrustStore { .. } => "change-trust-store",
            Operation::SetDeveloperMode { .. } => "set-developer-mode",
            Operation::ReadDeploymentPolicy => "read-deployment-policy",
            Operation::RemovePackage { .. } => "remove",
            Operation::QueryPackage { .. } => "query",
            Operation::Shutdown => "shutdown",
            Operation::Launch { .. } => "launch",
            Operation::OpenAppService { .. } => "open",
            Operation::HostAppService { .. } => "register-host",
            Operation::ReportAppServiceClosed { .. } => "connection-closed",
            Operation::LaunchFullTrust { .. } => "launch-full-trust-process",
            Operation::LaunchUri { for_results: true, .. } => "launch-uri-for-results",
            Operation::LaunchUri { .. } => "launch-uri",
            Operation::ReportProtocolResult { .. } => "report-completed",
            Operation::RegisterForProtocolActivation { .. } => "register-for-activation",
            Operation::UsePublisherCacheFolder { .. } => "publisher-cache-folder",
            Operation::ClearPublisherCacheFolderOf { .. } => "clear-publisher-cache-folder",
            Operation::RemoveFileToken { .. } => "remove-file-token",
            Operation::CreateNamedObject { .. } => "create",
            Operation::OpenNamedObject { .. } => "open",
            Operation::UseHandle { .. } => "use-handle",
            Operation::UseHandleRight { action, .. } => action,
            Operation::LoopbackConnect(_) => "connect",
            Operation::RegisterRpcEndpoint { .. } => "register",
            Operation::ConnectRpcEndpoint { .. } => "connect",
            Operation::ActivateComClass { desired, .. } => {
                if desired & crate::named_objects::COM_RIGHTS_EXECUTE_LOCAL != 0 {
                    "launch"
                } else {
                    "activate"
                }
            }
            Operation::ChangeLoopbackExemptions { .. } => "change-exemptions",
            Operation::WriteRegistry { .. } => "write",
            Operation::OpenRegistryView { .. } => "open-view",
            Operation::ReadRegistry { .. } => "read",
        }
    }

    /// What the operation is about, in words (an object name, a package, a service).
    pub fn object(&self) -> String {
        match self {
            Operation::InstallPackage
            | Operation::InstallFromFolder { .. }
            | Operation::ReadDeploymentPolicy
            | Operation::Shutdown => String::new(),
            Operation::AcceptSigner { signer, .. } => format!("key {}", signer.id()),
            Operation::ChangeTrustStore { key_id } => format!("key {key_id}"),
            Operation::SetDeveloperMode { enabled } => {
                format!("developer mode {}", if *enabled { "on" } else { "off" })
            }
            Operation::ReplacePackage { family_name, .. }
            | Operation::GrantRestrictedCapabilities { family_name, .. } => {
                (*family_name).to_owned()
            }
            Operation::RemovePackage { family_name }
            | Operation::QueryPackage { family_name }
            | Operation::Launch { family_name } => (*family_name).to_owned(),
            Operation::OpenAppService { provider, service, .. } => format!("{provider}/{service}"),
            Operation::HostAppService { service, .. } => (*service).to_owned(),
            Operation::ReportAppServiceClosed { connection_id, .. } => {
                format!("connection {connection_id}")
            }
            Operation::LaunchFullTrust { app, .. } => (*app).to_owned(),
            Operation::LaunchUri { scheme, target_family, .. } => match target_family {
                Some(f) => format!("{scheme}: in {f}"),
                None => format!("{scheme}:"),
            },
            Operation::ReportProtocolResult { operation_id, .. } => {
                format!("operation {operation_id}")
            }
            Operation::RegisterForProtocolActivation { .. } => String::new(),
            Operation::UsePublisherCacheFolder { folder, .. } => (*folder).to_owned(),
            Operation::ClearPublisherCacheFolderOf { publisher_id, folder } => {
                format!("{publisher_id}/{folder}")
            }
            Operation::RemoveFileToken { token, .. } => format!("token {token}"),
            Operation::CreateNamedObject { name, .. } | Operation::OpenNamedObject { name, .. } => {
                format!("{} (in {})", name.display, name.namespace)
            }
            Operation::UseHandle { handle, .. } | Operation::UseHandleRight { handle, .. } => {
                format!("handle {handle}")
            }
            Operation::LoopbackConnect(c) => c.object(),
            Operation::RegisterRpcEndpoint { endpoint }
            | Operation::ConnectRpcEndpoint { endpoint, .. } => format!("endpoint {endpoint}"),
            Operation::ActivateComClass { clsid, server, .. } => {
                format!("class {{{clsid}}} of {server}")
            }
            Operation::ChangeLoopbackExemptions { family_name } => {
                format!("loopback exemption of {family_name}")
            }
            Operation::WriteRegistry { key, .. } | Operation::ReadRegistry { key, .. } => {
                key.to_string()
            }
            Operation::OpenRegistryView { family_name } => {
                format!("the registry view of {family_name}")
            }
        }
    }

    /// The package the object belongs to, when there is one ("" otherwise).
    pub fn object_package(&self) -> String {
        match self {
            Operation::RemovePackage { family_name }
            | Operation::QueryPackage { family_name }
            | Operation::ReplacePackage { family_name, .. }
            | Operation::GrantRestrictedCapabilities { family_name, .. }
            | Operation::Launch { family_name } => (*family_name).to_owned(),
            Operation::OpenAppService { provider, .. } => (*provider).to_owned(),
            Operation::LaunchUri { target_family, .. } => {
                target_family.unwrap_or_default().to_owned()
            }
            Operation::RemoveFileToken { source, .. } => (*source).to_owned(),
            Operation::LoopbackConnect(c) => c.object_package(),
            Operation::WriteRegistry { view, .. } | Operation::ReadRegistry { view, .. } => {
                (*view).to_owned()
            }
            Operation::OpenRegistryView { family_name } => (*family_name).to_owned(),
            _ => String::new(),
        }
    }

    /// The rights asked, for operations that have them.
    pub fn asked(&self) -> Option<u32> {
        match self {
            Operation::OpenNamedObject { desired, .. }
            | Operation::ConnectRpcEndpoint { desired, .. }
            | Operation::ActivateComClass { desired, .. } => Some(*desired),
            Operation::UseHandleRight { needed, .. } => Some(*needed),
            _ => None,
        }
    }
}

/// The answer, with the rule that decided and what a refusal is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// The rights granted (access-checked operations; 0 otherwise).
    pub granted: u32,
    /// The rule that decided, in words.
    pub rule: String,
    /// What would have allowed a refusal.
    pub remedy: Option<String>,
    /// The manifest declaration the decision rests on.
    pub manifest: Option<ManifestRef>,
    /// For a refusal: the kind of error.
    pub kind: ErrorKind,
    /// For a refusal: the Windows code the mechanism answers with.
    pub code: WindowsCode,
}

impl Decision {
    fn allow(rule: impl Into<String>) -> Decision {
        Decision {
            allowed: true,
            granted: 0,
            rule: rule.into(),
            remedy: None,
            manifest: None,
            kind: ErrorKind::AccessDenied,
            code: WindowsCode::None,
        }
    }

    fn deny(kind: ErrorKind, code: impl Into<WindowsCode>, rule: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            granted: 0,
            rule: rule.into(),
            remedy: None,
            manifest: None,
            kind,
            code: code.into(),
        }
    }

    fn denied(rule: impl Into<String>) -> Decision {
        Decision::deny(ErrorKind::AccessDenied, HResult::AccessDenied, rule)
    }

    fn remedy(mut self, r: impl Into<String>) -> Decision {
        self.remedy = Some(r.into());
        self
    }

    fn at(mut self, package: &str, key: impl Into<String>) -> Decision {
        self.manifest =
            Some(ManifestRef { package_family_name: package.to_owned(), key: key.into() });
        self
    }

    fn granting(mut self, granted: u32) -> Decision {
        self.granted = granted;
        self
    }
}

fn status(s: AppServiceConnectionStatus) -> WindowsCode {
    WindowsCode::Status(s.value())
}

fn full_trust(r: FullTrustLaunchResult) -> WindowsCode {
    WindowsCode::Status(r.value())
}

fn win32(e: Win32Error) -> WindowsCode {
    WindowsCode::Win32(e.value())
}

/// A declared capability that is not granted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotGranted {
    /// The capability as declared.
    pub name: String,
    /// Why it is not granted.
    pub reason: String,
}

/// The capabilities a package is granted at install out of those it declares: general and
/// device capabilities as declared; a restricted capability only when the user consented to it
/// (`consented`, case-insensitive: what `appipc install` asked for on a terminal or `--yes`
/// accepted); a custom capability only when `custom` says so (at install: a valid signed
/// custom capability descriptor of the package grants it, [`crate::sccd::grant`]; for an
/// installed package: it was granted then), never by its declaration alone. Each declared
/// capability that is not granted comes back with the reason.
pub fn grant_capabilities(
    declared: &Capabilities,
    consented: &[String],
    custom: impl Fn(&CustomCapabilityName) -> Result<(), String>,
) -> (Vec<String>, Vec<NotGranted>) {
    let consented_to = |c: &str| consented.iter().any(|x| x.eq_ignore_ascii_case(c));
    let mut granted: Vec<String> = declared.general.clone();
    let mut refused = Vec::new();
    for c in &declared.restricted {
        if consented_to(c) {
            granted.push(c.clone());
        } else {
            refused.push(NotGranted {
                name: c.clone(),
                reason: "a restricted capability is granted only with the user's consent at \
                         install, and none was given for it"
                    .to_owned(),
            });
        }
    }
    granted.extend(declared.device.iter().cloned());
    for c in &declared.custom {
        match custom(c) {
            Ok(()) => granted.push(c.as_str().to_owned()),
            Err(reason) => refused.push(NotGranted { name: c.as_str().to_owned(), reason }),
        }
    }
    (granted, refused)
}

/// Why a custom capability was not granted when no reason was recorded (a package installed
/// before descriptors were verified).
pub const CUSTOM_NOT_GRANTED: &str = "a custom capability is granted only with a valid signed \
    custom capability descriptor (CustomCapability.SCCD) at install, and none granted it";

/// The restricted capabilities `declared` that were not granted before (`granted_before`: the
/// installed version's grants, empty for a new package), case-insensitive, in declaration
/// order: what an install must ask the user about. An upgrade that adds one asks again; one
/// that keeps the same set asks nothing.
pub fn restricted_needing_consent(
    declared: &Capabilities,
    granted_before: &[String],
) -> Vec<String> {
    declared
        .restricted
        .iter()
        .filter(|c| !granted_before.iter().any(|g| g.eq_ignore_ascii_case(c)))
        .cloned()
        .collect()
}

/// The Windows code a package file refusal is answered with (deployment `HRESULT`s, as
/// `Add-AppxPackage` reports them; see `docs/packaging.md`).
pub fn package_file_code(e: &PackageFileError) -> HResult {
    use PackageFileError as E;
    match e {
        E::Unsigned { .. } => HResult::TrustNoSignature,
        E::BadSignature { .. } | E::BadSignatureFile(_) => HResult::TrustSubjectNotTrusted,
        E::PublisherMismatch { .. } => HResult::BadFormat,
        E::UntrustedKey { .. } => HResult::CertUntrustedRoot,
        E::HashMismatch { .. } | E::SizeMismatch { .. } | E::ModeMismatch { .. } => {
            HResult::AppxBlockHashInvalid
        }
        E::NotInBlockMap { .. }
        | E::MissingFromArchive { .. }
        | E::DuplicateEntry { .. }
        | E::BadBlockMap { .. }
        | E::ManifestMissing => HResult::AppxInvalidBlockMap,
        E::MissingBlockMap { .. } | E::ManifestNotThird { .. } => HResult::AppxMissingRequiredFile,
        E::InvalidManifest(_) | E::ManifestNotUtf8 { .. } | E::ManifestTooLarge { .. } => {
            HResult::AppxInvalidManifest
        }
        E::Truncated { .. } | E::BadHeader { .. } | E::BadArchive { .. } => {
            HResult::AppxCorruptContent
        }
        _ => HResult::InstallOpenPackageFailed,
    }
}

fn launch_uri_status(s: LaunchUriStatus) -> WindowsCode {
    WindowsCode::Status(s.value())
}

/// `LaunchUriAsync` / `LaunchUriForResultsAsync` on what the broker found.
fn decide_launch_uri(
    me: &str,
    scheme: &str,
    family: &str,
    target_named: bool,
    for_results: bool,
    with_data: bool,
    target: &UriTarget,
) -> Decision {
    let call = if for_results { "LaunchUriForResultsAsync" } else { "LaunchUriAsync with data" };
    if (for_results || with_data) && !target_named {
        return Decision::deny(
            ErrorKind::BadRequest,
            HResult::InvalidArg,
            format!(
                "{call} needs LauncherOptions.TargetApplicationPackageFamilyName: the caller \
                 must name the package it hands data to"
            ),
        )
        .remedy("set target_application_package_family_name (--target PFN on the CLI)");
    }
    let unavailable = LaunchUriStatus::AppUnavailable;
    let no_protocol = LaunchUriStatus::ProtocolUnavailable;
    match target {
        UriTarget::Desktop { scheme_allowed: true } if !for_results && !with_data => {
            Decision::allow(format!(
                "no package handles {scheme}:; a plain launch of it goes to the desktop's \
                 handler (xdg-open, outside the sandbox)"
            ))
        }
        UriTarget::Desktop { .. } => Decision::deny(
            ErrorKind::NotFound,
            launch_uri_status(no_protocol),
            format!(
                "no installed package handles the scheme {scheme}:, and only {} go to the \
                 desktop's handler",
                DESKTOP_SCHEMES.join(", ")
            ),
        )
        .remedy("install a package that declares [[application.protocol]] name = the scheme"),
        UriTarget::NotInstalled if target_named => Decision::deny(
            ErrorKind::NotFound,
            launch_uri_status(unavailable),
            format!("no package {family} is installed"),
        ),
        UriTarget::NotInstalled => Decision::deny(
            ErrorKind::NotFound,
            launch_uri_status(no_protocol),
            format!("no installed package handles the scheme {scheme}:"),
        )
        .remedy("install a package that declares [[application.protocol]] name = the scheme"),
        UriTarget::Deploying => Decision::deny(
            ErrorKind::Busy,
            launch_uri_status(unavailable),
            format!("package {family} is being deployed"),
        )
        .remedy("try again when the deployment is done"),
        UriTarget::NoProtocol => Decision::deny(
            ErrorKind::NotFound,
            launch_uri_status(no_protocol),
            format!("package {family} declares no protocol {scheme}"),
        )
        .at(family, "application"),
        UriTarget::Declared { return_results, key } if for_results
            && !return_results.for_results() =>
        {
            Decision::deny(
                ErrorKind::NotFound,
                launch_uri_status(no_protocol),
                format!(
                    "protocol {scheme} of {family} does not return results (return-results = \
                     {:?})",
                    return_results.as_str()
                ),
            )
            .remedy(format!("launch it without results, or set return-results = \"always\" or \"optional\" in {family}'s manifest"))
            .at(family, format!("{key}.return-results"))
        }
        UriTarget::Declared { return_results, key } if !for_results
            && !return_results.plain_launch() =>
        {
            Decision::deny(
                ErrorKind::NotFound,
                launch_uri_status(no_protocol),
                format!(
                    "protocol {scheme} of {family} is only for results (return-results = \
                     \"always\")"
                ),
            )
            .remedy("launch it for results (LaunchUriForResultsAsync, --for-results)")
            .at(family, format!("{key}.return-results"))
        }
        UriTarget::Declared { key, .. } => Decision::allow(format!(
            "any caller may launch a declared protocol; {family} sees the caller as the broker \
             attests it ({me})"
        ))
        .at(family, key.clone()),
    }
}

/// `Launcher.QueryUriSupportAsync` on what the broker found (the same facts as a launch).
pub fn uri_support(target: &UriTarget, for_results: bool) -> LaunchQuerySupportStatus {
    match target {
        UriTarget::NotInstalled => LaunchQuerySupportStatus::AppNotInstalled,
        UriTarget::Desktop { scheme_allowed: true } if !for_results => {
            LaunchQuerySupportStatus::Available
        }
        UriTarget::Desktop { .. } => LaunchQuerySupportStatus::AppNotInstalled,
        UriTarget::Deploying => LaunchQuerySupportStatus::AppUnavailable,
        UriTarget::NoProtocol => LaunchQuerySupportStatus::NotSupported,
        UriTarget::Declared { return_results, .. } => {
            let ok = if for_results {
                return_results.for_results()
            } else {
                return_results.plain_launch()
            };
            if ok {
                LaunchQuerySupportStatus::Available
            } else {
                LaunchQuerySupportStatus::NotSupported
            }
        }
    }
}

fn only_the_user(who: &Principal, what: &str) -> Decision {
    if who.package.is_none() {
        Decision::allow(format!("the user's own unpackaged process may {what}"))
    } else {
        Decision::denied(format!(
            "{} may not {what}: only the user's own unpackaged processes may",
            who.describe()
        ))
    }
}

/// Decides one operation.
pub fn decide(who: &Principal, op: &Operation<'_>) -> Decision {
    let me = who.describe();
    let own = who.family_name().unwrap_or_default();
    match op {
        Operation::InstallPackage | Operation::RemovePackage { .. } => {
            if who.package.is_none() {
                Decision::allow("the user's own unpackaged process may deploy packages")
            } else if who.has_capability(PACKAGE_MANAGEMENT) {
                Decision::allow(format!("{me} was granted {PACKAGE_MANAGEMENT}"))
            } else {
                Decision::denied(format!(
                    "{me} may not deploy packages: it was not granted the restricted capability \
                     {PACKAGE_MANAGEMENT}"
                ))
                .remedy(format!("declare the restricted capability {PACKAGE_MANAGEMENT}"))
                .at(own, "capabilities")
            }
        }
        Operation::InstallFromFolder { developer_mode } => {
            if *developer_mode {
                Decision::allow("developer mode is on: packages install from folders")
            } else {
                Decision::deny(
                    ErrorKind::AccessDenied,
                    HResult::InstallPolicyFailure,
                    "installing from a folder (loose files) needs developer mode, which is off",
                )
                .remedy(
                    "pack and sign the folder (appipc pack DIR --key KEY) and install the file, \
                     or turn developer mode on (appipc dev-mode on)",
                )
            }
        }
        Operation::AcceptSigner { signer, publisher, trusted } => {
            match package_file::authorize_signer(signer, publisher, trusted.iter()) {
                Ok(()) => Decision::allow(format!(
                    "the signature verifies with key {}, which the user trusts for {publisher:?}",
                    signer.id()
                )),
                Err(e @ PackageFileError::PublisherMismatch { .. }) => {
                    Decision::deny(ErrorKind::InvalidPackage, package_file_code(&e), e.to_string())
                        .remedy(format!(
                            "sign it with a key made for {publisher:?} (appipc key new --publisher \
                             ...), or name the key's publisher in the manifest"
                        ))
                }
                Err(e) => {
                    Decision::deny(ErrorKind::AccessDenied, package_file_code(&e), e.to_string())
                        .remedy(format!(
                            "if you trust its publisher, add their public key: appipc trust add \
                         PUBLIC_KEY_FILE (key {})",
                            signer.id()
                        ))
                }
            }
        }
        Operation::ReplacePackage { family_name, installed, incoming } => match (
            installed, incoming,
        ) {
            (None, _) => Decision::allow(format!(
                "the installed version of {family_name} is unsigned (developer mode); a checked \
                 install may replace it"
            )),
            (Some(old), None) => Decision::deny(
                ErrorKind::AccessDenied,
                HResult::InstallPolicyFailure,
                format!(
                    "{family_name} is installed from a package signed by key {} for {:?}; an \
                     unsigned folder may not replace it (it would take over its app data)",
                    old.key_id, old.publisher
                ),
            )
            .remedy(format!(
                "install a package file signed by a key trusted for {:?}, or remove {family_name} \
                 first (its app data goes with it)",
                old.publisher
            )),
            (Some(old), Some(new)) if new.publisher == old.publisher => Decision::allow(format!(
                "signed by key {}, trusted for {:?}, the publisher of the installed version",
                new.key_id, old.publisher
            )),
            (Some(old), Some(new)) => Decision::deny(
                ErrorKind::InvalidPackage,
                HResult::BadFormat,
                format!(
                    "the installed version of {family_name} was signed for {:?}; this one is \
                     signed by key {} for {:?} (an upgrade must be signed for the same publisher)",
                    old.publisher, new.key_id, new.publisher
                ),
            ),
        },
        Operation::GrantRestrictedCapabilities { family_name, needed, consented } => {
            let missing: Vec<&str> = needed
                .iter()
                .filter(|n| !consented.iter().any(|c| c.eq_ignore_ascii_case(n)))
                .map(String::as_str)
                .collect();
            if needed.is_empty() {
                Decision::allow(format!("{family_name} asks for no new restricted capability"))
            } else if missing.is_empty() {
                Decision::allow(format!(
                    "the user consented to the restricted capabilities {}",
                    needed.join(", ")
                ))
            } else {
                Decision::deny(
                    ErrorKind::AccessDenied,
                    HResult::AccessDenied,
                    format!(
                        "{family_name} declares the restricted capabilities {}, which need the \
                         user's consent, and none was given for {}",
                        needed.join(", "),
                        missing.join(", ")
                    ),
                )
                .remedy(
                    "answer yes when appipc install asks on a terminal, or pass --yes (SDK: \
                     AddPackageOptions::consent)",
                )
            }
        }
        Operation::ChangeTrustStore { .. } => only_the_user(who, "change the trust store"),
        Operation::SetDeveloperMode { .. } => only_the_user(who, "turn developer mode on or off"),
        Operation::ReadDeploymentPolicy => {
            if who.package.is_none() {
                Decision::allow("the user's own unpackaged process may read the deployment policy")
            } else if who.has_capability(PACKAGE_MANAGEMENT) {
                Decision::allow(format!("{me} was granted {PACKAGE_MANAGEMENT}"))
            } else {
                Decision::denied(format!(
                    "{me} may not read the trust store or developer mode: it was not granted \
                     {PACKAGE_MANAGEMENT}"
                ))
                .at(own, "capabilities")
            }
        }
        Operation::QueryPackage { family_name } => {
            if !who.is_confined() {
                Decision::allow(format!("{me} is not in an app container"))
            } else if who.is_package(family_name) {
                Decision::allow("a package may see itself")
            } else if who.has_capability(PACKAGE_QUERY) {
                Decision::allow(format!("{me} was granted {PACKAGE_QUERY}"))
            } else {
                Decision::denied(format!(
                    "{me} may not see package {family_name}: app containers see only their own \
                     package unless granted {PACKAGE_QUERY}"
                ))
                .remedy(format!("declare the restricted capability {PACKAGE_QUERY}"))
                .at(own, "capabilities")
            }
        }
        Operation::Shutdown => {
            if who.package.is_none() {
                Decision::allow("the user's own unpackaged process may stop the broker")
            } else {
                Decision::denied(format!(
                    "{me} may not stop the broker: packaged processes never may"
                ))
            }
        }
        Operation::Launch { family_name } => {
            if !who.is_confined() {
                Decision::allow(format!("{me} is not in an app container"))
            } else if who.is_package(family_name) {
                Decision::allow("a package may start its own applications")
            } else {
                Decision::denied(format!(
                    "{me} may not start applications of {family_name} directly: app containers \
                     reach other packages through app services and protocol activation"
                ))
            }
        }
        Operation::OpenAppService { provider, service, target, user } => match target {
            ServiceTarget::NotInstalled => Decision::deny(
                ErrorKind::NotFound,
                status(AppServiceConnectionStatus::AppNotInstalled),
                format!("no package {provider} is installed"),
            ),
            ServiceTarget::Deploying => Decision::deny(
                ErrorKind::Busy,
                status(AppServiceConnectionStatus::AppUnavailable),
                format!("package {provider} is being deployed"),
            )
            .remedy("try again when the deployment is done"),
            ServiceTarget::NotDeclared => Decision::deny(
                ErrorKind::NotFound,
                status(AppServiceConnectionStatus::AppServiceUnavailable),
                format!("app service {service:?} is not declared by the target {provider}"),
            )
            .at(provider, "application"),
            ServiceTarget::Declared { allows_unpackaged, key } => {
                if let Some(uid) = user
                    && *uid != who.uid
                {
                    Decision::deny(
                        ErrorKind::AccessDenied,
                        status(AppServiceConnectionStatus::NotAuthorized),
                        format!(
                            "{me} may not connect to {service} as user {uid}: it runs as user {} \
                             (a broker serves only its own user)",
                            who.uid
                        ),
                    )
                    .remedy("leave AppServiceConnection.User unset, or set it to your own user")
                } else if who.package.is_some() {
                    Decision::allow(format!(
                        "any packaged caller may open a declared app service; {provider} checks \
                         its callers itself"
                    ))
                    .at(provider, key.clone())
                } else if *allows_unpackaged {
                    Decision::allow(format!(
                        "app service {service} of {provider} accepts callers without package \
                         identity"
                    ))
                    .at(provider, format!("{key}.allow-unpackaged-callers"))
                } else {
                    Decision::deny(
                        ErrorKind::AccessDenied,
                        status(AppServiceConnectionStatus::NotAuthorized),
                        format!(
                            "app service {service} of {provider} does not accept callers \
                             without package identity (allow-unpackaged-callers = false)"
                        ),
                    )
                    .remedy(format!(
                        "set allow-unpackaged-callers = true on the service in {provider}'s \
                         manifest, or call it from a packaged app"
                    ))
                    .at(provider, key.clone())
                }
            }
        },
        Operation::HostAppService { service, declared_by } => match (&who.package, declared_by) {
            (None, _) => Decision::denied("only a packaged process can host an app service"),
            (Some(p), None) => Decision::denied(format!(
                "package {} does not declare an app service named {service:?}",
                p.family_name
            ))
            .at(own, "application"),
            (Some(p), Some(app)) if !app.eq_ignore_ascii_case(p.app_id.as_str()) => {
                Decision::denied(format!(
                    "app service {service} is declared by application {app}, not by {}",
                    p.app_id
                ))
            }
            (Some(_), Some(app)) => {
                Decision::allow(format!("application {app} declares app service {service}"))
            }
        },
        Operation::ReportAppServiceClosed { connection_id, hosted_by_caller } => {
            if *hosted_by_caller {
                Decision::allow("the host reports its own connection")
            } else {
                Decision::denied(format!(
                    "connection {connection_id} is not hosted by this process"
                ))
            }
        }
        Operation::LaunchUri {
            scheme,
            target_family,
            target_named,
            for_results,
            with_data,
            target,
        } => decide_launch_uri(
            &me,
            scheme,
            target_family.unwrap_or_default(),
            *target_named,
            *for_results,
            *with_data,
            target,
        ),
        Operation::ReportProtocolResult { operation_id, activated_caller } => {
            if *activated_caller {
                Decision::allow("the process an operation activated reports its result")
            } else {
                Decision::deny(
                    ErrorKind::AccessDenied,
                    HResult::AccessDenied,
                    format!(
                        "{me} may not report operation {operation_id}: only the process it \
                         activated may (or it already ended)"
                    ),
                )
            }
        }
        Operation::RegisterForProtocolActivation { declares_protocol } => match &who.package {
            None => Decision::denied("only a packaged process receives protocol activations"),
            Some(p) if !*declares_protocol => Decision::deny(
                ErrorKind::NotDeclared,
                HResult::InvalidArg,
                format!("application {} declares no protocol", p.app_id),
            )
            .remedy("declare an [[application.protocol]] in the manifest")
            .at(own, "application"),
            Some(p) => Decision::allow(format!(
                "application {} declares a protocol; its running instance receives the \
                 activations",
                p.app_id
            )),
        },
        Operation::LaunchFullTrust { app, target } => {
            let Some(p) = &who.package else {
                return Decision::deny(
                    ErrorKind::AccessDenied,
                    full_trust(FullTrustLaunchResult::AccessDenied),
                    "only a packaged app can launch its full-trust process",
                );
            };
            if !who.has_capability(RUN_FULL_TRUST) {
                return Decision::deny(
                    ErrorKind::AccessDenied,
                    full_trust(FullTrustLaunchResult::AccessDenied),
                    format!(
                        "{} was not granted the restricted capability {RUN_FULL_TRUST}",
                        p.family_name
                    ),
                )
                .remedy(format!("declare the restricted capability {RUN_FULL_TRUST}"))
                .at(own, "capabilities");
            }
            let not_found = |rule: String| {
                Decision::deny(
                    ErrorKind::NotFound,
                    full_trust(FullTrustLaunchResult::FileNotFound),
                    rule,
                )
            };
            match target {
                FullTrustTarget::NoSuchApplication => {
                    not_found(format!("package {} has no application {app}", p.family_name))
                        .at(own, "application")
                }
                FullTrustTarget::NoFullTrustProcess => {
                    not_found(format!("application {app} declares no full-trust process"))
                        .remedy("declare [[application.full-trust-process]]")
                        .at(own, "application")
                }
                FullTrustTarget::NoSuchParameterGroup(g) => {
                    not_found(format!("no parameter group {g:?} in application {app}"))
                        .at(own, "application")
                }
                FullTrustTarget::MissingExecutable(exe) => {
                    not_found(format!("{exe} is missing from the installed package"))
                }
                FullTrustTarget::Ready => Decision::allow(format!(
                    "{} was granted {RUN_FULL_TRUST} and application {app} declares a full-trust \
                     process",
                    p.family_name
                )),
            }
        }
        Operation::UsePublisherCacheFolder { folder, declared } => match &who.package {
            None => Decision::deny(
                ErrorKind::NotDeclared,
                HResult::InvalidArg,
                "a process without package identity has no publisher cache folders",
            ),
            Some(p) if !declared => Decision::deny(
                ErrorKind::NotDeclared,
                HResult::InvalidArg,
                format!(
                    "package {} does not declare the publisher cache folder {folder:?}",
                    p.family_name
                ),
            )
            .remedy(format!("add {folder:?} to [publisher-cache] folders"))
            .at(own, "publisher-cache"),
            Some(_) => {
                Decision::allow(format!("the package declares publisher cache folder {folder}"))
            }
        },
        Operation::ClearPublisherCacheFolderOf { publisher_id, folder } => {
            if who.package.is_none() {
                Decision::allow(format!(
                    "the user may clear any publisher's cache folders ({publisher_id}/{folder})"
                ))
            } else {
                Decision::denied("a package clears only its own publisher's folders, by name")
            }
        }
        Operation::RemoveFileToken { token, source } => {
            if who.package.is_none() {
                Decision::allow("the user may revoke any token")
            } else if who.is_package(source) {
                Decision::allow("the package that added a token may revoke it")
            } else {
                let by = if source.is_empty() { "the user" } else { source };
                Decision::denied(format!("file token {token} was added by {by}, not by {me}"))
            }
        }
        Operation::CreateNamedObject { name, .. } => match who.appcontainer_sid() {
            Some(sid) if name.namespace != Namespace::AppContainer(sid.clone()) => Decision::deny(
                ErrorKind::AccessDenied,
                win32(Win32Error::AccessDenied),
                format!(
                    "an app container creates names only in its own namespace (Local\\…), not in \
                     {}",
                    name.namespace
                ),
            )
            .remedy(format!(
                "create it as Local\\{} and share it by its security descriptor",
                name.key
            )),
            Some(_) => Decision::allow("an app container creates names in its own namespace"),
            None => Decision::allow("an unconfined process creates names in the session namespace"),
        },
        Operation::OpenNamedObject { name, ty, sd, desired } => {
            let c = objects::check_access(who, sd, *ty, *desired);
            if c.allowed {
                Decision::allow(c.rule).granting(c.desired)
            } else {
                let mut d = Decision::deny(
                    ErrorKind::AccessDenied,
                    win32(Win32Error::AccessDenied),
                    c.rule,
                )
                .granting(0);
                if let Some(entry) = c.missing_entry {
                    d = d.remedy(format!(
                        "the creator of {} adds `{entry}` to its security descriptor",
                        name.display
                    ));
                } else if *desired == 0 {
                    d = d.remedy("ask for the rights the handle needs");
                }
                d
            }
        }
        Operation::UseHandle { handle, owned } => {
            if *owned {
                Decision::allow("the handle belongs to the caller's session")
            } else {
                Decision::deny(
                    ErrorKind::NotFound,
                    win32(Win32Error::InvalidHandle),
                    format!("handle {handle} is not a handle of this session"),
                )
            }
        }
        Operation::UseHandleRight { handle, action, needed, granted } => {
            if granted & needed == *needed {
                Decision::allow(format!("handle {handle} has {needed:#x}")).granting(*granted)
            } else {
                Decision::deny(
                    ErrorKind::AccessDenied,
                    win32(Win32Error::AccessDenied),
                    format!("{action} needs {needed:#x}; handle {handle} was granted {granted:#x}"),
                )
                .remedy("open the object with that right (if its descriptor grants it)")
            }
        }
        Operation::LoopbackConnect(c) => crate::loopback::decide(c),
        Operation::RegisterRpcEndpoint { .. } => Decision::allow(
            "any process may register an endpoint; its security descriptor decides who connects",
        ),
        Operation::ConnectRpcEndpoint { endpoint, sd, desired } => {
            let c = objects::check_access(who, sd, ObjectType::RpcEndpoint, *desired);
            if c.allowed {
                Decision::allow(c.rule).granting(c.desired)
            } else {
                let d = Decision::deny(
                    ErrorKind::AccessDenied,
                    win32(Win32Error::AccessDenied),
                    c.rule,
                )
                .granting(0);
                match c.missing_entry {
                    Some(entry) => d.remedy(format!(
                        "the server of endpoint {endpoint} adds `{entry}` to its security \
                         descriptor"
                    )),
                    None => d,
                }
            }
        }
        Operation::ActivateComClass { clsid, server, sd, desired } => {
            let c = objects::check_access(who, sd, ObjectType::ComServer, *desired);
            if c.allowed {
                Decision::allow(c.rule).granting(c.desired)
            } else {
                let d = Decision::deny(
                    ErrorKind::AccessDenied,
                    WindowsCode::HResult(HResult::AccessDenied.value()),
                    c.rule,
                )
                .granting(0);
                match c.missing_entry {
                    Some(entry) => d.remedy(format!(
                        "{server} adds `{entry}` to the launch-and-activation-permission of the \
                         exe server of class {{{clsid}}}"
                    )),
                    None => d,
                }
            }
        }
        Operation::ChangeLoopbackExemptions { .. } => {
            only_the_user(who, "change loopback exemptions")
        }
        Operation::WriteRegistry { key, rules, shipped, .. } => {
            registry_write(key, *rules, *shipped)
        }
        Operation::OpenRegistryView { family_name } => match who.family_name() {
            Some(own) if !own.eq_ignore_ascii_case(family_name) => Decision::deny(
                ErrorKind::AccessDenied,
                win32(Win32Error::AccessDenied),
                format!("{} sees its own registry view only, not {family_name}'s", who.describe()),
            ),
            Some(_) => Decision::allow("a package's process sees its own registry view"),
            None => Decision::allow("the user may look at any package's registry view"),
        },
        Operation::ReadRegistry { key, rules, .. } => registry_read(key, *rules),
    }
}

/// What of the global hive a view shows ([`crate::registry::global_at`]) as a decision: an app
/// container sees HKCU in its package's private hive only (red team finding 4).
fn registry_read(
    key: &crate::registry::KeyPath,
    rules: Option<&crate::registry::Virtualized>,
) -> Decision {
    use crate::registry::Sees;
    match crate::registry::global_at(rules, key) {
        Sees::All | Sees::Names => {
            Decision::allow(format!("{} of the global hive is in the view", key.short()))
        }
        Sees::Nothing => Decision::deny(
            ErrorKind::NotFound,
            win32(Win32Error::FileNotFound),
            format!(
                "an app container sees HKEY_CURRENT_USER only in its package's private hive, \
                 not the user's keys ({} is one; it is answered as not found)",
                key.short()
            ),
        )
        .remedy(
            "run the application with full trust (trust-level \"mediumIL\": the private hive \
             merged over the user's HKCU), or share the key: [virtualization] excluded-keys \
             with the restricted capability unvirtualizedResources",
        ),
    }
}

/// MSIX registry virtualization ([`crate::registry::write_target`]) as a decision.
fn registry_write(
    key: &crate::registry::KeyPath,
    rules: Option<&crate::registry::Virtualized>,
    shipped: bool,
) -> Decision {
    match crate::registry::write_target(rules, key, shipped) {
        Ok(layer) => {
            Decision::allow(format!("a write to {} goes to the {}", key.short(), layer.describe()))
        }
        Err(e) => {
            let remedy = if shipped {
                "write to HKEY_CURRENT_USER (the package's private hive) instead"
            } else {
                "write to HKEY_CURRENT_USER, or run the process with full trust"
            };
            Decision::deny(ErrorKind::AccessDenied, win32(e.code), e.message).remedy(remedy)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named_objects::{NameKind, resolve};
    use appipc_wire::caller::TrustLevel;

    fn packaged(family: &str, trust: TrustLevel, caps: &[&str]) -> Principal {
        Principal::packaged(
            1000,
            family.parse().unwrap(),
            "App".parse().unwrap(),
            trust,
            caps.iter().map(|c| (*c).to_owned()).collect(),
        )
    }

    const A: &str = "Contoso.A_cvnpggrrsm18p";
    const B: &str = "Fabrikam.B_8tkjkmve8mrwr";

    #[test]
    fn registry_writes_and_views() {
        use crate::registry::{KeyPath, Virtualized};
        let lm = KeyPath::parse("HKLM\\Software\\Contoso").unwrap();
        let rules = Virtualized { hkcu_writes_private: true, excluded: Vec::new(), confined: true };
        let app = packaged(A, TrustLevel::AppContainer, &[]);
        let op = Operation::WriteRegistry { key: &lm, rules: Some(&rules), shipped: true, view: A };
        let d = decide(&app, &op);
        assert!(!d.allowed);
        assert_eq!(d.code, WindowsCode::Win32(5));
        assert!(d.rule.contains("read-only"), "{}", d.rule);
        assert_eq!(op.mechanism(), "registry");
        let hkcu = KeyPath::parse("HKCU\\Software").unwrap();
        let op =
            Operation::WriteRegistry { key: &hkcu, rules: Some(&rules), shipped: false, view: A };
        assert!(decide(&app, &op).rule.contains("private hive"));
        let view = Operation::OpenRegistryView { family_name: B };
        assert!(!decide(&app, &view).allowed);
        assert!(decide(&app, &Operation::OpenRegistryView { family_name: A }).allowed);
        assert!(decide(&Principal::unpackaged(1000), &view).allowed);
        // Red team finding 4: an app container does not read the user's HKCU keys.
        let secret = KeyPath::parse("HKCU\\Software\\Secret").unwrap();
        let read = Operation::ReadRegistry { key: &secret, rules: Some(&rules), view: A };
        let d = decide(&app, &read);
        assert!(!d.allowed);
        assert_eq!(d.code, WindowsCode::Win32(2));
        assert!(d.rule.contains("only in its package's private hive"), "{}", d.rule);
        assert_eq!(read.mechanism(), "registry");
        let full = Virtualized { confined: false, ..rules.clone() };
        let read = Operation::ReadRegistry { key: &secret, rules: Some(&full), view: A };
        assert!(decide(&packaged(A, TrustLevel::FullTrust, &[]), &read).allowed);
    }

    #[test]
    fn deployment() {
        assert!(decide(&Principal::unpackaged(1000), &Operation::InstallPackage).allowed);
        let d = decide(&packaged(A, TrustLevel::FullTrust, &[]), &Operation::InstallPackage);
        assert!(!d.allowed);
        assert!(d.rule.contains("packageManagement"), "{}", d.rule);
        assert_eq!(
            d.remedy.as_deref(),
            Some("declare the restricted capability packageManagement")
        );
        assert_eq!(d.code, WindowsCode::HResult(0x8007_0005));
        let op = Operation::RemovePackage { family_name: B };
        assert!(
            decide(&packaged(A, TrustLevel::AppContainer, &["PackageManagement"]), &op).allowed
        );
    }

    #[test]
    fn query_and_launch() {
        let ac = packaged(A, TrustLevel::AppContainer, &[]);
        assert!(
            decide(&ac, &Operation::QueryPackage { family_name: "contoso.a_CVNPGGRRSM18P" })
                .allowed
        );
        assert!(!decide(&ac, &Operation::QueryPackage { family_name: B }).allowed);
        assert!(decide(&ac, &Operation::Launch { family_name: A }).allowed);
        assert!(!decide(&ac, &Operation::Launch { family_name: B }).allowed);
        let ft = packaged(A, TrustLevel::FullTrust, &[]);
        assert!(decide(&ft, &Operation::Launch { family_name: B }).allowed);
        let acq = packaged(A, TrustLevel::AppContainer, &["packageQuery"]);
        assert!(decide(&acq, &Operation::QueryPackage { family_name: B }).allowed);
    }

    #[test]
    fn shutdown_only_unpackaged() {
        assert!(decide(&Principal::unpackaged(1000), &Operation::Shutdown).allowed);
        assert!(!decide(&packaged(A, TrustLevel::FullTrust, &[]), &Operation::Shutdown).allowed);
    }

    #[test]
    fn app_service_targets_map_to_windows_statuses() {
        let u = Principal::unpackaged(1000);
        let open = |target| Operation::OpenAppService {
            provider: B,
            service: "com.x",
            target,
            user: None,
        };
        let code = |d: Decision| match d.code {
            WindowsCode::Status(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(decide(&u, &open(ServiceTarget::NotInstalled))), 1);
        assert_eq!(code(decide(&u, &open(ServiceTarget::Deploying))), 2);
        let d = decide(&u, &open(ServiceTarget::NotDeclared));
        assert!(d.rule.contains("not declared by the target"), "{}", d.rule);
        assert_eq!(code(d), 3);
        let declared = |allows_unpackaged| ServiceTarget::Declared {
            allows_unpackaged,
            key: "application[0].app-service[1]".into(),
        };
        let d = decide(&u, &open(declared(false)));
        assert_eq!(d.manifest.as_ref().unwrap().key, "application[0].app-service[1]");
        assert_eq!(code(d), 7);
        assert!(decide(&u, &open(declared(true))).allowed);
        assert!(
            decide(&packaged(A, TrustLevel::AppContainer, &[]), &open(declared(false))).allowed
        );
        // AppServiceConnection.User: the caller's own user, or none; another user is refused.
        let as_user = |user| Operation::OpenAppService {
            provider: B,
            service: "com.x",
            target: declared(true),
            user: Some(user),
        };
        assert!(decide(&u, &as_user(1000)).allowed);
        let d = decide(&u, &as_user(0));
        assert_eq!(d.kind, ErrorKind::AccessDenied);
        assert!(d.rule.contains("as user 0"), "{}", d.rule);
        assert_eq!(code(d), 7);
    }

    #[test]
    fn full_trust_needs_the_granted_capability() {
        let op = |target| Operation::LaunchFullTrust { app: "App", target };
        let no = decide(&packaged(A, TrustLevel::AppContainer, &[]), &op(FullTrustTarget::Ready));
        assert_eq!(no.code, WindowsCode::Status(1));
        let yes = packaged(A, TrustLevel::AppContainer, &["runFullTrust"]);
        assert!(decide(&yes, &op(FullTrustTarget::Ready)).allowed);
        assert_eq!(
            decide(&yes, &op(FullTrustTarget::NoFullTrustProcess)).code,
            WindowsCode::Status(2)
        );
        assert_eq!(
            decide(&Principal::unpackaged(1000), &op(FullTrustTarget::Ready)).code,
            WindowsCode::Status(1)
        );
    }

    #[test]
    fn containers_create_only_at_home() {
        let a = packaged(A, TrustLevel::AppContainer, &[]);
        for raw in [r"Session\x", r"Global\x"] {
            let n = resolve(&a, raw, NameKind::Object).unwrap();
            let d = decide(&a, &Operation::CreateNamedObject { name: &n, ty: ObjectType::Event });
            assert!(!d.allowed, "{raw}");
            assert_eq!(d.code, WindowsCode::Win32(5));
        }
        let other = format!(r"{}\x", objects::named_object_path(B));
        let n = resolve(&a, &other, NameKind::Object).unwrap();
        assert!(
            !decide(&a, &Operation::CreateNamedObject { name: &n, ty: ObjectType::Event }).allowed
        );
        let n = resolve(&a, r"Local\x", NameKind::Object).unwrap();
        assert!(
            decide(&a, &Operation::CreateNamedObject { name: &n, ty: ObjectType::Event }).allowed
        );
        let u = Principal::unpackaged(1000);
        let n = resolve(&u, r"Global\x", NameKind::Object).unwrap();
        assert!(
            decide(&u, &Operation::CreateNamedObject { name: &n, ty: ObjectType::Event }).allowed
        );
    }

    #[test]
    fn open_named_object_names_the_missing_entry() {
        let a = packaged(A, TrustLevel::AppContainer, &[]);
        let b = packaged(B, TrustLevel::AppContainer, &[]);
        let n = resolve(&a, r"Local\x", NameKind::Object).unwrap();
        let sd = objects::default_descriptor(&a);
        let op = Operation::OpenNamedObject {
            name: &n,
            ty: ObjectType::FileMapping,
            sd: &sd,
            desired: 4,
        };
        let d = decide(&b, &op);
        assert!(!d.allowed);
        assert!(d.remedy.as_deref().unwrap().contains("(A;;0x4;;;S-1-15-2-"), "{:?}", d.remedy);
        let mine = decide(&a, &op);
        assert!(mine.allowed);
        assert_eq!(mine.granted, 4);
        let zero = Operation::OpenNamedObject {
            name: &n,
            ty: ObjectType::FileMapping,
            sd: &sd,
            desired: 0,
        };
        assert!(!decide(&a, &zero).allowed);
        assert!(!decide(&Principal::unpackaged(1000), &zero).allowed);
    }

    #[test]
    fn custom_capabilities_are_not_granted_by_declaration() {
        let m = crate::manifest::parse(
            r#"
[package]
name = "Contoso.A"
publisher = "CN=Contoso"
version = "1.0.0.0"

[capabilities]
general = ["internetClient"]
restricted = ["runFullTrust"]
custom = ["Contoso.secret_cvnpggrrsm18p"]

[[application]]
id = "App"
executable = "bin/a"
trust-level = "mediumIL"
"#,
        )
        .unwrap();
        let no_descriptor = |_: &CustomCapabilityName| Err(CUSTOM_NOT_GRANTED.to_owned());
        let (granted, refused) =
            grant_capabilities(&m.capabilities, &["RUNFULLTRUST".into()], no_descriptor);
        assert_eq!(granted, ["internetClient", "runFullTrust"]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].name, "Contoso.secret_cvnpggrrsm18p");
        assert!(refused[0].reason.contains("signed custom capability descriptor"));
        // Naming it among the consented ones grants nothing: only a descriptor does.
        let all = ["runFullTrust".into(), "Contoso.secret_cvnpggrrsm18p".into()];
        let (granted, _) = grant_capabilities(&m.capabilities, &all, no_descriptor);
        assert_eq!(granted, ["internetClient", "runFullTrust"]);
        let (granted, _) = grant_capabilities(&m.capabilities, &[], |_| Ok(()));
        assert_eq!(granted, ["internetClient", "Contoso.secret_cvnpggrrsm18p"]);
        // Without consent the restricted one is not granted either.
        let (granted, refused) = grant_capabilities(&m.capabilities, &[], no_descriptor);
        assert_eq!(granted, ["internetClient"]);
        assert_eq!(refused[0].name, "runFullTrust");
        assert!(refused[0].reason.contains("consent"), "{}", refused[0].reason);
    }

    #[test]
    fn handle_rights() {
        let a = packaged(A, TrustLevel::AppContainer, &[]);
        let op = Operation::UseHandleRight {
            handle: 1,
            action: "SetEvent",
            needed: 2,
            granted: 0x10_0000,
        };
        assert!(!decide(&a, &op).allowed);
        let op = Operation::UseHandleRight {
            handle: 1,
            action: "SetEvent",
            needed: 2,
            granted: 0x10_0002,
        };
        assert!(decide(&a, &op).allowed);
        assert_eq!(
            decide(&a, &Operation::UseHandle { handle: 3, owned: false }).code,
            WindowsCode::Win32(6)
        );
    }

    const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";

    #[test]
    fn folder_installs_need_developer_mode() {
        let u = Principal::unpackaged(1000);
        let d = decide(&u, &Operation::InstallFromFolder { developer_mode: false });
        assert!(!d.allowed);
        assert_eq!(d.code, WindowsCode::HResult(0x8007_3CFF), "ERROR_INSTALL_POLICY_FAILURE");
        assert!(d.rule.contains("developer mode"), "{}", d.rule);
        assert!(d.remedy.as_deref().unwrap().contains("appipc pack"), "{:?}", d.remedy);
        assert!(decide(&u, &Operation::InstallFromFolder { developer_mode: true }).allowed);
    }

    #[test]
    fn the_signer_must_be_trusted_for_the_manifests_publisher() {
        use crate::package_file::SecretKey;
        let u = Principal::unpackaged(1000);
        let contoso = SecretKey::from_seed(CONTOSO, [1; 32]).unwrap().public_key();
        let mallory = SecretKey::from_seed(CONTOSO, [2; 32]).unwrap().public_key();
        let trusted = [contoso.clone()];
        let op =
            |signer, publisher| Operation::AcceptSigner { signer, publisher, trusted: &trusted };
        assert!(decide(&u, &op(&contoso, CONTOSO)).allowed);
        let d = decide(&u, &op(&mallory, CONTOSO));
        assert!(!d.allowed);
        assert_eq!(d.code, WindowsCode::HResult(0x800B_0109), "CERT_E_UNTRUSTEDROOT");
        assert!(d.rule.contains(&mallory.id().to_string()), "{}", d.rule);
        assert!(d.remedy.as_deref().unwrap().contains("appipc trust add"), "{:?}", d.remedy);
        let d = decide(&u, &op(&contoso, "CN=Contoso"));
        assert_eq!(d.code, WindowsCode::HResult(0x8007_000B), "ERROR_BAD_FORMAT");
        assert!(d.rule.contains(&format!("{CONTOSO:?}")) && d.rule.contains("\"CN=Contoso\""));
    }

    #[test]
    fn a_signed_package_is_replaced_only_by_one_signed_for_its_publisher() {
        let u = Principal::unpackaged(1000);
        let k1 = SignedBy { key_id: "k1", publisher: CONTOSO };
        let k2 = SignedBy { key_id: "k2", publisher: CONTOSO };
        let other = SignedBy { key_id: "k3", publisher: "CN=Contoso" };
        let op =
            |installed, incoming| Operation::ReplacePackage { family_name: A, installed, incoming };
        assert!(decide(&u, &op(None, None)).allowed);
        assert!(decide(&u, &op(None, Some(k1))).allowed);
        assert!(decide(&u, &op(Some(k1), Some(k2))).allowed, "another key trusted for Contoso");
        let d = decide(&u, &op(Some(k1), None));
        assert!(!d.allowed);
        assert_eq!(d.code, WindowsCode::HResult(0x8007_3CFF));
        assert!(d.rule.contains("unsigned folder may not replace it"), "{}", d.rule);
        let d = decide(&u, &op(Some(k1), Some(other)));
        assert!(!d.allowed);
        assert!(d.rule.contains("\"CN=Contoso\"") && d.rule.contains(&format!("{CONTOSO:?}")));
    }

    #[test]
    fn restricted_capabilities_need_consent_and_upgrades_ask_for_new_ones() {
        let m = crate::manifest::parse(
            "[package]\nname = \"Contoso.A\"\npublisher = \"CN=Contoso\"\nversion = \"1.0.0.0\"\n\n\
             [capabilities]\nrestricted = [\"runFullTrust\", \"broadFileSystemAccess\"]\n\n\
             [[application]]\nid = \"App\"\nexecutable = \"a\"\n",
        )
        .unwrap();
        let caps = &m.capabilities;
        assert_eq!(
            restricted_needing_consent(caps, &[]),
            ["runFullTrust", "broadFileSystemAccess"]
        );
        assert_eq!(
            restricted_needing_consent(caps, &["internetClient".into(), "RUNFULLTRUST".into()]),
            ["broadFileSystemAccess"]
        );
        assert!(restricted_needing_consent(caps, &caps.restricted).is_empty());

        let u = Principal::unpackaged(1000);
        let needed = restricted_needing_consent(caps, &[]);
        let op = |consented| Operation::GrantRestrictedCapabilities {
            family_name: A,
            needed: &needed,
            consented,
        };
        let some = ["runfulltrust".to_owned()];
        let d = decide(&u, &op(&some));
        assert!(!d.allowed);
        assert!(d.rule.ends_with("none was given for broadFileSystemAccess"), "{}", d.rule);
        assert!(d.remedy.as_deref().unwrap().contains("--yes"));
        let all = ["runfulltrust".to_owned(), "broadFileSystemAccess".to_owned()];
        assert!(decide(&u, &op(&all)).allowed);
        let none =
            Operation::GrantRestrictedCapabilities { family_name: A, needed: &[], consented: &[] };
        assert!(decide(&u, &none).allowed);
    }

    #[test]
    fn only_the_user_changes_the_deployment_policy() {
        let u = Principal::unpackaged(1000);
        let manager = packaged(A, TrustLevel::FullTrust, &["packageManagement"]);
        let plain = packaged(A, TrustLevel::AppContainer, &[]);
        for op in [
            Operation::ChangeTrustStore { key_id: "k" },
            Operation::SetDeveloperMode { enabled: true },
        ] {
            assert!(decide(&u, &op).allowed);
            let d = decide(&manager, &op);
            assert!(!d.allowed, "{}", op.name());
            assert!(d.rule.contains("only the user's own unpackaged processes"), "{}", d.rule);
        }
        assert!(decide(&u, &Operation::ReadDeploymentPolicy).allowed);
        assert!(decide(&manager, &Operation::ReadDeploymentPolicy).allowed);
        assert!(!decide(&plain, &Operation::ReadDeploymentPolicy).allowed);
    }
}

#[cfg(test)]
mod launch_uri_tests {
    use super::*;

    fn launch(named: bool, for_results: bool, with_data: bool, target: UriTarget) -> Decision {
        decide(
            &Principal::unpackaged(1000),
            &Operation::LaunchUri {
                scheme: "contoso-pick",
                target_family: Some("Contoso.Picker_8wekyb3d8bbwe"),
                target_named: named,
                for_results,
                with_data,
                target,
            },
        )
    }

    fn declared(rr: ReturnResults) -> UriTarget {
        UriTarget::Declared { return_results: rr, key: "application[0].protocol[0]".into() }
    }

    fn status(d: &Decision) -> Option<u32> {
        match d.code {
            WindowsCode::Status(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn for_results_and_with_data_need_a_named_target() {
        for (fr, data) in [(true, false), (false, true), (true, true)] {
            let d = launch(false, fr, data, declared(ReturnResults::Optional));
            assert!(!d.allowed);
            assert_eq!(d.code, WindowsCode::HResult(0x8007_0057), "E_INVALIDARG");
        }
        assert!(launch(false, false, false, declared(ReturnResults::None)).allowed);
    }

    #[test]
    fn return_results_decides_which_launches_a_protocol_takes() {
        use ReturnResults::*;
        for (rr, plain, results) in
            [(None, true, false), (Always, false, true), (Optional, true, true)]
        {
            assert_eq!(launch(true, false, false, declared(rr)).allowed, plain, "{rr:?} plain");
            let d = launch(true, true, false, declared(rr));
            assert_eq!(d.allowed, results, "{rr:?} for results");
            if !d.allowed {
                assert_eq!(status(&d), Some(2), "ProtocolUnavailable");
                assert!(d.manifest.is_some(), "names the manifest key");
            }
        }
    }

    #[test]
    fn missing_targets_map_to_windows_statuses() {
        assert_eq!(status(&launch(true, true, false, UriTarget::NotInstalled)), Some(1));
        assert_eq!(status(&launch(true, true, false, UriTarget::Deploying)), Some(1));
        assert_eq!(status(&launch(true, true, false, UriTarget::NoProtocol)), Some(2));
        // No target named and nobody handles the scheme: ProtocolUnavailable.
        assert_eq!(status(&launch(false, false, false, UriTarget::NotInstalled)), Some(2));
    }

    #[test]
    fn only_web_and_mail_links_go_to_the_desktop() {
        let desktop = |ok| UriTarget::Desktop { scheme_allowed: ok };
        assert!(launch(false, false, false, desktop(true)).allowed);
        assert_eq!(status(&launch(false, false, false, desktop(false))), Some(2));
        assert_eq!(status(&launch(true, true, false, desktop(true))), Some(2), "not for results");
        assert_eq!(uri_support(&desktop(true), false), LaunchQuerySupportStatus::Available);
        assert_eq!(uri_support(&desktop(true), true), LaunchQuerySupportStatus::AppNotInstalled);
        assert_eq!(uri_support(&desktop(false), false), LaunchQuerySupportStatus::AppNotInstalled);
    }

    #[test]
    fn query_support_uses_the_same_facts() {
        use LaunchQuerySupportStatus as S;
        assert_eq!(uri_support(&UriTarget::NotInstalled, false), S::AppNotInstalled);
        assert_eq!(uri_support(&UriTarget::Deploying, true), S::AppUnavailable);
        assert_eq!(uri_support(&UriTarget::NoProtocol, true), S::NotSupported);
        assert_eq!(uri_support(&declared(ReturnResults::None), true), S::NotSupported);
        assert_eq!(uri_support(&declared(ReturnResults::None), false), S::Available);
        assert_eq!(uri_support(&declared(ReturnResults::Always), false), S::NotSupported);
        assert_eq!(uri_support(&declared(ReturnResults::Optional), true), S::Available);
    }

    #[test]
    fn only_the_activated_process_reports() {
        let who = Principal::unpackaged(1000);
        let op = |a| Operation::ReportProtocolResult { operation_id: 7, activated_caller: a };
        assert!(decide(&who, &op(true)).allowed);
        assert!(!decide(&who, &op(false)).allowed);
    }

    #[test]
    fn reserved_schemes_are_reserved() {
        use crate::manifest::is_reserved_scheme;
        for s in ["http", "HTTPS", "file", "mailto", "ms-settings", "ms-"] {
            assert!(is_reserved_scheme(s), "{s}");
        }
        for s in ["contoso-pick", "msx", "mshttp", "https2"] {
            assert!(!is_reserved_scheme(s), "{s}");
        }
    }
}
