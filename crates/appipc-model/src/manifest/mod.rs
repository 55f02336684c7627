//! The package manifest, `appipc.toml`: parsing and validation.
//!
//! A package is a folder holding `appipc.toml` and the files it names. The manifest gives the
//! package identity, its capabilities, its applications, and the place every IPC mechanism of
//! the Windows packaged-app model has in Windows' `AppxManifest.xml`: app services, full-trust
//! processes, protocols (launch for results), packaged COM servers and interfaces, publisher
//! cache folders, loopback rules, registry / AppData virtualization opt-outs and the custom
//! capability descriptor. `docs/manifest.md` describes every key.
//!
//! [`parse`] checks the text alone (the documented Windows constraints, ported to Linux);
//! [`load`] also checks that every file the manifest names exists inside the package, and that
//! executables are executable. Every error names the line and column, the key path and the
//! rule broken:
//!
//! ```
//! let err = appipc_model::manifest::parse(r#"
//! [package]
//! name = "Contoso.Echo"
//! publisher = "CN=Contoso"
//! version = "1.0.0.0"
//!
//! [[application]]
//! id = "App"
//! executable = "bin/echo"
//!
//! [[application.app-service]]
//! name = "x"
//! "#).unwrap_err();
//! assert_eq!(err.to_string(), "appipc.toml:12:8: application[0].app-service[0].name: \"x\": \
//!     must be 2 to 39 characters: letters, digits, '.', '-', not starting with '.'");
//! ```
//!
//! This module reads and checks; it grants nothing. The broker decides what a declaration
//! allows at run time.

mod build;
mod capabilities;
mod com;
mod error;
mod load;
mod locate;
mod names;
mod reader;

use std::path::Path;
use std::str::FromStr;

use crate::identity::{
    AppId, PackageFamilyName, PackageFullName, PackageName, PackageVersion, ProcessorArchitecture,
    PublisherId, ResourceId,
};

pub use capabilities::{
    BROAD_FILE_SYSTEM_ACCESS, CLASSIC_APP_COMPAT, CLASSIC_APP_COMPAT_ELEVATED, Capabilities,
    DEVICE_CAPABILITIES, GENERAL_CAPABILITIES, PRIVATE_NETWORK_CLIENT_SERVER,
    RESTRICTED_CAPABILITIES, RUN_FULL_TRUST, UNVIRTUALIZED_RESOURCES, restricted_capability_allows,
};
pub use com::{
    ComClass, ComCompatMode, ComInterface, ComScope, ComServer, ExeServer, Interface, ProgId,
    ProgIdTarget, ProxyStub, TypeLib, TypeLibRef, TypeLibVersion,
};
pub use error::{FileProblem, Location, ManifestError};
pub use load::PackageEntry;
pub use locate::locate;
pub use names::{
    APP_SERVICE_NAME_RULE, AppServiceName, CustomCapabilityName, FOLDER_NAME_RULE, GUID_RULE, Guid,
    KNOWN_APPDATA_FOLDERS, MAX_MESSAGE_SIZE, MESSAGE_SIZE_RULE, MIN_MESSAGE_SIZE, NameError,
    PARAMETER_RULE, PROTOCOL_NAME_RULE, PackagePath, ProtocolName, RESERVED_SCHEME_RULE,
    RESERVED_SCHEMES, check_publisher_cache_folder_name, is_reserved_scheme, parse_message_size,
    publisher_cache_folder_key,
};

/// The file name of the manifest inside a package folder.
pub const MANIFEST_FILE: &str = "appipc.toml";

/// Most applications a package may declare (Windows' limit).
pub const MAX_APPLICATIONS: usize = 100;

/// Most problems one error lists ([`ManifestError::Several`]); it counts the others.
pub const MAX_REPORTED: usize = 50;

