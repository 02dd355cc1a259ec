//! Links the `sluice` binary with packed relative relocations (DT_RELR): the 30 MiB
//! position-independent binary carries ~43,000 relative relocations, and applying them one by
//! one was most of the dynamic loader's start-up (6.6 M cycles → 0.35 M, measured with
//! `LD_DEBUG=statistics sluice --version`). The binary stays position-independent (ASLR kept);
//! needs binutils ≥ 2.38 and glibc ≥ 2.36, which Debian 12 has.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
