# Sourced by the distributed benchmarks: a scratch folder `$work` (removed on exit, with every
# process in `pids`), sluice's caches and runs kept in it, and a real `nats-server -js` on a free
# loopback port at `$url`. Needs `$nats`, the nats-server binary.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do { kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export SLUICE_CACHE_DIR=$work/compiled SLUICE_STAGE_CACHE=$work/stage-cache SLUICE_RUNS_DIR=$work/runs
# The cluster key and blob caches too.
export XDG_DATA_HOME=$work/data XDG_CACHE_HOME=$work/cache

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$nats" -js -a 127.0.0.1 -p "$port" -sd "$work/nats" > "$work/nats.log" 2>&1 &
pids+=($!)
url=nats://127.0.0.1:$port
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
