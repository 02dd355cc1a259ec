//! `sluice plugin new/build/push/pull/sign/verify`: making a stage plugin, building it, and
//! sharing it through an OCI registry — argument handling and messages only; the work is in the
//! library's `scaffold`, `registry::sharing` and `trust::signing`.

use std::path::{Path, PathBuf};

use sluice::Host;
use sluice::config::plugin_ref::PluginRef;
use sluice::model::events::short_digest;
use sluice::registry::sharing;
use sluice::registry::store::PluginStore;
use sluice::trust::signing::SigningKey;
use sluice_toolchains::Toolchains;

use crate::args::{LangArg, PluginCommand};
use crate::error::{CliError, Outcome, done};
use crate::inspect;
use crate::refs::{parse_ref, ref_and_keys};

/// `sluice plugin ...`: the engine is set up (`host`) only for `build` and `push`.
pub async fn plugin(
    host: impl FnOnce() -> Result<Host, CliError>,
    store: &PluginStore,
    command: PluginCommand,
) -> Outcome {
    match command {
        PluginCommand::New { name, lang, dir } => new(&name, lang, &dir),
        PluginCommand::Build { dir, toolchains } => build(host, &dir, toolchains).await,
        PluginCommand::Push {
            file,
            reference,
            sign,
            force,
        } => push(&host()?, &file, &reference, sign.as_deref(), force).await,
        PluginCommand::Pull {
            reference,
            output,
            keys,
        } => pull(store, &reference, output.as_deref(), &keys).await,
        PluginCommand::Sign { reference, key } => sign(&reference, &key).await,
        PluginCommand::Verify { reference, keys } => verify(&reference, &keys).await,
    }
}

/// `sluice plugin new NAME --lang LANG`: the scaffold, and how to build and use it.
fn new(name: &str, lang: LangArg, dir: &Path) -> Outcome {
    use sluice::scaffold::Lang;
    let lang = match lang {
        LangArg::Rust => Lang::Rust,
        LangArg::Python => Lang::Python,
        LangArg::Js => Lang::Js,
        LangArg::C => Lang::C,
    };
    let created = sluice::scaffold::new_plugin(name, lang, dir)
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    print!("{}", plugin_new_hints(name, &created));
    done()
}

/// What `sluice plugin new` prints: each command and the TOML snippet can be pasted as they are
/// (the command's path shell-quoted, the snippet unindented and escaped as TOML).
fn plugin_new_hints(name: &str, created: &Path) -> String {
    let plugin = toml::Value::String(format!("{}/{name}.wasm", created.display()));
    format!(
        "created {folder}\n\nbuild it:\n  sluice plugin build {quoted}\n\nuse it in a pipeline.toml:\n\n[[stage]]\nname = {stage}\nplugin = {plugin}\n",
        folder = created.display(),
        quoted = sluice::shell::quote(&created.display().to_string()),
        stage = toml::Value::String(name.to_string()),
    )
}

/// `sluice plugin build [DIR]`: runs the plugin's build.sh (installing what its language needs
/// on first use), then inspects the component it made.
async fn build(
    host: impl FnOnce() -> Result<Host, CliError>,
    dir: &Path,
    toolchains: Option<PathBuf>,
) -> Outcome {
    let toolchains = match toolchains {
        Some(dir) => dir,
        None => Toolchains::default_dir().map_err(|err| CliError::input(format!("{err:#}")))?,
    };
    let component = sluice::scaffold::build_plugin(dir, &Toolchains::new(toolchains))
        .map_err(|err| CliError::stage(format!("{err:#}")))?;
    inspect::show(&host()?, &component, false).await
}

/// `sluice plugin push FILE REFERENCE`: publishes the component, and signs it with `--sign`.
async fn push(
    host: &Host,
    file: &Path,
    reference: &str,
    sign: Option<&Path>,
    force: bool,
) -> Outcome {
    let reference = parse_ref(reference)?;
    let key = sign
        .map(SigningKey::from_file)
        .transpose()
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    let published = sharing::push(host, file, &reference, force)
        .await
        .map_err(|err| CliError::stage(format!("cannot publish {}: {err:#}", file.display())))?;
    println!("pushed {} → {reference}", file.display());
    println!("  manifest  {}", published.manifest_digest);
    println!(
        "  component {} ({} bytes)",
        published.layer_digest, published.size
    );
    println!(
        "  pin it:   plugin = \"{}{}/{}@{}\"",
        sluice::config::plugin_ref::SCHEME,
        reference.registry,
        reference.repository,
        published.manifest_digest
    );
    if let Some(key) = key {
        return sign_with(&reference, &key).await;
    }
    done()
}

