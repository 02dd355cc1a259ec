#!/bin/sh
# Builds {{name}}.wasm with componentize-js. Run through `sluice plugin build`, which installs the
# pinned toolchain on first use and names its folder in SLUICE_TOOLCHAINS. `-d http fetch-event`
# leaves wasi-http out: this stage needs no network. Drop it (and grant `allow.net`) to use fetch().
set -eu
cd "$(dirname "$0")"
tools="${SLUICE_TOOLCHAINS:?is not set: build with sluice plugin build, which installs the toolchain and sets it}"
"$tools/node/node_modules/.bin/componentize-js" stage.js --wit wit --world-name stage -d http fetch-event -o {{name}}.wasm
echo "built {{name}}.wasm"
