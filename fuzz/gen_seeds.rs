//! Writes the seed inputs of every fuzz target into `corpus/<target>/seed-*`: real encodings
//! made by the code itself (a frame of every request and event, the output of every request,
//! app-service frames, a signed package), the example manifests, the SDDL strings and names
//! the tests use. Run it after changing an encoding, then minimise (`scripts/fuzz.sh cmin`):
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --features gen-seeds --bin gen-seeds
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use appipc_model::package_file::{FileMode, PackageWriter, SecretKey};
use appipc_wire::app_service::{ChannelFrame, ChannelKind};
use appipc_wire::caller::{CallerIdentity, TrustLevel};
use appipc_wire::frame::{Frame, Raw, Reply};
use appipc_wire::protocol::{
    Call, MECHANISMS, app_service, broker, diagnostics, full_trust, launch, launcher, loopback,
    named_objects, packages, pipes, registry, rpc, storage,
};
use appipc_wire::status::{
    BackgroundTaskCancellationReason, ErrorKind, ErrorReply, LaunchQuerySupportStatus,
    LaunchQuerySupportType, LaunchUriStatus, WindowsCode,
};
use appipc_wire::{Guid, Point, PropertyValue, Rect, Size, ValueSet};

const PFN: &str = "Contoso.A_cvnpggrrsm18p";
/// The app container SID of `PFN`, so that SDDL seeds name the fuzzed caller.
fn pfn_sid() -> String {
    appipc_model::sid::appcontainer_sid(PFN).to_string()
}

struct Seeds {
    root: PathBuf,
    written: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus folder");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
        self.written += 1;
    }
}

fn requests() -> Vec<(&'static str, appipc_wire::protocol::Request)> {
    use named_objects::{NamedObjectKind, ObjectType, SignalOp};
    let s = |x: &str| x.to_owned();
    let mut all = vec![
        ("ping", broker::Ping {}.into()),
        ("whoami", broker::WhoAmI {}.into()),
        ("open-session", broker::OpenSession {}.into()),
        ("shutdown", broker::Shutdown { stop_apps: None }.into()),
        (
            "install",
            packages::Install { path: s("/tmp/pkg"), consent: Some(vec![s("runFullTrust")]) }
                .into(),
        ),
        ("list-packages", packages::ListPackages {}.into()),
        ("remove", packages::Remove { family_name: s(PFN) }.into()),
        ("install-file", packages::InstallFile { consent: None }.into()),
        ("inspect-file", packages::InspectFile {}.into()),
        ("inspect-folder", packages::InspectFolder { path: s("/tmp/pkg") }.into()),
        ("trust-key", packages::TrustKey { public_key: public_key_text() }.into()),
        ("list-trusted-keys", packages::ListTrustedKeys {}.into()),
        ("untrust-key", packages::UntrustKey { key_id: s("0123abcd") }.into()),
        ("set-developer-mode", packages::SetDeveloperMode { enabled: true }.into()),
        ("get-developer-mode", packages::GetDeveloperMode {}.into()),
        (
            "launch",
            launch::Launch {
                target: format!("{PFN}!App"),
                args: vec![s("--x"), s("y")],
                stdio: true,
                notify_exit: true,
            }
            .into(),
        ),
        ("list-processes", launch::ListProcesses {}.into()),
        (
            "as-open",
            app_service::Open {
                package_family_name: s(PFN),
                app_service_name: s("com.contoso.echo"),
                user: Some(1000),
            }
            .into(),
        ),
        (
            "as-register",
            app_service::RegisterHost { app_service_name: s("com.contoso.echo"), serving: None }
                .into(),
        ),
        ("as-closed", app_service::ConnectionClosed { connection_id: 7 }.into()),
        ("as-find", app_service::FindProviders { app_service_name: s("com.contoso.echo") }.into()),
        ("as-list", app_service::List {}.into()),
        (
            "full-trust",
            full_trust::LaunchFullTrustProcess {
                app_id: Some(s("App")),
                parameter_group: Some(s("Sync")),
                arguments: Some(vec![s("a")]),
            }
            .into(),
        ),
        (
            "full-trust-none",
            full_trust::LaunchFullTrustProcess {
                app_id: None,
                parameter_group: None,
                arguments: None,
            }
            .into(),
        ),
        ("pcf-get", storage::GetPublisherCacheFolder { name: s("Shared") }.into()),
        (
            "pcf-clear",
            storage::ClearPublisherCacheFolder {
                name: s("Shared"),
                publisher_id: Some(s("cvnpggrrsm18p")),
            }
            .into(),
        ),
        ("pcf-list", storage::ListPublisherCaches {}.into()),
        ("token-add", storage::AddFileToken {}.into()),
        ("token-redeem", storage::RedeemFileToken { token: s("{0011-22}") }.into()),
        ("token-remove", storage::RemoveFileToken { token: s("{0011-22}") }.into()),
        ("token-list", storage::ListFileTokens {}.into()),
        (
            "no-create-event",
            named_objects::Create {
                kind: NamedObjectKind::Event { manual_reset: true, initial_state: false },
                name: s("Local\\ev"),
                sddl: Some(s("D:(A;;GA;;;AC)")),
            }
            .into(),
        ),
        (
            "no-create-semaphore",
            named_objects::Create {
                kind: NamedObjectKind::Semaphore { initial: 1, maximum: 4 },
                name: s("Global\\sem"),
                sddl: None,
            }
            .into(),
        ),
        (
            "no-create-mapping",
            named_objects::Create {
                kind: NamedObjectKind::FileMapping { size: 4096, writable: true },
                name: s("map"),
                sddl: None,
            }
            .into(),
        ),
        (
            "no-create-mapping-of-file",
            named_objects::Create {
                kind: NamedObjectKind::FileMappingOfFile { writable: false },
                name: s("file"),
                sddl: None,
            }
            .into(),
        ),
        (
            "no-open",
            named_objects::Open {
                object_type: ObjectType::Semaphore,
                name: format!("AppContainerNamedObjects\\{}\\sem", pfn_sid()),
                desired_access: 0x0210_0000,
            }
            .into(),
        ),
        ("no-close", named_objects::Close { handle: 3 }.into()),
        ("no-list", named_objects::List {}.into()),
        ("no-path", named_objects::GetNamedObjectPath { package_family_name: s(PFN) }.into()),
        (
            "no-signal",
            named_objects::Signal { handle: 3, op: SignalOp::Release { count: 2 } }.into(),
        ),
        ("no-signal-set", named_objects::Signal { handle: 3, op: SignalOp::Set }.into()),
        ("no-take", named_objects::TakeSignal { handle: 3 }.into()),
        ("no-acquire", named_objects::Acquire { handle: 3 }.into()),
        ("no-acquire-all", named_objects::AcquireAll { handles: vec![3, 4, 5] }.into()),
        (
            "no-create-mutex",
            named_objects::Create {
                kind: NamedObjectKind::Mutex { initial_owner: true },
                name: s("Local\\single"),
                sddl: None,
            }
            .into(),
        ),
        (
            "no-create-timer",
            named_objects::Create {
                kind: NamedObjectKind::WaitableTimer { manual_reset: false },
                name: s("Local\\tick"),
                sddl: None,
            }
            .into(),
        ),
        (
            "no-release-mutex",
            named_objects::Signal { handle: 3, op: SignalOp::ReleaseMutex }.into(),
        ),
        (
            "no-set-timer",
            named_objects::Signal {
                handle: 3,
                op: SignalOp::SetTimer { due_time: -10_000_000, period_ms: 100 },
            }
            .into(),
        ),
        ("no-cancel-timer", named_objects::Signal { handle: 3, op: SignalOp::CancelTimer }.into()),
        (
            "pipe-create",
            pipes::CreateInstance {
                name: s("\\\\.\\pipe\\LOCAL\\p"),
                message_mode: true,
                direction: pipes::PipeDirection::Inbound,
                max_instances: 4,
                sddl: Some(s("D:(A;;GRGW;;;AC)")),
                default_timeout_ms: 250,
                first_instance: true,
            }
            .into(),
        ),
        ("pipe-disconnect", pipes::Disconnect { instance: 9 }.into()),
        ("pipe-open", pipes::Open { name: s("\\\\.\\pipe\\Session\\p"), desired_access: 3 }.into()),
        ("pipe-wait", pipes::Wait { name: s("\\\\.\\pipe\\p"), timeout_ms: 0xFFFF_FFFF }.into()),
        (
            "why",
            diagnostics::ListDecisions {
                package_family_name: Some(s(PFN)),
                last: 10,
                denials_only: true,
            }
            .into(),
        ),
        (
            "why-follow",
            diagnostics::FollowDecisions { package_family_name: None, denials_only: false }.into(),
        ),
        (
            "launch-uri-for-results",
            launcher::LaunchUri {
                uri: s("contoso-pick:photo?size=large"),
                target_package_family_name: Some(s(PFN)),
                data: Some(sample_set()),
                for_results: true,
            }
            .into(),
        ),
        (
            "launch-uri",
            launcher::LaunchUri {
                uri: s("contoso-view:x"),
                target_package_family_name: None,
                data: None,
                for_results: false,
            }
            .into(),
        ),
        (
            "query-uri-support",
            launcher::QueryUriSupport {
                uri: s("contoso-pick:"),
                kind: LaunchQuerySupportType::UriForResults,
                package_family_name: Some(s(PFN)),
            }
            .into(),
        ),
        (
            "find-uri-scheme-handlers",
            launcher::FindUriSchemeHandlers {
                scheme: s("contoso-pick"),
                kind: LaunchQuerySupportType::Uri,
            }
            .into(),
        ),
        ("take-activation", launcher::TakeActivation { activation_id: 4_294_967_297 }.into()),
        ("resync", broker::Resync { sent: vec![3, 4, 9] }.into()),
        ("register-for-activation", launcher::RegisterForActivation {}.into()),
        (
            "report-completed",
            launcher::ReportCompleted { operation_id: 7, data: Some(sample_set()) }.into(),
        ),
    ];
    all.extend(registry_requests());
    all.extend(rpc_requests());
    all.extend(com_requests());
    all.extend(loopback_requests());
    all
}

