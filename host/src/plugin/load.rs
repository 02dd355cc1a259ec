//! Loading a stage plugin: read the file, tell apart "not wasm", "core module", "invalid" and
//! "another world" with a fix for each, compile through the cache, and pre-link it once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::config::grants::Grants;
use crate::config::limits::Limits;
use crate::model::artifacts::sha256_bytes;
use crate::model::events::EventSink;
use crate::sandbox::bindings::{PluginInfo, StageFullPre};
use crate::sandbox::cache::CacheOutcome;
use crate::sandbox::caps::{CapSet, ungranted_imports};
use crate::sandbox::capture::StageLog;
use crate::sandbox::engine::Host;
use crate::sandbox::spec::SandboxSpec;
use crate::sandbox::state::StageState;

/// How long `describe` may take before the plugin is considered broken.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin compiled and linked against the host, ready for cheap per-run instantiation.
pub struct Plugin {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub component: Component,
    pub pre: StageFullPre<StageState>,
    pub cache: CacheOutcome,
    pub load_time: Duration,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Why a plugin cannot be used. Each says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin file {} does not exist\n  = help: {help}", path.display())]
    NotFound { path: PathBuf, help: String },
    #[error("cannot read plugin file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a WebAssembly file (it does not start with `\\0asm`)\n  = help: point `plugin` at a .wasm component, e.g. one built with `cargo build --target wasm32-wasip2`",
        path.display()
    )]
    NotWasm { path: PathBuf },
    #[error(
        "{} is a core WebAssembly module, not a component\n  = help: build it for wasm32-wasip2 (which emits components), or wrap it with `wasm-tools component new`",
        path.display()
    )]
    CoreModule { path: PathBuf },
    #[error("{} is not a valid WebAssembly component: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "{} is a component, but not a sluice stage: {detail}\n  = help: implement world `stage` of sluice:pipeline@0.1.0 (see wit/stage.wit); `sluice inspect {}` lists what it imports and exports",
        path.display(), path.display()
    )]
    WrongWorld { path: PathBuf, detail: String },
    #[error(
        "stage `{stage}` {}\n  = help: grant it in [stage.allow], or use a plugin that does not need it; `sluice check` lists each stage's grants and imports",
        problems.join("; and ")
    )]
    Ungranted {
        stage: String,
        problems: Vec<String>,
    },
    #[error("cannot link {}: {detail}", path.display())]
    Link { path: PathBuf, detail: String },
    #[error("{} crashed while describing itself: {detail}", path.display())]
    DescribeFailed { path: PathBuf, detail: String },
}

