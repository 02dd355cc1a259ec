#!/usr/bin/env bash
# The shared stage cache on a real crate (issue 30): semver 1.0.28 from crates.io through
# `sluice init`, run by a first coordinator with `--shared-cache` (it fills the shared cache),
# then by a second coordinator — its own cluster key trusting the first's, its own stage cache and
# cache volumes, the crate at another path — served from the shared cache; against the same
# second coordinator's cold run without it (empty caches), in alternating rounds. Prints every
# sample, then medians and the ratio.
#
#   bash bench/shared-cache.sh [path/to/sluice] [ROUNDS]   (default: target/release/sluice, 3)
#   BENCH_CRATE=DIR: that crate folder instead of semver (the CI smoke pass: examples/rust-crate)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
need_sluice "${1:-}"
rounds=${2:-3}
start_nats
rust_crate "$work/checkout-one"
cp -r "$work/checkout-one" "$work/checkout-two"
(cd "$work/checkout-one" && "$sluice" init >/dev/null)
(cd "$work/checkout-two" && "$sluice" init >/dev/null)

# Each coordinator its own machine: cluster key, blob cache, stage cache, volumes.
as_machine() { # NAME COMMAND...
  local name=$1; shift
  XDG_DATA_HOME=$work/$name/data XDG_CACHE_HOME=$work/$name/cache \
    SLUICE_STAGE_CACHE=$work/$name/stages SLUICE_VOLUMES=$work/$name/volumes \
    SLUICE_RUNS_DIR=$work/$name/runs "$@"
}
shared() { # the second machine, served from the shared cache
  as_machine second "$sluice" run "$work/checkout-two/pipeline.toml" --format plain \
    --shared-cache "$url" --trust-cache-writer "$work/first/data/sluice/cluster.pub"
}
cold() { # the second machine on its own
  as_machine second "$sluice" run "$work/checkout-two/pipeline.toml" --format plain
}

echo "first coordinator, cold, filling the shared cache: $(ms as_machine first "$sluice" run "$work/checkout-one/pipeline.toml" --format plain --shared-cache "$url") ms"
for round in $(seq "$rounds"); do
  if ((round % 2)); then order="shared cold"; else order="cold shared"; fi
  for how in $order; do
    rm -rf "$work/second/stages" "$work/second/volumes"
    echo "$how $(ms "$how")"
    if [ "$how" = shared ]; then
      grep -E '✓|✗|cached|ran' "$work/last.log" | sed 's/^/  /' >&2
    fi
  done
done | tee "$work/samples"

python3 - "$work/samples" <<'PY'
import sys, statistics
samples = {}
for line in open(sys.argv[1]):
    how, ms = line.split()
    samples.setdefault(how, []).append(int(ms))
for how in ("cold", "shared"):
    print(f"{how:<7} median {statistics.median(samples[how]):>8.0f} ms  samples {samples[how]}")
print(f"shared/cold {statistics.median(samples['shared']) / statistics.median(samples['cold']):.3f}x")
PY
