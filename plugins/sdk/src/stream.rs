//! Artifacts as streams: a stage's memory stays flat however large its files are. Inputs are
//! read through a buffer, outputs written through one, digests computed as the bytes go by, and
//! a file a host program already wrote becomes an output without passing through the stage at
//! all (moved or hard-linked). `Context::read`/`write_output` remain for small files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Artifact, Context, Failure};

/// The buffer every streaming helper reads and writes through.
pub const CHUNK: usize = 64 * 1024;

/// An output being written; declared when created, complete once [`OutputFile::finish`] returns.
pub struct OutputFile {
    file: BufWriter<File>,
    path: PathBuf,
}

impl OutputFile {
    /// Flushes the last bytes, naming the file if that fails (a full disk shows up here).
    pub fn finish(self) -> Result<(), Failure> {
        let path = self.path;
        self.file
            .into_inner()
            .map(drop)
            .map_err(|err| err.into_error())
            .map_err(|err| Failure::new(format!("cannot write output {}: {err}", path.display())))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.file.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Context {
    /// Opens an input for reading, buffered: for files of any size.
    pub fn open(&self, artifact: &Artifact) -> Result<BufReader<File>, Failure> {
        File::open(&artifact.path)
            .map(|file| BufReader::with_capacity(CHUNK, file))
            .map_err(|err| Failure::new(format!("cannot read input {}: {err}", artifact.path)))
    }

    /// Creates an output named `name` (declared now) to write as a stream; call
    /// [`OutputFile::finish`] when done.
    pub fn create_output(&mut self, name: &str, media_type: &str) -> Result<OutputFile, Failure> {
        let path = self.output_path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| {
                Failure::new(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let file = File::create(&path).map_err(|err| {
            Failure::new(format!("cannot write output {}: {err}", path.display()))
        })?;
        self.declare_output(name, media_type);
        Ok(OutputFile {
            file: BufWriter::with_capacity(CHUNK, file),
            path,
        })
    }

    /// Makes the file at `from` the output `name` without reading it into the stage: moved when
    /// it is already inside the output folder, hard-linked when the file system allows, copied
    /// chunk by chunk otherwise. `from` stays where it was unless it was inside the output folder.
    pub fn adopt_output(
        &mut self,
        from: &Path,
        name: &str,
        media_type: &str,
    ) -> Result<(), Failure> {
        let to = self.output_path(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|err| {
                Failure::new(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let inside_outputs = from.starts_with(self.output_path(""));
        let moved = if inside_outputs {
            std::fs::rename(from, &to)
        } else {
            std::fs::hard_link(from, &to)
        };
        if moved.is_err() {
            let mut source = File::open(from)
                .map_err(|err| Failure::new(format!("cannot read {}: {err}", from.display())))?;
            let mut target = self.create_output(name, media_type)?;
            copy(&mut source, &mut target)
                .map_err(|err| Failure::new(format!("cannot copy {}: {err}", from.display())))?;
            return target.finish();
        }
        self.declare_output(name, media_type);
        Ok(())
    }
}

/// Copies `reader` into `writer` through one [`CHUNK`]-sized buffer; the bytes copied.
pub fn copy(reader: &mut impl Read, writer: &mut impl Write) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        writer.write_all(&buffer[..read])?;
        total += read as u64;
    }
}

/// The lower-case hex sha256 of the file at `path` (inside the stage's mounts), computed by the
/// host with the CPU's SHA instructions: for big files many times faster than [`sha256_hex`],
/// which hashes in software inside the sandbox.
pub fn sha256_file(path: &Path) -> Result<String, Failure> {
    crate::bindings::sluice::pipeline::digest::sha256_file(&path.to_string_lossy())
        .map_err(|why| Failure::new(format!("cannot hash {}: {why}", path.display())))
}

/// The lower-case hex sha256 of everything `reader` yields, and how many bytes that was.
pub fn sha256_hex(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let size = copy(&mut reader, &mut HashWriter(&mut hasher))?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// A writer that only hashes.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
