//! Declared capabilities and the names Windows knows.

use super::names::{CustomCapabilityName, PackagePath};

/// Name of the restricted capability that full trust (mediumIL apps, full-trust processes,
/// packaged COM servers) requires.
pub const RUN_FULL_TRUST: &str = "runFullTrust";
/// Name of the restricted capability that turns off registry / AppData write virtualization.
pub const UNVIRTUALIZED_RESOURCES: &str = "unvirtualizedResources";
/// Name of the restricted capability for user-level file-system access through the broker.
pub const BROAD_FILE_SYSTEM_ACCESS: &str = "broadFileSystemAccess";
/// Name of the general capability loopback between packages needs on both sides.
pub const PRIVATE_NETWORK_CLIENT_SERVER: &str = "privateNetworkClientServer";
/// Custom capability a COM server extension with `compat-mode = "classic"` needs.
pub const CLASSIC_APP_COMPAT: &str = "Microsoft.classicAppCompat_8wekyb3d8bbwe";
/// Custom capability a COM server extension with `scope = "machine"` needs.
pub const CLASSIC_APP_COMPAT_ELEVATED: &str = "Microsoft.classicAppCompatElevated_8wekyb3d8bbwe";

/// General-use capability names (`Capability`, `uap*:Capability`, `mobile:`, `iot:`), as
/// listed in Microsoft's "App capability declarations". The three special-use names
/// `documentsLibrary`, `enterpriseAuthentication` and `sharedUserCertificates` are declared
/// with `uap:Capability` but documented among the restricted ones; appipc accepts them in
/// either list.
pub const GENERAL_CAPABILITIES: &[&str] = &[
    "internetClient",
    "internetClientServer",
    "privateNetworkClientServer",
    "musicLibrary",
    "picturesLibrary",
    "videosLibrary",
    "removableStorage",
    "appointments",
    "contacts",
    "codeGeneration",
    "allJoyn",
    "phoneCall",
    "phoneCallHistoryPublic",
    "recordedCallsFolder",
    "userAccountInformation",
    "voipCall",
    "objects3D",
    "chat",
    "blockedChatMessages",
    "lowLevelDevices",
    "systemManagement",
    "backgroundMediaPlayback",
    "remoteSystem",
    "spatialPerception",
    "globalMediaControl",
    "graphicsCapture",
    "graphicsCaptureWithoutBorder",
    "graphicsCaptureProgrammatic",
    "userDataTasks",
    "userNotificationListener",
    "offlineMapsManagement",
    "documentsLibrary",
    "enterpriseAuthentication",
    "sharedUserCertificates",
];

/// Restricted capability names (`rescap:Capability`), as listed in Microsoft's "App capability
/// declarations".
pub const RESTRICTED_CAPABILITIES: &[&str] = &[
    "runFullTrust",
    "broadFileSystemAccess",
    "unvirtualizedResources",
    "documentsLibrary",
    "enterpriseAuthentication",
    "sharedUserCertificates",
    "enterpriseDataPolicy",
    "appCaptureSettings",
    "cellularDeviceControl",
    "cellularDeviceIdentity",
    "cellularMessaging",
    "deviceUnlock",
    "dualSimTiles",
    "enterpriseDeviceLockdown",
    "inputInjectionBrokered",
    "inputObservation",
    "inputSuppression",
    "networkingVpnProvider",
    "packageManagement",
    "packageQuery",
    "screenDuplication",
    "userPrincipalName",
    "walletSystem",
    "locationHistory",
    "confirmAppClose",
    "phoneCallHistory",
    "appointmentsSystem",
    "chatSystem",
    "contactsSystem",
    "email",
    "emailSystem",
    "phoneCallHistorySystem",
    "smsSend",
    "userDataSystem",
    "previewStore",
    "firstSignInSettings",
    "teamEditionExperience",
    "remotePassportAuthentication",
    "previewUiComposition",
    "secureAssessment",
    "networkConnectionManagerProvisioning",
    "networkDataPlanProvisioning",
    "slapiQueryLicenseValue",
    "extendedBackgroundTaskTime",
    "extendedExecutionBackgroundAudio",
    "extendedExecutionCritical",
    "extendedExecutionUnconstrained",
    "deviceManagementDmAccount",
    "deviceManagementFoundation",
    "deviceManagementWapSecurityPolicies",
    "deviceManagementEmailAccount",
    "packagePolicySystem",
    "gameList",
    "xboxAccessoryManagement",
    "cortanaSpeechAccessory",
    "accessoryManager",
    "interopServices",
    "inputForegroundObservation",
    "oemDeployment",
    "oemPublicDirectory",
    "appLicensing",
    "locationSystem",
    "userDataAccountsProvider",
    "previewPenWorkspace",
    "secondaryAuthenticationFactor",
    "storeLicenseManagement",
    "userSystemId",
    "targetedContent",
    "uiAutomation",
    "gameBarServices",
    "appCaptureServices",
    "appBroadcastServices",
    "audioDeviceConfiguration",
    "backgroundMediaRecording",
    "previewInkWorkspace",
    "startScreenManagement",
    "cortanaPermissions",
    "allAppMods",
    "expandedResources",
    "protectedApp",
    "gameMonitor",
    "appDiagnostics",
    "devicePortalProvider",
    "enterpriseCloudSSO",
    "backgroundVoIP",
    "oneProcessVoIP",
    "developmentModeNetwork",
    "smbios",
    "allowElevation",
    "teamEditionDeviceCredential",
    "teamEditionView",
    "cameraProcessingExtension",
    "networkDataUsageManagement",
    "phoneLineTransportManagement",
    "modifiableApp",
    "packageWriteRedirectionCompatibilityShim",
    "customInstallActions",
    "packagedServices",
    "localSystemServices",
    "backgroundSpatialPerception",
    "uiAccess",
];

