//! `appipc reg`: the registry, as Windows' `reg.exe` shows and changes it (`query`, `add`,
//! `delete`, `export`, `import`), in this user's global view or, with `--package`, in a
//! package's merged view (its private hive over HKCU, its `Registry.reg` over HKLM).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use appipc::Session;
use appipc::registry::{HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, RegKey, RegValue};
use appipc_model::registry::{self as model, KeyPath, RegTree, Root, ValueType, regfile};
use clap::{Args, Subcommand};

use crate::exit::{Class, fail};
use crate::{style, target};

/// Which view: the global one, or a package's.
#[derive(Debug, Args)]
pub(crate) struct ViewArg {
    /// Look at (and change) the package's merged view, as its full-trust processes see it:
    /// its private hive over HKEY_CURRENT_USER (an app container of it sees the private hive
    /// only), its Registry.reg over HKEY_LOCAL_MACHINE (family or full name).
    #[arg(long, value_name = "PACKAGE")]
    package: Option<String>,
}

/// `appipc reg …`.
#[derive(Debug, Subcommand)]
pub(crate) enum RegCommand {
    /// Show a key's values and subkeys (`reg query`). KEY is a full path:
    /// HKEY_CURRENT_USER\Software\Contoso (or HKCU\…, HKLM\…).
    Query {
        /// The key.
        key: String,
        /// Only this value ("" for the default value).
        #[arg(long, short = 'v', value_name = "NAME")]
        value: Option<String>,
        /// The subkeys' values too, all the way down.
        #[arg(long, short = 's')]
        recursive: bool,
        /// Show the layer each value came from (package private hive, package Registry.reg,
        /// global) and where a write to the key would go.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        view: ViewArg,
    },
    /// Set a value, creating the key if needed (`reg add`); without --value only the key is
    /// created.
    Add {
        /// The key.
        key: String,
        /// The value's name ("" for the default value).
        #[arg(long, short = 'v', value_name = "NAME")]
        value: Option<String>,
        /// The type: REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_DWORD_BIG_ENDIAN,
        /// REG_QWORD, REG_BINARY, REG_LINK or REG_NONE.
        #[arg(long, short = 't', default_value = "REG_SZ", value_name = "TYPE")]
        r#type: String,
        /// The data: text; REG_MULTI_SZ items separated by \0; a number (decimal or 0x…) for
        /// REG_DWORD and REG_QWORD; hex digits for REG_BINARY and REG_NONE.
        #[arg(long, short = 'd', default_value = "", value_name = "DATA")]
        data: String,
        #[command(flatten)]
        view: ViewArg,
    },
    /// Delete a value, or a key with everything below it (`reg delete`).
    Delete {
        /// The key.
        key: String,
        /// Only this value ("" for the default value).
        #[arg(long, short = 'v', value_name = "NAME")]
        value: Option<String>,
        #[command(flatten)]
        view: ViewArg,
    },
    /// Write a key and everything below it to a .reg file (Windows Registry Editor Version
    /// 5.00, UTF-16LE with a BOM, as regedit writes; `-` prints it as UTF-8).
    Export {
        /// The key.
        key: String,
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        view: ViewArg,
    },
    /// Apply a .reg file (version 5.00 or REGEDIT4; UTF-16 or UTF-8): [key] creates,
    /// [-key] deletes a tree, "name"=- deletes a value. A malformed file changes nothing.
    Import {
        /// The file.
        file: PathBuf,
        #[command(flatten)]
        view: ViewArg,
    },
}

fn family(view: &ViewArg, command: &str) -> Result<Option<String>> {
    view.package
        .as_deref()
        .map(|p| Ok(target::parse(p, command, target::Takes::Package)?.family_name().to_string()))
        .transpose()
}

fn path(text: &str) -> Result<KeyPath> {
    KeyPath::parse(text).map_err(|e| fail(Class::Data, format!("{text}: {e}")))
}

/// The root of `path` in the chosen view.
async fn root(session: &Session, path: &KeyPath, family: Option<&str>) -> Result<RegKey> {
    let handle = match path.root_key() {
        Root::CurrentUser => HKEY_CURRENT_USER,
        Root::LocalMachine => HKEY_LOCAL_MACHINE,
    };
    Ok(match family {
        Some(f) => RegKey::package_view(session, handle, f).await?,
        None if handle == HKEY_CURRENT_USER => RegKey::current_user(session),
        None => RegKey::local_machine(session),
    })
}

async fn open(session: &Session, path: &KeyPath, family: Option<&str>) -> Result<RegKey> {
    let r = root(session, path, family).await?;
    r.open(&path.sub_path()).await.with_context(|| format!("{path}"))
}

fn to_model(v: &RegValue) -> Result<model::RegValue> {
    let ty = ValueType::from_value(v.value_type)?;
    Ok(model::RegValue { ty, data: v.data.clone() })
}

