//! `sluice:pipeline/digest`: a file's sha256 computed by the host, with the CPU's SHA instructions,
//! instead of in software inside the sandbox. It reads only what the stage can read: the guest path
//! is resolved beneath one of the stage's mounts (`openat2` with `RESOLVE_BENEATH`, so no `..` or
//! symlink leads out of it), and only a regular file is hashed (a FIFO or device is refused, never
//! read). The digest is remembered like any artifact's, so publishing the file does not hash it
//! again.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::bindings::sluice::pipeline::digest;
use super::process::Mount;
use super::state::StageState;

impl digest::Host for StageState {
    fn sha256_file(&mut self, path: String) -> wasmtime::Result<Result<String, String>> {
        Ok(sha256_beneath(&self.mounts, &path))
    }
}

/// The mount holding guest `path`, and the path relative to it.
fn beneath<'m>(mounts: &'m [Mount], path: &str) -> Option<(&'m Mount, String)> {
    mounts
        .iter()
        .filter_map(|mount| {
            let guest = mount.guest.trim_end_matches('/');
            let rest = path.strip_prefix(guest)?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| (mount, rest.trim_start_matches('/').to_string()))
        })
        .max_by_key(|(mount, _)| mount.guest.len())
}

fn sha256_beneath(mounts: &[Mount], path: &str) -> Result<String, String> {
    let (mount, relative) = beneath(mounts, path)
        .ok_or_else(|| format!("{path} is not inside any of the stage's mounts"))?;
    let relative = if relative.is_empty() {
        ".".to_string()
    } else {
        relative
    };
    let file = open_beneath(&mount.host, &relative).map_err(|err| match err {
        // openat2's RESOLVE_BENEATH / NO_MAGICLINKS refusals.
        rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => {
            format!("cannot open {path}: it leads outside the stage's folders (a link or `..`)")
        }
        err => format!("cannot open {path}: {err}"),
    })?;
    let file = std::fs::File::from(file);
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot read {path}: {err}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a regular file"));
    }
    crate::model::digests::sha256_open_file(file, &mount.host.join(&relative))
        .map(|(sha256, _)| sha256)
        .map_err(|err| format!("cannot read {path}: {err:#}"))
}

/// Opens `relative` beneath `root` for reading, never leaving it; non-blocking, so a FIFO cannot
/// stall the open.
fn open_beneath(root: &Path, relative: &str) -> rustix::io::Result<OwnedFd> {
    let root = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::openat2(
        &root,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_beneath_a_mount_are_hashed() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("sub"))?;
        std::fs::write(out.join("sub/a.txt"), b"abc")?;
        std::fs::write(dir.path().join("secret"), b"outside")?;
        std::os::unix::fs::symlink("../secret", out.join("escape"))?;
        std::os::unix::fs::symlink("sub/a.txt", out.join("inside"))?;
        let mounts = [Mount {
            guest: "/out".into(),
            host: out.clone(),
            filled_by_plugins: true,
        }];
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            sha256_beneath(&mounts, "/out/sub/a.txt").as_deref(),
            Ok(abc)
        );
        assert_eq!(sha256_beneath(&mounts, "/out/inside").as_deref(), Ok(abc));
        for refused in [
            "/out/escape",
            "/out/../secret",
            "/outside",
            "/etc/passwd",
            "/out",
            "/out/sub",
        ] {
            assert!(sha256_beneath(&mounts, refused).is_err(), "{refused}");
        }
        Ok(())
    }
}
