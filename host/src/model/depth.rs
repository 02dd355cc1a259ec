//! Each stage's depth in its graph — the length of its longest chain of dependencies — computed
//! one way for everything that draws or groups stages (`sluice check`'s waves, the report's graph).

/// The depth of each stage (given as its name and the names it depends on), in the order given.
/// Dependencies may come in any order; names not among the stages are ignored. The graph has no
/// cycles (the pipeline was validated); were there one, the passes stop after `stages.len()`.
pub fn depths<'a>(stages: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Vec<usize> {
    let stages: Vec<(&str, &[String])> = stages.into_iter().collect();
    let mut depth = vec![0usize; stages.len()];
    let position = |name: &str| stages.iter().position(|(n, _)| *n == name);
    let deps: Vec<Vec<usize>> = stages
        .iter()
        .map(|(_, on)| on.iter().filter_map(|d| position(d)).collect())
        .collect();
    for _ in 0..stages.len() {
        let mut moved = false;
        for (index, on) in deps.iter().enumerate() {
            let want = on.iter().map(|d| depth[*d] + 1).max().unwrap_or(0);
            if want > depth[index] {
                depth[index] = want;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_the_longest_chain_whatever_the_order() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a, b, c, d) = (names(&[]), names(&["a"]), names(&["a", "b"]), names(&["c"]));
        let stages = [
            ("d", d.as_slice()),
            ("c", c.as_slice()),
            ("a", a.as_slice()),
            ("b", b.as_slice()),
        ];
        assert_eq!(depths(stages), [3, 2, 0, 1]);
    }
}
