#!/usr/bin/env bash
# State between runs on a real crate: semver 1.0.28 from crates.io through `sluice init` +
# `sluice run`, against the same cargo commands by hand (`cargo build --release --locked &&
# cargo test --locked`) in their own copy — cold (empty target folder / empty volumes and stage
# cache), one file touched, nothing changed — in alternating rounds; prints every sample, then
# medians with p10/p90 and the ratios.
#
# usage: bench/rust-crate-state.sh SLUICE_BINARY [ROUNDS]   (release: target/release/sluice)
#   BENCH_CRATE=DIR: that crate folder instead of semver (the CI smoke pass: examples/rust-crate)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
need_sluice "${1:-}"
rounds=${2:-5}
rust_crate "$work/hand"
cp -r "$work/hand" "$work/sluice"
(cd "$work/hand" && cargo generate-lockfile -q)
(cd "$work/sluice" && "$sluice" init >/dev/null)
export SLUICE_VOLUMES=$work/volumes SLUICE_STAGE_CACHE=$work/stages SLUICE_RUNS_DIR=$work/runs
export CARGO_TARGET_DIR=$work/hand/target

by_hand() { (cd "$work/hand" && cargo build --release --locked -q && cargo test --locked -q); }
by_sluice() { "$sluice" run "$work/sluice/pipeline.toml" --format plain; }
touch_one() { printf '\n// touched %s\n' "$RANDOM" >>"$1/src/lib.rs"; }

for round in $(seq "$rounds"); do
    rm -rf "$work/hand/target" "$work/volumes" "$work/stages"
    sleep 0.1
    if ((round % 2)); then order="hand sluice"; else order="sluice hand"; fi
    for who in $order; do echo "cold $who $(ms "by_$who")"; done
    touch_one "$work/hand"
    touch_one "$work/sluice"
    sleep 0.1
    for who in $order; do echo "touched $who $(ms "by_$who")"; done
    sleep 0.1
    for who in $order; do echo "unchanged $who $(ms "by_$who")"; done
done | tee "$work/samples"

python3 - "$work/samples" <<'PY'
import sys, statistics
samples = {}
for line in open(sys.argv[1]):
    case, who, ms = line.split()
    samples.setdefault((case, who), []).append(int(ms))
def q(values, p):
    values = sorted(values)
    return values[round((len(values) - 1) * p)]
print(f"{'case':<10} {'who':<7} {'median ms':>10} {'p10':>7} {'p90':>7}  n")
for case in ("cold", "touched", "unchanged"):
    for who in ("hand", "sluice"):
        v = samples[(case, who)]
        print(f"{case:<10} {who:<7} {statistics.median(v):>10.0f} {q(v, .1):>7} {q(v, .9):>7}  {len(v)}")
    ratio = statistics.median(samples[(case, "sluice")]) / statistics.median(samples[(case, "hand")])
    print(f"{case:<10} sluice/hand {ratio:.2f}x")
PY