fn protocol_activation() -> launcher::ProtocolActivation {
    launcher::ProtocolActivation {
        kind: launcher::ACTIVATION_KIND_PROTOCOL_FOR_RESULTS,
        uri: "contoso-pick:photo".to_owned(),
        data: Some(sample_set()),
        caller_package_family_name: PFN.to_owned(),
        caller_pid: 42,
        operation_id: Some(7),
    }
}

fn decision() -> diagnostics::DecisionRecord {
    diagnostics::DecisionRecord {
        seq: 1,
        time_ms: 2,
        caller: diagnostics::DecisionCaller {
            package_family_name: PFN.into(),
            app_id: "App".into(),
            pid: 3,
            trust: TrustLevel::AppContainer,
        },
        mechanism: "named_objects".into(),
        operation: "open".into(),
        object: "Local\\x".into(),
        object_package_family_name: PFN.into(),
        asked: Some(4),
        granted: None,
        allowed: false,
        rule: "entry 1".into(),
        remedy: Some("add (A;;0x4;;;S-1-15-2-1)".into()),
        manifest: None,
    }
}

fn events() -> Vec<(&'static str, appipc_wire::protocol::Event)> {
    let mut all = vec![
        ("closing", broker::Closing { reason: "idle".into() }.into()),
        ("exited", launch::ProcessExited { pid: 4, code: Some(0), signal: None }.into()),
        ("killed", launch::ProcessExited { pid: 4, code: None, signal: Some(9) }.into()),
        (
            "incoming",
            app_service::IncomingConnection {
                connection_id: 1,
                app_service_name: "com.contoso.echo".into(),
                caller_package_family_name: PFN.into(),
                caller_capabilities: vec!["internetClient".into()],
                caller_trust: TrustLevel::AppContainer,
                caller_pid: 5,
                max_message_size: 1 << 24,
                caller_uid: Some(1000),
                caller_user_name: Some("alice".into()),
            }
            .into(),
        ),
        (
            "canceled",
            app_service::Canceled { reason: BackgroundTaskCancellationReason::Terminating }.into(),
        ),
        (
            "pipe-connected",
            pipes::ClientConnected {
                instance: 2,
                client_pid: 6,
                client_package_family_name: String::new(),
            }
            .into(),
        ),
        ("decision", diagnostics::Decision { record: decision() }.into()),
        ("activated", launcher::Activated { activation: protocol_activation() }.into()),
        ("operation-canceled", launcher::OperationCanceled { operation_id: 7 }.into()),
        ("restarted", broker::Restarted {}.into()),
        (
            "install-progress",
            packages::InstallProgress {
                files: 3,
                bytes: 4096,
                total_files: Some(10),
                total_bytes: None,
            }
            .into(),
        ),
    ];
    all.extend(registry_events());
    all.extend(rpc_events());
    all.extend(com_events());
    all
}