/// A parsed and validated package manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `[package]` identity (`<Identity>`).
    pub identity: Identity,
    /// `[package]` display properties (`<Properties>`).
    pub properties: Properties,
    /// `[capabilities]` (`<Capabilities>`).
    pub capabilities: Capabilities,
    /// `[[application]]`, 1 to 100, ids unique case-insensitively (`<Applications>`).
    pub applications: Vec<Application>,
    /// `[publisher-cache] folders`: validated folder names (`windows.publisherCacheFolders`).
    pub publisher_cache_folders: Vec<String>,
    /// `[[loopback-rule]]`, 0 to 1000 (`windows.loopbackAccessRules`).
    pub loopback_rules: Vec<LoopbackRule>,
    /// `[[com-interface]]` (`windows.comInterface`).
    pub com_interfaces: Vec<ComInterface>,
    /// `[virtualization]`: registry and AppData write virtualization settings.
    pub virtualization: Virtualization,
}

/// The package identity (`<Identity>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `Name`.
    pub name: PackageName,
    /// `Publisher`: the distinguished name exactly as written (the publisher id hashes it as
    /// written), validated by [`Publisher`](crate::identity::Publisher).
    pub publisher: String,
    /// `Version`.
    pub version: PackageVersion,
    /// `ProcessorArchitecture` (default `neutral`).
    pub architecture: ProcessorArchitecture,
    /// `ResourceId`.
    pub resource_id: Option<ResourceId>,
}

impl Identity {
    /// `<Name>_<PublisherId>`.
    pub fn family_name(&self) -> PackageFamilyName {
        PackageFamilyName::new(&self.name, &self.publisher_id())
    }

    /// `<Name>_<Version>_<arch>_<ResourceId>_<PublisherId>`.
    pub fn full_name(&self) -> PackageFullName {
        PackageFullName {
            name: self.name.clone(),
            version: self.version,
            architecture: self.architecture,
            resource_id: self.resource_id.clone(),
            publisher_id: self.publisher_id(),
        }
    }

    /// The 13-character id derived from the publisher.
    pub fn publisher_id(&self) -> PublisherId {
        PublisherId::from_publisher(&self.publisher)
    }
}

/// Display properties of the package (`<Properties>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    /// `DisplayName`, 1 to 256 characters; defaults to the package name.
    pub display_name: String,
    /// `PublisherDisplayName`, 1 to 256 characters; defaults to the publisher's `CN`.
    pub publisher_display_name: String,
    /// `Description`, 1 to 2048 characters.
    pub description: Option<String>,
    /// `Logo`: an image file inside the package.
    pub logo: Option<PackagePath>,
}

/// How an application's processes run (`uap10:TrustLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrustLevel {
    /// `appContainer` (default): confined in the package's app container.
    #[default]
    AppContainer,
    /// `mediumIL`: full trust, package identity but no confinement; requires `runFullTrust`.
    MediumIL,
}

impl TrustLevel {
    /// The manifest spelling: `appContainer` or `mediumIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::AppContainer => "appContainer",
            TrustLevel::MediumIL => "mediumIL",
        }
    }

    /// Whether processes at this level run unconfined.
    pub fn is_full_trust(self) -> bool {
        self == TrustLevel::MediumIL
    }
}

/// An application of the package (`<Application>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// `Id`, unique case-insensitively in the package; the AUMID is `<PFN>!<Id>`.
    pub id: AppId,
    /// `Executable`: the program started when the app is launched or activated.
    pub executable: PackagePath,
    /// Command-line arguments given before any activation arguments (`uap10:Parameters`).
    pub arguments: Vec<String>,
    /// `uap10:TrustLevel`.
    pub trust_level: TrustLevel,
    /// `uap:VisualElements@DisplayName`, 1 to 256 characters.
    pub display_name: Option<String>,
    /// `uap:VisualElements@Description`, 1 to 2048 characters.
    pub description: Option<String>,
    /// `windows.appService` extensions.
    pub app_services: Vec<AppService>,
    /// `windows.fullTrustProcess` extension (at most one per application).
    pub full_trust_processes: Vec<FullTrustProcess>,
    /// `windows.protocol` extensions.
    pub protocols: Vec<Protocol>,
    /// `windows.comServer` extensions.
    pub com_servers: Vec<ComServer>,
}

