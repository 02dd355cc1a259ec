#!/usr/bin/env bash
# Distributed runs on this machine (loopback): 30 small pipelines (3 stages each: emit → upper-case
# → assert) sent through a real nats-server -js to 1, 2 and 3 `sluice agent`s (one stage at a
# time each), all 30 coordinators started at once; then the added latency of one stage sent to
# an idle agent against the same stage run locally, median of 11 alternating runs.
#
#   bash bench/dist.sh [path/to/sluice] [PIPELINES] [AGENTS] [ROUNDS]
#     (defaults: target/release/sluice — build it first with cargo build --release -p sluice —,
#     30 pipelines, 1 to 3 agents, 11 rounds)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
need_sluice "${1:-}"
count=${2:-30}
most_agents=${3:-3}
rounds=${4:-11}
need_plugins emit text-transform assert-text
start_nats

pipeline() { # name text
  cat <<EOF
version = 1
[pipeline]
name = "$1"
[[stage]]
name = "code"
plugin = "$plugins/emit.wasm"
config = { files = { "a.txt" = "$2" } }
[[stage]]
name = "upper"
plugin = "$plugins/text-transform.wasm"
config = { op = "upper" }
[[stage]]
name = "check"
plugin = "$plugins/assert-text.wasm"
inputs = ["upper/a.txt"]
config = { require = ["$(echo "$2" | tr a-z A-Z)"] }
EOF
}
for i in $(seq "$count"); do
  mkdir -p "$work/p$i"
  pipeline "p$i" "pipeline number $i" > "$work/p$i/pipeline.toml"
done
mkdir -p "$work/one"
pipeline one "one" > "$work/one/pipeline.toml"
# Compile every plugin once (the compiled-code cache is shared by coordinators and agents).
"$sluice" run "$work/one/pipeline.toml" --format json --no-stage-cache > /dev/null

now() { date +%s.%N; }
start_agents() { # count
  for a in $(seq "$1"); do
    "$sluice" agent --nats "$url" --jobs 1 --name "bench-$a" --work-dir "$work/agent-$a" > "$work/agent-$a.log" 2>&1 &
    agents+=($!)
    pids+=($!)
  done
  for a in $(seq "$1"); do wait_for_line "$work/agent-$a.log" serving; done
}
stop_agents() {
  for pid in "${agents[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  agents=()
}

echo "$count pipelines × 3 stages, all coordinators at once, through nats-server $("$nats" --version | awk '{print $2}')"
printf '%-8s %12s %12s %s\n' agents "wall (s)" "stages/s" "stages per agent"
for n in $(seq "$most_agents"); do
  agents=()
  start_agents "$n"
  t0=$(now)
  run_pids=()
  for i in $(seq "$count"); do
    "$sluice" run "$work/p$i/pipeline.toml" --nats "$url" --format json --no-stage-cache > "$work/p$i/out-$n.json" 2>&1 &
    run_pids+=($!)
  done
  failed=0
  for pid in "${run_pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  t1=$(now)
  [ "$failed" = 0 ] || { echo "$failed of $count runs failed with $n agent(s)" >&2; exit 1; }
  per=$(for a in $(seq "$n"); do grep -c ': succeeded' "$work/agent-$a.log" || true; done | paste -sd/)
  grep -h warning "$work"/agent-*.log >&2 || true
  stop_agents
  for a in $(seq "$n"); do : > "$work/agent-$a.log"; done
  awk -v n="$n" -v t0="$t0" -v t1="$t1" -v per="$per" -v stages=$((count * 3)) \
    'BEGIN { w = t1 - t0; printf "%-8s %12.2f %12.1f %s\n", n, w, stages / w, per }'
done

echo
echo "one stage (emit), local vs sent to an idle agent: $rounds alternating runs, median end-to-end"
mkdir -p "$work/single"
cat > "$work/single/pipeline.toml" <<EOF
version = 1
[pipeline]
name = "single"
[[stage]]
name = "code"
plugin = "$plugins/emit.wasm"
config = { files = { "a.txt" = "a" } }
EOF
agents=()
start_agents 1
local_times=() remote_times=()
for _ in $(seq "$rounds"); do
  t0=$(now); "$sluice" run "$work/single/pipeline.toml" --format json --no-stage-cache > /dev/null; t1=$(now)
  local_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) * 1000 }')")
  t0=$(now); "$sluice" run "$work/single/pipeline.toml" --nats "$url" --format json --no-stage-cache > /dev/null; t1=$(now)
  remote_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) * 1000 }')")
done
stop_agents
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
lm=$(median "${local_times[@]}")
rm_=$(median "${remote_times[@]}")
awk -v l="$lm" -v r="$rm_" 'BEGIN {
  printf "%-28s %10.1f ms\n", "local (sluice run)", l
  printf "%-28s %10.1f ms\n", "remote (sluice run --nats)", r
  printf "%-28s %10.1f ms (%.2fx)\n", "added by the remote", r - l, r / l
}'