/// `[mechanism, call]` and the output of `C`, as the `reply_output` target reads it.
fn output<C: Call>(value: &C::Output) -> Vec<u8> {
    let index = u8::try_from(C::INDEX).expect("small request numbers");
    let mut bytes = vec![C::MECHANISM as u8, index];
    bytes.extend_from_slice(Raw::encode(value).as_bytes());
    bytes
}

/// The public key file of the package seeds' signing key.
fn public_key_text() -> String {
    signing_key().public_key().to_file_text()
}

fn signing_key() -> SecretKey {
    SecretKey::from_seed("CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH", [3; 32])
        .expect("a valid publisher")
}

fn signer() -> packages::Signer {
    let key = signing_key();
    packages::Signer {
        key_id: key.id().to_string(),
        publisher: key.publisher().as_str().to_owned(),
    }
}

fn outputs() -> Vec<(&'static str, Vec<u8>)> {
    let s = |x: &str| x.to_owned();
    let preview = packages::PackagePreview {
        full_name: s("Contoso.A_1.0.0.0_x64__cvnpggrrsm18p"),
        family_name: s(PFN),
        publisher: s("CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH"),
        display_name: s("A"),
        signer: Some(signer()),
        installed: Some(s("Contoso.A_0.9.0.0_x64__cvnpggrrsm18p")),
        restricted: vec![s("runFullTrust")],
        consent_needed: vec![packages::CapabilityConsent {
            name: s("runFullTrust"),
            allows: s("runs outside the app container"),
        }],
    };
    let trusted = packages::TrustedKey {
        key_id: signer().key_id,
        publisher: signer().publisher,
        added_at: 1,
        public_key: public_key_text(),
    };
    let package = packages::PackageInfo {
        name: s("Contoso.A"),
        version: s("1.0.0.0"),
        publisher: s("CN=Contoso"),
        publisher_id: s("cvnpggrrsm18p"),
        family_name: s(PFN),
        full_name: s("Contoso.A_1.0.0.0_x64__cvnpggrrsm18p"),
        capabilities: vec![s("internetClient")],
        applications: vec![packages::AppInfo {
            id: s("App"),
            executable: s("bin/app"),
            trust: TrustLevel::AppContainer,
        }],
        install_location: s("/i"),
        data_location: s("/d"),
        display_name: Some(s("A")),
        package_sid: pfn_sid(),
        installed_at: 1,
        granted_capabilities: vec![],
        signer: Some(signer()),
        log_location: Some(s("/l/Contoso.A.log")),
    };
    let handle = named_objects::NamedObjectHandle {
        handle: 1,
        already_exists: false,
        granted_access: 0x1f0003,
        size: 0,
        manual_reset: true,
        fd: named_objects::HandleFd::Object,
    };
    let mut all = vec![
        (
            "pong",
            output::<broker::Ping>(&broker::Pong { protocol: 2, broker_pid: 1, version: s("0.1") }),
        ),
        (
            "whoami",
            output::<broker::WhoAmI>(&CallerIdentity {
                pid: 1,
                uid: 1000,
                package_full_name: Some(s("Contoso.A_1.0.0.0_x64__cvnpggrrsm18p")),
                package_family_name: Some(s(PFN)),
                app_id: Some(s("App")),
                trust: TrustLevel::AppContainer,
                capabilities: vec![s("internetClient")],
                package_sid: Some(pfn_sid()),
                capability_sids: vec![s("S-1-15-3-1")],
                session_id: 4,
            }),
        ),
        ("unit", output::<broker::Shutdown>(&())),
        (
            "installed",
            output::<packages::Install>(&packages::Installed {
                full_name: s("Contoso.A_1.0.0.0_x64__cvnpggrrsm18p"),
                family_name: s(PFN),
                outcome: packages::InstallOutcome::Upgraded,
                replaced: Some(s("Contoso.A_0.9.0.0_x64__cvnpggrrsm18p")),
                not_granted: vec![packages::CapabilityRefusal {
                    name: s("Contoso.x_cvnpggrrsm18p"),
                    reason: s("no descriptor"),
                }],
            }),
        ),
        ("packages", output::<packages::ListPackages>(&vec![package])),
        (
            "installed-file",
            output::<packages::InstallFile>(&packages::Installed {
                full_name: s("Contoso.A_1.0.0.0_x64__cvnpggrrsm18p"),
                family_name: s(PFN),
                outcome: packages::InstallOutcome::Installed,
                replaced: None,
                not_granted: vec![],
            }),
        ),
        ("preview-file", output::<packages::InspectFile>(&preview.clone())),
        (
            "preview-folder",
            output::<packages::InspectFolder>(&packages::PackagePreview {
                signer: None,
                installed: None,
                ..preview
            }),
        ),
        ("trusted-key", output::<packages::TrustKey>(&trusted.clone())),
        ("trusted-keys", output::<packages::ListTrustedKeys>(&vec![trusted.clone()])),
        ("untrusted-keys", output::<packages::UntrustKey>(&vec![trusted])),
        (
            "developer-mode-set",
            output::<packages::SetDeveloperMode>(&packages::DeveloperMode { enabled: true }),
        ),
        (
            "developer-mode",
            output::<packages::GetDeveloperMode>(&packages::DeveloperMode { enabled: false }),
        ),
        (
            "removed",
            output::<packages::Remove>(&packages::Removed {
                full_name: s("Contoso.A_1.0.0.0_x64__cvnpggrrsm18p"),
                stopped_processes: 2,
            }),
        ),
        (
            "launched",
            output::<launch::Launch>(&launch::Launched {
                pid: 9,
                app_user_model_id: format!("{PFN}!App"),
                log: Some(s("/l/Contoso.A.log")),
            }),
        ),
        (
            "processes",
            output::<launch::ListProcesses>(&vec![launch::ProcessInfo {
                pid: 9,
                app_user_model_id: format!("{PFN}!App"),
                package_family_name: s(PFN),
                trust: TrustLevel::FullTrust,
                started_at: 3,
                confinement: s("landlock"),
                confined: Some(true),
            }]),
        ),
        (
            "opened",
            output::<app_service::Open>(&app_service::Opened {
                connection_id: 1,
                max_message_size: 1 << 20,
            }),
        ),
        (
            "providers",
            output::<app_service::FindProviders>(&vec![app_service::AppServiceProviderInfo {
                package_family_name: s(PFN),
                app_id: s("App"),
                display_name: s("A"),
            }]),
        ),
        (
            "as-list",
            output::<app_service::List>(&app_service::AppServiceList {
                declared: vec![app_service::DeclaredAppService {
                    package_family_name: s(PFN),
                    app_id: s("App"),
                    name: s("com.contoso.echo"),
                    entry_point: Some(s("bin/echo")),
                    supports_multiple_instances: true,
                    max_message_size: 1 << 20,
                }],
                connections: vec![app_service::AppServiceConnectionInfo {
                    connection_id: 1,
                    package_family_name: s(PFN),
                    app_service_name: s("com.contoso.echo"),
                    caller_package_family_name: String::new(),
                    caller_pid: 2,
                    host_pid: 3,
                    opened_at: 4,
                }],
            }),
        ),
        (
            "full-trust",
            output::<full_trust::LaunchFullTrustProcess>(&full_trust::FullTrustProcessLaunched {
                pid: 5,
            }),
        ),
        ("string", output::<storage::GetPublisherCacheFolder>(&s("/home/u/cache"))),
        (
            "caches",
            output::<storage::ListPublisherCaches>(&vec![storage::PublisherCacheInfo {
                publisher_id: s("cvnpggrrsm18p"),
                folder: s("Shared"),
                path: s("/p"),
                size: 10,
                packages: vec![s(PFN)],
            }]),
        ),
        (
            "redeemed",
            output::<storage::RedeemFileToken>(&storage::RedeemedFile {
                path: s("/f"),
                name: s("f.txt"),
                writable: true,
            }),
        ),
        (
            "tokens",
            output::<storage::ListFileTokens>(&vec![storage::FileTokenInfo {
                token: s("{t}"),
                source_package_family_name: s(PFN),
                path: s("/f"),
                writable: false,
                created_at: 1,
                expires_at: 2,
            }]),
        ),
        ("handle", output::<named_objects::Create>(&handle.clone())),
        ("handle-opened", output::<named_objects::Open>(&handle)),
        ("no-closed", output::<named_objects::Close>(&())),
        ("no-path", output::<named_objects::GetNamedObjectPath>(&s("/dev/shm/appipc-1-x"))),
        ("open-session", output::<broker::OpenSession>(&())),
        ("as-registered", output::<app_service::RegisterHost>(&())),
        ("as-closed", output::<app_service::ConnectionClosed>(&())),
        ("pcf-cleared", output::<storage::ClearPublisherCacheFolder>(&())),
        ("token-added", output::<storage::AddFileToken>(&s("0123456789abcdef"))),
        ("token-removed", output::<storage::RemoveFileToken>(&())),
        ("pipe-disconnected", output::<pipes::Disconnect>(&())),
        ("pipe-waited", output::<pipes::Wait>(&())),
        ("following", output::<diagnostics::FollowDecisions>(&())),
        (
            "objects",
            output::<named_objects::List>(&vec![named_objects::NamedObjectInfo {
                namespace: s("Session"),
                name: s("ev"),
                object_type: named_objects::ObjectType::Event,
                creator_package_family_name: String::new(),
                creator_pid: 1,
                sddl: s("D:(A;;GA;;;AC)"),
                handles: 2,
                size: 0,
            }]),
        ),
        ("u32", output::<named_objects::Signal>(&3)),
        ("bool", output::<named_objects::TakeSignal>(&true)),
        ("wait-outcome", output::<named_objects::Acquire>(&named_objects::WaitOutcome::Abandoned)),
        (
            "all-acquired",
            output::<named_objects::AcquireAll>(&named_objects::AllAcquired {
                outcome: named_objects::WaitOutcome::NotSignalled,
                waiting_for: 2,
            }),
        ),
        ("u64", output::<pipes::CreateInstance>(&77)),
        (
            "pipe-opened",
            output::<pipes::Open>(&pipes::PipeOpened {
                message_mode: true,
                can_read: true,
                can_write: false,
                server_pid: 4242,
            }),
        ),
        ("decisions", output::<diagnostics::ListDecisions>(&vec![decision()])),
        (
            "launch-uri-outcome",
            output::<launcher::LaunchUri>(&launcher::LaunchUriOutcome {
                status: LaunchUriStatus::Success,
                result: Some(sample_set()),
                reported: true,
                target_pid: 4242,
            }),
        ),
        (
            "query-uri-support",
            output::<launcher::QueryUriSupport>(&LaunchQuerySupportStatus::NotSupported),
        ),
        (
            "uri-scheme-handlers",
            output::<launcher::FindUriSchemeHandlers>(&vec![launcher::UriSchemeHandler {
                package_family_name: s(PFN),
                app_id: s("App"),
                display_name: s("A"),
                return_results: s("always"),
            }]),
        ),
        ("activation", output::<launcher::TakeActivation>(&Some(protocol_activation()))),
        ("registered", output::<launcher::RegisterForActivation>(&())),
        ("reported", output::<launcher::ReportCompleted>(&())),
        ("resynced", output::<broker::Resync>(&vec![4])),
    ];
    all.extend(registry_outputs());
    all.extend(rpc_outputs());
    all.extend(com_outputs());
    all.extend(loopback_outputs());
    all
}

