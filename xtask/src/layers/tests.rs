//! The layer check on small made-up crates.

use super::cycles::{covering_cycles, strongly_connected};
use super::*;

fn sources(files: &[(&str, &str)]) -> Sources {
    files
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect()
}

fn top_edges(graph: &Graph) -> Vec<(String, String, String)> {
    graph
        .edges
        .get(&ModPath::new())
        .into_iter()
        .flatten()
        .map(|((a, b), (file, line))| (a.clone(), b.clone(), format!("{file}:{line}")))
        .collect()
}

fn edge(a: &str, b: &str, site: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), site.to_string())
}

#[test]
fn a_cycle_through_a_grouped_use_is_reported_with_a_line_per_edge() {
    let graph = Graph::build(
        "host/src",
        "lib.rs",
        Some("host_lib"),
        &sources(&[
            (
                "lib.rs",
                "pub mod a;\npub mod b;\nmod c;\n#[cfg(test)]\nmod tests;\n",
            ),
            (
                "a.rs",
                "//! A.\n\nuse crate::{\n    c::X,\n    b::{self, Y},\n};\n",
            ),
            ("b.rs", "fn f() { crate::a::g(); }\n"),
            ("c.rs", "#[cfg(test)]\nmod tests { use crate::a; }\n"),
            ("tests.rs", "use crate::b;\n"),
        ]),
    );
    assert_eq!(
        top_edges(&graph),
        [
            edge("a", "b", "host/src/a.rs:5"),
            edge("a", "c", "host/src/a.rs:4"),
            edge("b", "a", "host/src/b.rs:1"),
        ]
    );
    assert_eq!(
        cycles(&graph),
        [
            "host/src: import cycle among 2 modules: a, b\n  a → b → a\n  where:\n    a → b  host/src/a.rs:5\n    b → a  host/src/b.rs:1"
        ]
    );
}

#[test]
fn inside_a_module_folder_siblings_are_checked_too() {
    let graph = Graph::build(
        "host/src",
        "lib.rs",
        Some("host_lib"),
        &sources(&[
            ("lib.rs", "pub mod sandbox;\npub mod model;\n"),
            ("model/mod.rs", "pub mod events;\n"),
            ("model/events.rs", "pub struct Event;\n"),
            (
                "sandbox/mod.rs",
                "pub mod cache;\npub mod engine;\npub use engine::Host;\n",
            ),
            (
                "sandbox/cache.rs",
                "use super::Host;\nuse crate::model::events::Event;\n",
            ),
            ("sandbox/engine.rs", "use crate::sandbox::cache::Cache;\n"),
        ]),
    );
    assert_eq!(
        top_edges(&graph),
        [edge("sandbox", "model", "host/src/sandbox/cache.rs:2")]
    );
    assert_eq!(
        cycles(&graph),
        [
            "host/src/sandbox: import cycle among 2 modules: cache, engine\n  cache → engine → cache\n  where:\n    cache → engine  host/src/sandbox/cache.rs:1\n    engine → cache  host/src/sandbox/engine.rs:1"
        ]
    );
}

#[test]
fn a_name_the_crate_root_re_exports_counts_as_its_module() {
    let graph = Graph::build(
        "host/src",
        "lib.rs",
        Some("host_lib"),
        &sources(&[
            (
                "lib.rs",
                "pub mod a;\npub mod b;\n\npub use b::inner::Thing;\n",
            ),
            ("a.rs", "fn f(_: crate::Thing) {}\n"),
            ("b.rs", "pub mod inner;\n"),
            ("b/inner.rs", "pub struct Thing;\n"),
        ]),
    );
    assert_eq!(top_edges(&graph), [edge("a", "b", "host/src/a.rs:1")]);
    assert!(cycles(&graph).is_empty());
}

#[test]
fn every_edge_of_a_tangle_is_on_a_listed_cycle() {
    let site = ("f.rs".to_string(), 1);
    let edges: Edges = [("a", "b"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "d")]
        .iter()
        .map(|(a, b)| ((a.to_string(), b.to_string()), site.clone()))
        .collect();
    let components = strongly_connected(&edges);
    let abc: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(components, std::slice::from_ref(&abc));
    assert_eq!(
        covering_cycles(&edges, &abc),
        [vec!["a", "b", "a"], vec!["a", "b", "c", "a"]]
    );
}

#[test]
fn layers_forbid_edges_upwards_and_need_every_module() {
    let graph = Graph::build(
        "host/src",
        "lib.rs",
        Some("host_lib"),
        &sources(&[
            ("lib.rs", "pub mod low;\npub mod high;\npub mod loose;\n"),
            ("low.rs", "use crate::high::Thing;\n"),
            ("high.rs", "use crate::low::Other;\n"),
            ("loose.rs", ""),
        ]),
    );
    let problems = layer_violations("host/LAYERS", "# lowest first\nlow\nhigh ghost\n", &graph);
    assert_eq!(
        problems,
        [
            "host/LAYERS: `ghost` is not a module of host/src",
            "host/LAYERS: module `loose` is in no layer: add it to the line of its layer",
            "host/src/low.rs:1: `low` (layer 1) uses `high` (layer 2), a higher layer in host/LAYERS",
        ]
    );
}

