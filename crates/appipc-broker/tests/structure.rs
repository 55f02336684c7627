//! The broker's shape, checked: its modules import each other without a
//! cycle, and no function grows past a screenful.
//!
//! Both are properties of the source text, so this test reads `src/` and
//! checks them there. A cycle is what the rebuild of the trust core removed
//! (`Identity` once lived in `session.rs` and six files imported each other);
//! a function of hundreds of lines is where the old 193-line dispatch match
//! lived. Either coming back fails here, with the modules or the function
//! named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest function allowed, in lines from its `fn` to its closing brace.
const MAX_FUNCTION_LINES: usize = 100;

fn sources() -> Vec<(String, PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                    parts.pop();
                }
                let module =
                    std::iter::once("crate".to_owned()).chain(parts).collect::<Vec<_>>().join("::");
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((module, path, text));
            }
        }
    }
    out.sort();
    out
}

/// The source without its `#[cfg(test)]` module (tests may reach anywhere)
/// and without comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path a `use crate::…` tree or an inline `crate::a::b` names.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue;
        }
        expand(&mut rest, Vec::new(), &mut paths);
    }
    paths
}

/// Reads one use tree from `rest` (after a `::`), adding each full path.
fn expand(rest: &mut &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    *rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('{') {
        *rest = inner;
        loop {
            *rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                *rest = after;
                return;
            }
            if rest.is_empty() {
                return;
            }
            expand(rest, prefix.clone(), out);
            *rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                *rest = after;
            }
        }
    }
    let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
    let mut path = prefix;
    if len > 0 {
        path.push(rest[..len].to_owned());
    }
    *rest = &rest[len..];
    if let Some(after) = rest.strip_prefix("::") {
        *rest = after;
        expand(rest, path, out);
    } else if !path.is_empty() {
        out.push(path);
    }
}

/// Module → modules it imports from (other than itself, its ancestors'
/// declarations in `lib.rs`, and its own children).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, _, text) in &files {
        let mut targets = BTreeSet::new();
        for path in crate_paths(&code_of(text)) {
            let mut target = "crate".to_owned();
            for part in &path {
                let longer = format!("{target}::{part}");
                if modules.contains(&longer) {
                    target = longer;
                } else {
                    break;
                }
            }
            let own_child = target.starts_with(&format!("{module}::"));
            if target != "crate" && &target != module && !own_child {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The graph's cycles: its strongly connected components of more than one
/// module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, node: &'a str) {
        let n = w.index.len();
        w.index.insert(node, n);
        w.low.insert(node, n);
        w.stack.push(node);
        w.on_stack.insert(node);
        for next in w.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[node].min(w.low[next]);
                w.low.insert(node, low);
            } else if w.on_stack.contains(next) {
                let low = w.low[node].min(w.index[next]);
                w.low.insert(node, low);
            }
        }
        if w.low[node] == w.index[node] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                w.on_stack.remove(top);
                component.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            visit(&mut walk, node);
        }
    }
    walk.found
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let code = "use crate::{a::{X, y::Z}, b};\nfn f() { crate::c::d(); }";
    assert_eq!(
        crate_paths(code),
        vec![
            vec!["a".to_owned(), "X".to_owned()],
            vec!["a".to_owned(), "y".to_owned(), "Z".to_owned()],
            vec!["b".to_owned()],
            vec!["c".to_owned(), "d".to_owned()],
        ]
    );
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}

#[test]
fn the_broker_modules_import_each_other_without_a_cycle() {
    let graph = import_graph();
    assert!(graph.len() > 20, "the broker's modules were not found");
    assert!(
        graph["crate::session"].contains("crate::outbox"),
        "the import reader missed an import: {graph:#?}"
    );
    let found = cycles(&graph);
    assert!(found.is_empty(), "modules that import each other (a cycle): {found:?}");
}

/// Functions longer than [`MAX_FUNCTION_LINES`]: a `fn` at the start of a
/// line ends at the first later line that is its indentation and `}`
/// (rustfmt's layout).
#[test]
fn no_broker_function_is_longer_than_a_screenful() {
    let mut long = Vec::new();
    for (_, path, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let body = line.trim_start();
            let indent = line.len() - body.len();
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "async fn ", "pub async fn "]
                .iter()
                .chain(&["pub(crate) async fn ", "pub(super) fn ", "const fn "])
                .any(|p| body.starts_with(p));
            if !is_fn || body.ends_with(';') {
                continue;
            }
            let close = format!("{}}}", " ".repeat(indent));
            if let Some(len) = lines[at..].iter().position(|l| *l == close)
                && len + 1 > MAX_FUNCTION_LINES
            {
                long.push(format!("{}:{} ({} lines)", path.display(), at + 1, len + 1));
            }
        }
    }
    assert!(long.is_empty(), "functions to split: {long:#?}");
}
