#!/usr/bin/env bash
# The workspace by content (issue 30): a workspace of 5,000 files / 100 MB sent to an agent
# through a real nats-server -js, for a one-stage pipeline that reads it (`exec true`, granted
# `workspace = "read"`): the first run (every file sent), an unchanged second run (nothing sent)
# and a run with one file changed (one file sent), end to end and as the coordinator logs it —
# against `tar c | sha256sum` of the same tree (reading and hashing every byte once).
#
#   bash bench/workspace-shipping.sh [path/to/sluice]   (default: target/release/sluice)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sluice=${1:-$root/target/release/sluice}
plugins=$root/plugins/dist
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$sluice" ] || { echo "no sluice binary at $sluice: cargo build --release -p sluice" >&2; exit 2; }
[ -f "$plugins/exec.wasm" ] || { echo "no $plugins/exec.wasm: cargo xtask plugins" >&2; exit 2; }

# shellcheck source=bench/nats-server.sh
source "$root/bench/nats-server.sh"

# 5,000 files of 20 KiB (random bytes: nothing compresses or deduplicates) in 50 folders.
mkdir -p "$work/ws"
python3 - "$work/ws" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(50):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d:02}/f{f:03}.bin", "wb") as out:
            out.write(os.urandom(20 * 1024))
PY
cat > "$work/pipeline.toml" <<EOF
version = 1
[pipeline]
name = "ship"
workspace = "ws"
[[stage]]
name = "read"
plugin = "$plugins/exec.wasm"
cache = false
[stage.allow]
workspace = "read"
exec = ["true"]
[stage.config]
program = "true"
EOF

"$sluice" agent --nats "$url" --name bench --jobs 1 --work-dir "$work/agent" > "$work/agent.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q serving "$work/agent.log" 2>/dev/null && break; sleep 0.1; done

ms() { local s e; s=$(date +%s%N); "$@" > "$work/last.log" 2>&1 || { cat "$work/last.log" >&2; exit 1; }; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
run() { "$sluice" run "$work/pipeline.toml" --nats "$url" --format plain; }
sent() { grep -o "workspace sent by content: [^)]*)\|workspace built on agent [^:]*: .*ms" "$work/last.log" | tr "\n" " "; }
baseline() { tar -cf - -C "$work/ws" . | sha256sum > /dev/null; }

echo "workspace: $(find "$work/ws" -type f | wc -l) files, $(du -sm "$work/ws" | cut -f1) MB"
t=$(ms baseline); echo "tar c | sha256sum                 ${t} ms"
t=$(ms run); echo "first run (every file sent)       ${t} ms   $(sent)"
t=$(ms baseline); echo "tar c | sha256sum                 ${t} ms"
t=$(ms run); echo "unchanged run                     ${t} ms   $(sent)"
head -c 20480 /dev/urandom > "$work/ws/d00/f000.bin"
t=$(ms run); echo "one file changed                  ${t} ms   $(sent)"
