#!/bin/sh
# Builds {{name}}.wasm: zig cc (wasm32-wasi reactor) over stage.c and the C bindings in gen/ →
# wasm-tools component new with the WASI preview1 reactor adapter. Run through
# `sluice plugin build`, which installs zig, wasm-tools and the adapter on first use and names
# their folder in SLUICE_TOOLCHAINS.
# gen/ holds sluice's bindings for world `stage`, made by wit-bindgen 0.63 from wit/; after
# editing wit/, regenerate them with `wit-bindgen c wit --world stage --out-dir gen`.
set -eu
cd "$(dirname "$0")"
tools="${SLUICE_TOOLCHAINS:?is not set: build with sluice plugin build, which installs the toolchain and sets it}"
"$tools/python/bin/python" -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -O2 -Wall \
  -I gen -o gen/core.wasm stage.c gen/stage.c gen/stage_component_type.o
"$tools/python/bin/wasm-tools" component new gen/core.wasm \
  --adapt "wasi_snapshot_preview1=$tools/wasi_snapshot_preview1.reactor.wasm" -o {{name}}.wasm
echo "built {{name}}.wasm"
