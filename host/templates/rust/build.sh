#!/bin/sh
# Builds {{name}}.wasm for wasm32-wasip2, which emits a component. `sluice plugin build` runs this
# after adding the target (rustup target add wasm32-wasip2) and writing the SDK.
set -eu
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm"
