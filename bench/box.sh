# Sourced by the bubblewrap baselines: `box OUT IN CMD...` runs CMD with no network, no other
# namespaces shared, the system read-only, IN read-only at /in and OUT writable at /out.
box() {
    out=$1
    in=$2
    shift 2
    bwrap --unshare-all --die-with-parent --new-session \
        --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
        --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp \
        --ro-bind "$in" /in --bind "$out" /out --chdir /out "$@"
}
