//! From the spanned TOML document to a validated [`Manifest`], in one pass with every check.

use std::collections::HashMap;

use toml::de::DeTable;

use crate::identity::{AppId, PackageFamilyName, PackageName, ProcessorArchitecture, Publisher};

use super::capabilities::{CLASSIC_APP_COMPAT, CLASSIC_APP_COMPAT_ELEVATED, CapabilityKind};
use super::com::{
    ComClass, ComCompatMode, ComInterface, ComScope, ComServer, ExeServer, Interface, ProgId,
    ProgIdTarget, ProxyStub, TypeLib, TypeLibRef, TypeLibVersion,
};
use super::error::{Location, ManifestError};
use super::names::{
    self, ARGUMENT_RULE, AppServiceName, CustomCapabilityName, Guid, PackagePath, ProtocolName,
};
use super::reader::{Item, Problem, Result, Span, Str, Table};
use super::{
    AppService, Application, Capabilities, Direction, FullTrustProcess, Identity, LoopbackRule,
    MAX_APPLICATIONS, Manifest, ParameterGroup, Properties, Protocol, RUN_FULL_TRUST,
    ReturnResults, TrustLevel, UNVIRTUALIZED_RESOURCES, Virtualization,
};

/// A file the manifest names, to be checked by `load`.
#[derive(Debug, Clone)]
pub(super) struct Reference {
    pub key: String,
    pub span: Span,
    pub path: PackagePath,
    pub executable: bool,
}

/// The manifest with the file references found on the way, or every problem found.
pub(super) struct Parsed {
    /// `None` when there are problems.
    pub manifest: Option<Manifest>,
    pub references: Vec<Reference>,
    /// Every problem, in document order.
    pub problems: Vec<ManifestError>,
}

pub(super) fn parse(text: &str) -> Parsed {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let problem = ManifestError::Syntax {
                location: Location::of_offset(text, e.span().map_or(0, |s| s.start)),
                message: e.message().trim().to_owned(),
            };
            return Parsed { manifest: None, references: Vec::new(), problems: vec![problem] };
        }
    };
    let mut b = Builder::default();
    let manifest = b.manifest(&Table::root(&doc));
    if let Err(p) = manifest.as_ref() {
        b.record(Problem { span: p.span.clone(), key: p.key.clone(), kind: clone_kind(&p.kind) });
    }
    let mut problems: Vec<ManifestError> =
        b.problems.into_iter().map(|p| p.into_error(text)).collect();
    problems.sort_by_key(|e| e.location());
    let manifest = if problems.is_empty() { manifest.ok() } else { None };
    Parsed { manifest, references: b.references, problems }
}

fn clone_kind(k: &super::reader::ProblemKind) -> super::reader::ProblemKind {
    use super::reader::ProblemKind as K;
    match k {
        K::Unknown { expected } => K::Unknown { expected },
        K::Missing => K::Missing,
        K::WrongType { expected, found } => K::WrongType { expected, found },
        K::Invalid { value, rule } => K::Invalid { value: value.clone(), rule: rule.clone() },
        K::Reported => K::Reported,
    }
}

const ROOT_KEYS: &[&str] = &[
    "package",
    "capabilities",
    "application",
    "publisher-cache",
    "loopback-rule",
    "com-interface",
    "virtualization",
];
const PACKAGE_KEYS: &[&str] = &[
    "name",
    "publisher",
    "version",
    "architecture",
    "resource-id",
    "display-name",
    "publisher-display-name",
    "description",
    "logo",
];
const CAPABILITY_KEYS: &[&str] =
    &["general", "restricted", "device", "custom", "custom-capability-descriptor"];
const APPLICATION_KEYS: &[&str] = &[
    "id",
    "executable",
    "arguments",
    "trust-level",
    "display-name",
    "description",
    "app-service",
    "full-trust-process",
    "protocol",
    "com-server",
];
const APP_SERVICE_KEYS: &[&str] = &[
    "name",
    "entry-point",
    "supports-multiple-instances",
    "supports-remote-systems",
    "max-message-size",
    "server-name",
    "allow-unpackaged-callers",
];
const FULL_TRUST_KEYS: &[&str] = &["executable", "parameter-group", "tie-lifetime-to-caller"];
const PARAMETER_GROUP_KEYS: &[&str] = &["id", "parameters"];
const PROTOCOL_KEYS: &[&str] = &["name", "return-results", "display-name"];
const COM_SERVER_KEYS: &[&str] = &["scope", "compat-mode", "exe-server", "prog-id"];
const EXE_SERVER_KEYS: &[&str] =
    &["executable", "arguments", "display-name", "launch-and-activation-permission", "class"];
const CLASS_KEYS: &[&str] =
    &["id", "display-name", "prog-id", "version-independent-prog-id", "auto-convert-to"];
