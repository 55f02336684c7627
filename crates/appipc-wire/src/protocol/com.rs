//! Packaged COM: out-of-process servers declared in packages' manifests
//! (`windows.comServer`), activated by class id.

use minicbor::{Decode, Encode};

use super::rpc::RpcCaller;

super::mechanism! {
    /// Packaged COM. The broker keeps the catalog (the classes and ProgIDs of the installed
    /// packages), decides each activation by the exe server's `LaunchAndActivationPermission`
    /// (COM rights: `EXECUTE` 1, `EXECUTE_LOCAL` 2 to start a server, `ACTIVATE_LOCAL` 8 to
    /// reach a running one; the user side and, for an app container, the app-container side),
    /// starts the server (full trust, Activate-As-Package, `-Embedding`) when none serves the
    /// class, and hands the client and the server the two ends of a socket pair; the object's
    /// calls then go between the two processes. Errors carry `HRESULT`s: `E_ACCESSDENIED`
    /// 0x80070005, `REGDB_E_CLASSNOTREG` 0x80040154, `CO_E_CLASSSTRING` 0x800401F3,
    /// `CO_E_SERVER_EXEC_FAILURE` 0x80080005, `CO_E_WRONG_SERVER_IDENTITY` 0x80004015,
    /// `CO_E_OBJISREG` 0x800401FB, `CO_E_OBJNOTREG` 0x800401FC, `E_INVALIDARG` 0x80070057.
    mechanism Com;
    requests {
        /// `CoCreateInstance(CLSCTX_LOCAL_SERVER)`: an object of the class, served by a
        /// running server of it or by one the broker starts.
        0 CreateInstance {
            /// The CLSID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (braces allowed).
            0 clsid: String,
        } fds(0) -> ComActivated, reply fds "1: the client's end of the object's channel";
        /// `CLSIDFromProgID`: the class a ProgID names (following `current-version`).
        1 ClsidFromProgId {
            /// The ProgID.
            0 prog_id: String,
        } fds(0) -> String, reply fds "0";
        /// `CoRegisterClassObject`: this process serves the class (one its package declares);
        /// activations arrive as `com.Activate`. Returns the registration's cookie.
        2 RegisterClassObject {
            /// The CLSID.
            0 clsid: String,
            /// `REGCLS` flags: `SINGLEUSE` 0, `MULTIPLEUSE` 1, `MULTI_SEPARATE` 2,
            /// `SUSPENDED` 4.
            1 flags: u32,
        } fds(0) -> u64, reply fds "0";
        /// `CoRevokeClassObject`.
        3 RevokeClassObject {
            /// The cookie `RegisterClassObject` returned.
            0 cookie: u64,
        } fds(0) -> (), reply fds "0";
        /// `CoResumeClassObjects`: the registrations made `SUSPENDED` take activations.
        4 ResumeClassObjects {} fds(0) -> (), reply fds "0";
        /// `CoSuspendClassObjects`: no activation reaches this process any more (a server
        /// whose count fell to zero, about to exit); the next one starts a new server.
        5 SuspendClassObjects {} fds(0) -> (), reply fds "0";
        /// The server's count as it keeps it (`CoAddRefServerProcess` / `LockServer`), for
        /// `List`.
        6 ReportCount {
            /// Live objects.
            0 objects: u32,
            /// `LockServer(TRUE)` calls not undone.
            1 locks: u32,
        } fds(0) -> (), reply fds "0";
        /// The catalog and the running servers (`appipc com list`).
        7 List {} fds(0) -> ComList, reply fds "0";
    }
    events {
        /// A client activated a class this session registered; the server's end of the
        /// object's channel is attached. The server answers the client's first message (a
        /// bind) with the object, or with `CO_E_SERVER_STOPPING` when it is shutting down
        /// (the client's SDK then activates again).
        0 Activate {
            /// The activation.
            0 activation_id: u64,
            /// The class, lowercase, without braces.
            1 clsid: String,
            /// Who activated it, as the broker knows it.
            2 caller: RpcCaller,
        } fds "1: the server's end";
    }
}

/// Answer to [`CreateInstance`]: the server the object lives in.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ComActivated {
    /// The activation.
    #[n(0)]
    pub activation_id: u64,
    /// The server's package family name.
    #[n(1)]
    pub server_package_family_name: String,
    /// The server's package SID.
    #[n(2)]
    pub server_sid: String,
    /// The server's pid as the broker numbers it; 0 for a client in an app container.
    #[n(3)]
    pub server_pid: u32,
    /// The application whose identity the server carries.
    #[n(4)]
    pub server_app_id: String,
}

/// The catalog and the running servers, for [`List`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, serde::Serialize)]
pub struct ComList {
    /// Every class of the installed packages the caller may query, in CLSID order.
    #[n(0)]
    pub classes: Vec<ComClassInfo>,
    /// Every process that registered class objects.
    #[n(1)]
    pub servers: Vec<ComServerInfo>,
    /// Classes and servers left out so that the reply fits a frame (0: none).
    #[n(2)]
    pub more: u32,
}

/// One class of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ComClassInfo {
    /// The CLSID, lowercase.
    #[n(0)]
    pub clsid: String,
    /// Its display name, or "".
    #[n(1)]
    pub display_name: String,
    /// The ProgIDs that name it (its own, its version-independent one, and `prog-id`
    /// entries leading to it).
    #[n(2)]
    pub prog_ids: Vec<String>,
    /// `AutoConvertTo`, or "".
    #[n(3)]
    pub auto_convert_to: String,
    /// The package family name.
    #[n(4)]
    pub package_family_name: String,
    /// The application whose identity the server carries.
    #[n(5)]
    pub app_id: String,
    /// The exe server's executable, package-relative.
    #[n(6)]
    pub executable: String,
    /// Its `LaunchAndActivationPermission` as the broker applies it (the default when the
    /// manifest gives none).
    #[n(7)]
    pub permission: String,
}

/// One process serving classes.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ComServerInfo {
    /// Its pid (0 for a caller in an app container).
    #[n(0)]
    pub pid: u32,
    /// Its package family name.
    #[n(1)]
    pub package_family_name: String,
    /// Its application.
    #[n(2)]
    pub app_id: String,
    /// The classes it registered (lowercase CLSIDs), with their flags.
    #[n(3)]
    pub classes: Vec<ComRegistration>,
    /// Activations handed to it.
    #[n(4)]
    pub activations: u64,
    /// Live objects, as it reports them.
    #[n(5)]
    pub objects: u32,
    /// Locks (`LockServer`), as it reports them.
    #[n(6)]
    pub locks: u32,
    /// Whether it suspended its class objects (it is shutting down).
    #[n(7)]
    pub suspended: bool,
    /// Whether the broker started it (`-Embedding`).
    #[n(8)]
    pub started_by_broker: bool,
}

/// One class registration of a server.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ComRegistration {
    /// The CLSID, lowercase.
    #[n(0)]
    pub clsid: String,
    /// Its `REGCLS` flags.
    #[n(1)]
    pub flags: u32,
    /// Whether it takes activations now (not `SUSPENDED`, a `SINGLEUSE` one not used yet).
    #[n(2)]
    pub available: bool,
}
