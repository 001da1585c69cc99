//! The core's modules depend on each other in one direction only: no two
//! modules (the files under src/, with src/stages/ as one module) reach each
//! other through `crate::` paths, directly or around a longer circle. A
//! circle means a rule lives in two places that must change together.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module a source file belongs to: its file stem, or `stages` for
/// everything under src/stages/.
fn module_of(path: &Path, src: &Path) -> String {
    let relative = path.strip_prefix(src).unwrap();
    match relative.components().next().unwrap().as_os_str().to_str().unwrap() {
        "stages" => "stages".to_string(),
        file => file.trim_end_matches(".rs").to_string(),
    }
}

/// The code of a file without its comments and its `#[cfg(test)]` tail
/// (tests may reach anything).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| line.split(" // ").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a file names through `crate::module` or `crate::{a, b}`.
fn modules_named(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let identifier =
        |rest: &str| -> String { rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            named.extend(group.split(',').map(|item| identifier(item.trim())).filter(|m| !m.is_empty()));
        } else {
            named.insert(identifier(rest));
        }
    }
    named
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut folders = vec![src.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let module = module_of(&path, &src);
        if module == "lib" {
            continue;
        }
        let named = modules_named(&code_of(&std::fs::read_to_string(&path).unwrap()));
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(named.into_iter().filter(|named| *named != module && named != "OffboardError"));
    }
    graph
}

/// A circle through the graph, if there is one, as the modules along it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_string());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_core_modules_depend_on_each_other() {
    let graph = dependencies();
    assert!(graph.len() >= 20, "the source files were not found: {graph:?}");
    assert!(graph["stages"].contains("context"), "the check reads the dependencies: {:?}", graph["stages"]);
    if let Some(circle) = find_circle(&graph) {
        panic!("import circle between core modules: {}", circle.join(" -> "));
    }
}

#[test]
fn the_check_finds_a_circle_and_reads_both_forms_of_crate_paths() {
    let named = modules_named("use crate::errors::OffboardError;\nuse crate::{items, iam_calls::PAGE_SIZE};\nlet x = crate::deadline::current();");
    assert_eq!(named, BTreeSet::from(["deadline", "errors", "iam_calls", "items"].map(String::from)));
    assert!(code_of("// crate::stages\nlet a = 1; // crate::fanout\n#[cfg(test)]\nuse crate::pipeline;")
        .find("crate::")
        .is_none());
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("fanout", vec!["stages"]), ("stages", vec!["context", "fanout"]), ("context", vec![])]
            .into_iter()
            .map(|(module, edges)| (module.to_string(), edges.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(find_circle(&graph), Some(vec!["fanout".into(), "stages".into(), "fanout".into()]));
}
