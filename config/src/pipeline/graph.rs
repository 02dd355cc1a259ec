//! The stage graph: a stage depends on the stages its `inputs` read from and those it names in
//! `needs`; a stage with neither depends on every stage above it (the chain a plain file has
//! always meant), and so does an `on-failure` or `always` stage, which can only know whether
//! something failed once everything above it is over. Unknown names and cycles are refused at
//! the `needs` entry that causes them.

use std::collections::{HashMap, HashSet};

use super::raw::{RawStage, Text};
use super::{Context, InputSelection, StageSpec, When};
use crate::diagnostic::Diagnostic;

/// The stages named in `stage.needs`, checked: each exists, is not the stage itself, and is
/// listed once.
pub(super) fn needs(
    stage: &RawStage,
    index: usize,
    cx: &Context<'_>,
) -> Result<Vec<String>, Diagnostic> {
    let Some(list) = &stage.needs else {
        return Ok(Vec::new());
    };
    let own = cx.names[index].get_ref();
    let mut needs: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let name = item.get_ref();
        if name == own {
            return Err(cx
                .src
                .error(item.span(), format!("stage `{own}` needs itself"))
                .with_hint("a stage cannot wait for itself; remove it from `needs`"));
        }
        let group = cx.names.iter().position(|n| n.get_ref() == name);
        let instance = cx.instances.iter().flatten().any(|i| &i.name == name);
        if group.is_none() && !instance {
            let known: Vec<&str> = cx.names.iter().map(|n| n.get_ref().as_str()).collect();
            return Err(cx
                .src
                .error(
                    item.span(),
                    format!("stage `{own}` needs `{name}`, which is not a stage"),
                )
                .with_hint(format!(
                    "`needs` names stages of this file: {}",
                    known.join(", ")
                )));
        }
        if list.iter().filter(|n| n.get_ref() == name).count() > 1 {
            return Err(cx
                .src
                .error(item.span(), format!("`{name}` is listed twice in `needs`"))
                .with_hint("list each stage once"));
        }
        match group {
            Some(group) => needs.extend(cx.instances[group].iter().map(|i| i.name.clone())),
            None => needs.push(name.clone()),
        }
    }
    Ok(needs)
}

/// Fills in each stage's `depends_on` and refuses a cycle, pointing at the `needs` entry that
/// closes it.
pub(super) fn link(
    stages: &mut [StageSpec],
    raw: &[RawStage],
    cx: &Context<'_>,
) -> Result<(), Diagnostic> {
    for index in 0..stages.len() {
        let spec = &stages[index];
        let mut depends: Vec<String> = Vec::new();
        let explicit = matches!(spec.inputs, InputSelection::Only(_)) || !spec.needs.is_empty();
        // Every stage above it, but not its own matrix siblings.
        let above = stages[..index]
            .iter()
            .filter(|s| s.group != spec.group)
            .map(|s| s.name.clone());
        if spec.when != When::OnSuccess {
            depends.extend(above.clone());
        }
        if explicit {
            if let InputSelection::Only(refs) = &spec.inputs {
                depends.extend(refs.iter().map(|r| r.stage.clone()));
            }
            depends.extend(spec.needs.iter().cloned());
        } else {
            depends.extend(above);
        }
        // In order, each once; a set, so many stages do not make this quadratic per stage.
        let mut seen = HashSet::with_capacity(depends.len());
        let mut unique: Vec<String> = Vec::with_capacity(depends.len());
        for name in depends {
            if seen.insert(name.clone()) {
                unique.push(name);
            }
        }
        stages[index].depends_on = unique;
    }
    if let Some(cycle) = find_cycle(stages) {
        let first = &cycle[0];
        let second = &cycle[1 % cycle.len()];
        // The `needs` entry of `first` naming `second` closes it (inputs only point upwards).
        let group = stages
            .iter()
            .find(|s| &s.name == first)
            .map_or(first.as_str(), |s| s.group.as_str());
        let index = raw
            .iter()
            .position(|r| r.name.get_ref() == group)
            .unwrap_or(0);
        let item: Option<&Text> = raw[index].needs.iter().flatten().find(|n| {
            n.get_ref() == second
                || stages
                    .iter()
                    .any(|s| &s.name == second && s.group == *n.get_ref())
        });
        let path = cycle
            .iter()
            .chain(std::iter::once(first))
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" → ");
        let message = format!("the stages form a cycle: {path}");
        let diag = match item {
            Some(item) => cx.src.error(item.span(), message),
            None => cx.src.error(raw[index].name.span(), message),
        };
        return Err(diag.with_hint(
            "a stage cannot wait, directly or through others, for a stage that waits for it; \
             remove one of these `needs`",
        ));
    }
    Ok(())
}

/// A cycle of stage names (each depends on the next, the last on the first), if any.
fn find_cycle(stages: &[StageSpec]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let by_name: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(index, s)| (s.name.as_str(), index))
        .collect();
    let index_of = |name: &str| by_name.get(name).copied();
    let mut marks = vec![Mark::New; stages.len()];
    for start in 0..stages.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `path` is the chain of open stages.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let deps = &stages[node].depends_on;
            if *next < deps.len() {
                let dep = index_of(&deps[*next]);
                *next += 1;
                let Some(dep) = dep else { continue };
                match marks[dep] {
                    Mark::New => {
                        marks[dep] = Mark::Open;
                        path.push((dep, 0));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        return Some(
                            path[from..]
                                .iter()
                                .map(|(n, _)| stages[*n].name.clone())
                                .collect(),
                        );
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}