const PROG_ID_KEYS: &[&str] = &["id", "clsid", "current-version"];
const PUBLISHER_CACHE_KEYS: &[&str] = &["folders"];
const LOOPBACK_KEYS: &[&str] = &["direction", "package-family-name"];
const COM_INTERFACE_KEYS: &[&str] = &["proxy-stub", "interface", "type-lib"];
const PROXY_STUB_KEYS: &[&str] = &["id", "path", "display-name"];
const INTERFACE_KEYS: &[&str] = &[
    "id",
    "proxy-stub-clsid",
    "use-universal-marshaler",
    "type-lib",
    "synchronous-interface",
    "asynchronous-interface",
];
const TYPE_LIB_REF_KEYS: &[&str] = &["id", "version-number"];
const TYPE_LIB_KEYS: &[&str] = &["id", "version"];
const TYPE_LIB_VERSION_KEYS: &[&str] = &["number", "path"];
const VIRTUALIZATION_KEYS: &[&str] = &[
    "registry-write-virtualization",
    "file-system-write-virtualization",
    "excluded-keys",
    "excluded-directories",
];

/// Names already used in the package, case-insensitively, with the key that used them first.
#[derive(Default)]
struct Seen(HashMap<String, String>);

impl Seen {
    fn check(&mut self, name: &str, span: &Span, key: &str, what: &str) -> Result<()> {
        match self.0.get(&name.to_lowercase()) {
            Some(first) => Err(Problem {
                span: span.clone(),
                key: key.to_owned(),
                kind: super::reader::ProblemKind::Invalid {
                    value: Some(name.to_owned()),
                    rule: format!(
                        "{what} must be unique in the package (compared case-insensitively); \
                         already used by {first}"
                    ),
                },
            }),
            None => {
                self.0.insert(name.to_lowercase(), key.to_owned());
                Ok(())
            }
        }
    }
}

/// Refuses more than `max` (or fewer than `min`) elements of the array `key` of `table`.
fn check_count<T>(
    table: &Table<'_, '_>,
    key: &str,
    items: &[T],
    span_of: impl Fn(&T) -> Span,
    min: usize,
    max: usize,
    what: &str,
) -> Result<()> {
    if items.len() > max {
        return Err(Problem::rule(
            span_of(&items[max]),
            format!("{}[{max}]", table.child_key(key)),
            format!("{what}: {min} to {max} allowed, found {}", items.len()),
        ));
    }
    if items.len() < min {
        return Err(Problem::rule(
            table.span_of(key),
            table.child_key(key),
            format!("{what}: {min} to {max} allowed, found {}", items.len()),
        ));
    }
    Ok(())
}

fn display_text(s: Option<Str<'_>>, max: usize) -> Result<Option<String>> {
    s.map(|s| s.checked(|t| names::check_display_text(t, max))).transpose()
}

fn arguments(table: &Table<'_, '_>, key: &str) -> Result<Vec<String>> {
    table
        .strings(key)?
        .iter()
        .map(|a| if a.text.contains('\0') { Err(a.invalid(ARGUMENT_RULE)) } else { Ok(a.owned()) })
        .collect()
}

fn guid(s: &Str<'_>) -> Result<Guid> {
    s.parse()
}

fn opt_guid(table: &Table<'_, '_>, key: &str) -> Result<Option<Guid>> {
    table.opt_str(key)?.map(|s| guid(&s)).transpose()
}

fn enum_value<T: Copy>(s: &Str<'_>, options: &[(&str, T)]) -> Result<T> {
    if let Some((_, v)) = options.iter().find(|(name, _)| *name == s.text) {
        return Ok(*v);
    }
    let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
    let mut rule = format!("must be one of {}", names.join(", "));
    if let Some((name, _)) = options.iter().find(|(n, _)| n.eq_ignore_ascii_case(s.text)) {
        rule.push_str(&format!(" (values are case-sensitive: write {name:?})"));
    }
    Err(s.invalid(rule))
}

/// `b.keep(value)`, with the value computed before `b` is borrowed (it may borrow `b` itself).
macro_rules! keep {
    ($b:expr, $value:expr $(,)?) => {{
        let value = $value;
        $b.keep(value)
    }};
}

#[derive(Default)]
struct Builder {
    /// Every problem found so far: checking goes on after one, so that one run reports them
    /// all.
    problems: Vec<Problem>,
    references: Vec<Reference>,
    capabilities: Capabilities,
    app_services: Seen,
    protocols: Seen,
    clsids: Seen,
    prog_ids: Seen,
    iids: Seen,
    type_libs: Seen,
}

impl Builder {
    /// Records a problem (unless it stands for recorded ones).
    fn record(&mut self, p: Problem) {
        if !p.is_reported() {
            self.problems.push(p);
        }
    }

