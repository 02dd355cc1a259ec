#!/bin/sh
# N steps that each write one small file and hash it (what a one-file `emit` stage does, and
# sluice's sha256 of it): the per-stage baseline. Usage: emit.sh N DIR [--bwrap].
set -eu
. "$(dirname "$0")/box.sh"
n=$1
d=$2
mode=${3:-}
mkdir -p "$d/empty"
i=1
while [ "$i" -le "$n" ]; do
    mkdir "$d/s$i"
    if [ "$mode" = --bwrap ]; then
        box "$d/s$i" "$d/empty" sh -c "printf 'stage $i\n' > f.txt"
    else
        printf 'stage %s\n' "$i" > "$d/s$i/f.txt"
    fi
    sha256sum "$d/s$i/f.txt" > "$d/s$i.sha256"
    i=$((i + 1))
done