fn hex_bytes(s: &str) -> Result<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace() && *c != ',').collect();
    if !s.len().is_multiple_of(2) {
        return Err(fail(Class::Data, format!("{s:?}: an even number of hex digits expected")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| fail(Class::Data, format!("{:?} is not a hex byte", &s[i..i + 2])))
        })
        .collect()
}

fn number(s: &str) -> Result<u64> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| fail(Class::Data, format!("{s:?} is not a number (decimal or 0x…)")))
}

/// `--type` and `--data` as a value.
fn value_of(ty: &str, data: &str) -> Result<model::RegValue> {
    let t = ValueType::from_name(ty)
        .ok_or_else(|| fail(Class::Data, format!("unknown type {ty:?}")))?;
    let narrow = |n: u64| {
        u32::try_from(n).map_err(|_| fail(Class::Data, format!("{n} does not fit in 32 bits")))
    };
    Ok(match t {
        ValueType::Sz => model::RegValue::sz(data),
        ValueType::ExpandSz => model::RegValue::expand_sz(data),
        ValueType::Link => model::RegValue::link(data),
        ValueType::MultiSz => {
            let items: Vec<&str> =
                if data.is_empty() { Vec::new() } else { data.split("\\0").collect() };
            model::RegValue::multi_sz(&items)
        }
        ValueType::Dword => model::RegValue::dword(narrow(number(data)?)?),
        ValueType::DwordBigEndian => model::RegValue::dword_big_endian(narrow(number(data)?)?),
        ValueType::Qword => model::RegValue::qword(number(data)?),
        ValueType::Binary | ValueType::None => model::RegValue::new(t, hex_bytes(data)?)?,
    })
}

fn sdk(v: &model::RegValue) -> RegValue {
    RegValue { value_type: v.ty.value(), data: v.data.clone() }
}

/// Reads `key` and (with `recursive`) everything below it into `tree`.
async fn read_tree(
    key: &RegKey,
    path: &KeyPath,
    recursive: bool,
    tree: &mut RegTree,
) -> Result<()> {
    let mut stack = vec![(key.open("").await?, path.clone())];
    while let Some((k, p)) = stack.pop() {
        let info = k.info().await?;
        let p = KeyPath::parse(&info.path).unwrap_or(p);
        tree.create(&p);
        for v in k.enum_values().await? {
            let name = v.name.clone();
            tree.set(&p, &name, to_model(&v.into())?);
        }
        if recursive {
            for name in k.enum_keys().await? {
                let child = p.child(&name)?;
                stack.push((k.open(&name).await?, child));
            }
        }
    }
    Ok(())
}

async fn query(
    session: &Session,
    key: &str,
    value: Option<String>,
    recursive: bool,
    explain: bool,
    family: Option<&str>,
) -> Result<()> {
    let p = path(key)?;
    let k = open(session, &p, family).await?;
    if let Some(name) = value {
        let v = k.query_value_info(&name, None).await?;
        let mv = to_model(&v.clone().into())?;
        let shown = if name.is_empty() { "(Default)".to_owned() } else { v.name.clone() };
        let layer = if explain { format!("    [{}]", v.layer) } else { String::new() };
        style::say(
            &serde_json::json!({ "key": p.to_string(), "name": v.name, "type": mv.ty.name(), "data": mv.display(), "layer": v.layer }),
            || format!("{p}\n    {shown}    {}    {}{layer}", mv.ty.name(), mv.display()),
        )?;
        return Ok(());
    }
    let mut stack = vec![(k, p)];
    let mut json = Vec::new();
    while let Some((k, p)) = stack.pop() {
        let info = k.info().await?;
        let values = k.enum_values().await?;
        let subkeys = k.enum_keys().await?;
        if style::json() {
            let vals: Vec<_> = values
                .iter()
                .filter_map(|v| {
                    let m = to_model(&v.clone().into()).ok()?;
                    Some(serde_json::json!({ "name": v.name, "type": m.ty.name(), "data": m.display(), "layer": v.layer }))
                })
                .collect();
            json.push(serde_json::json!({ "key": info.path, "writes_to": info.writes_to, "values": vals, "subkeys": subkeys }));
        } else {
            println!("{}", info.path);
            if explain {
                println!("    (writes go to: {})", info.writes_to);
            }
            for v in &values {
                let m = to_model(&v.clone().into())?;
                let n = if v.name.is_empty() { "(Default)" } else { &v.name };
                let layer = if explain { format!("    [{}]", v.layer) } else { String::new() };
                println!("    {n}    {}    {}{layer}", m.ty.name(), m.display());
            }
            if !recursive {
                for s in &subkeys {
                    println!("{}\\{s}", info.path);
                }
            }
            println!();
        }
        if recursive {
            let base = KeyPath::parse(&info.path).unwrap_or(p);
            for s in subkeys.iter().rev() {
                stack.push((k.open(s).await?, base.child(s)?));
            }
        }
    }
    if style::json() {
        style::print_json(&json)?;
    }
    Ok(())
}