    /// The value, or `None` with its problem recorded.
    fn keep<T>(&mut self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(p) => {
                self.record(p);
                None
            }
        }
    }

    /// Records every key of `t` not in `allowed` (unknown keys do not stop the checking).
    fn allow(&mut self, t: &Table<'_, '_>, allowed: &'static [&'static str]) {
        for p in t.unknown_keys(allowed) {
            self.record(p);
        }
    }

    /// Each element checked on its own: the values of those without problems, or `Err` when
    /// any had one (all recorded).
    fn each<I, T>(
        &mut self,
        items: &[I],
        mut f: impl FnMut(&mut Self, &I) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(items.len());
        let mut failed = false;
        for i in items {
            match f(self, i) {
                Ok(v) => out.push(v),
                Err(p) => {
                    self.record(p);
                    failed = true;
                }
            }
        }
        if failed { Err(Problem::reported()) } else { Ok(out) }
    }

    fn reference(&mut self, key: String, span: Span, path: PackagePath, executable: bool) {
        self.references.push(Reference { key, span, path, executable });
    }

    fn path(&mut self, s: &Str<'_>, executable: bool) -> Result<PackagePath> {
        let path: PackagePath = s.parse()?;
        self.reference(s.key.clone(), s.span.clone(), path.clone(), executable);
        Ok(path)
    }

    fn require_capability(&self, name: &str, span: Span, key: String, why: &str) -> Result<()> {
        if self.capabilities.has(name) {
            Ok(())
        } else {
            let list = if name.contains('_') { "custom" } else { "restricted" };
            Err(Problem::rule(
                span,
                key,
                format!("{why} requires the capability {name} (add it to capabilities.{list})"),
            ))
        }
    }

    fn manifest(&mut self, root: &Table<'_, '_>) -> Result<Manifest> {
        self.allow(root, ROOT_KEYS);
        let package = root.required("package").and_then(|p| p.as_table());
        let package = keep!(self, package).and_then(|p| keep!(self, self.package(&p)));

        if let Some(caps) = keep!(self, root.opt_table("capabilities")).flatten() {
            // What is valid in the section counts, so that later checks do not report a
            // capability as missing because a neighbour of it was misspelt.
            let caps = self.capabilities(&caps);
            self.capabilities = caps;
        }

        let applications = keep!(self, self.applications(root));

        let publisher_cache_folders = match keep!(self, root.opt_table("publisher-cache")) {
            Some(Some(t)) => keep!(self, self.publisher_cache(&t)),
            Some(None) => Some(Vec::new()),
            None => None,
        };

        let loopback_rules = keep!(
            self,
            root.tables("loopback-rule").and_then(|rules| {
                check_count(
                    root,
                    "loopback-rule",
                    &rules,
                    |t| t.span.clone(),
                    0,
                    1000,
                    "loopback rules",
                )?;
                self.each(&rules, |b, t| loopback_rule(b, t))
            })
        );

        let com_interfaces = keep!(
            self,
            root.tables("com-interface").and_then(|t| self.each(&t, |b, t| b.com_interface(t))),
        );

        let virtualization = match keep!(self, root.opt_table("virtualization")) {
            Some(Some(t)) => keep!(self, self.virtualization(&t)),
            Some(None) => Some(Virtualization::default()),
            None => None,
        };

        let (
            Some((identity, properties)),
            Some(applications),
            Some(publisher_cache_folders),
            Some(loopback_rules),
            Some(com_interfaces),
            Some(virtualization),
        ) = (
            package,
            applications,
            publisher_cache_folders,
            loopback_rules,
            com_interfaces,
            virtualization,
        )
        else {
            return Err(Problem::reported());
        };
        Ok(Manifest {
            identity,
            properties,
            capabilities: std::mem::take(&mut self.capabilities),
            applications,
            publisher_cache_folders,
            loopback_rules,
            com_interfaces,
            virtualization,
        })
    }

    /// `[[application]]`: 1 to 100, each checked, their ids unique.
    fn applications(&mut self, root: &Table<'_, '_>) -> Result<Vec<Application>> {
        let apps = root.tables("application")?;
        if root.get("application").is_none() {
            return Err(root.missing("application"));
        }
        check_count(
            root,
            "application",
            &apps,
            |t| t.span.clone(),
            1,
            MAX_APPLICATIONS,
            "applications",
        )?;
        let mut app_ids = Seen::default();
        self.each(&apps, |b, t| {
            let app = b.application(t)?;
            let id_key = t.child_key("id");
            app_ids.check(
                app.id.as_str(),
                &t.required("id")?.span,
                &id_key,
                "an application id",
            )?;
            Ok(app)
        })
    }

    fn package(&mut self, t: &Table<'_, '_>) -> Result<(Identity, Properties)> {
        self.allow(t, PACKAGE_KEYS);
        let name_s = keep!(self, t.req_str("name"));
        let name: Option<PackageName> = name_s.as_ref().and_then(|s| keep!(self, s.parse()));
        let publisher_s = keep!(self, t.req_str("publisher"));
        if let Some(p) = &publisher_s {
            keep!(self, p.parse::<Publisher, _>());
        }
        let version = keep!(self, t.req_str("version").and_then(|s| s.parse()));
        let architecture = keep!(
            self,
            match t.opt_str("architecture") {
                Ok(Some(s)) => s.parse(),
                Ok(None) => Ok(ProcessorArchitecture::Neutral),
                Err(e) => Err(e),
            }
        );
        let resource_id =
            keep!(self, t.opt_str("resource-id").and_then(|s| s.map(|s| s.parse()).transpose()));
        let display_name =
            keep!(self, t.opt_str("display-name").and_then(|s| display_text(s, 256)));
        let publisher_display_name =
            keep!(self, t.opt_str("publisher-display-name").and_then(|s| display_text(s, 256)));
        let description = keep!(self, t.opt_str("description").and_then(|s| display_text(s, 2048)));
        let logo = match keep!(self, t.opt_str("logo")) {
            Some(Some(s)) => keep!(self, self.path(&s, false)).map(Some),
            Some(None) => Some(None),
            None => None,
        };
        let (
            Some(name),
            Some(publisher_s),
            Some(version),
            Some(architecture),
            Some(resource_id),
            Some(display_name),
            Some(publisher_display_name),
            Some(description),
            Some(logo),
        ) = (
            name,
            publisher_s,
            version,
            architecture,
            resource_id,
            display_name,
            publisher_display_name,
            description,
            logo,
        )
        else {
            return Err(Problem::reported());
        };
        let display_name = display_name.unwrap_or_else(|| name.to_string());
        let publisher_display_name = publisher_display_name.unwrap_or_else(|| {
            names::common_name(publisher_s.text).unwrap_or_else(|| publisher_s.owned())
        });
        let identity =
            Identity { name, publisher: publisher_s.owned(), version, architecture, resource_id };
        Ok((identity, Properties { display_name, publisher_display_name, description, logo }))
    }

    /// The valid capabilities of the section; the problems of the others are recorded.
    fn capabilities(&mut self, t: &Table<'_, '_>) -> Capabilities {
        self.allow(t, CAPABILITY_KEYS);
        let mut seen = Seen::default();
        let mut caps = Capabilities::default();
        for kind in CapabilityKind::all() {
            let mut list = Vec::new();
            for s in keep!(self, t.strings(kind.key())).unwrap_or_default() {
                let ok = check_known_capability(&s, kind)
                    .and_then(|()| seen.check(s.text, &s.span, &s.key, "a capability"));
                if keep!(self, ok).is_some() {
                    list.push(s.owned());
                }
            }
            match kind {
                CapabilityKind::General => caps.general = list,
                CapabilityKind::Restricted => caps.restricted = list,
                CapabilityKind::Device => caps.device = list,
            }
        }
        for s in keep!(self, t.strings("custom")).unwrap_or_default() {
            let name = s.parse::<CustomCapabilityName, _>().and_then(|n| {
                seen.check(s.text, &s.span, &s.key, "a capability")?;
                Ok(n)
            });
            if let Some(n) = keep!(self, name) {
                caps.custom.push(n);
            }
        }
        let mut seen_paths = Seen::default();
        for s in
            keep!(self, t.string_or_strings("custom-capability-descriptor")).unwrap_or_default()
        {
            let path = self.path(&s, false).and_then(|p| {
                seen_paths.check(s.text, &s.span, &s.key, "a custom capability descriptor")?;
                Ok(p)
            });
            if let Some(p) = keep!(self, path) {
                caps.custom_capability_descriptors.push(p);
            }
        }
        caps
    }

    fn application(&mut self, t: &Table<'_, '_>) -> Result<Application> {
        self.allow(t, APPLICATION_KEYS);
        let id: Option<AppId> = keep!(self, t.req_str("id").and_then(|s| s.parse()));
        let executable = match keep!(self, t.req_str("executable")) {
            Some(s) => keep!(self, self.path(&s, true)),
            None => None,
        };
        let arguments = keep!(self, arguments(t, "arguments"));
        let trust_level = match keep!(self, t.opt_str("trust-level")) {
            Some(Some(s)) => keep!(self, self.trust_level(&s)),
            Some(None) => Some(TrustLevel::AppContainer),
            None => None,
        };
        let display_name =
            keep!(self, t.opt_str("display-name").and_then(|s| display_text(s, 256)));
        let description = keep!(self, t.opt_str("description").and_then(|s| display_text(s, 2048)));

        let app_services = keep!(
            self,
            t.tables("app-service").and_then(|s| self.each(&s, |b, s| b.app_service(s))),
        );

        let full_trust_processes = keep!(
            self,
            t.tables("full-trust-process").and_then(|ftp| {
                if ftp.len() > 1 {
                    return Err(Problem::rule(
                        ftp[1].span.clone(),
                        ftp[1].key.clone(),
                        "an application declares at most one full-trust process (the launcher \
                     starts the one of the application it names)",
                    ));
                }
                let exe = executable.clone();
                self.each(&ftp, |b, f| b.full_trust_process(f, exe.as_ref()))
            })
        );

        let protocols =
            keep!(self, t.tables("protocol").and_then(|p| self.each(&p, |b, p| b.protocol(p))));
        let com_servers =
            keep!(self, t.tables("com-server").and_then(|c| self.each(&c, |b, c| b.com_server(c))));

        let (
            Some(id),
            Some(executable),
            Some(arguments),
            Some(trust_level),
            Some(display_name),
            Some(description),
            Some(app_services),
            Some(full_trust_processes),
            Some(protocols),
            Some(com_servers),
        ) = (
            id,
            executable,
            arguments,
            trust_level,
            display_name,
            description,
            app_services,
            full_trust_processes,
            protocols,
            com_servers,
        )
        else {
            return Err(Problem::reported());
        };
        Ok(Application {
            id,
            executable,
            arguments,
            trust_level,
            display_name,
            description,
            app_services,
            full_trust_processes,
            protocols,
            com_servers,
        })
    }

    fn trust_level(&mut self, s: &Str<'_>) -> Result<TrustLevel> {
        let level = enum_value(
            s,
            &[("appContainer", TrustLevel::AppContainer), ("mediumIL", TrustLevel::MediumIL)],
        )?;
        if level == TrustLevel::MediumIL {
            self.require_capability(
                RUN_FULL_TRUST,
                s.span.clone(),
                s.key.clone(),
                "trust-level \"mediumIL\"",
            )?;
        }
        Ok(level)
    }

    fn app_service(&mut self, t: &Table<'_, '_>) -> Result<AppService> {
        self.allow(t, APP_SERVICE_KEYS);
        let name_s = t.req_str("name")?;
        let name: AppServiceName = name_s.parse()?;
        self.app_services.check(name_s.text, &name_s.span, &name_s.key, "an app service name")?;
        let entry_point = t.opt_str("entry-point")?.map(|s| self.path(&s, true)).transpose()?;
        let max_message_size = t.get("max-message-size").map(|v| message_size(&v)).transpose()?;
        let server_name =
            t.opt_str("server-name")?.map(|s| s.checked(names::check_server_name)).transpose()?;
        Ok(AppService {
            name,
            entry_point,
            supports_multiple_instances: t.bool_or("supports-multiple-instances", false)?,
            supports_remote_systems: t.bool_or("supports-remote-systems", false)?,
            max_message_size,
            server_name,
            allow_unpackaged_callers: t.bool_or("allow-unpackaged-callers", true)?,
        })
    }

    fn full_trust_process(
        &mut self,
        t: &Table<'_, '_>,
        app_executable: Option<&PackagePath>,
    ) -> Result<FullTrustProcess> {
        self.allow(t, FULL_TRUST_KEYS);
        self.require_capability(
            RUN_FULL_TRUST,
            t.span.clone(),
            t.key.clone(),
            "a full-trust process",
        )?;
        let executable = match t.opt_str("executable")? {
            Some(s) => self.path(&s, true)?,
            None => {
                // The application's executable, which was reported if it is invalid.
                let exe = app_executable.ok_or_else(Problem::reported)?.clone();
                self.reference(t.key.clone(), t.span.clone(), exe.clone(), true);
                exe
            }
        };
        let groups = t.tables("parameter-group")?;
        check_count(
            t,
            "parameter-group",
            &groups,
            |g| g.span.clone(),
            0,
            1000,
            "parameter groups",
        )?;
        let mut seen = Seen::default();
        let mut parameter_groups = Vec::with_capacity(groups.len());
        for g in &groups {
            self.allow(g, PARAMETER_GROUP_KEYS);
            let id = g.req_str("id")?;
            id.check(names::check_parameter_text)?;
            seen.check(id.text, &id.span, &id.key, "a parameter group id")?;
            let parameters = g.req_str("parameters")?;
            parameters.check(names::check_parameter_text)?;
            parameter_groups
                .push(ParameterGroup { id: id.owned(), parameters: parameters.owned() });
        }
        Ok(FullTrustProcess {
            executable,
            parameter_groups,
            tie_lifetime_to_caller: t.bool_or("tie-lifetime-to-caller", false)?,
        })
    }

    fn protocol(&mut self, t: &Table<'_, '_>) -> Result<Protocol> {
        self.allow(t, PROTOCOL_KEYS);
        let name_s = t.req_str("name")?;
        let name: ProtocolName = name_s.parse()?;
        self.protocols.check(name_s.text, &name_s.span, &name_s.key, "a protocol name")?;
        let return_results = match t.opt_str("return-results")? {
            Some(s) => enum_value(
                &s,
                &[
                    ("none", ReturnResults::None),
                    ("always", ReturnResults::Always),
                    ("optional", ReturnResults::Optional),
                ],
            )?,
            None => ReturnResults::None,
        };
        let display_name = display_text(t.opt_str("display-name")?, 256)?;
        Ok(Protocol { name, return_results, display_name })
    }

    fn com_server(&mut self, t: &Table<'_, '_>) -> Result<ComServer> {
        self.allow(t, COM_SERVER_KEYS);
        self.require_capability(RUN_FULL_TRUST, t.span.clone(), t.key.clone(), "a COM server")?;
        let scope = match t.opt_str("scope")? {
            Some(s) => {
                let scope =
                    enum_value(&s, &[("user", ComScope::User), ("machine", ComScope::Machine)])?;
                if scope == ComScope::Machine {
                    self.require_capability(
                        CLASSIC_APP_COMPAT_ELEVATED,
                        s.span.clone(),
                        s.key.clone(),
                        "scope \"machine\"",
                    )?;
                }
                scope
            }
            None => ComScope::User,
        };
        let compat_mode = match t.opt_str("compat-mode")? {
            Some(s) => {
                let mode = enum_value(
                    &s,
                    &[("modern", ComCompatMode::Modern), ("classic", ComCompatMode::Classic)],
                )?;
                if mode == ComCompatMode::Classic {
                    self.require_capability(
                        CLASSIC_APP_COMPAT,
                        s.span.clone(),
                        s.key.clone(),
                        "compat-mode \"classic\"",
                    )?;
                }
                mode
            }
            None => ComCompatMode::Modern,
        };

        let exe_tables = t.tables("exe-server")?;
        check_count(t, "exe-server", &exe_tables, |e| e.span.clone(), 0, 1000, "exe servers")?;
        let exe_servers = self.each(&exe_tables, |b, e| b.exe_server(e))?;

        let prog_tables = t.tables("prog-id")?;
        check_count(t, "prog-id", &prog_tables, |p| p.span.clone(), 0, 10000, "ProgIDs")?;
        let mut prog_ids = Vec::with_capacity(prog_tables.len());
        let mut targets = Vec::with_capacity(prog_tables.len());
        for p in &prog_tables {
            self.allow(p, PROG_ID_KEYS);
            let id = p.req_str("id")?;
            id.check(names::check_prog_id)?;
            self.prog_ids.check(id.text, &id.span, &id.key, "a ProgID")?;
            let target = match (p.opt_str("clsid")?, p.opt_str("current-version")?) {
                (Some(c), None) => {
                    let g = guid(&c)?;
                    if !exe_servers.iter().any(|e| e.classes.iter().any(|k| k.id == g)) {
                        return Err(c.invalid(
                            "must be the id of a class declared in the same com-server block",
                        ));
                    }
                    ProgIdTarget::Clsid(g)
                }
                (None, Some(v)) => {
                    v.check(names::check_prog_id)?;
                    targets.push(v.clone());
                    ProgIdTarget::CurrentVersion(v.owned())
                }
                _ => {
                    return Err(Problem::rule(
                        p.span.clone(),
                        p.key.clone(),
                        "a ProgID needs exactly one of clsid and current-version",
                    ));
                }
            };
            prog_ids.push(ProgId { id: id.owned(), target });
        }
        let server = ComServer { scope, compat_mode, exe_servers, prog_ids };
        let resolved = server.resolved_prog_ids();
        for v in targets {
            match resolved.get(&v.text.to_ascii_lowercase()) {
                None => {
                    return Err(v.invalid(
                        "must be the id of a ProgID declared in the same com-server block",
                    ));
                }
                Some(Some(_)) => {}
                Some(None) => {
                    return Err(
                        v.invalid("current-version links form a cycle that reaches no class")
                    );
                }
            }
        }
        Ok(server)
    }

    fn exe_server(&mut self, t: &Table<'_, '_>) -> Result<ExeServer> {
        self.allow(t, EXE_SERVER_KEYS);
        let executable = self.path(&t.req_str("executable")?, true)?;
        let arguments = arguments(t, "arguments")?;
        let display_name = display_text(t.opt_str("display-name")?, 256)?;
        let launch_and_activation_permission = t
            .opt_str("launch-and-activation-permission")?
            .map(|s| s.checked(names::check_sddl))
            .transpose()?;
        let class_tables = t.tables("class")?;
        if t.get("class").is_none() {
            return Err(t.missing("class"));
        }
        check_count(t, "class", &class_tables, |c| c.span.clone(), 1, 10000, "classes")?;
        let mut classes = Vec::with_capacity(class_tables.len());
        for c in &class_tables {
            self.allow(c, CLASS_KEYS);
            let id_s = c.req_str("id")?;
            let id = guid(&id_s)?;
            self.clsids.check(&id.to_string(), &id_s.span, &id_s.key, "a CLSID")?;
            let prog = |key: &str| -> Result<Option<String>> {
                c.opt_str(key)?.map(|s| s.checked(names::check_prog_id)).transpose()
            };
            classes.push(ComClass {
                id,
                display_name: display_text(c.opt_str("display-name")?, 256)?,
                prog_id: prog("prog-id")?,
                version_independent_prog_id: prog("version-independent-prog-id")?,
                auto_convert_to: opt_guid(c, "auto-convert-to")?,
            });
        }
        Ok(ExeServer {
            executable,
            arguments,
            display_name,
            launch_and_activation_permission,
            classes,
        })
    }

    fn publisher_cache(&mut self, t: &Table<'_, '_>) -> Result<Vec<String>> {
        self.allow(t, PUBLISHER_CACHE_KEYS);
        if t.get("folders").is_none() {
            return Err(t.missing("folders"));
        }
        let folders = t.strings("folders")?;
        check_count(t, "folders", &folders, |f| f.span.clone(), 1, 100, "publisher cache folders")?;
        let mut seen = Seen::default();
        let mut out = Vec::with_capacity(folders.len());
        for f in &folders {
            names::check_publisher_cache_folder_name(f.text).map_err(|e| f.invalid(e.rule))?;
            seen.check(f.text, &f.span, &f.key, "a publisher cache folder name")?;
            out.push(f.owned());
        }
        Ok(out)
    }

    fn com_interface(&mut self, t: &Table<'_, '_>) -> Result<ComInterface> {
        self.allow(t, COM_INTERFACE_KEYS);

        let stub_tables = t.tables("proxy-stub")?;
        check_count(t, "proxy-stub", &stub_tables, |s| s.span.clone(), 0, 1000, "proxy stubs")?;
        let mut proxy_stubs = Vec::with_capacity(stub_tables.len());
        for s in &stub_tables {
            self.allow(s, PROXY_STUB_KEYS);
            let id_s = s.req_str("id")?;
            let id = guid(&id_s)?;
            self.clsids.check(&id.to_string(), &id_s.span, &id_s.key, "a CLSID")?;
            let path = self.path(&s.req_str("path")?, false)?;
            let display_name = display_text(s.opt_str("display-name")?, 256)?;
            proxy_stubs.push(ProxyStub { id, display_name, path });
        }

        let lib_tables = t.tables("type-lib")?;
        check_count(t, "type-lib", &lib_tables, |s| s.span.clone(), 0, 1000, "type libraries")?;
        let mut type_libs = Vec::with_capacity(lib_tables.len());
        for l in &lib_tables {
            self.allow(l, TYPE_LIB_KEYS);
            let id_s = l.req_str("id")?;
            let id = guid(&id_s)?;
            self.type_libs.check(&id.to_string(), &id_s.span, &id_s.key, "a type library id")?;
            let version_tables = l.tables("version")?;
            if l.get("version").is_none() {
                return Err(l.missing("version"));
            }
            check_count(l, "version", &version_tables, |v| v.span.clone(), 1, 1000, "versions")?;
            let mut versions = Vec::with_capacity(version_tables.len());
            for v in &version_tables {
                self.allow(v, TYPE_LIB_VERSION_KEYS);
                let number = v.req_str("number")?;
                number.check(names::check_type_lib_version)?;
                let path = self.path(&v.req_str("path")?, false)?;
                versions.push(TypeLibVersion { number: number.owned(), path });
            }
            type_libs.push(TypeLib { id, versions });
        }

        let iface_tables = t.tables("interface")?;
        check_count(t, "interface", &iface_tables, |s| s.span.clone(), 0, 10000, "interfaces")?;
        let mut interfaces = Vec::with_capacity(iface_tables.len());
        let mut sync_refs: Vec<Str<'_>> = Vec::new();
        for i in &iface_tables {
            self.allow(i, INTERFACE_KEYS);
            let id_s = i.req_str("id")?;
            let id = guid(&id_s)?;
            self.iids.check(&id.to_string(), &id_s.span, &id_s.key, "an interface id")?;
            let proxy_stub_clsid = match i.opt_str("proxy-stub-clsid")? {
                Some(s) => {
                    let g = guid(&s)?;
                    if !proxy_stubs.iter().any(|p| p.id == g) {
                        return Err(s.invalid(
                            "must be the id of a proxy stub declared in the same com-interface \
                             block",
                        ));
                    }
                    Some(g)
                }
                None => None,
            };
            let universal = i.opt_bool("use-universal-marshaler")?;
            let use_universal_marshaler = universal.unwrap_or(false);
            if universal.is_some() && proxy_stub_clsid.is_some() {
                return Err(Problem::rule(
                    i.span_of("use-universal-marshaler"),
                    i.child_key("use-universal-marshaler"),
                    "proxy-stub-clsid and use-universal-marshaler are mutually exclusive",
                ));
            }
            let type_lib = match i.opt_table("type-lib")? {
                Some(r) => {
                    self.allow(&r, TYPE_LIB_REF_KEYS);
                    let id_s = r.req_str("id")?;
                    let lib_id = guid(&id_s)?;
                    let Some(lib) = type_libs.iter().find(|l| l.id == lib_id) else {
                        return Err(id_s.invalid(
                            "must be the id of a type library declared in the same \
                             com-interface block",
                        ));
                    };
                    let version_number = match r.opt_str("version-number")? {
                        Some(v) => {
                            v.check(names::check_type_lib_version)?;
                            if !lib.versions.iter().any(|lv| lv.number.eq_ignore_ascii_case(v.text))
                            {
                                return Err(v.invalid(
                                    "must be one of the versions declared for that type library",
                                ));
                            }
                            Some(v.owned())
                        }
                        None => None,
                    };
                    Some(TypeLibRef { id: lib_id, version_number })
                }
                None => None,
            };
            if use_universal_marshaler && type_lib.is_none() {
                return Err(Problem::rule(
                    i.span_of("use-universal-marshaler"),
                    i.child_key("use-universal-marshaler"),
                    "use-universal-marshaler = true requires a type-lib",
                ));
            }
            let synchronous_interface = i.opt_str("synchronous-interface")?;
            let asynchronous_interface = i.opt_str("asynchronous-interface")?;
            let sync_g = synchronous_interface.as_ref().map(guid).transpose()?;
            let async_g = asynchronous_interface.as_ref().map(guid).transpose()?;
            sync_refs.extend(synchronous_interface);
            sync_refs.extend(asynchronous_interface);
            interfaces.push(Interface {
                id,
                proxy_stub_clsid,
                use_universal_marshaler,
                type_lib,
                synchronous_interface: sync_g,
                asynchronous_interface: async_g,
            });
        }
        for r in sync_refs {
            let g = guid(&r)?;
            if !interfaces.iter().any(|i| i.id == g) {
                return Err(r.invalid(
                    "must be the id of an interface declared in the same com-interface block",
                ));
            }
        }
        Ok(ComInterface { proxy_stubs, interfaces, type_libs })
    }

    fn virtualization(&mut self, t: &Table<'_, '_>) -> Result<Virtualization> {
        self.allow(t, VIRTUALIZATION_KEYS);
        let mut v = Virtualization::default();
        for (key, slot) in [
            ("registry-write-virtualization", &mut v.registry_write_virtualization),
            ("file-system-write-virtualization", &mut v.file_system_write_virtualization),
        ] {
            if let Some(on) = t.opt_bool(key)? {
                if !on {
                    self.require_capability(
                        UNVIRTUALIZED_RESOURCES,
                        t.span_of(key),
                        t.child_key(key),
                        &format!("{key} = false"),
                    )?;
                }
                *slot = on;
            }
        }
        type Check = fn(&str) -> std::result::Result<(), &'static str>;
        let lists: [(&str, Check, &mut Vec<String>); 2] = [
            ("excluded-keys", names::check_excluded_key, &mut v.excluded_keys),
            ("excluded-directories", names::check_excluded_directory, &mut v.excluded_directories),
        ];
        for (key, check, out) in lists {
            let items = t.strings(key)?;
            check_count(t, key, &items, |s| s.span.clone(), 0, 1000, key)?;
            if !items.is_empty() {
                self.require_capability(
                    UNVIRTUALIZED_RESOURCES,
                    t.span_of(key),
                    t.child_key(key),
                    key,
                )?;
            }
            let mut seen = Seen::default();
            for s in &items {
                s.check(check)?;
                seen.check(s.text, &s.span, &s.key, "an excluded location")?;
                out.push(s.owned());
            }
        }
        Ok(v)
    }
}

