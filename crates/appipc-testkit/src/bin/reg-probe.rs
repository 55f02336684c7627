//! `reg-probe`: the registry from inside an app container (or unpackaged), driven by its
//! arguments. Used by `crates/appipc-cli/tests/registry.rs`.
//!
//! ```text
//! reg-probe STEP...
//!   set KEY NAME TEXT        RegCreateKeyEx(KEY), RegSetValueEx(NAME, REG_SZ TEXT)
//!   get KEY NAME             RegOpenKeyEx(KEY), RegQueryValueEx(NAME): "TEXT [layer]"
//!   del-value KEY NAME       RegDeleteValue
//!   del-tree KEY             RegDeleteTree of KEY (from its parent)
//!   create KEY               RegCreateKeyEx: the disposition (1 created, 2 opened)
//!   subkeys KEY              RegEnumKeyEx until 259: the names, comma-separated
//!   watch-get KEY NAME MS    RegNotifyChangeKeyValue(LAST_SET) on KEY (created), prints
//!                            "watch-get => watching" at once, then waits up to MS for a change
//!                            and prints the value NAME then has
//!   watch-tree KEY MS        RegNotifyChangeKeyValue(NAME | LAST_SET, subtree) on KEY (opened),
//!                            prints "watch-tree => watching" at once, then waits up to MS for
//!                            a change: "changed: SUBKEY" (the changed key below KEY)
//!   hoard N                  opens HKCU\Software N times without closing: "opened K, then error C"
//!   watch-hoard N            watches HKCU\Software N times without cancelling: "watched K,
//!                            then error C"
//!   guess HANDLE             RegQueryValueEx through a handle number this session never got
//!   big N                    sets HKCU\Software\Big "v" to N bytes of REG_BINARY
//!   fill N                   sets HKCU\Software\Fill "f0", "f1", … to 60 000 bytes each, N at
//!                            most: "filled K, then error C"
//! ```
//!
//! KEY is a full path (`HKCU\Software\Contoso`). Each step prints `STEP => RESULT`; RESULT is
//! `error CODE` on a Win32 failure. Exit status 0 whatever the results (2 on bad arguments).
#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use appipc::Session;
use appipc::registry::{NotifyFilter, RegKey, RegValue};

fn code(e: &appipc::Error) -> String {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => format!("error {c}"),
        other => format!("error {other}: {e}"),
    }
}

/// The predefined key and the path below it.
fn split(key: &str) -> (bool, &str) {
    let (root, rest) = key.split_once('\\').unwrap_or((key, ""));
    (root.eq_ignore_ascii_case("HKLM") || root.eq_ignore_ascii_case("HKEY_LOCAL_MACHINE"), rest)
}

fn root(s: &Session, key: &str) -> (RegKey, String) {
    let (lm, rest) = split(key);
    let r = if lm { RegKey::local_machine(s) } else { RegKey::current_user(s) };
    (r, rest.to_owned())
}

fn arity(step: &str) -> usize {
    match step {
        "set" | "watch-get" => 4,
        "watch-tree" => 3,
        "get" | "del-value" => 3,
        "del-tree" | "create" | "subkeys" | "hoard" | "watch-hoard" | "guess" | "big" | "fill" => 2,
        _ => {
            eprintln!("reg-probe: unknown step {step:?}");
            std::process::exit(2);
        }
    }
}

