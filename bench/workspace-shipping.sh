#!/usr/bin/env bash
# The workspace by content (issue 30): a workspace of 5,000 files / 100 MB sent to an agent
# through a real nats-server -js, for a one-stage pipeline that reads it (`exec true`, granted
# `workspace = "read"`): the first run (every file sent), an unchanged second run (nothing sent)
# and a run with one file changed (one file sent), end to end and as the coordinator logs it —
# against `tar c | sha256sum` of the same tree (reading and hashing every byte once).
#
#   bash bench/workspace-shipping.sh [path/to/sluice] [FILES]
#     (defaults: target/release/sluice, 5000 files)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
need_sluice "${1:-}"
files=${2:-5000}
need_plugins exec
start_nats

# Files of 20 KiB (random bytes: nothing compresses or deduplicates), 100 to a folder.
mkdir -p "$work/ws"
python3 - "$work/ws" "$files" <<'PY'
import os, sys
root, files = sys.argv[1], int(sys.argv[2])
for n in range(files):
    d, f = divmod(n, 100)
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
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
wait_for_line "$work/agent.log" serving

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