fn check_known_capability(s: &Str<'_>, kind: CapabilityKind) -> Result<()> {
    let name = s.text;
    if kind.known().contains(&name) {
        return Ok(());
    }
    if kind == CapabilityKind::Device && name.parse::<Guid>().is_ok() {
        return Ok(());
    }
    if let Some(exact) = kind.known().iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return Err(s.invalid(format!("capability names are case-sensitive: write {exact:?}")));
    }
    for other in CapabilityKind::all() {
        if other != kind && other.known().contains(&name) {
            return Err(s.invalid(format!(
                "is a {} capability: declare it in capabilities.{}",
                other.key(),
                other.key()
            )));
        }
    }
    if name.contains('_') {
        return Err(
            s.invalid("is not a known capability; custom capabilities go in capabilities.custom")
        );
    }
    Err(s.invalid(format!(
        "is not a known {} capability (Windows refuses unknown names; the list is \
         appipc_model::manifest::{}_CAPABILITIES)",
        kind.key(),
        kind.key().to_uppercase()
    )))
}

fn message_size(v: &Item<'_, '_>) -> Result<u64> {
    if let Some((digits, radix)) = v.integer() {
        return u64::from_str_radix(&digits, radix)
            .ok()
            .and_then(|n| names::check_message_size(n).ok())
            .ok_or_else(|| Problem {
                span: v.span.clone(),
                key: v.key.clone(),
                kind: super::reader::ProblemKind::Invalid {
                    value: Some(digits.clone()),
                    rule: names::MESSAGE_SIZE_RULE.to_owned(),
                },
            });
    }
    match v.as_str() {
        Ok(s) => names::parse_message_size(s.text).map_err(|e| s.invalid(e.rule)),
        Err(_) => Err(v.invalid(format!("{}, found {}", names::MESSAGE_SIZE_RULE, v.type_str()))),
    }
}

fn loopback_rule(b: &mut Builder, t: &Table<'_, '_>) -> Result<LoopbackRule> {
    b.allow(t, LOOPBACK_KEYS);
    let direction =
        enum_value(&t.req_str("direction")?, &[("in", Direction::In), ("out", Direction::Out)])?;
    let pfn: PackageFamilyName = t.req_str("package-family-name")?.parse()?;
    Ok(LoopbackRule { direction, package_family_name: pfn })
}