fn sample_set() -> ValueSet {
    let mut inner = ValueSet::new();
    inner.insert("ok", true);
    let mut set = ValueSet::new();
    set.insert("Command", "Ping");
    set.insert("count", PropertyValue::Int16(3));
    set.insert("id", Guid::from_u128(0x6b29fc40_ca47_1067_b31d_00dd010662da));
    set.insert("pos", Point::new(1.0, 2.0));
    set.insert("size", PropertyValue::Size(Size { width: 3.0, height: f32::NAN }));
    set.insert("rect", PropertyValue::Rect(Rect { x: 0.0, y: -0.0, width: 1.0, height: 2.0 }));
    set.insert("raw", PropertyValue::UInt8Array(vec![0, 255]));
    set.insert("strings", PropertyValue::StringArray(vec!["a".into(), String::new()]));
    set.insert("double", PropertyValue::Double(0.1));
    set.insert("nested", PropertyValue::ValueSet(inner));
    set
}

fn channel_frames() -> Vec<(&'static str, ChannelFrame)> {
    vec![
        (
            "request",
            ChannelFrame {
                id: 1,
                kind: ChannelKind::Request,
                status: 0,
                message: Some(sample_set()),
                memfd_len: None,
            },
        ),
        (
            "response",
            ChannelFrame {
                id: 1,
                kind: ChannelKind::Response,
                status: 0,
                message: Some(ValueSet::new()),
                memfd_len: None,
            },
        ),
        (
            "memfd",
            ChannelFrame {
                id: 2,
                kind: ChannelKind::Request,
                status: 0,
                message: None,
                memfd_len: Some(1 << 20),
            },
        ),
        (
            "close",
            ChannelFrame {
                id: 0,
                kind: ChannelKind::Close,
                status: 1,
                message: None,
                memfd_len: None,
            },
        ),
    ]
}

