#!/bin/sh
# Builds {{name}}.wasm with componentize-js (installed by `cargo xtask plugins` into the
# toolchains folder, or set SLUICE_TOOLCHAINS). `-d http fetch-event` leaves wasi-http out: this stage needs
# no network. Drop it (and grant `allow.net`) to use fetch().
set -eu
cd "$(dirname "$0")"
tools="${SLUICE_TOOLCHAINS:-{{toolchains}}}"
"$tools/node/node_modules/.bin/componentize-js" stage.js --wit wit --world-name stage -d http fetch-event -o {{name}}.wasm
echo "built {{name}}.wasm"