/// One line on what a restricted capability lets a package do here, for the consent an
/// install asks for. The capabilities appipc gives meaning to say what they open; the others
/// are accepted for manifest compatibility and say so.
pub fn restricted_capability_allows(name: &str) -> &'static str {
    const MEANINGFUL: &[(&str, &str)] = &[
        (
            "runFullTrust",
            "run its full-trust applications and helpers outside the app container, with all of \
             your user's rights",
        ),
        (
            "broadFileSystemAccess",
            "read and write every file your user can, from inside its app container",
        ),
        (
            "packageManagement",
            "install, upgrade and remove other packages (from the trust you gave; it cannot \
             change the trust store or developer mode)",
        ),
        ("packageQuery", "see every installed package and its details"),
        (
            "unvirtualizedResources",
            "opt out of registry and app data virtualization where its manifest says so",
        ),
    ];
    MEANINGFUL.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, what)| *what).unwrap_or(
        "restricted on Windows (the Store reviews it); appipc grants it no extra power yet, \
             but a later version may",
    )
}

/// Device capability names (`DeviceCapability`); a device interface class GUID is accepted as
/// well.
pub const DEVICE_CAPABILITIES: &[&str] = &[
    "location",
    "microphone",
    "proximity",
    "webcam",
    "usb",
    "humaninterfacedevice",
    "pointOfService",
    "bluetooth",
    "wiFiControl",
    "radios",
    "optical",
    "activity",
    "humanPresence",
    "serialcommunication",
    "gazeInput",
    "lowLevel",
];

/// The `[capabilities]` of a package: what its processes may do beyond the app-container
/// default. Names are case-sensitive in the manifest (as in Windows' schema) and compared
/// case-insensitively by [`Capabilities::has`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// General-use capabilities (`Capability`), from [`GENERAL_CAPABILITIES`].
    pub general: Vec<String>,
    /// Restricted capabilities (`rescap:Capability`), from [`RESTRICTED_CAPABILITIES`].
    pub restricted: Vec<String>,
    /// Device capabilities (`DeviceCapability`), from [`DEVICE_CAPABILITIES`] or a GUID.
    pub device: Vec<String>,
    /// Custom capabilities (`uap4:CustomCapability`); granted by the broker only with a valid
    /// signed custom capability descriptor.
    pub custom: Vec<CustomCapabilityName>,
    /// The signed custom capability descriptors (Windows: `CustomCapability.SCCD` at the
    /// package root), files in the package (`custom-capability-descriptor`: one path or a
    /// list); their format and verification are [`crate::sccd`]'s.
    pub custom_capability_descriptors: Vec<PackagePath>,
}

impl Capabilities {
    /// Every declared capability name: general, restricted, device, then custom.
    pub fn names(&self) -> Vec<&str> {
        self.general
            .iter()
            .chain(&self.restricted)
            .chain(&self.device)
            .map(String::as_str)
            .chain(self.custom.iter().map(CustomCapabilityName::as_str))
            .collect()
    }

    /// Whether `name` is declared in any list, compared case-insensitively.
    pub fn has(&self, name: &str) -> bool {
        self.names().iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Whether `runFullTrust` is declared.
    pub fn has_run_full_trust(&self) -> bool {
        self.has(RUN_FULL_TRUST)
    }
}

/// The kind of a capability list, for messages and lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CapabilityKind {
    General,
    Restricted,
    Device,
}

impl CapabilityKind {
    pub fn known(self) -> &'static [&'static str] {
        match self {
            CapabilityKind::General => GENERAL_CAPABILITIES,
            CapabilityKind::Restricted => RESTRICTED_CAPABILITIES,
            CapabilityKind::Device => DEVICE_CAPABILITIES,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            CapabilityKind::General => "general",
            CapabilityKind::Restricted => "restricted",
            CapabilityKind::Device => "device",
        }
    }

    pub fn all() -> [CapabilityKind; 3] {
        [CapabilityKind::General, CapabilityKind::Restricted, CapabilityKind::Device]
    }
}