fn copy_file(seeds: &mut Seeds, target: &str, name: &str, path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    seeds.put(target, name, &bytes);
}

/// `.reg` files: the writer's output for every type (UTF-16LE with a BOM and UTF-8), a
/// `REGEDIT4` file, deletions, continuations, and malformed ones.
/// The registry's requests.
fn registry_requests() -> Vec<(&'static str, appipc_wire::protocol::Request)> {
    use registry as r;
    let hkcu = 0x8000_0001;
    let sub = || "Software\\Contoso".to_owned();
    vec![
        ("reg-open", r::OpenKey { parent: hkcu, subkey: sub(), package: None }.into()),
        (
            "reg-open-view",
            r::OpenKey { parent: hkcu, subkey: String::new(), package: Some(PFN.into()) }.into(),
        ),
        ("reg-create", r::CreateKey { parent: hkcu, subkey: sub(), package: None }.into()),
        ("reg-close", r::CloseKey { handle: 7 }.into()),
        (
            "reg-set",
            r::SetValue {
                handle: 7,
                name: "v".into(),
                value_type: 1,
                data: vec![0x41, 0, 0, 0].into(),
            }
            .into(),
        ),
        ("reg-query", r::QueryValue { handle: 7, name: String::new(), max_data: Some(4) }.into()),
        ("reg-delete-value", r::DeleteValue { handle: 7, name: "v".into() }.into()),
        ("reg-delete-key", r::DeleteKey { handle: 7, subkey: "a".into() }.into()),
        ("reg-delete-tree", r::DeleteTree { handle: 7, subkey: String::new() }.into()),
        ("reg-enum-key", r::EnumKey { handle: 7, index: 0, max_name: Some(255) }.into()),
        (
            "reg-enum-value",
            r::EnumValue { handle: 7, index: 1, max_name: None, max_data: None }.into(),
        ),
        (
            "reg-notify",
            r::NotifyChangeKeyValue { handle: 7, watch_subtree: true, filter: 0x5 }.into(),
        ),
        ("reg-cancel", r::CancelNotify { watch: 9 }.into()),
        ("reg-info", r::QueryKeyInfo { handle: 7 }.into()),
    ]
}

/// The registry's events.
fn registry_events() -> Vec<(&'static str, appipc_wire::protocol::Event)> {
    vec![(
        "reg-changed",
        registry::KeyChanged { watch: 9, change: 4, subkey: "a\\b".into(), coalesced: false }
            .into(),
    )]
}

/// The registry's outputs.
fn registry_outputs() -> Vec<(&'static str, Vec<u8>)> {
    use registry as r;
    let value = r::RegValueInfo {
        name: "v".into(),
        value_type: 4,
        data: vec![1, 0, 0, 0].into(),
        layer: "package private hive".into(),
    };
    let info = r::RegKeyInfo {
        path: "HKEY_CURRENT_USER\\Software".into(),
        package: PFN.into(),
        writes_to: "package private hive".into(),
        subkeys: 1,
        values: 2,
    };
    vec![
        ("reg-open", output::<r::OpenKey>(&7)),
        ("reg-create", output::<r::CreateKey>(&r::CreatedKey { handle: 7, disposition: 1 })),
        ("reg-close", output::<r::CloseKey>(&())),
        ("reg-set", output::<r::SetValue>(&())),
        ("reg-query", output::<r::QueryValue>(&value)),
        ("reg-delete-value", output::<r::DeleteValue>(&())),
        ("reg-delete-key", output::<r::DeleteKey>(&())),
        ("reg-delete-tree", output::<r::DeleteTree>(&())),
        ("reg-enum-key", output::<r::EnumKey>(&"Contoso".to_owned())),
        ("reg-enum-value", output::<r::EnumValue>(&value)),
        ("reg-notify", output::<r::NotifyChangeKeyValue>(&9)),
        ("reg-cancel", output::<r::CancelNotify>(&())),
        ("reg-info", output::<r::QueryKeyInfo>(&info)),
    ]
}

/// RPC endpoints' requests.
fn rpc_requests() -> Vec<(&'static str, appipc_wire::protocol::Request)> {
    let sddl = format!("D:(A;;GA;;;OW)(A;;0x1;;;{})", pfn_sid());
    vec![
        ("rpc-register", rpc::Register { name: "contoso.device".into(), sddl: Some(sddl) }.into()),
        ("rpc-unregister", rpc::Unregister { endpoint_id: 3 }.into()),
        (
            "rpc-connect",
            rpc::Connect { name: "contoso.device".into(), server_sid: Some(pfn_sid()) }.into(),
        ),
        ("rpc-list", rpc::List {}.into()),
        ("rpc-closed", rpc::Closed { connection_id: 4 }.into()),
    ]
}

fn rpc_caller() -> rpc::RpcCaller {
    rpc::RpcCaller {
        package_family_name: PFN.into(),
        package_sid: pfn_sid(),
        capability_sids: vec![appipc_model::sid::capability_sid("internetClient").to_string()],
        app_container: true,
        user_sid: "S-1-22-1-1000".into(),
        pid: 42,
    }
}

/// RPC endpoints' events.
fn rpc_events() -> Vec<(&'static str, appipc_wire::protocol::Event)> {
    vec![(
        "rpc-incoming",
        rpc::Incoming { endpoint_id: 3, connection_id: 4, caller: rpc_caller() }.into(),
    )]
}

/// RPC endpoints' outputs.
fn rpc_outputs() -> Vec<(&'static str, Vec<u8>)> {
    let connected = rpc::RpcConnected {
        connection_id: 4,
        server_package_family_name: PFN.into(),
        server_sid: pfn_sid(),
        server_pid: 42,
    };
    let info = rpc::RpcEndpointInfo {
        name: "contoso.device".into(),
        server_package_family_name: PFN.into(),
        server_pid: 42,
        sddl: "O:S-1-22-1-1000D:(A;;GA;;;OW)".into(),
        connections: 1,
        clients: vec![rpc::RpcClientInfo {
            connection_id: 4,
            package_family_name: PFN.into(),
            app_container: true,
            pid: 0,
        }],
    };
    vec![
        ("rpc-register", output::<rpc::Register>(&3)),
        ("rpc-unregister", output::<rpc::Unregister>(&())),
        ("rpc-connect", output::<rpc::Connect>(&connected)),
        ("rpc-list", output::<rpc::List>(&vec![info])),
        ("rpc-closed", output::<rpc::Closed>(&())),
    ]
}

