//! The graph of one crate for the layer check: its module tree (from `mod x;` lines) and, per
//! module, which child module names which sibling, with the first file:line of each edge.

use std::collections::BTreeMap;

use super::scan::{self, Base, PathRef};
use super::{Edges, ModPath, Sources};

/// The module tree of one crate and the edges between sibling modules.
///
/// The root file is `lib.rs` (a library, named in paths by its library name) or `main.rs` (a
/// binary: `crate::` is its root and no path names it; `<library>::` is another crate).
/// Besides the file modules, two kinds of top-level nodes take part: another crate the root
/// re-exports under a module name (`pub use sluice_config as config;`: `crate::config::..` and
/// `sluice_config::..` both reach node `config`), and, in a library, a binary's folder
/// (`src/cli/main.rs`: node `cli`, whose edges are its `<library>::..` paths).
#[derive(Debug, Default)]
pub struct Graph {
    /// Module → its child nodes (file modules in declaration order, then the extra nodes).
    pub children: BTreeMap<ModPath, Vec<String>>,
    /// Per module, the names its files import from a child (`use engine::Host` makes `Host`
    /// stand for `engine`).
    pub aliases: BTreeMap<ModPath, BTreeMap<String, String>>,
    /// Per module, the edges between its children.
    pub edges: BTreeMap<ModPath, Edges>,
    /// Declared modules without a file (skipped, reported).
    pub notes: Vec<String>,
    /// `src/…` as shown in messages.
    pub src: String,
    /// Crate names followed in paths: the library's own name (for its binaries; none for a
    /// binary crate), then re-exported crates; `crate_nodes[i]` is the node `roots[i]` stands
    /// for (None: the library root).
    roots: Vec<String>,
    crate_nodes: Vec<Option<String>>,
}

impl Graph {
    /// The graph of the crate in `sources` (`root`, the crate's root file, and the rest of its
    /// folder `src`), whose library is called `lib_name` in paths (None: a binary crate, which
    /// no path names).
    pub fn build(src: &str, root: &str, lib_name: Option<&str>, sources: &Sources) -> Graph {
        let mut graph = Graph {
            src: src.to_string(),
            roots: lib_name.map(str::to_string).into_iter().collect(),
            crate_nodes: lib_name.map(|_| None).into_iter().collect(),
            ..Graph::default()
        };
        // Module path → its file, found from `mod x;` lines, from the root file down.
        let mut files: Vec<(ModPath, String)> = Vec::new();
        let mut pending = vec![(ModPath::new(), root.to_string(), String::new())];
        let mut code_of: BTreeMap<String, String> = BTreeMap::new();
        while let Some((path, file, folder)) = pending.pop() {
            let code = scan::code_only(sources.get(&file).map_or("", String::as_str));
            let code = scan::before_tests(&code).to_string();
            let mut kids = Vec::new();
            for name in scan::mod_decls(&code) {
                let flat = format!("{folder}{name}.rs");
                let nested = format!("{folder}{name}/mod.rs");
                let child_file = if sources.contains_key(&flat) {
                    flat
                } else if sources.contains_key(&nested) {
                    nested
                } else {
                    graph.notes.push(format!(
                        "{src}/{file}: `mod {name};` has no {src}/{flat} or {src}/{nested} \
                         (a #[path] module?): not checked"
                    ));
                    continue;
                };
                let mut child = path.clone();
                child.push(name.clone());
                pending.push((child, child_file, format!("{folder}{name}/")));
                kids.push(name);
            }
            graph.children.insert(path.clone(), kids);
            code_of.insert(file.clone(), code);
            files.push((path, file));
        }
        graph.add_crate_nodes(code_of.get(root).map_or("", String::as_str));
        let binaries = if lib_name.is_some() {
            graph.add_binary_nodes(sources)
        } else {
            Vec::new()
        };
        files.sort_by(|a, b| a.1.cmp(&b.1));
        let roots = graph.roots.clone();
        let scanned: Vec<(ModPath, String, Vec<PathRef>)> = files
            .into_iter()
            .map(|(path, file)| {
                let refs = scan::path_refs(code_of.get(&file).map_or("", String::as_str), &roots);
                (path, file, refs)
            })
            .collect();
        for (path, _, refs) in &scanned {
            for r in refs {
                graph.add_alias(path, r);
            }
        }
        for (path, file, refs) in &scanned {
            // The root is the parent of the top-level modules, not their sibling.
            if path.is_empty() {
                continue;
            }
            for r in refs {
                graph.add_edge(path, file, r);
            }
        }
        for (node, file) in binaries {
            let text = sources.get(&file).map_or("", String::as_str);
            let code = scan::code_only(text);
            for r in scan::path_refs(scan::before_tests(&code), &roots) {
                // Only its paths into the library count (`crate::` is the binary's own).
                if matches!(r.base, Base::Extern(0)) {
                    graph.add_edge(std::slice::from_ref(&node), &file, &r);
                }
            }
        }
        graph
    }

