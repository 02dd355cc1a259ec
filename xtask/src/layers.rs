//! `cargo xtask layers`: the modules of each crate form layers, not a web — the host library
//! (and the config crate), the `sluice` binary's modules (`host/src/cli`) and xtask's own. For
//! each it builds the graph of which top-level module names which (and, in every module folder,
//! which child module names which sibling), fails on every import cycle, and, for a library
//! whose `<crate>/LAYERS` lists the layers (lowest first), on every edge from a lower layer up to
//! a higher one. Unit tests (`#[cfg(test)]` to the end of a file) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};

mod cycles;
mod graph;
mod scan;

use cycles::cycles;
use graph::Graph;

/// One crate checked: a library (root `lib.rs`, named in paths by its library name, checked
/// against `<crate>/LAYERS` when there is one) or a binary (root `main.rs`: `crate::` is the
/// binary's root, and its library is another crate, not a sibling).
struct Entry {
    /// The crate's folder in the repository (its `Cargo.toml`, its `LAYERS`).
    krate: &'static str,
    /// The folder of the root file, under `krate`.
    src: &'static str,
    /// `lib.rs` or `main.rs`.
    root: &'static str,
}

/// The crates checked.
const CRATES: &[Entry] = &[
    Entry {
        krate: "host",
        src: "src",
        root: "lib.rs",
    },
    Entry {
        krate: "config",
        src: "src",
        root: "lib.rs",
    },
    Entry {
        krate: "host",
        src: "src/cli",
        root: "main.rs",
    },
    Entry {
        krate: "xtask",
        src: "src",
        root: "main.rs",
    },
];

/// A module by its path from the crate root (`[]` is the crate itself).
type ModPath = Vec<String>;

/// Where an edge was seen: file (repository-relative) and line.
type Site = (String, usize);

/// Edges between the children of one module: (from, to) → first place seen.
type Edges = BTreeMap<(String, String), Site>;

/// One crate's source files: path under its root file's folder (with `/`) → text.
type Sources = BTreeMap<String, String>;

/// `cargo xtask layers [DIR]`: checks every crate of [`CRATES`] present under `repo`.
pub fn check(repo: &Path) -> Result<()> {
    let mut problems = Vec::new();
    for entry in CRATES {
        let Some((found, summary)) = check_crate(repo, entry)? else {
            continue;
        };
        problems.extend(found);
        eprintln!("xtask: layers: {summary}");
    }
    if problems.is_empty() {
        eprintln!("xtask: layers: no import cycles, no edge up a layer");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    bail!(
        "{} layer problem(s), listed above: move the shared code down a layer, or pass it in \
         from above",
        problems.len()
    )
}

/// The problems of one crate and a line saying what was checked; None when `repo` has no such
/// root file.
fn check_crate(repo: &Path, entry: &Entry) -> Result<Option<(Vec<String>, String)>> {
    let krate = repo.join(entry.krate);
    let src = krate.join(entry.src);
    if !src.join(entry.root).is_file() {
        return Ok(None);
    }
    let library = entry.root == "lib.rs";
    let shown = format!("{}/{}", entry.krate, entry.src);
    let sources = load(&src)?;
    let lib_name = library.then(|| lib_name(&krate));
    let graph = Graph::build(&shown, entry.root, lib_name.as_deref(), &sources);
    let mut problems = graph.notes.clone();
    problems.extend(cycles(&graph));
    let layers = if library {
        read_if_there(&krate.join("LAYERS"))?
    } else {
        None
    };
    if let Some(text) = &layers {
        problems.extend(layer_violations(
            &format!("{}/LAYERS", entry.krate),
            text,
            &graph,
        ));
    }
    let top = graph.children.get(&ModPath::new()).map_or(0, Vec::len);
    let edges: usize = graph.edges.values().map(BTreeMap::len).sum();
    let summary = format!(
        "{shown}: {top} top-level modules, {edges} edges between sibling modules{}",
        if layers.is_some() {
            format!(", checked against {}/LAYERS", entry.krate)
        } else {
            String::new()
        }
    );
    Ok(Some((problems, summary)))
}

/// The text of `file`; None when there is no such file.
fn read_if_there(file: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// The name the crate's library has in paths: `[lib] name`, else the package name with `_`.
fn lib_name(krate: &Path) -> String {
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap_or_default();
    let mut section = "";
    let mut package = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some(value) = line
            .strip_prefix("name")
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').replace('-', "_"))
        else {
            continue;
        };
        match section {
            "[lib]" => return value,
            "[package]" => package = package.or(Some(value)),
            _ => {}
        }
    }
    package.unwrap_or_else(|| {
        krate
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', "_"))
            .unwrap_or_default()
    })
}

/// Every `.rs` file under `src`.
fn load(src: &Path) -> Result<Sources> {
    let mut sources = Sources::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let key = path
                    .strip_prefix(src)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                sources.insert(key, text);
            }
        }
    }
    Ok(sources)
}

/// The `LAYERS` file (one layer per line, lowest first, modules separated by spaces, `#`
/// comments) against the top-level modules: every module listed once, no edge upwards.
fn layer_violations(name: &str, text: &str, graph: &Graph) -> Vec<String> {
    let modules: BTreeSet<&String> = graph
        .children
        .get(&ModPath::new())
        .map(|kids| kids.iter().collect())
        .unwrap_or_default();
    let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let layers = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty());
    for (layer, line) in layers.enumerate() {
        for module in line.split_whitespace() {
            if !modules.iter().any(|m| m.as_str() == module) {
                problems.push(format!(
                    "{name}: `{module}` is not a module of {}",
                    graph.src
                ));
            } else if layer_of.insert(module, layer).is_some() {
                problems.push(format!("{name}: `{module}` is listed twice"));
            }
        }
    }
    for module in modules {
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!(
                "{name}: module `{module}` is in no layer: add it to the line of its layer"
            ));
        }
    }
    let top = graph.edges.get(&ModPath::new());
    for ((from, to), (file, line)) in top.into_iter().flatten() {
        let (Some(&low), Some(&high)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
        else {
            continue;
        };
        if low < high {
            problems.push(format!(
                "{file}:{line}: `{from}` (layer {}) uses `{to}` (layer {}), a higher layer in {name}",
                low + 1,
                high + 1
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests;
