#!/bin/sh
# The native baseline for `cargo xtask bench-big`: what the sluice pipeline does to a big build
# output, as plain commands — produce it with dd, hash it with openssl (SHA instructions), pack it
# with tar + gzip (level 6, as the release stage), and write SHA256SUMS of the archive.
# Usage: big.sh DIR SOURCE MIB   (SOURCE: /dev/zero or /dev/urandom)
set -eu
d=$1
mkdir -p "$d"
dd if="$2" of="$d/big.bin" bs=1M count="$3" status=none
openssl dgst -sha256 "$d/big.bin" > "$d/big.sha256"
tar -C "$d" -cf - big.bin | gzip -6 > "$d/big-1.0.0.tar.gz"
(cd "$d" && sha256sum big-1.0.0.tar.gz big.bin) > "$d/SHA256SUMS"
