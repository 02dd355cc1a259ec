#!/bin/sh
# Builds {{name}}.wasm with componentize-py. Run through `sluice plugin build`, which installs the
# pinned toolchain on first use and names its folder in SLUICE_TOOLCHAINS.
set -eu
cd "$(dirname "$0")"
tools="${SLUICE_TOOLCHAINS:?is not set: build with sluice plugin build, which installs the toolchain and sets it}"
"$tools/python/bin/componentize-py" -d wit -w stage componentize app -o {{name}}.wasm
echo "built {{name}}.wasm"
