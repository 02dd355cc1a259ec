//! Import cycles among sibling modules: the strongly connected sets (Tarjan) and, for each, a
//! small list of cycles that together pass through every edge inside it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Edges;
use super::graph::Graph;

/// Every import cycle: per strongly connected set of sibling modules, one shortest cycle
/// through each of its edges (so every edge to cut is shown), each with where its edges are.
pub fn cycles(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (level, edges) in &graph.edges {
        for component in strongly_connected(edges) {
            let mut text = format!(
                "{}: import cycle among {} modules: {}",
                graph.place(level),
                component.len(),
                component.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            let mut shown: Vec<(String, String)> = Vec::new();
            for cycle in covering_cycles(edges, &component) {
                text.push_str(&format!("\n  {}", cycle.join(" → ")));
                for pair in cycle.windows(2) {
                    let key = (pair[0].clone(), pair[1].clone());
                    if !shown.contains(&key) {
                        shown.push(key);
                    }
                }
            }
            text.push_str("\n  where:");
            for key in shown {
                if let Some((file, line)) = edges.get(&key) {
                    text.push_str(&format!("\n    {} → {}  {file}:{line}", key.0, key.1));
                }
            }
            problems.push(text);
        }
    }
    problems
}

fn successors<'a>(edges: &'a Edges, node: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    edges
        .keys()
        .filter(move |(from, _)| from == node)
        .map(|(_, to)| to)
}

/// The strongly connected sets of more than one module (Tarjan), sorted.
pub fn strongly_connected(edges: &Edges) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let i = s.index.len();
        s.index.insert(node, i);
        s.low.insert(node, i);
        s.stack.push(node);
        for next in successors(s.edges, node) {
            if !s.index.contains_key(next.as_str()) {
                visit(s, next);
                let low = s.low[node].min(s.low[next.as_str()]);
                s.low.insert(node, low);
            } else if s.stack.contains(&next.as_str()) {
                let low = s.low[node].min(s.index[next.as_str()]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut set = BTreeSet::new();
            while let Some(top) = s.stack.pop() {
                set.insert(top.to_string());
                if top == node {
                    break;
                }
            }
            if set.len() > 1 {
                s.found.push(set);
            }
        }
    }
    let nodes: BTreeSet<&str> = edges
        .keys()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in nodes {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found.sort();
    state.found
}

/// For each edge inside `component` not yet on a listed cycle, the edge plus the shortest way
/// back; each cycle written from its smallest module, e.g. `[a, b, c, a]`.
pub fn covering_cycles(edges: &Edges, component: &BTreeSet<String>) -> Vec<Vec<String>> {
    let inside: Vec<&(String, String)> = edges
        .keys()
        .filter(|(a, b)| component.contains(a) && component.contains(b))
        .collect();
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut cycles = Vec::new();
    for (from, to) in inside {
        if covered.contains(&(from.clone(), to.clone())) {
            continue;
        }
        let Some(back) = shortest_path(edges, component, to, from) else {
            continue;
        };
        let mut cycle = vec![from.clone()];
        cycle.extend(back);
        for pair in cycle.windows(2) {
            covered.insert((pair[0].clone(), pair[1].clone()));
        }
        cycle.pop();
        let start = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, name)| name.as_str())
            .map_or(0, |(i, _)| i);
        cycle.rotate_left(start);
        cycle.push(cycle[0].clone());
        if !cycles.contains(&cycle) {
            cycles.push(cycle);
        }
    }
    cycles
}

/// The modules from `start` to `goal` (both included) by the fewest edges inside `component`.
fn shortest_path(
    edges: &Edges,
    component: &BTreeSet<String>,
    start: &str,
    goal: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut seen = BTreeSet::from([start]);
    while let Some(node) = queue.pop_front() {
        if node == goal {
            let mut path = vec![goal.to_string()];
            let mut at = goal;
            while let Some(prev) = came_from.get(at) {
                path.push(prev.to_string());
                at = prev;
            }
            path.reverse();
            return Some(path);
        }
        for next in successors(edges, node) {
            if component.contains(next) && seen.insert(next.as_str()) {
                came_from.insert(next.as_str(), node);
                queue.push_back(next.as_str());
            }
        }
    }
    None
}