/// An app service provider (`windows.appService` + `uap3:AppService`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppService {
    /// `Name`, unique case-insensitively in the package.
    pub name: AppServiceName,
    /// `EntryPoint`: the executable hosting the service out of process (Windows names a
    /// background-task class). `None`: in process, served by the application's own process.
    pub entry_point: Option<PackagePath>,
    /// `uap4:SupportsMultipleInstances`: a new host process for every connection.
    pub supports_multiple_instances: bool,
    /// `SupportsRemoteSystems`: parsed and kept; remote connections are out of scope.
    pub supports_remote_systems: bool,
    /// Largest message in bytes the provider accepts (appipc extension; 1 KiB to 1 GiB);
    /// `None` lets the broker apply its default.
    pub max_message_size: Option<u64>,
    /// `ServerName`: 1 to 255 letters or digits starting with a letter.
    pub server_name: Option<String>,
    /// Whether processes without package identity may connect (appipc extension; default
    /// `true`). When `false` they get `NotAuthorized`.
    pub allow_unpackaged_callers: bool,
}

impl AppService {
    /// Whether the service runs inside the application's own process (no entry point).
    pub fn is_in_process(&self) -> bool {
        self.entry_point.is_none()
    }
}

/// A program `FullTrustProcessLauncher` may start (`windows.fullTrustProcess`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTrustProcess {
    /// `Executable` (defaults to the application's executable).
    pub executable: PackagePath,
    /// `desktop:ParameterGroup` elements, 0 to 1000, ids unique.
    pub parameter_groups: Vec<ParameterGroup>,
    /// appipc extension: end the process when the app that launched it exits.
    pub tie_lifetime_to_caller: bool,
}

impl FullTrustProcess {
    /// The parameter group with this id (exact match).
    pub fn parameter_group(&self, id: &str) -> Option<&ParameterGroup> {
        self.parameter_groups.iter().find(|g| g.id == id)
    }
}

/// `desktop:ParameterGroup`: a named command line for the full-trust process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterGroup {
    /// `GroupId`: 1 to 32767 characters, no leading or trailing whitespace.
    pub id: String,
    /// `Parameters`: the command-line text, same rule.
    pub parameters: String,
}

impl ParameterGroup {
    /// The command line as arguments ([`split_parameters`]).
    pub fn arguments(&self) -> Vec<String> {
        split_parameters(&self.parameters)
    }
}

/// Splits a parameter group's command line into arguments as `CommandLineToArgvW` splits
/// what follows the program name, so a Windows package's `Parameters` reach the process as
/// they would on Windows:
///
/// * spaces and tabs outside quotes separate arguments (other whitespace is part of them);
/// * a double quote toggles "in quotes" mode, in which spaces and tabs are part of the
///   argument; a quoted string may be part of a longer argument (`a"b c"d` is `ab cd`), and
///   `""` is an empty argument;
/// * 2n backslashes before a quote give n backslashes and the quote toggles the mode;
///   2n+1 backslashes before a quote give n backslashes and a literal quote;
/// * backslashes not before a quote are literal: `C:\x\y` stays `C:\x\y`, `a\` is `a\`.
///
/// Consecutive quotes inside quotes (`"a""b"`) are not documented for `CommandLineToArgvW`; here
/// each one toggles the mode (`ab`).
pub fn split_parameters(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let mut n = 1;
                while chars.peek() == Some(&'\\') {
                    chars.next();
                    n += 1;
                }
                any = true;
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.extend(std::iter::repeat_n('\\', n / 2));
                    if n % 2 == 1 {
                        cur.push('"');
                    } else {
                        quoted = !quoted;
                    }
                } else {
                    cur.extend(std::iter::repeat_n('\\', n));
                }
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Whether a protocol handler can be launched for results (`ReturnResults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnResults {
    /// `none` (default): only plain `LaunchUriAsync`.
    #[default]
    None,
    /// `always`: only `LaunchUriForResultsAsync`.
    Always,
    /// `optional`: both.
    Optional,
}

impl ReturnResults {
    /// Whether `LaunchUriForResultsAsync` may target this protocol.
    pub fn for_results(self) -> bool {
        matches!(self, ReturnResults::Always | ReturnResults::Optional)
    }

    /// Whether plain `LaunchUriAsync` may target this protocol.
    pub fn plain_launch(self) -> bool {
        matches!(self, ReturnResults::None | ReturnResults::Optional)
    }

    /// The manifest spelling (`none`, `always`, `optional`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnResults::None => "none",
            ReturnResults::Always => "always",
            ReturnResults::Optional => "optional",
        }
    }
}

/// A URI scheme the application handles (`windows.protocol`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// `Name`: the scheme, unique in the package.
    pub name: ProtocolName,
    /// `ReturnResults`.
    pub return_results: ReturnResults,
    /// `uap:DisplayName`.
    pub display_name: Option<String>,
}

/// Direction of a loopback rule (`Rule@Direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `in`: the named package may connect to this one.
    In,
    /// `out`: this package may connect to the named one.
    Out,
}