/// What kind of binary a file is, from its 8-byte header.
fn classify(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Core modules have version 1 and layer 0; components have layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(PluginError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A component compiled for this host but not yet checked against the `stage` world.
pub struct Compiled {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub component: Component,
    pub cache: CacheOutcome,
    started: Instant,
}

/// What to do about a missing plugin file: when its folder is a plugin made by `sluice plugin
/// new`, the command that builds it (pasteable as it is); else where the path is taken from.
fn missing_plugin_help(path: &Path) -> String {
    match path.parent().filter(|dir| dir.join("build.sh").is_file()) {
        Some(dir) => format!(
            "it is not built yet: sluice plugin build {}",
            crate::shell::quote(&dir.display().to_string())
        ),
        None => "fix the `plugin` path (it is relative to the pipeline file), or build the plugin first (`sluice plugin build FOLDER` for one made by `sluice plugin new`; `cargo xtask plugins` in sluice's own checkout)".to_string(),
    }
}

/// Reads the file at `path`, checks it is a component, and compiles it (or loads its compiled
/// code from the cache).
pub fn compile(host: &Host, path: &Path) -> Result<Compiled, PluginError> {
    let started = Instant::now();
    if !path.exists() && std::fs::symlink_metadata(path).is_err() {
        return Err(PluginError::NotFound {
            path: path.to_path_buf(),
            help: missing_plugin_help(path),
        });
    }
    let unreadable = |source: std::io::Error| PluginError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    // Whatever is wrong with the path (its kind, a symlink loop) is said by `read_bounded` below.
    let before = std::fs::metadata(path).ok();
    // An unchanged plugin file hashed before, whose compiled code is at hand: nothing to read.
    if let Some(before) = &before
        && before.is_file()
        && before.len() <= crate::config::files::MAX_PLUGIN_BYTES
        && let Some(sha256) = host.cache.remembered_digest(path, before)
        && let Ok(Some((component, cache))) = host.cache.load(&host.engine, &sha256)
    {
        return Ok(Compiled {
            path: path.to_path_buf(),
            sha256,
            size: before.len(),
            component,
            cache,
            started,
        });
    }
    // A regular file of a bounded size: a device or FIFO named as a plugin is refused, not read.
    let read_at = std::time::SystemTime::now();
    let bytes = crate::config::files::read_bounded(path, crate::config::files::MAX_PLUGIN_BYTES)
        .map_err(|why| unreadable(std::io::Error::other(format!("it {why}"))))?;
    classify(path, &bytes)?;
    let sha256 = sha256_bytes(&bytes);
    let (component, cache) = host
        .cache
        .load_or_compile(&host.engine, &bytes, &sha256)
        .map_err(|err| PluginError::Invalid {
            path: path.to_path_buf(),
            detail: format!("{err:#}"),
        })?;
    if let (Some(before), Ok(after)) = (&before, std::fs::metadata(path)) {
        host.cache
            .remember_digest(path, before, &after, read_at, &sha256);
    }
    Ok(Compiled {
        path: path.to_path_buf(),
        sha256,
        size: bytes.len() as u64,
        component,
        cache,
        started,
    })
}

impl Compiled {
    /// Import names, e.g. `wasi:filesystem/types@0.2.6`.
    pub fn imports(&self, host: &Host) -> Vec<String> {
        let ty = self.component.component_type();
        ty.imports(&host.engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Export names.
    pub fn exports(&self, host: &Host) -> Vec<String> {
        let ty = self.component.component_type();
        ty.exports(&host.engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Checks the component implements the `stage` world, imports nothing stage `stage` is not
    /// granted (`caps`), and pre-links it against the host.
    pub fn link(self, host: &Host, stage: &str, caps: CapSet) -> Result<Plugin, PluginError> {
        let wrong_world = |detail: String| PluginError::WrongWorld {
            path: self.path.clone(),
            detail,
        };
        check_exports(&host.engine, &self.component).map_err(wrong_world)?;
        let imports = self.imports(host);
        let problems = ungranted_imports(imports.iter().map(String::as_str), caps);
        if !problems.is_empty() {
            return Err(PluginError::Ungranted {
                stage: stage.to_string(),
                problems,
            });
        }
        let pre = match host.linked(&self.sha256, caps) {
            Some(pre) => pre,
            None => {
                let linker = host.linker(caps).map_err(|err| PluginError::Link {
                    path: self.path.clone(),
                    detail: format!("{err:#}"),
                })?;
                let instance_pre = linker.instantiate_pre(&self.component).map_err(|err| {
                    wrong_world(format!(
                        "it needs an import sluice does not provide ({err:#})"
                    ))
                })?;
                let pre = StageFullPre::new(instance_pre)
                    .map_err(|err| wrong_world(format!("{err:#}")))?;
                host.remember_linked(&self.sha256, caps, &pre);
                pre
            }
        };
        Ok(Plugin {
            load_time: self.started.elapsed(),
            path: self.path,
            sha256: self.sha256,
            size: self.size,
            component: self.component,
            pre,
            cache: self.cache,
        })
    }
}

/// Reads, compiles (or loads from the cache) and pre-links the plugin at `path` for stage
/// `stage` granted `caps`.
pub fn load(host: &Host, path: &Path, stage: &str, caps: CapSet) -> Result<Plugin, PluginError> {
    compile(host, path)?.link(host, stage, caps)
}

/// A readable reason when `describe` or `run` are missing, naming what it exports instead.
fn check_exports(engine: &wasmtime::Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let exports: Vec<(String, bool)> = ty
        .exports(engine)
        .map(|(name, item)| {
            (
                name.to_string(),
                matches!(item.ty, ComponentItem::ComponentFunc(_)),
            )
        })
        .collect();
    let missing: Vec<&str> = ["describe", "run"]
        .into_iter()
        .filter(|want| {
            !exports
                .iter()
                .any(|(name, is_func)| name == want && *is_func)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    Err(format!(
        "it does not export {} (it exports: {})",
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(" and "),
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        }
    ))
}

impl Plugin {
    /// Import names, e.g. `wasi:filesystem/types@0.2.6`.
    pub fn imports(&self, host: &Host) -> Vec<String> {
        let ty = self.component.component_type();
        ty.imports(&host.engine)
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Calls `describe` in a throw-away sandbox with no files.
    pub async fn describe(&self, host: &Host) -> Result<PluginInfo, PluginError> {
        let crashed = |detail: String| PluginError::DescribeFailed {
            path: self.path.clone(),
            detail,
        };
        let limits = Limits::default();
        let log = StageLog::new(
            "describe",
            None,
            EventSink::discard(),
            Default::default(),
            limits.log,
        )
        .map_err(|e| crashed(format!("{e:#}")))?;
        let grants = Grants::none();
        let no_secrets = Default::default();
        let spec = SandboxSpec {
            stage: "describe",
            inputs: &[],
            outputs: None,
            workspace: None,
            grants: &grants,
            limits,
            secrets: &no_secrets,
            caches: &[],
            learn: false,
        };
        let state = StageState::new(&spec, log).map_err(|e| crashed(format!("{e:#}")))?;
        let mut store = Store::new(&host.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_async_yield_and_update(1);
        let call = async {
            let stage = self.pre.instantiate_async(&mut store).await?;
            stage.call_describe(&mut store).await
        };
        match tokio::time::timeout(DESCRIBE_TIMEOUT, call).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(err)) => Err(crashed(crate::sandbox::trap::trap_message(&err))),
            Err(_) => Err(crashed(format!(
                "`describe` did not return within {}s",
                DESCRIBE_TIMEOUT.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_headers() {
        let p = Path::new("x.wasm");
        assert!(matches!(
            classify(p, b"hello world"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            classify(p, b"\0as"),
            Err(PluginError::NotWasm { .. })
        ));
        assert!(matches!(
            classify(p, b"\0asm\x01\0\0\0"),
            Err(PluginError::CoreModule { .. })
        ));
        assert!(classify(p, b"\0asm\x0d\0\x01\0").is_ok());
    }
}
