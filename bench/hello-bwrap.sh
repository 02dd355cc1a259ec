#!/bin/sh
# bench/hello.sh with each step in its own bubblewrap sandbox (no network, inputs read-only, one
# writable folder): the sandboxed-process baseline. Usage: hello-bwrap.sh DIR (a fresh folder).
set -eu
. "$(dirname "$0")/box.sh"
d=$1
mkdir -p "$d/empty" "$d/code" "$d/build" "$d/test" "$d/release"
box "$d/code" "$d/empty" sh -c "printf 'hello, sluice\nstages are wasm components\n' > greeting.txt
    printf 'wasmtime\ncranelift\nwasi\n' > names.txt"
sha256sum "$d/code/greeting.txt" "$d/code/names.txt" > "$d/code.sha256"
box "$d/build" "$d/code" sh -c "for f in greeting.txt names.txt; do tr '[:lower:]' '[:upper:]' < /in/\$f > \$f; done"
sha256sum "$d/build/greeting.txt" "$d/build/names.txt" > "$d/build.sha256"
box "$d/test" "$d/build" sh -c "grep -q 'HELLO, SLUICE' /in/greeting.txt && ! grep -q TODO /in/greeting.txt"
box "$d/release" "$d/build" sh -c "cd /in && sha256sum greeting.txt names.txt > /out/SHA256SUMS"
sha256sum "$d/release/SHA256SUMS" > "$d/release.sha256"