/// Signs the published `reference` with `key`; the signature goes to the registry.
async fn sign_with(reference: &PluginRef, key: &SigningKey) -> Outcome {
    let (digest, _) = sharing::sign(reference, key)
        .await
        .map_err(|err| CliError::stage(format!("cannot sign {reference}: {err:#}")))?;
    println!(
        "signed {reference} ({}) with {}",
        short_digest(&digest),
        sluice::trust::signing::short_key_id(&key.id)
    );
    done()
}

/// `sluice plugin sign REFERENCE --key KEY`.
async fn sign(reference: &str, key: &Path) -> Outcome {
    let reference = parse_ref(reference)?;
    let key = SigningKey::from_file(key).map_err(|err| CliError::input(format!("{err:#}")))?;
    sign_with(&reference, &key).await
}

/// `sluice plugin verify REFERENCE --key PUB...`: who signed it.
async fn verify(reference: &str, keys: &[PathBuf]) -> Outcome {
    let (reference, trusted) = ref_and_keys(reference, keys)?;
    let (digest, signers) = sharing::verify(&reference, &trusted)
        .await
        .map_err(|err| CliError::refused(format!("{err:#}")))?;
    println!("{reference} ({digest}) is signed by {}", signers.join(", "));
    done()
}

/// `sluice plugin pull REFERENCE`: into the plugin store (and to `--output`), checked against
/// `--key` when given.
async fn pull(
    store: &PluginStore,
    reference: &str,
    output: Option<&Path>,
    keys: &[PathBuf],
) -> Outcome {
    let (reference, trusted) = ref_and_keys(reference, keys)?;
    // The version of this tag pulled before, to say what the new one asks for beyond it.
    let before = reference
        .digest
        .is_none()
        .then(|| store.remembered_tag(&reference))
        .flatten();
    let pulled = sharing::pull(store, &reference, &trusted)
        .await
        .map_err(|err| CliError::refused(format!("cannot pull {reference}: {err:#}")))?;
    let sharing::Pulled {
        manifest_digest: digest,
        layer_digest: layer,
        path,
        signed_by: signers,
    } = pulled;
    println!("pulled {reference}");
    println!("  manifest  {digest}");
    println!("  component {layer}");
    println!("  stored    {}", path.display());
    if !signers.is_empty() {
        println!("  signed by {}", signers.join(", "));
    }
    if let Ok((caps, _, _)) = sluice::plugin::caps::of_file(&path) {
        println!("  exports   {}", caps.exports.join(", "));
        println!("  imports   {}", caps.imports.join(", "));
        let previous = before
            .filter(|old| *old != digest)
            .and_then(|old| stored_capabilities(store, &reference, &old).map(|c| (old, c)));
        if let Some((old, recorded)) = previous {
            let diff = recorded.diff(&caps);
            let what = if diff.widens() {
                format!(
                    "{} — it asks for more: `sluice lock --update` refuses it until accepted \
                     with --accept",
                    diff.describe()
                )
            } else {
                diff.describe()
            };
            println!(
                "  changed   {} {} → {}: {what}",
                reference.repository,
                short_digest(&old),
                short_digest(&digest)
            );
        }
    }
    if let Some(output) = output {
        std::fs::copy(&path, output).map_err(|err| {
            CliError::internal(format!("cannot write {}: {err}", output.display()))
        })?;
        println!("  written   {}", output.display());
    }
    done()
}

/// The capability set of the component the stored manifest `digest` names, if both are stored.
fn stored_capabilities(
    store: &PluginStore,
    reference: &PluginRef,
    digest: &str,
) -> Option<sluice::config::lockfile::Capabilities> {
    let manifest = store.read_blob(digest).ok().flatten()?;
    let (_, layer) = sharing::parse_wasm_manifest(&manifest, reference).ok()?;
    let path = store.verified_blob(&layer).ok().flatten()?;
    sluice::plugin::caps::of_file(&path)
        .ok()
        .map(|(caps, _, _)| caps)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The printed command, run by a shell, names the folder; the printed snippet is a stage
    /// that parses — whatever the folder is called.
    #[test]
    fn what_plugin_new_prints_can_be_pasted() -> anyhow::Result<()> {
        for folder in ["./shout", "/tmp/my plugins/shout", "it's \"here\"/shout"] {
            let hints = super::plugin_new_hints("shout", Path::new(folder));
            let command = hints
                .lines()
                .find_map(|l| l.strip_prefix("  sluice plugin build "))
                .unwrap_or_default();
            let echoed = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {command}")])
                .output()?;
            assert_eq!(String::from_utf8_lossy(&echoed.stdout), folder, "{hints}");
            let snippet = &hints[hints.find("[[stage]]").unwrap_or_default()..];
            let parsed: toml::Table = toml::from_str(snippet)?;
            let stage = &parsed["stage"][0];
            assert_eq!(stage["name"].as_str(), Some("shout"));
            assert_eq!(
                stage["plugin"].as_str(),
                Some(format!("{folder}/shout.wasm").as_str())
            );
        }
        Ok(())
    }
}
