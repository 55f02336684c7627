//! `appipc-bench loopback`: loopback between packages (docs/loopback.md). Real confined
//! processes of two packages whose rules allow the flow (`loop-probe`): round trips of 8 bytes
//! on an established connection between packages (a socket the broker installed) against the
//! same within one package (one namespace, the kernel's plain loopback), in the same run, and
//! the cost of a connect (allowed between packages, within a package, refused). Median of
//! `--runs` runs of each; prints numbers, asserts nothing.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc_model::identity::PackageFamilyName;
use appipc_testkit::TestBroker;

const CONTOSO: &str = "CN=Contoso Bench";
const FABRIKAM: &str = "CN=Fabrikam Bench";

fn install(b: &TestBroker, name: &str, publisher: &str, rules: &[(&str, &str)]) -> Result<String> {
    let mut text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.0\"\n\n\
         [capabilities]\ngeneral = [\"privateNetworkClientServer\"]\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/loop-probe\"\n\n"
    );
    for (d, f) in rules {
        text.push_str(&format!(
            "[[loopback-rule]]\ndirection = \"{d}\"\npackage-family-name = \"{f}\"\n\n"
        ));
    }
    let dir = appipc_testkit::assemble_manifest(
        &text,
        &b.root.path().join(appipc_testkit::unique("bench")),
        &appipc_testkit::bin_dir(),
    )?;
    let out = b.cli().args(["install"]).arg(&dir).output()?;
    if !out.status.success() {
        bail!("install {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(PackageFamilyName::from_publisher(&name.parse()?, publisher).to_string())
}

/// `loop-probe ARGS` confined until it exits; its stdout.
fn probe(b: &TestBroker, pfn: &str, args: &[&str]) -> Result<String> {
    let out = b.cli().args(["launch", "--wait", pfn, "--"]).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The number after `key=` in `text`.
fn field(text: &str, key: &str) -> Result<f64> {
    let at = text.find(&format!("{key}=")).with_context(|| format!("no {key} in {text:?}"))?;
    let rest = &text[at + key.len() + 1..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    Ok(rest[..end].parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str, default: usize) -> Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("a number")?.parse()?),
        None => Ok(default),
    }
}

pub(crate) fn loopback(args: &[String]) -> Result<()> {
    let iterations = arg(args, "--iterations", 20000)?.to_string();
    let n_connects = arg(args, "--connects", 1000)?.to_string();
    let runs = arg(args, "--runs", 5)?;
    let b = crate::bench_broker(&[]);
    let client = PackageFamilyName::from_publisher(&"Contoso.BenchC".parse()?, CONTOSO).to_string();
    let server = install(&b, "Fabrikam.BenchS", FABRIKAM, &[("in", &client)])?;
    install(&b, "Contoso.BenchC", CONTOSO, &[("out", &server)])?;
    let other = install(&b, "Contoso.BenchOther", CONTOSO, &[])?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let p = port.to_string();
    let out = b.cli().args(["launch", &server, "--", "serve", &p, "3600"]).output()?;
    if !out.status.success() {
        bail!("serve: {}", String::from_utf8_lossy(&out.stderr));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.app_log(&server).contains(&format!("listening {port}")) {
        if Instant::now() > deadline {
            bail!("the server did not listen: {}", b.app_log(&server));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    let cases: [(&str, &str, &str, &str); 4] = [
        ("round trip, same package (one namespace)", "pingpong", &server, "median_us"),
        ("round trip, between packages (installed socket)", "pingpong", &client, "median_us"),
        ("connect, same package", "connects", &server, "median_us"),
        ("connect, between packages (allowed)", "connects", &client, "median_us"),
    ];
    for (what, mode, pfn, key) in cases {
        let count = if mode == "pingpong" { &iterations } else { &n_connects };
        let mut v = Vec::new();
        for _ in 0..runs {
            v.push(field(&probe(&b, pfn, &[mode, &p, count])?, key)?);
        }
        rows.push((what, v));
    }
    let mut v = Vec::new();
    for _ in 0..runs {
        let out = probe(&b, &other, &["connects", &p, &n_connects])?;
        if field(&out, "failed")? as usize != n_connects.parse::<usize>()? {
            bail!("a refused connect succeeded: {out}");
        }
        v.push(field(&out, "median_us")?);
    }
    rows.push(("connect, between packages (refused, ECONNREFUSED)", v));
    println!("loopback between packages ({runs} runs, median of each run's median, µs)");
    let mut json = serde_json::Map::new();
    for (what, v) in &rows {
        let m = median(v.clone());
        println!("  {what:<52} {m:>9.2}");
        json.insert((*what).to_owned(), serde_json::json!(m));
    }
    let ratio = median(rows[1].1.clone()) / median(rows[0].1.clone());
    let cost = median(rows[3].1.clone()) - median(rows[2].1.clone());
    println!(
        "  round trip between packages / same package: {ratio:.3}×; connect cost +{cost:.1} µs"
    );
    json.insert("round_trip_ratio".into(), serde_json::json!(ratio));
    json.insert("connect_cost_us".into(), serde_json::json!(cost));
    println!("{}", serde_json::Value::Object(json));
    Ok(())
}
