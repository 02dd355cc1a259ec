# Sourced by the bash benchmarks (dist, workspace-shipping, rust-crate-state, shared-cache): the
# repository `$root`, the plugins `$plugins`, a scratch folder `$work` (removed on exit, with
# every process in `pids` killed first), and the helpers they share.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugins=$root/plugins/dist
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do { kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# need_sluice [BINARY]: `$sluice`, absolute (default: the release build).
need_sluice() {
  sluice=$(realpath -m "${1:-$root/target/release/sluice}")
  [ -x "$sluice" ] || { echo "no sluice binary at $sluice: cargo build --release -p sluice" >&2; exit 2; }
}

# need_plugins NAME...: each plugins/dist/NAME.wasm is built.
need_plugins() {
  local p
  for p in "$@"; do
    [ -f "$plugins/$p.wasm" ] || { echo "no $plugins/$p.wasm: cargo xtask plugins" >&2; exit 2; }
  done
}

# ms COMMAND...: runs it (its output into $work/last.log, shown if it fails, which ends the
# bench) and prints how long it took in milliseconds.
ms() {
  local start end
  start=$(date +%s%N)
  "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; exit 1; }
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}

# rust_crate DEST: the crate the state benchmarks build, unpacked into DEST — semver 1.0.28 from
# crates.io, or a copy of the crate folder `$BENCH_CRATE` names (the CI smoke pass uses the small
# examples/rust-crate), without its pipeline and build output, for `sluice init` to write anew.
rust_crate() {
  if [ -n "${BENCH_CRATE:-}" ]; then
    cp -r "$BENCH_CRATE" "$1"
    rm -rf "$1/pipeline.toml" "$1/pipeline.lock" "$1/target" "$1/.sluice"
    return
  fi
  local crate=semver-1.0.28
  curl -sSfL "https://static.crates.io/crates/semver/$crate.crate" -o "$work/crate.tar.gz"
  tar -xzf "$work/crate.tar.gz" -C "$work"
  mv "$work/$crate" "$1"
}

# start_nats: a real `nats-server -js` on a free loopback port at `$url`, its data in `$work`;
# sluice's caches, runs, cluster key and blob caches kept in `$work` too (the compiled-code cache
# unless SLUICE_CACHE_DIR names one).
start_nats() {
  nats=$(command -v nats-server || echo /usr/sbin/nats-server)
  [ -x "$nats" ] || { echo "nats-server is not installed: cargo xtask setup" >&2; exit 2; }
  export SLUICE_CACHE_DIR=${SLUICE_CACHE_DIR:-$work/compiled}
  export SLUICE_STAGE_CACHE=$work/stage-cache SLUICE_RUNS_DIR=$work/runs
  export XDG_DATA_HOME=$work/data XDG_CACHE_HOME=$work/cache
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$nats" -js -a 127.0.0.1 -p "$port" -sd "$work/nats" >"$work/nats.log" 2>&1 &
  pids+=($!)
  url=nats://127.0.0.1:$port
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.05; done
  echo "nats-server did not start listening on 127.0.0.1:$port:" >&2
  cat "$work/nats.log" >&2
  exit 1
}

# wait_for_line FILE TEXT: waits (up to 10 s) until FILE holds TEXT, e.g. an agent's "serving".
wait_for_line() {
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.05; done
  echo "no \"$2\" in $1 after 10 s:" >&2
  cat "$1" >&2
  exit 1
}