async fn import(session: &Session, file: &std::path::Path, family: Option<&str>) -> Result<usize> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = regfile::parse(&bytes)
        .map_err(|e| fail(Class::Data, format!("{}: {e}", file.display())))?;
    for e in &parsed.entries {
        match e {
            regfile::RegEntry::DeleteKey(p) => {
                let (Some(parent), name) = (p.parent(), p.name()) else { continue };
                let r = root(session, &parent, family).await?;
                let Ok(k) = r.open(&parent.sub_path()).await else { continue };
                match k.delete_tree(name).await {
                    Err(e) if e.win32_code() == Some(appipc::registry::ERROR_FILE_NOT_FOUND) => {}
                    other => other.with_context(|| format!("deleting {p}"))?,
                }
            }
            regfile::RegEntry::Key { path, values } => {
                let r = root(session, path, family).await?;
                let (k, _) = r.create(&path.sub_path()).await.with_context(|| format!("{path}"))?;
                for (name, v) in values {
                    match v {
                        Some(v) => k
                            .set_value(name, &sdk(v))
                            .await
                            .with_context(|| format!("{path}: {name:?}"))?,
                        None => match k.delete_value(name).await {
                            Err(e)
                                if e.win32_code()
                                    == Some(appipc::registry::ERROR_FILE_NOT_FOUND) => {}
                            other => other?,
                        },
                    }
                }
            }
        }
    }
    Ok(parsed.entries.len())
}

/// Runs `appipc reg …`.
pub(crate) async fn run(session: &Session, command: RegCommand) -> Result<ExitCode> {
    match command {
        RegCommand::Query { key, value, recursive, explain, view } => {
            let f = family(&view, "reg query --package")?;
            query(session, &key, value, recursive, explain, f.as_deref()).await?;
        }
        RegCommand::Add { key, value, r#type, data, view } => {
            let f = family(&view, "reg add --package")?;
            let p = path(&key)?;
            let r = root(session, &p, f.as_deref()).await?;
            let (k, d) = r.create(&p.sub_path()).await.with_context(|| format!("{p}"))?;
            if let Some(name) = &value {
                k.set_value(name, &sdk(&value_of(&r#type, &data)?)).await?;
            }
            let info = k.info().await?;
            style::say(
                &serde_json::json!({ "key": info.path, "created": d == appipc::registry::Disposition::CreatedNewKey, "written_to": info.writes_to }),
                || {
                    format!(
                        "{} ({})",
                        info.path,
                        if value.is_some() {
                            format!("value written to: {}", info.writes_to)
                        } else {
                            format!("{d:?}")
                        }
                    )
                },
            )?;
        }
        RegCommand::Delete { key, value, view } => {
            let f = family(&view, "reg delete --package")?;
            let p = path(&key)?;
            match value {
                Some(name) => open(session, &p, f.as_deref()).await?.delete_value(&name).await?,
                None => {
                    let parent = p
                        .parent()
                        .ok_or_else(|| fail(Class::Data, "a root key cannot be deleted"))?;
                    open(session, &parent, f.as_deref()).await?.delete_tree(p.name()).await?;
                }
            }
            style::say(&serde_json::json!({ "deleted": key }), || "deleted".to_owned())?;
        }
        RegCommand::Export { key, file, view } => {
            let f = family(&view, "reg export --package")?;
            let p = path(&key)?;
            let k = open(session, &p, f.as_deref()).await?;
            let mut tree = RegTree::new();
            read_tree(&k, &p, true, &mut tree).await?;
            // The key and what is below it (the tree holds its ancestors too).
            let entries: Vec<_> = tree
                .to_entries()
                .into_iter()
                .filter(
                    |e| matches!(e, regfile::RegEntry::Key { path, .. } if path.is_at_or_under(&p)),
                )
                .collect();
            let text = regfile::write(&entries);
            if file.as_os_str() == "-" {
                print!("{text}");
            } else {
                std::fs::write(&file, regfile::to_utf16le(&text))
                    .with_context(|| format!("writing {}", file.display()))?;
                let n = entries.len();
                style::say(&serde_json::json!({ "keys": n, "file": file }), || {
                    format!("{n} key(s) written to {}", file.display())
                })?;
            }
        }
        RegCommand::Import { file, view } => {
            let f = family(&view, "reg import --package")?;
            let n = import(session, &file, f.as_deref()).await?;
            style::say(&serde_json::json!({ "entries": n }), || {
                format!("{n} section(s) imported")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
