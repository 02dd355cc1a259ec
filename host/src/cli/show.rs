//! What `check`, `inspect` and `plugin new` print: a pipeline's stages with their plugins,
//! grants and problems; a component's identity, imports and exports; where a scaffold went.

use std::path::Path;

use sluice::Host;
use sluice::config::pipeline;
use sluice::exit_codes;
use sluice::registry::store::PluginStore;

use crate::args::{LangArg, ResolveArgs};
use crate::done;
use crate::error::{CliError, Outcome};

pub async fn check(
    host: &Host,
    store: &PluginStore,
    path: &Path,
    json: bool,
    resolve: ResolveArgs,
) -> Outcome {
    let pipeline = pipeline::load(path)?;
    let resolved = crate::sharing::resolve(pipeline, store, resolve).await?;
    let report = sluice::run::check::check(host, &resolved).await;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(CliError::internal)?;
        println!("{text}");
    } else {
        println!(
            "pipeline `{}`: {} stages",
            report.pipeline,
            report.stages.len()
        );
        for stage in &report.stages {
            match &stage.problem {
                None => println!(
                    "  ✔ {:<12} {} {} ({}) — {}",
                    stage.stage,
                    stage.name.as_deref().unwrap_or("?"),
                    stage.version.as_deref().unwrap_or("?"),
                    stage
                        .pipeline_phase
                        .as_deref()
                        .or(stage.phase.as_deref())
                        .unwrap_or("?"),
                    stage.description.as_deref().unwrap_or(""),
                ),
                Some(problem) => {
                    println!(
                        "  ✘ {:<12} {}",
                        stage.stage,
                        problem.replace('\n', "\n                 ")
                    )
                }
            }
            if let (Some(marked), Some(claimed)) = (&stage.pipeline_phase, &stage.phase)
                && marked != claimed
            {
                println!(
                    "      phase   the pipeline marks it `{marked}`, its plugin says `{claimed}`: \
                     the pipeline's word counts (provenance trusts only `phase =`)"
                );
            }
            if !stage.depends_on.is_empty() {
                println!("      after   {}", stage.depends_on.join(", "));
            }
            if let Some(digest) = &stage.manifest_digest {
                let signed = if stage.signed_by.is_empty() {
                    String::new()
                } else {
                    format!(", signed by {}", stage.signed_by.join(", "))
                };
                println!("      pinned  {} → {digest}{signed}", stage.reference);
            }
            if verbose_check(&stage.grants, &stage.imports) {
                for grant in &stage.grants {
                    println!("      grants  {grant}");
                }
                for import in stage.imports.iter().filter(|i| {
                    !i.starts_with("wasi:cli/")
                        && !i.starts_with("wasi:io/")
                        && !i.starts_with("wasi:clocks/")
                        && !i.starts_with("wasi:random/")
                }) {
                    println!("      imports {import}");
                }
            }
        }
    }
    if !json {
        let waves: Vec<String> = report
            .waves
            .iter()
            .map(|wave| match wave.as_slice() {
                [one] => one.clone(),
                many => format!("{{{}}}", many.join(", ")),
            })
            .collect();
        println!("graph: {}", waves.join(" → "));
    }
    if report.ok() {
        done()
    } else if json {
        Err(CliError::Reported(exit_codes::STAGE_ERROR))
    } else {
        Err(CliError::stage(
            "some stages cannot run; fix the problems above",
        ))
    }
}

pub fn plugin_new(name: &str, lang: LangArg, dir: &Path) -> Outcome {
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

/// `sluice init`: the pipeline and stages written, and the two commands to try it.
pub fn init(dir: &Path, force: bool) -> Outcome {
    let made = sluice::scaffold::init::init(dir, force)
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    println!("wrote {} for a {}", made.pipeline.display(), made.kind);
    for stage in &made.stages {
        println!("  stage {}", stage.display());
    }
    for note in &made.notes {
        println!("  {note}");
    }
    let pipeline = sluice::shell::quote(&made.pipeline.display().to_string());
    println!("\ncheck it:\n  sluice check {pipeline}\nrun it:\n  sluice run {pipeline}");
    done()
}

/// Grants and the imports that matter (files, network, programs, secrets) are worth a line
/// each; WASI basics every component imports are not.
fn verbose_check(grants: &[String], imports: &[String]) -> bool {
    !grants.is_empty() || !imports.is_empty()
}

pub async fn inspect(host: &Host, path: &Path, json: bool) -> Outcome {
    let inspection = sluice::plugin::inspect::inspect(host, path)
        .await
        .map_err(CliError::stage)?;
    if json {
        let text = serde_json::to_string_pretty(&inspection).map_err(CliError::internal)?;
        println!("{text}");
    } else {
        println!("{}", inspection.file);
        println!("  size     {} bytes", inspection.size);
        println!("  sha256   {}", inspection.sha256);
        match &inspection.stage {
            Some(info) => {
                println!(
                    "  stage    {} {} (phase {})",
                    info.name, info.version, info.phase
                );
                println!("           {}", info.description);
            }
            None => println!("  stage    no"),
        }
        println!("  imports");
        for name in &inspection.imports {
            println!("    {name}");
        }
        println!("  exports");
        for name in &inspection.exports {
            println!("    {name}");
        }
    }
    match inspection.problem {
        None => done(),
        Some(problem) => Err(CliError::stage(problem)),
    }
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