const CLSID: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";

/// Packaged COM's requests.
fn com_requests() -> Vec<(&'static str, appipc_wire::protocol::Request)> {
    use appipc_wire::protocol::com as c;
    vec![
        ("com-create", c::CreateInstance { clsid: format!("{{{CLSID}}}") }.into()),
        ("com-progid", c::ClsidFromProgId { prog_id: "Contoso.Speller".into() }.into()),
        ("com-register", c::RegisterClassObject { clsid: CLSID.into(), flags: 5 }.into()),
        ("com-revoke", c::RevokeClassObject { cookie: 3 }.into()),
        ("com-resume", c::ResumeClassObjects {}.into()),
        ("com-suspend", c::SuspendClassObjects {}.into()),
        ("com-count", c::ReportCount { objects: 2, locks: 1 }.into()),
        ("com-list", c::List {}.into()),
    ]
}

/// Packaged COM's events.
fn com_events() -> Vec<(&'static str, appipc_wire::protocol::Event)> {
    use appipc_wire::protocol::com as c;
    vec![(
        "com-activate",
        c::Activate { activation_id: 7, clsid: CLSID.into(), caller: rpc_caller() }.into(),
    )]
}

/// Packaged COM's outputs.
fn com_outputs() -> Vec<(&'static str, Vec<u8>)> {
    use appipc_wire::protocol::com as c;
    let activated = c::ComActivated {
        activation_id: 7,
        server_package_family_name: PFN.into(),
        server_sid: pfn_sid(),
        server_pid: 42,
        server_app_id: "Server".into(),
    };
    let list = c::ComList {
        classes: vec![c::ComClassInfo {
            clsid: CLSID.into(),
            display_name: "Speller".into(),
            prog_ids: vec!["Contoso.Speller".into(), "Contoso.Speller.1".into()],
            auto_convert_to: String::new(),
            package_family_name: PFN.into(),
            app_id: "Server".into(),
            executable: "bin/speller".into(),
            permission: "O:S-1-22-1-1000D:(A;;0xb;;;S-1-22-1-1000)(A;;0xb;;;AC)".into(),
        }],
        servers: vec![c::ComServerInfo {
            pid: 42,
            package_family_name: PFN.into(),
            app_id: "Server".into(),
            classes: vec![c::ComRegistration { clsid: CLSID.into(), flags: 1, available: true }],
            activations: 3,
            objects: 2,
            locks: 0,
            suspended: false,
            started_by_broker: true,
        }],
        more: 0,
    };
    vec![
        ("com-create", output::<c::CreateInstance>(&activated)),
        ("com-progid", output::<c::ClsidFromProgId>(&CLSID.to_owned())),
        ("com-register", output::<c::RegisterClassObject>(&3)),
        ("com-revoke", output::<c::RevokeClassObject>(&())),
        ("com-resume", output::<c::ResumeClassObjects>(&())),
        ("com-suspend", output::<c::SuspendClassObjects>(&())),
        ("com-count", output::<c::ReportCount>(&())),
        ("com-list", output::<c::List>(&list)),
    ]
}

/// Loopback isolation's requests (it has no events).
fn loopback_requests() -> Vec<(&'static str, appipc_wire::protocol::Request)> {
    use loopback as l;
    let pfn = || PFN.to_owned();
    vec![
        (
            "loopback-why",
            l::Why {
                client: pfn(),
                server: "Fabrikam.B_8tkjkmve8mrwr".into(),
                port: Some(8080),
                client_full_trust: None,
            }
            .into(),
        ),
        (
            "loopback-why-unpackaged",
            l::Why { client: String::new(), server: pfn(), port: None, client_full_trust: None }
                .into(),
        ),
        (
            "loopback-why-full-trust",
            l::Why {
                client: pfn(),
                server: "Fabrikam.B_8tkjkmve8mrwr".into(),
                port: Some(8080),
                client_full_trust: Some(true),
            }
            .into(),
        ),
        ("loopback-add", l::AddExemption { package_family_name: pfn() }.into()),
        ("loopback-remove", l::RemoveExemption { package_family_name: pfn() }.into()),
        ("loopback-list", l::ListExemptions {}.into()),
        ("loopback-clear", l::ClearExemptions {}.into()),
        ("loopback-inbound-ports", l::InboundPorts { package_family_name: pfn() }.into()),
        (
            "loopback-inbound-connect",
            l::InboundConnect { package_family_name: pfn(), port: 8080 }.into(),
        ),
    ]
}

/// Loopback isolation's outputs.
fn loopback_outputs() -> Vec<(&'static str, Vec<u8>)> {
    use loopback as l;
    let verdict = l::LoopbackVerdict {
        allowed: false,
        rule: "the server does not allow loopback from the client".into(),
        remedy: Some("declare the client in LoopbackAccessRules".into()),
        manifest: Some(format!("{PFN}: appipc.toml:3:1 (loopback)")),
    };
    vec![
        ("loopback-why", output::<l::Why>(&verdict)),
        ("loopback-add", output::<l::AddExemption>(&())),
        ("loopback-remove", output::<l::RemoveExemption>(&true)),
        ("loopback-list", output::<l::ListExemptions>(&vec![PFN.to_owned()])),
        ("loopback-clear", output::<l::ClearExemptions>(&2)),
        ("loopback-inbound-ports", output::<l::InboundPorts>(&vec![80, 8080])),
        ("loopback-inbound-connect", output::<l::InboundConnect>(&())),
    ]
}