#[test]
fn declared_modules_without_a_file_are_noted() {
    let graph = Graph::build(
        "host/src",
        "lib.rs",
        Some("host_lib"),
        &sources(&[("lib.rs", "mod gone;\n")]),
    );
    assert_eq!(graph.notes.len(), 1, "{:?}", graph.notes);
    assert!(graph.notes[0].contains("`mod gone;`"));
}

#[test]
fn a_re_exported_crate_and_a_binary_folder_are_nodes_too() {
    let graph = Graph::build(
        "host/src",
        "lib.rs",
        Some("host_lib"),
        &sources(&[
            (
                "lib.rs",
                "pub mod run;\npub use host_config as config;\npub use run::Runner;\n",
            ),
            (
                "run.rs",
                "use crate::config::Pipeline;\nfn f() { host_config::load(); }\n",
            ),
            (
                "cli/main.rs",
                "mod args;\nuse host_lib::Runner;\nuse crate::args::Args;\n",
            ),
            ("cli/args.rs", "fn f() { host_lib::config::parse(); }\n"),
        ]),
    );
    assert_eq!(
        graph
            .children
            .get(&ModPath::new())
            .cloned()
            .unwrap_or_default(),
        ["run", "config", "cli"]
    );
    assert_eq!(
        top_edges(&graph),
        [
            edge("cli", "config", "host/src/cli/args.rs:1"),
            edge("cli", "run", "host/src/cli/main.rs:2"),
            edge("run", "config", "host/src/run.rs:1"),
        ]
    );
}

#[test]
fn a_cycle_between_two_modules_of_a_binary_is_found() {
    // `crate::` is the binary's root; `host_lib::run` is the library's module, not the sibling.
    let graph = Graph::build(
        "host/src/cli",
        "main.rs",
        None,
        &sources(&[
            (
                "main.rs",
                "use host_lib::Host;\nmod agent;\nmod run;\nuse run::Flags;\nfn main() {}\n",
            ),
            (
                "agent.rs",
                "//! Agent.\n\nuse host_lib::run::Runner;\nuse super::run::start;\n",
            ),
            ("run.rs", "fn f() {\n    crate::agent::serve();\n}\n"),
        ]),
    );
    assert_eq!(
        top_edges(&graph),
        [
            edge("agent", "run", "host/src/cli/agent.rs:4"),
            edge("run", "agent", "host/src/cli/run.rs:2"),
        ]
    );
    assert_eq!(
        cycles(&graph),
        [
            "host/src/cli: import cycle among 2 modules: agent, run\n  agent → run → agent\n  where:\n    agent → run  host/src/cli/agent.rs:4\n    run → agent  host/src/cli/run.rs:2"
        ]
    );
}

#[test]
fn a_binary_whose_modules_point_one_way_passes() {
    let graph = Graph::build(
        "host/src/cli",
        "main.rs",
        None,
        &sources(&[
            ("main.rs", "mod agent;\nmod run;\nmod args;\nfn main() {}\n"),
            (
                "args.rs",
                "use host_lib::run::Runner;\nuse host_lib::agent;\n",
            ),
            (
                "agent.rs",
                "use crate::args::Args;\nfn f() { host_lib::run::go(); }\n",
            ),
            (
                "run.rs",
                "use super::{agent, args::Args};\n#[cfg(test)]\nmod tests { use crate::run; }\n",
            ),
        ]),
    );
    assert_eq!(
        top_edges(&graph),
        [
            edge("agent", "args", "host/src/cli/agent.rs:1"),
            edge("run", "agent", "host/src/cli/run.rs:1"),
            edge("run", "args", "host/src/cli/run.rs:1"),
        ]
    );
    assert!(cycles(&graph).is_empty(), "{:?}", cycles(&graph));
    assert!(graph.notes.is_empty(), "{:?}", graph.notes);
}

#[test]
fn a_cycle_between_modules_of_a_driver_binary_is_found_below_its_root_helpers() {
    // xtask's shape: helpers in main.rs that every module uses (no edge: the root is the
    // parent), and two modules that call each other; plus a folder module with its own cycle.
    let graph = Graph::build(
        "xtask/src",
        "main.rs",
        None,
        &sources(&[
            (
                "main.rs",
                "mod bench;\nmod ci;\nmod layers;\nfn sh() {}\nfn main() { ci::test(); }\n",
            ),
            (
                "bench.rs",
                "use crate::{sh, target_dir};\nfn f() { let _ = crate::ci::host_env(); }\n",
            ),
            (
                "ci.rs",
                "use crate::{bench, layers, sh};\nfn g() { bench::bench(); }\n",
            ),
            ("layers.rs", "mod graph;\nmod scan;\nuse super::sh;\n"),
            ("layers/graph.rs", "use super::scan::PathRef;\n"),
            ("layers/scan.rs", "fn f(_: super::graph::Graph) {}\n"),
        ]),
    );
    assert_eq!(
        cycles(&graph),
        [
            "xtask/src: import cycle among 2 modules: bench, ci\n  bench → ci → bench\n  where:\n    bench → ci  xtask/src/bench.rs:2\n    ci → bench  xtask/src/ci.rs:1",
            "xtask/src/layers: import cycle among 2 modules: graph, scan\n  graph → scan → graph\n  where:\n    graph → scan  xtask/src/layers/graph.rs:1\n    scan → graph  xtask/src/layers/scan.rs:1",
        ]
    );
}