    /// Other crates lib.rs re-exports under a name (`pub use sluice_config as config;`).
    fn add_crate_nodes(&mut self, root_code: &str) {
        for r in scan::path_refs(root_code, &[]) {
            let (Base::Relative, [(krate, _)], Some(alias)) =
                (r.base, r.segments.as_slice(), &r.alias)
            else {
                continue;
            };
            if krate != alias && !self.is_child(&[], alias) {
                self.roots.push(krate.clone());
                self.crate_nodes.push(Some(alias.clone()));
                self.children
                    .entry(ModPath::new())
                    .or_default()
                    .push(alias.clone());
            }
        }
    }

    /// Folders of `src/` holding a binary's `main.rs` (not library modules); returns each node
    /// with the files under it.
    fn add_binary_nodes(&mut self, sources: &Sources) -> Vec<(String, String)> {
        let mut files = Vec::new();
        for key in sources.keys() {
            let Some((folder, "main.rs")) = key.split_once('/') else {
                continue;
            };
            if self.is_child(&[], folder) {
                continue;
            }
            self.children
                .entry(ModPath::new())
                .or_default()
                .push(folder.to_string());
            let prefix = format!("{folder}/");
            for file in sources.keys().filter(|k| k.starts_with(&prefix)) {
                files.push((folder.to_string(), file.clone()));
            }
        }
        files
    }

    fn is_child(&self, parent: &[String], name: &str) -> bool {
        self.children
            .get(parent)
            .is_some_and(|kids| kids.iter().any(|k| k == name))
    }

    /// The absolute path `r` names from a file of module `from`; None outside the crate.
    fn resolve(&self, from: &[String], r: &PathRef) -> Option<(ModPath, Vec<usize>)> {
        let base: ModPath = match r.base {
            Base::Crate => Vec::new(),
            Base::SelfMod => from.to_vec(),
            Base::Super(n) => from.get(..from.len().checked_sub(n)?)?.to_vec(),
            Base::Relative => {
                let first = &r.segments.first()?.0;
                if let Some(i) = self.roots.iter().position(|root| root == first) {
                    return self.in_crate(i, &r.segments[1..]);
                }
                if !self.is_child(from, first) {
                    return None;
                }
                from.to_vec()
            }
            Base::Extern(i) => return self.in_crate(i, &r.segments),
        };
        let mut lines = vec![0; base.len()];
        let mut path = base;
        for (name, line) in &r.segments {
            path.push(name.clone());
            lines.push(*line);
        }
        Some((path, lines))
    }

    /// A path from `roots[i]::`: from the library's root, or into a re-exported crate's node.
    fn in_crate(&self, i: usize, segments: &[(String, usize)]) -> Option<(ModPath, Vec<usize>)> {
        let mut path: ModPath = Vec::new();
        let mut lines = Vec::new();
        if let Some(node) = self.crate_nodes.get(i)? {
            path.push(node.clone());
            lines.push(segments.first().map_or(0, |(_, line)| *line));
        }
        for (name, line) in segments {
            path.push(name.clone());
            lines.push(*line);
        }
        Some((path, lines))
    }

    fn add_alias(&mut self, module: &[String], r: &PathRef) {
        let Some(alias) = &r.alias else { return };
        let Some((target, _)) = self.resolve(module, r) else {
            return;
        };
        let Some(child) = target
            .get(module.len())
            .filter(|_| target.starts_with(module))
        else {
            return;
        };
        if target.len() > module.len() + 1 && !self.is_child(module, alias) {
            self.aliases
                .entry(module.to_vec())
                .or_default()
                .insert(alias.clone(), child.clone());
        }
    }

    fn add_edge(&mut self, from: &[String], file: &str, r: &PathRef) {
        let Some((target, lines)) = self.resolve(from, r) else {
            return;
        };
        let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
        if common >= from.len() || common >= target.len() {
            return; // a module naming itself, a descendant, or an ancestor's own items
        }
        let level = &from[..common];
        let named = &target[common];
        let to = if self.is_child(level, named) {
            named.clone()
        } else if let Some(child) = self.aliases.get(level).and_then(|a| a.get(named)) {
            child.clone()
        } else {
            return; // an item of the parent module itself
        };
        if to == from[common] {
            return;
        }
        let site = (format!("{}/{file}", self.src), lines[common]);
        self.edges
            .entry(level.to_vec())
            .or_default()
            .entry((from[common].clone(), to))
            .or_insert(site);
    }

    /// `src/` or `src/a/b` for messages about the children of `level`.
    pub fn place(&self, level: &[String]) -> String {
        if level.is_empty() {
            self.src.clone()
        } else {
            format!("{}/{}", self.src, level.join("/"))
        }
    }
}