async fn step(
    s: &Session,
    w: &[String],
    kept: &mut Vec<RegKey>,
    watches: &mut Vec<appipc::registry::RegChanges>,
) -> String {
    let r = match w[0].as_str() {
        "set" => {
            let (r, sub) = root(s, &w[1]);
            match r.create(&sub).await {
                Ok((k, _)) => k.set_value(&w[2], &RegValue::sz(&w[3])).await.map(|()| "ok".into()),
                Err(e) => Err(e),
            }
        }
        "get" => {
            let (r, sub) = root(s, &w[1]);
            match r.open(&sub).await {
                Ok(k) => k.query_value_info(&w[2], None).await.map(|v| {
                    let layer = v.layer.clone();
                    format!("{} [{layer}]", RegValue::from(v).as_str().unwrap_or_default())
                }),
                Err(e) => Err(e),
            }
        }
        "del-value" => {
            let (r, sub) = root(s, &w[1]);
            match r.open(&sub).await {
                Ok(k) => k.delete_value(&w[2]).await.map(|()| "ok".into()),
                Err(e) => Err(e),
            }
        }
        "del-tree" => {
            let (r, sub) = root(s, &w[1]);
            let (parent, name) = sub.rsplit_once('\\').unwrap_or(("", &sub));
            match r.open(parent).await {
                Ok(k) => k.delete_tree(name).await.map(|()| "ok".into()),
                Err(e) => Err(e),
            }
        }
        "create" => {
            let (r, sub) = root(s, &w[1]);
            r.create(&sub).await.map(|(_, d)| (d as u32).to_string())
        }
        "subkeys" => {
            let (r, sub) = root(s, &w[1]);
            match r.open(&sub).await {
                Ok(k) => k.enum_keys().await.map(|v| v.join(",")),
                Err(e) => Err(e),
            }
        }
        "watch-get" => return watch_get(s, w).await,
        "watch-tree" => return watch_tree(s, w).await,
        "hoard" => {
            let n: usize = w[1].parse().expect("a count");
            let hkcu = RegKey::current_user(s);
            for i in 0..n {
                match hkcu.open("Software").await {
                    Ok(k) => kept.push(k),
                    Err(e) => return format!("opened {i}, then {}", code(&e)),
                }
            }
            Ok(format!("opened {n}"))
        }
        "watch-hoard" => {
            let n: usize = w[1].parse().expect("a count");
            let key = match RegKey::current_user(s).open("Software").await {
                Ok(k) => k,
                Err(e) => return code(&e),
            };
            for i in 0..n {
                match key.notify_change(NotifyFilter::LAST_SET, true).await {
                    Ok(c) => watches.push(c),
                    Err(e) => return format!("watched {i}, then {}", code(&e)),
                }
            }
            kept.push(key);
            Ok(format!("watched {n}"))
        }
        "guess" => {
            let handle: u64 = w[1].parse().expect("a handle number");
            let q = appipc_wire::protocol::registry::QueryValue {
                handle,
                name: String::new(),
                max_data: None,
            };
            s.call(q).await.map(|v| format!("read {:?}", v.name))
        }
        "big" => {
            let n: usize = w[1].parse().expect("a size");
            let hkcu = RegKey::current_user(s);
            match hkcu.create("Software\\Big").await {
                Ok((k, _)) => {
                    k.set_value("v", &RegValue::binary(&vec![7u8; n])).await.map(|()| "ok".into())
                }
                Err(e) => Err(e),
            }
        }
        "fill" => {
            let n: usize = w[1].parse().expect("a count");
            let hkcu = RegKey::current_user(s);
            match hkcu.create("Software\\Fill").await {
                Ok((k, _)) => {
                    for i in 0..n {
                        let v = RegValue::binary(&vec![1u8; 60_000]);
                        if let Err(e) = k.set_value(&format!("f{i}"), &v).await {
                            return format!("filled {i}, then {}", code(&e));
                        }
                    }
                    Ok(format!("filled {n}"))
                }
                Err(e) => Err(e),
            }
        }
        _ => unreachable!("arity checked the step"),
    };
    r.unwrap_or_else(|e| code(&e))
}

async fn watch_get(s: &Session, w: &[String]) -> String {
    let (r, sub) = root(s, &w[1]);
    let ms: u64 = w[3].parse().expect("milliseconds");
    let k = match r.create(&sub).await {
        Ok((k, _)) => k,
        Err(e) => return code(&e),
    };
    let mut changes = match k.notify_change(NotifyFilter::LAST_SET, false).await {
        Ok(c) => c,
        Err(e) => return code(&e),
    };
    println!("watch-get => watching");
    let _ = std::io::stdout().flush();
    match tokio::time::timeout(Duration::from_millis(ms), changes.next()).await {
        Ok(Some(_)) => match k.query_value(&w[2]).await {
            Ok(v) => format!("changed: {}", v.as_str().unwrap_or_default()),
            Err(e) => code(&e),
        },
        Ok(None) => "session ended".into(),
        Err(_) => "timeout".into(),
    }
}

async fn watch_tree(s: &Session, w: &[String]) -> String {
    let (r, sub) = root(s, &w[1]);
    let ms: u64 = w[2].parse().expect("milliseconds");
    let k = match r.open(&sub).await {
        Ok(k) => k,
        Err(e) => return code(&e),
    };
    let mut changes = match k.notify_change(NotifyFilter::NAME | NotifyFilter::LAST_SET, true).await
    {
        Ok(c) => c,
        Err(e) => return code(&e),
    };
    println!("watch-tree => watching");
    let _ = std::io::stdout().flush();
    match tokio::time::timeout(Duration::from_millis(ms), changes.next()).await {
        Ok(Some(c)) => format!("changed: {}", c.subkey),
        Ok(None) => "session ended".into(),
        Err(_) => "timeout".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        let mut kept = Vec::new();
        let mut watches = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let n = arity(&args[i]);
            if i + n > args.len() {
                eprintln!("reg-probe: step {:?} needs {n} words", args[i]);
                std::process::exit(2);
            }
            let words = &args[i..i + n];
            let result = step(&session, words, &mut kept, &mut watches).await;
            println!("{} => {result}", words[0]);
            let _ = std::io::stdout().flush();
            i += n;
        }
    });
}