#[test]
fn every_crate_of_a_checkout_is_checked_the_binaries_too() -> Result<()> {
    let repo = tempfile::tempdir()?;
    let write = |path: &str, text: &str| -> Result<()> {
        let file = repo.path().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, text)?;
        Ok(())
    };
    write("host/Cargo.toml", "[package]\nname = \"sluice\"\n")?;
    write("host/LAYERS", "run\ncli\n")?;
    write("host/src/lib.rs", "pub mod run;\n")?;
    write("host/src/run.rs", "pub fn go() {}\n")?;
    write("host/src/cli/main.rs", "mod a;\nmod b;\nuse sluice::run;\n")?;
    write(
        "host/src/cli/a.rs",
        "use crate::b::B;\nuse sluice::run::go;\n",
    )?;
    write(
        "host/src/cli/b.rs",
        "pub struct B;\nfn f() { super::a::g(); }\n",
    )?;
    write("xtask/src/main.rs", "mod one;\nmod two;\n")?;
    write("xtask/src/one.rs", "use crate::two;\n")?;
    write("xtask/src/two.rs", "")?;
    let found: Vec<(Vec<String>, String)> = CRATES
        .iter()
        .filter_map(|entry| check_crate(repo.path(), entry).transpose())
        .collect::<Result<_>>()?;
    let summaries: Vec<&str> = found.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "host/src: 2 top-level modules, 1 edges between sibling modules, checked against host/LAYERS",
            "host/src/cli: 2 top-level modules, 2 edges between sibling modules",
            "xtask/src: 2 top-level modules, 1 edges between sibling modules",
        ]
    );
    let problems: Vec<&String> = found.iter().flat_map(|(p, _)| p).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("host/src/cli: import cycle among 2 modules: a, b\n"),
        "{}",
        problems[0]
    );
    assert!(problems[0].contains("b → a  host/src/cli/b.rs:2"));
    assert!(check(repo.path()).is_err());
    Ok(())
}

/// The scanner alone.
mod scan_tests {
    use super::super::scan::*;

    fn names(r: &PathRef) -> Vec<&str> {
        r.segments.iter().map(|(s, _)| s.as_str()).collect()
    }

    #[test]
    fn comments_and_literals_are_blanked_and_lines_kept() {
        let code = code_only(
            "let a = \"crate::x\"; // crate::y\n/* crate::z\n */ let c = '\"'; let l: &'a str = r#\"crate::w\"#;\ncrate::v::f();\n",
        );
        assert_eq!(code.lines().count(), 4);
        let refs = path_refs(&code, &[]);
        assert_eq!(refs.len(), 1, "{refs:?}");
        assert_eq!(names(&refs[0]), ["v", "f"]);
        assert_eq!(refs[0].segments[0].1, 4);
    }

    #[test]
    fn a_use_group_over_several_lines_gives_one_path_per_leaf_with_its_line() {
        let code = "use crate::{\n    a::{self, B},\n    c::d as e,\n};\nuse super::super::f::G;\n";
        let refs = path_refs(code, &[]);
        let got: Vec<(Base, Vec<&str>, usize, Option<&str>)> = refs
            .iter()
            .map(|r| (r.base, names(r), r.segments[0].1, r.alias.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Base::Crate, vec!["a"], 2, Some("a")),
                (Base::Crate, vec!["a", "B"], 2, Some("B")),
                (Base::Crate, vec!["c", "d"], 3, Some("e")),
                (Base::Super(2), vec!["f", "G"], 5, Some("G")),
            ]
        );
    }

    #[test]
    fn relative_uses_and_expression_paths_are_found() {
        let refs = path_refs(
            "pub use engine::Host;\nfn f(x: &self::a::T) { super::b::g::<u8>(); self.c(); lib::d(); }\n",
            &["lib".to_string()],
        );
        let got: Vec<(Base, Vec<&str>)> = refs.iter().map(|r| (r.base, names(r))).collect();
        assert_eq!(
            got,
            [
                (Base::Relative, vec!["engine", "Host"]),
                (Base::SelfMod, vec!["a", "T"]),
                (Base::Super(1), vec!["b", "g"]),
                (Base::Extern(0), vec!["d"]),
            ]
        );
    }

    #[test]
    fn everything_from_the_first_cfg_test_line_is_cut() {
        let code = "use crate::a;\n#[cfg(test)]\nmod tests { use crate::b; }\n";
        assert_eq!(before_tests(code), "use crate::a;\n");
    }

    #[test]
    fn file_module_declarations_are_listed() {
        let code = "pub mod a;\nmod b;\npub(crate) mod c;\nmod inline {}\n";
        assert_eq!(mod_decls(code), ["a", "b", "c"]);
    }
}
