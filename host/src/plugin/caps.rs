//! A component's capability set — the interfaces it imports and the names it exports (its world)
//! — read from the component's own top-level import and export sections (types left out), the
//! names wasmtime's component type lists, without compiling it. pipeline.lock records it for every plugin so an
//! update that asks for more is seen; grants still decide what a stage gets.

use std::path::Path;

use wasmparser::{ComponentExternalKind, ComponentTypeRef, Parser, Payload};

use crate::config::lockfile::Capabilities;

/// The capability set of the component `bytes`; an error when they are not a component.
pub fn of_bytes(bytes: &[u8]) -> Result<Capabilities, String> {
    if !Parser::is_component(bytes) {
        return Err("it is not a WebAssembly component".to_string());
    }
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Nested modules and components have imports and exports of their own: only the outermost
    // component's are what the host is asked for.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|err| format!("it is not a valid component: {err}"))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import =
                        import.map_err(|err| format!("its imports are malformed: {err}"))?;
                    // A type (`use types.{failure}` in a world) names no capability, and
                    // wasmtime's component type does not list it either.
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        imports.push(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export =
                        export.map_err(|err| format!("its exports are malformed: {err}"))?;
                    if export.kind != ComponentExternalKind::Type {
                        exports.push(export.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Capabilities::new(exports, imports))
}

/// The capability set of the component file at `path` (a bounded read) and its `sha256:` digest
/// and size.
pub fn of_file(path: &Path) -> Result<(Capabilities, String, u64), String> {
    let bytes = crate::config::files::read_bounded(path, crate::config::files::MAX_PLUGIN_BYTES)
        .map_err(|why| format!("cannot read it: it {why}"))?;
    let caps = of_bytes(&bytes)?;
    let digest = format!("sha256:{}", crate::model::artifacts::sha256_bytes(&bytes));
    Ok((caps, digest, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipped_stage_imports_log_and_exports_describe_and_run() -> Result<(), String> {
        let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/deploy.wasm");
        let Ok(bytes) = std::fs::read(&dist) else {
            return Ok(()); // plugins not built: `cargo xtask plugins`
        };
        let caps = of_bytes(&bytes)?;
        assert_eq!(caps.exports, vec!["describe", "run"]);
        assert!(
            caps.imports
                .iter()
                .any(|i| i.starts_with("sluice:pipeline/log@")),
            "{caps:?}"
        );
        assert!(
            of_bytes(b"\0asm\x01\0\0\0").is_err(),
            "a core module is refused"
        );
        assert!(of_bytes(b"not wasm").is_err());
        Ok(())
    }
}