fn regfile_seeds() -> Vec<Vec<u8>> {
    use appipc_model::registry::{KeyPath, RegTree, RegValue, regfile};
    let mut t = RegTree::new();
    let k = KeyPath::parse("HKEY_CURRENT_USER\\Software\\Contoso\\Shared").expect("valid");
    for (i, v) in [
        RegValue::none(),
        RegValue::sz("a \"quoted\" C:\\path"),
        RegValue::expand_sz("%LOCALAPPDATA%\\x"),
        RegValue::binary(&[0xde; 90]),
        RegValue::dword(42),
        RegValue::dword_big_endian(42),
        RegValue::link("\\Registry\\Machine"),
        RegValue::multi_sz(&["one", "two"]),
        RegValue::qword(u64::MAX),
    ]
    .into_iter()
    .enumerate()
    {
        t.set(&k, &format!("v{i}"), v);
    }
    t.set(&KeyPath::parse("HKLM\\Software\\Fabrikam").expect("valid"), "", RegValue::sz("d"));
    let v5 = regfile::write(&t.to_entries());
    vec![
        regfile::to_utf16le(&v5),
        v5.clone().into_bytes(),
        b"REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\A]\r\n\"P\"=hex(2):25,41,25,00\r\n\
          \"S\"=\"caf\xe9\"\r\n@=dword:1\r\n"
            .to_vec(),
        b"Windows Registry Editor Version 5.00\n\n[-HKEY_CURRENT_USER\\Old]\n\n\
          [HKEY_CURRENT_USER\\New]\n\"gone\"=-\n@=-\n; comment\n\"b\"=hex:01,\\\n  02,03\n"
            .to_vec(),
        b"Windows Registry Editor Version 5.00\n[HKCU\\a\\\\b]\n".to_vec(),
        b"REGEDIT4\n\"v\"=\"before any key\"\n".to_vec(),
        b"\xff\xfe[\x00".to_vec(),
    ]
}