impl Direction {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A loopback access rule (`uap4:Rule`). A connection between two packages needs the client's
/// `out` rule naming the server and the server's `in` rule naming the client (TCP only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackRule {
    /// `Direction`.
    pub direction: Direction,
    /// `PackageFamilyName` of the peer.
    pub package_family_name: PackageFamilyName,
}

/// Registry and AppData write virtualization (`desktop6:` / `virtualization:` properties).
/// Turning anything off requires the restricted capability `unvirtualizedResources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtualization {
    /// `desktop6:RegistryWriteVirtualization`: `false` sends HKCU writes to the real hive.
    pub registry_write_virtualization: bool,
    /// `desktop6:FileSystemWriteVirtualization`: `false` sends AppData writes to the real place.
    pub file_system_write_virtualization: bool,
    /// `virtualization:ExcludedKey`: keys under `HKEY_CURRENT_USER` written directly.
    pub excluded_keys: Vec<String>,
    /// `virtualization:ExcludedDirectory`: directories under AppData written directly.
    pub excluded_directories: Vec<String>,
}

impl Default for Virtualization {
    fn default() -> Self {
        Virtualization {
            registry_write_virtualization: true,
            file_system_write_virtualization: true,
            excluded_keys: Vec::new(),
            excluded_directories: Vec::new(),
        }
    }
}

impl Manifest {
    /// The package family name.
    pub fn family_name(&self) -> PackageFamilyName {
        self.identity.family_name()
    }

    /// The application with this id (case-insensitive).
    pub fn application(&self, id: &str) -> Option<&Application> {
        self.applications.iter().find(|a| a.id.as_str().eq_ignore_ascii_case(id))
    }

    /// The app service with this name and the application declaring it (case-insensitive).
    pub fn app_service(&self, name: &str) -> Option<(&Application, &AppService)> {
        self.applications.iter().find_map(|a| {
            a.app_services
                .iter()
                .find(|s| s.name.as_str().eq_ignore_ascii_case(name))
                .map(|s| (a, s))
        })
    }

    /// The protocol with this scheme and the application declaring it (case-insensitive, as
    /// URI schemes are).
    pub fn protocol(&self, scheme: &str) -> Option<(&Application, &Protocol)> {
        self.applications.iter().find_map(|a| {
            a.protocols
                .iter()
                .find(|p| p.name.as_str().eq_ignore_ascii_case(scheme))
                .map(|p| (a, p))
        })
    }

    /// The application, exe server and class registered for `clsid`.
    pub fn com_class(&self, clsid: Guid) -> Option<(&Application, &ExeServer, &ComClass)> {
        self.applications.iter().find_map(|a| {
            a.com_servers.iter().find_map(|s| s.find_class(clsid)).map(|(e, c)| (a, e, c))
        })
    }

