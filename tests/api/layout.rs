//! The code's shape, held: every import among the crate's modules points one way (no cycle:
//! a file's imports are counted for the top-level module it belongs to, so a re-export through
//! a `mod.rs` cannot hide one), each is one the README's map says the module may make, and no
//! file grows past 450 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo;

/// Each `src/` file by its module path (`["http", "edge"]`), with its text before its tests.
fn modules() -> BTreeMap<Vec<String>, (PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = repo("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|f| {
            let rel = f.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Test modules may reach anywhere.
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap().to_owned();
            (module, (f, code))
        })
        .collect()
}

/// The file a path names: its longest prefix that is a module.
fn resolve<'a>(
    modules: &'a BTreeMap<Vec<String>, (PathBuf, String)>,
    path: &[String],
) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// Paths a file names through `crate::` and `super::` (one level of braces expanded).
fn imports(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // `super` is the module above this one's: for `vista/documents.rs`
            // (`clinical::vista::documents`) and for `vista/mod.rs` alike, one level up.
            let mut parent = module.to_vec();
            parent.pop();
            parent
        }),
    ] {
        for (at, _) in code.match_indices(prefix) {
            let preceded = code[..at].chars().next_back();
            if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let head = head.trim_end_matches(':');
            let mut path = base.clone();
            path.extend(head.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
            // `crate::{a, b}` as well as `crate::a::{b, c}`.
            let after = &rest[head.len()..];
            let braces = if head.is_empty() {
                after.strip_prefix('{')
            } else {
                after.strip_prefix("::{")
            };
            if let Some(inner) = braces {
                for item in inner.split('}').next().unwrap_or("").split(',') {
                    let mut item_path = path.clone();
                    item_path.extend(
                        item.trim()
                            .split("::")
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(str::to_owned),
                    );
                    found.push(item_path);
                }
            }
            found.push(path);
        }
    }
    found
}

/// Each top-level module and the top-level modules its files import.
fn module_edges(modules: &BTreeMap<Vec<String>, (PathBuf, String)>) -> BTreeMap<&String, BTreeSet<&String>> {
    let mut edges: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for (module, (_, code)) in modules {
        let Some(top) = module.first() else { continue }; // lib.rs: declarations only
        for path in imports(module, code) {
            if let Some(target) = resolve(modules, &path)
                && let Some(target_top) = target.first()
                && target_top != top
            {
                edges.entry(top).or_default().insert(target_top);
            }
        }
    }
    edges
}

/// The README's map: each module (`http/`, `app`) and the modules it may import.
fn readme_map() -> BTreeMap<String, BTreeSet<String>> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let table = readme
        .split("| module | owns | may import |\n|---|---|---|\n")
        .nth(1)
        .expect("the README has the map");
    let name = |cell: &str| cell.trim().trim_matches('`').trim_end_matches('/').to_owned();
    table
        .lines()
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
            let may = cells[2].split('`').skip(1).step_by(2).map(name).collect();
            (name(cells[0]), may)
        })
        .collect()
}

#[test]
fn every_import_between_modules_is_one_the_readmes_map_allows() {
    let modules = modules();
    let map = readme_map();
    let mut wrong = Vec::new();
    for (module, targets) in module_edges(&modules) {
        if module == "properties" {
            continue; // test-only
        }
        let Some(allowed) = map.get(module.as_str()) else {
            wrong.push(format!("{module}: not in the map"));
            continue;
        };
        for target in targets {
            if !allowed.contains(target.as_str()) {
                wrong.push(format!("{module} imports {target}"));
            }
        }
    }
    // And the map names no module that is not there.
    let tops: BTreeSet<&String> = modules.keys().filter_map(|m| m.first()).collect();
    for listed in map.keys().filter(|m| *m != "main.rs") {
        if !tops.contains(listed) {
            wrong.push(format!("{listed}: in the map, not in src/"));
        }
    }
    assert!(wrong.is_empty(), "the README's map is wrong: {wrong:#?}");
}

