#!/bin/sh
# Builds {{name}}.wasm with componentize-py (installed by `cargo xtask plugins` into the
# toolchains folder, or set SLUICE_TOOLCHAINS).
set -eu
cd "$(dirname "$0")"
tools="${SLUICE_TOOLCHAINS:-{{toolchains}}}"
"$tools/python/bin/componentize-py" -d wit -w stage componentize app -o {{name}}.wasm
echo "built {{name}}.wasm"