    /// Whether a publisher cache folder of this name is declared (compared by
    /// [`publisher_cache_folder_key`], as Windows compares folder names).
    pub fn declares_publisher_cache_folder(&self, name: &str) -> bool {
        self.declared_publisher_cache_folder(name).is_some()
    }

    /// The declared spelling of the publisher cache folder `name` (compared by
    /// [`publisher_cache_folder_key`]).
    pub fn declared_publisher_cache_folder(&self, name: &str) -> Option<&str> {
        let key = publisher_cache_folder_key(name);
        self.publisher_cache_folders
            .iter()
            .find(|f| publisher_cache_folder_key(f) == key)
            .map(String::as_str)
    }
}

impl FromStr for Manifest {
    type Err = ManifestError;
    fn from_str(text: &str) -> Result<Self, ManifestError> {
        parse(text)
    }
}

/// Parses and validates the text of an `appipc.toml`. Does not look at the file system.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    load::parse(text)
}

/// Reads `package_dir/appipc.toml`, parses it, and checks that every file it names exists
/// inside the package: executables (application executables, app service entry points,
/// full-trust processes, COM exe servers) must be regular files with an execute bit; other
/// files (logo, proxy stubs, type libraries, the custom capability descriptor) must be regular
/// files. A path that leads outside the package through a symbolic link is refused.
pub fn load(package_dir: &Path) -> Result<Manifest, ManifestError> {
    load::load(package_dir)
}

/// Parses and validates `text` as [`parse`] does, and checks every file it names against the
/// package's file list instead of a folder: `lookup` says what the package holds at a path
/// (a block map, or the broker's own copy of a folder), with the same rules as [`load`]:
/// executables must be executable regular files, other named files regular files.
pub fn parse_with_files(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<PackageEntry>,
) -> Result<Manifest, ManifestError> {
    load::parse_with_files(text, lookup)
}

#[cfg(test)]
mod tests {
    use super::split_parameters;

    #[test]
    fn parameters_split_like_a_command_line() {
        assert_eq!(
            split_parameters("/Sync  --name \"a b\" x y"),
            ["/Sync", "--name", "a b", "x", "y"]
        );
        assert_eq!(split_parameters("\"\""), [""]);
        assert!(split_parameters("  \t ").is_empty());
        assert_eq!(split_parameters("a\"b c\"d"), ["ab cd"], "a quoted part of an argument");
        assert_eq!(
            split_parameters("a\u{a0}b\nc"),
            ["a\u{a0}b\nc"],
            "only spaces and tabs separate"
        );
    }

    #[test]
    fn backslashes_follow_command_line_to_argv_w() {
        // Literal unless before a quote (Windows paths survive).
        assert_eq!(split_parameters(r"C:\x\y \\server\share"), [r"C:\x\y", r"\\server\share"]);
        assert_eq!(split_parameters("a\\"), ["a\\"], "a trailing backslash is kept");
        assert_eq!(split_parameters(r"x\ y"), [r"x\", "y"], "a backslash escapes nothing else");
        // 2n+1 backslashes and a quote: n backslashes and a literal quote.
        assert_eq!(split_parameters(r#"a\"b"#), [r#"a"b"#]);
        assert_eq!(split_parameters(r#"a\\\"b"#), [r#"a\"b"#]);
        // 2n backslashes and a quote: n backslashes, and the quote toggles the mode.
        assert_eq!(split_parameters(r#"a\\"b c"#), [r"a\b c"]);
        assert_eq!(split_parameters(r#""C:\dir\\" next"#), [r"C:\dir\", "next"]);
        assert_eq!(split_parameters(r#""a \" b"c"#), [r#"a " bc"#]);
        // The old splitter (every backslash an escape) made C:\x\y into C:xy.
        assert_ne!(split_parameters(r"C:\x\y"), ["C:xy"]);
    }
}