/// Every request, output and event of the protocol (`MECHANISMS`) has a seed: a new one
/// without a seed fails here, naming it.
fn check_complete() {
    let requests: HashSet<String> = requests().iter().map(|(_, r)| r.name()).collect();
    let outputs: HashSet<(u8, u8)> = outputs().iter().map(|(_, b)| (b[0], b[1])).collect();
    let events: HashSet<String> = events().iter().map(|(_, e)| e.name()).collect();
    let mut missing = Vec::new();
    for (index, m) in MECHANISMS {
        let module = m.module.rsplit("::").next().expect("a module path");
        for r in m.requests {
            let name = format!("{module}.{}", r.name);
            if !requests.contains(&name) {
                missing.push(format!("frame: the request {name}"));
            }
            let key = (u8::try_from(*index).expect("few"), u8::try_from(r.index).expect("few"));
            if !outputs.contains(&key) {
                missing.push(format!("reply_output: the output of {name}"));
            }
        }
        for e in m.events {
            let name = format!("{module}.{}", e.name);
            if !events.contains(&name) {
                missing.push(format!("frame: the event {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "no seed for:\n{}", missing.join("\n"));
}

fn main() {
    check_complete();
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz.parent().expect("fuzz/ is in the repository");
    let mut seeds = Seeds { root: fuzz.join("corpus"), written: 0 };

    // frame: every request, a reply of each kind, every event.
    for (i, (name, r)) in requests().into_iter().enumerate() {
        let id = u64::try_from(i).expect("few") + 1;
        seeds.put("frame", &format!("request-{name}"), &Frame::request(id, r).to_cbor());
    }
    for (name, e) in events() {
        seeds.put("frame", &format!("event-{name}"), &Frame::event(e).to_cbor());
    }
    let pong = broker::Pong { protocol: 2, broker_pid: 1, version: "0.1".into() };
    seeds.put("frame", "reply-ok", &Frame::reply(5, Reply::Ok(Raw::encode(&pong))).to_cbor());
    let err = ErrorReply {
        kind: ErrorKind::AccessDenied,
        code: WindowsCode::Win32(5),
        message: "denied".into(),
    };
    seeds.put("frame", "reply-err", &Frame::reply(6, Reply::Err(err)).to_cbor());
    let status = ErrorReply {
        kind: ErrorKind::NotFound,
        code: WindowsCode::Status(1),
        message: "no app".into(),
    };
    seeds.put("frame", "reply-status", &Frame::reply(7, Reply::Err(status)).to_cbor());

    // reply_output: the output of every request kind.
    for (name, bytes) in outputs() {
        seeds.put("reply_output", name, &bytes);
    }

    // channel_frame.
    for (name, f) in channel_frames() {
        seeds.put("channel_frame", name, &f.to_cbor());
    }

    // valueset: a set of many kinds (the kind-NN seeds hold one of each kind).
    seeds.put("valueset", "sample", &sample_set().to_cbor());

    // manifest: the example packages and the test manifest that uses every key.
    for dir in ["contoso-bridge", "contoso-services", "fabrikam-client", "fabrikam-tools", "hello"]
    {
        copy_file(
            &mut seeds,
            "manifest",
            dir,
            &repo.join("examples").join(dir).join("appipc.toml"),
        );
    }
    copy_file(
        &mut seeds,
        "manifest",
        "complete",
        &repo.join("crates/appipc-model/tests/manifests/complete.toml"),
    );

    // sddl: desired access, caller selector, SDDL text (the tests' descriptors).
    let sddl = [
        (0x1000_0000u32, 2u8, "D:(A;;GA;;;AC)".to_owned()),
        (0x4000_0000, 3, "D:(A;;GA;;;AC)(D;;GW;;;AC)".to_owned()),
        (0x0200_0000, 3, "D:(A;;GA;;;AC)(D;;GW;;;S-1-15-3-1)(A;;0x1f0003;;;S-1-15-2-1)".to_owned()),
        (0x0010_0002, 2, format!("D:(A;;0x100002;;;PFN:{PFN})")),
        (
            0x8000_0000,
            3,
            "D:(A;;GR;;;PFN:Fabrikam.B_8tkjkmve8mrwr)(A;;GR;;;CAP:internetClient)".to_owned(),
        ),
        (0x8000_0000, 2, "D:(A;;GR;;;CAP:Contoso.custom_8wekyb3d8bbwe)".to_owned()),
        (0xc000_0000, 2, format!("D:(A;;GRGW;;;{})", pfn_sid())),
        (0x6, 2, format!("D:(D;;0x2;;;AC)(A;;0x6;;;{})", pfn_sid())),
        (
            0x0212_0089,
            3,
            "D:P(A;;FRFW;;;WD)(A;;FA;;;SY)(A;;RCSDWDWO;;;BA)(D;;CCDCLC;;;AU)".to_owned(),
        ),
        (0x1, 0, "D:(A;;0x1;;;S-1-0x0000000f-2-1)".to_owned()),
        (0x1, 1, "D:(X;;GA;;;AC)".to_owned()),
    ];
    for (i, (mask, who, text)) in sddl.iter().enumerate() {
        let mut bytes = mask.to_le_bytes().to_vec();
        bytes.push(*who);
        bytes.extend_from_slice(text.as_bytes());
        seeds.put("sddl", &format!("{i:02}"), &bytes);
    }

    // loopback_channel: a supervisor's asks (connect, bind; v4 and v6 addresses) and the
    // broker's answers, each behind the byte that picks its decoder (even: ask, odd: answer).
    {
        use appipc_sys::loopback::{Answer, Ask, AskOp, MAX_ADDR_LEN, loopback_addresses};
        let mut n = 0;
        for (op, cloexec) in [(AskOp::Connect, false), (AskOp::Bind, true)] {
            for (_, a) in loopback_addresses(8080) {
                let mut addr = [0u8; MAX_ADDR_LEN];
                addr[..a.len()].copy_from_slice(&a);
                let len = u8::try_from(a.len()).expect("a short address");
                let ask = Ask { op, seq: 7, cloexec, addr, addr_len: len };
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(&ask.encode());
                seeds.put("loopback_channel", &format!("ask-{n:02}"), &bytes);
                n += 1;
            }
        }
        let answers = [Answer::Continue, Answer::Fail(111), Answer::Done, Answer::Install];
        for (i, a) in answers.into_iter().enumerate() {
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(&a.encode(u32::try_from(i).expect("few")));
            seeds.put("loopback_channel", &format!("answer-{i:02}"), &bytes);
        }
    }

    // regfile: .reg files of each header and encoding, every value type, and refusals.
    for (i, bytes) in regfile_seeds().iter().enumerate() {
        seeds.put("regfile", &format!("{i:02}"), bytes);
    }

    // uri: protocol activation URIs, accepted and refused.
    let uris = [
        "contoso-pick:photo?size=large#top",
        "Contoso-Pick:",
        "a+b.c-d:ünï",
        "no-colon",
        ":empty-scheme",
        "1bad:x",
        "ok:\u{1b}[2J",
        "ok:a\0b",
        "ok:a b",
    ];
    for (i, u) in uris.iter().enumerate() {
        seeds.put("uri", &format!("{i:02}"), u.as_bytes());
    }

    // names: one string per seed, of every kind the target parses.
    let sid = pfn_sid();
    let in_container = format!("AppContainerNamedObjects\\{sid}\\x");
    let names = [
        PFN,
        "Microsoft.WindowsCalculator_10.1906.55.0_x64__8wekyb3d8bbwe",
        "Microsoft.VCLibs.140.00_14.0.30704.0_X86_~_8wekyb3d8bbwe",
        "Contoso.A_cvnpggrrsm18p!App",
        "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US",
        "CN=\"Contoso, Ltd\", OID.2.25.311729368913984317654407730594956997722=1",
        "1.0.65535.0",
        "arm64",
        &sid,
        "S-1-0x00000000000f-3-1024-1",
        "6b29fc40-ca47-1067-b31d-00dd010662da",
        "{6B29FC40-CA47-1067-B31D-00DD010662DA}",
        "bin/app.sh",
        "com.contoso.echo",
        "ms-settings+x",
        "Contoso.sensorAccess_8wekyb3d8bbwe",
        "64 KiB",
        "/Sync  --name \"a b\" x\\ y",
        "Local\\ev",
        "Global\\sem",
        "\\\\.\\pipe\\LOCAL\\a\\b",
        &in_container,
    ];
    for (i, n) in names.iter().enumerate() {
        seeds.put("names", &format!("{i:02}"), n.as_bytes());
    }

    // package_file: a signed package, its block map and its public key file.
    let key = signing_key();
    let manifest = "[package]\nname = \"Contoso.Hello\"\npublisher = \"CN=Contoso Ltd, O=Contoso, \
                    L=Zurich, C=CH\"\nversion = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\n\
                    executable = \"bin/app\"\n";
    let mut w = PackageWriter::new(manifest);
    w.add_bytes("bin/app".parse().expect("a path"), FileMode::Executable, b"#!/bin/sh\necho hi\n");
    w.add_bytes("data/readme.txt".parse().expect("a path"), FileMode::Regular, b"hello\n");
    let mut file = Vec::new();
    let map = w.write(&key, &mut file).expect("write a package");
    seeds.put("package_file", "signed-package", &file);
    seeds.put("package_file", "block-map", &map.to_bytes());
    seeds.put("package_file", "public-key", key.public_key().to_file_text().as_bytes());

    // package_signed: the same package, and one with a GNU long name, an empty file and a
    // file that fills its last block exactly.
    seeds.put("package_signed", "signed-package", &file);
    let mut w = PackageWriter::new(manifest);
    w.add_bytes("bin/app".parse().expect("a path"), FileMode::Executable, b"#!/bin/sh\necho hi\n");
    let long = format!("data/{}/file.txt", "long-folder-name".repeat(8));
    w.add_bytes(long.parse().expect("a path"), FileMode::Regular, b"x".repeat(512));
    w.add_bytes("data/empty".parse().expect("a path"), FileMode::Regular, b"");
    let mut file = Vec::new();
    w.write(&key, &mut file).expect("write a package");
    seeds.put("package_signed", "long-name", &file);

    // json_valueset: the documented example, plain input, and the sample set printed typed.
    let typed = appipc_wire::json::value_set_to_json(&sample_set()).to_string();
    let json = [
        r#"{"count": {"Int16": 3}, "id": {"Guid": "6b29fc40-ca47-1067-b31d-00dd010662da"},
 "pos": {"Point": [1.0, 2.0]}, "when": {"DateTime": 132000000000000000},
 "raw": {"UInt8Array": [0, 255]}, "nested": {"ValueSet": {"ok": {"Boolean": true}}},
 "nothing": {"Empty": null}}"#,
        r#"{"s":"x","b":true,"n":null,"i":5,"big":5000000000,"d":1.5,"o":{"a":1},
 "u16":{"UInt16":7},"arr":[1,2],"strs":["a"],"vs":{"ValueSet":{"String":1}}}"#,
        r#"{"f": {"SingleArray": [1.5, "NaN", "-Infinity"]}, "r": {"RectArray": [[0, 0, 1, 1]]},
 "c": {"Char16Array": [55296, 65]}, "t": {"TimeSpan": -1}, "u": {"UInt64": 18446744073709551615}}"#,
        &typed,
    ];
    for (i, j) in json.iter().enumerate() {
        seeds.put("json_valueset", &format!("{i:02}"), j.as_bytes());
    }

    println!("wrote {} seeds under {}", seeds.written, seeds.root.display());
}