/// A cycle in `edges`, as the nodes along it, found by a depth-first search for a back edge.
fn cycle<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        node: &N,
        edges: &BTreeMap<N, BTreeSet<N>>,
        state: &mut BTreeMap<N, u8>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut found = stack[from..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                Some(_) => {}
                None => {
                    if let Some(found) = visit(next, edges, state, stack) {
                        return Some(found);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node)
            && let Some(found) = visit(node, edges, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

#[test]
fn no_import_cycle_among_src_files() {
    let modules = modules();
    let edges = module_edges(&modules);
    if let Some(found) = cycle(&edges) {
        let names: Vec<&str> = found.iter().map(|m| m.as_str()).collect();
        panic!("import cycle: {}", names.join(" -> "));
    }
    assert!(edges.len() >= 10, "only {} modules seen: {edges:?}", edges.len());
}

/// Each file and the files it imports from, inside one top-level module as well as across:
/// `vista/documents.rs` and `vista/service.rs` taking each other's types is a circle too.
#[test]
fn no_import_cycle_among_the_files_of_one_folder() {
    let modules = modules();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, (_, code)) in &modules {
        for path in imports(module, code) {
            if let Some(target) = resolve(&modules, &path)
                && target != module
                && !target.is_empty()
            {
                edges.entry(module.clone()).or_default().insert(target.clone());
            }
        }
    }
    if let Some(found) = cycle(&edges) {
        let names: Vec<String> = found.iter().map(|m| m.join("/")).collect();
        panic!("import cycle among files: {}", names.join(" -> "));
    }
    // The check sees the folder's files: documents.rs takes the summary from below it.
    let documents = vec!["clinical".to_owned(), "vista".to_owned(), "documents".to_owned()];
    assert!(
        edges[&documents].contains(&vec![
            "clinical".to_owned(),
            "vista".to_owned(),
            "summary".to_owned()
        ]),
        "{:?}",
        edges.get(&documents)
    );
}

#[test]
fn no_src_file_is_over_450_lines() {
    let long: Vec<String> = modules()
        .values()
        .map(|(file, _)| (file, std::fs::read_to_string(file).unwrap().lines().count()))
        .filter(|(_, lines)| *lines > 450)
        .map(|(file, lines)| format!("{}: {lines}", file.display()))
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// The settings table of `docs/configuration.md`: (names in the row, the default cell).
fn readme_settings() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(repo("docs/configuration.md")).unwrap();
    let table = readme
        .split("| variable | default | meaning |\n|---|---|---|\n")
        .nth(1)
        .expect("docs/configuration.md has the settings table");
    table
        .lines()
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let names = cells[0]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            (names, cells[1].to_owned())
        })
        .collect()
}

#[test]
fn the_documented_settings_table_is_the_settings_table() {
    let rows = readme_settings();
    let listed: BTreeSet<&str> = rows
        .iter()
        .flat_map(|(names, _)| names.iter().map(String::as_str))
        .collect();
    // A secret's `_FILE` twin and `RUST_LOG` are read beside the table's settings.
    let declared: BTreeSet<&str> = avs_api::config::SETTINGS.iter().map(|s| s.name).collect();
    let missing: Vec<&&str> = declared.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "settings docs/configuration.md does not list: {missing:?}"
    );
    let unknown: Vec<&&str> = listed
        .difference(&declared)
        .filter(|name| !name.ends_with("_FILE") && **name != "RUST_LOG")
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md rows for no setting: {unknown:?}"
    );
    // Where a row names one setting with a default, the README gives that default.
    for (names, default) in &rows {
        let [name] = &names[..] else { continue };
        let Some(setting) = avs_api::config::SETTINGS.iter().find(|s| s.name == name) else {
            continue;
        };
        if let Some(value) = setting.default {
            assert_eq!(default, &format!("`{value}`"), "{name}'s default");
        }
    }
}

/// The rollout report's gate points name files and functions: each file is there, and each
/// function it names (`show_summary, search`) is one of that file's.
#[test]
fn the_reports_gate_points_name_real_files_and_functions() {
    let mut checked = 0;
    for (toggle, points) in avs_api::rollout::report::GATE_POINTS {
        for point in *points {
            let Some(start) = point.find("src/").or_else(|| point.find("fixtures/")) else {
                continue;
            };
            let rest = &point[start..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || "/_.-".contains(*c))
                .collect();
            let text = std::fs::read_to_string(repo(&path))
                .unwrap_or_else(|_| panic!("{toggle}: {path} is not a file ({point})"));
            checked += 1;
            // `file.rs: f, g and h (…)`: the names before the parenthesis.
            let Some(names) = rest[path.len()..].strip_prefix(": ") else {
                continue;
            };
            let names = names.split(" (").next().unwrap_or("");
            for name in names.split([',', ' ']).filter(|w| {
                !w.is_empty() && *w != "and" && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            }) {
                assert!(
                    text.contains(&format!("fn {name}(")) || text.contains(&format!("fn {name}<")),
                    "{toggle}: {path} has no fn {name} ({point})"
                );
            }
        }
    }
    assert!(checked >= 6, "{checked} gate points checked");
}
