#!/bin/sh
# The four steps of examples/hello as a plain shell script, with a sha256 of every file each step
# hands on (as sluice records): the unsandboxed baseline `cargo xtask bench` times
# `sluice run examples/hello` against. Usage: hello.sh DIR (a fresh folder).
set -eu
d=$1
mkdir -p "$d/code" "$d/build" "$d/release"
# code: write two files
printf 'hello, sluice\nstages are wasm components\n' > "$d/code/greeting.txt"
printf 'wasmtime\ncranelift\nwasi\n' > "$d/code/names.txt"
sha256sum "$d/code/greeting.txt" "$d/code/names.txt" > "$d/code.sha256"
# build: upper-case them
for f in greeting.txt names.txt; do tr '[:lower:]' '[:upper:]' < "$d/code/$f" > "$d/build/$f"; done
sha256sum "$d/build/greeting.txt" "$d/build/names.txt" > "$d/build.sha256"
# test: required and forbidden text
grep -q 'HELLO, SLUICE' "$d/build/greeting.txt"
if grep -q 'TODO' "$d/build/greeting.txt"; then exit 1; fi
# release: checksums of the build
(cd "$d/build" && sha256sum greeting.txt names.txt) > "$d/release/SHA256SUMS"
sha256sum "$d/release/SHA256SUMS" > "$d/release.sha256"
