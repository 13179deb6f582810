//! The shape of the code, kept true by tests (`cargo test -p xtask --test it architecture`):
//!
//! - the release library does not depend on the local stack or the bench, and the local
//!   stack not on the bench (over `cargo metadata`'s resolved graph, every kind of dependency);
//! - no source of the release library names the emulator;
//! - no module of any crate imports, directly or through others, a module that imports it
//!   (modules are the release library's `<layer>::<module>`, the other crates' top-level ones);
//! - no command imports another command.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use crate::support::workspace_root;

/// The crates of xtask, by package name, and where their sources are.
const CRATES: [(&str, &str); 4] = [
    ("xtask", "xtask/src"),
    ("xtask-release", "xtask/release/src"),
    ("xtask-local-stack", "xtask/local-stack/src"),
    ("xtask-bench", "xtask/bench/src"),
];

/// Folders of a crate's `src/` that are layers: their modules are the nodes.
const LAYERS: [&str; 5] = ["clients", "domain", "workflows", "support", "commands"];

/// The shared pieces of `commands/` that are not commands.
const COMMAND_HELPERS: [&str; 4] = ["mod", "output", "stage_args", "image_ref"];

#[test]
fn the_release_library_depends_on_neither_the_local_stack_nor_the_bench() {
    let metadata = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(metadata.status.success(), "{}", String::from_utf8_lossy(&metadata.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let deps: BTreeMap<&str, Vec<&str>> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"].as_array().unwrap().iter().map(|d| name_of[d["pkg"].as_str().unwrap()]).collect();
            (name_of[n["id"].as_str().unwrap()], deps)
        })
        .collect();
    let reaches = |from: &str| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![from]);
        while let Some(name) = todo.pop() {
            for dep in deps.get(name).into_iter().flatten() {
                if seen.insert(*dep) {
                    todo.push(dep);
                }
            }
        }
        seen
    };
    let release = reaches("xtask-release");
    assert!(!release.contains("xtask-local-stack"), "xtask-release must not depend on xtask-local-stack");
    assert!(!release.contains("xtask-bench"), "xtask-release must not depend on xtask-bench");
    assert!(!reaches("xtask-local-stack").contains("xtask-bench"), "xtask-local-stack must not depend on xtask-bench");
    assert!(reaches("xtask-local-stack").contains("xtask-release"), "the local stack wraps the release library");
}

#[test]
fn the_release_library_names_no_emulator() {
    // What only the local stack knows: its parts, its credentials, how a stage is found to be its.
    let words = ["moto", "is_local", "xtask_local_stack", "local_stack_secret", "docker-registry", "dummy credential"];
    let mut found = vec![];
    for file in rust_files(&workspace_root().join("xtask/release/src")) {
        let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
        for (n, line) in text.lines().enumerate() {
            // The crate's own invariant sentence names what it does not know.
            if line.trim_start().starts_with("//!") {
                continue;
            }
            for word in words {
                if line.contains(word) {
                    found.push(format!("{}:{}: {word}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "the release library names the emulator:\n{}", found.join("\n"));
}

#[test]
fn no_module_imports_itself_through_others() {
    let mut cycles = vec![];
    for (name, src) in CRATES {
        let graph = module_graph(&workspace_root().join(src));
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{name}: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "module import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_command_imports_another_command() {
    let graph = module_graph(&workspace_root().join("xtask/src"));
    let is_command = |m: &str| m.strip_prefix("commands::").is_some_and(|c| !COMMAND_HELPERS.contains(&c));
    let mut found = vec![];
    for (from, tos) in &graph {
        for to in tos.iter().filter(|to| is_command(from) && is_command(to)) {
            found.push(format!("{from} -> {to}"));
        }
    }
    assert!(found.is_empty(), "commands import commands:\n{}", found.join("\n"));
}

/// A tiny graph with a cycle is found, and one without is not: the finder can fail.
#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).is_some());
    assert!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_none());
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The module a file of `src` belongs to: `<layer>::<module>` under a layer folder, else
/// the top-level module (`lib`/`main` for the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let rel: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match rel.as_slice() {
        [layer, module, ..] if LAYERS.contains(&layer.as_str()) => format!("{layer}::{module}"),
        [module, ..] => module.clone(),
        [] => unreachable!(),
    }
}

/// Which modules each module's files name through `crate::` (or `super::` from a
/// module's own top file), without its tests.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    // An item of the crate root (`crate::Stack`) is the root's: a module that names one
    // depends on the root, and the root on what it re-exports.
    let root = if src.join("lib.rs").exists() { "lib" } else { "main" };
    let resolve = |path: &str| -> Option<String> {
        let first = ident(path);
        let rest = path[first.len()..].strip_prefix("::").map(ident).unwrap_or_default();
        let layered = format!("{first}::{rest}");
        if modules.contains(&layered) {
            Some(layered)
        } else if modules.contains(&first) {
            Some(first)
        } else {
            (!first.is_empty() && first != "self").then(|| root.to_string())
        }
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may reach anywhere.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut targets = vec![];
        for (i, _) in text.match_indices("crate::") {
            if text[..i].ends_with('$') || text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            targets.extend(paths_after(&text[i + "crate::".len()..]));
        }
        // `super::` from a layer's module file names a sibling in the layer.
        let in_layer = from.split_once("::").map(|(layer, _)| layer.to_string());
        let is_module_file = file.parent() == Some(src) || file.parent().is_some_and(|p| p.parent() == Some(src));
        if let Some(layer) = in_layer.filter(|_| is_module_file && !file.ends_with("mod.rs")) {
            for (i, _) in text.match_indices("super::") {
                targets.extend(paths_after(&text[i + "super::".len()..]).into_iter().map(|p| format!("{layer}::{p}")));
            }
        } else if file.parent() == Some(src) {
            for (i, _) in text.match_indices("super::") {
                targets.extend(paths_after(&text[i + "super::".len()..]));
            }
        }
        // The root names its modules without `crate::` (`pub use stack::Stack;`).
        if from == root {
            for line in text.lines() {
                let line = line.trim_start().trim_start_matches("pub ");
                if let Some(path) = line.strip_prefix("use ")
                    && modules.contains(&ident(path))
                {
                    targets.extend(paths_after(path));
                }
            }
        }
        for target in targets.iter().filter_map(|t| resolve(t)) {
            if target != from {
                graph.get_mut(&from).unwrap().insert(target);
            }
        }
    }
    graph
}

/// The paths a `use` tree or a path expression starting at `text` names: `a::b`, or
/// each item of `{a::b, c::{d, e}}`.
fn paths_after(text: &str) -> Vec<String> {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('{') {
        let (mut depth, mut end) = (1, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i;
                break;
            }
        }
        let mut items = vec![];
        let (mut depth, mut start) = (0, 0);
        let inner = &inner[..end];
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(inner[start..i].trim().to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(inner[start..].trim().to_string());
        return items.into_iter().filter(|i| !i.is_empty()).collect();
    }
    vec![text.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect()]
}

/// A cycle of the graph, if it has one (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = vec![];
            if let Some(cycle) = visit(node, graph, &mut state, &mut stack) {
                return Some(cycle);
            }
        }
    }
    None
}
