//! The README's pipeline.toml reference is a file users copy: it must parse as written, and its
//! sample error must be what sluice really prints.

use std::path::{Path, PathBuf};

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => panic!("cannot read {}: {err}", path.display()),
    }
}

/// The first fenced block of `lang` after `heading`.
fn block_after(text: &str, heading: &str, lang: &str) -> String {
    let Some(start) = text.find(heading) else {
        panic!("the README has no `{heading}`");
    };
    let fence = format!("```{lang}\n");
    let Some(open) = text[start..].find(&fence) else {
        panic!("no ```{lang} block after `{heading}`");
    };
    let body = start + open + fence.len();
    let Some(close) = text[body..].find("```") else {
        panic!("an unclosed block after `{heading}`");
    };
    text[body..body + close].to_string()
}

#[test]
fn the_reference_example_parses() {
    let example = block_after(&readme(), "### pipeline.toml (version 1)", "toml");
    match sluice_config::parse(Path::new("pipeline.toml"), &example) {
        Ok(pipeline) => {
            assert_eq!(pipeline.name, "hello");
            assert_eq!(pipeline.provenance_key.as_deref(), Some("SIGNING_KEY"));
            assert_eq!(pipeline.secrets.len(), 2);
            assert_eq!(pipeline.stages[0].trusted_keys.len(), 1);
        }
        Err(diag) => panic!("the README's pipeline.toml example does not parse:\n{diag}"),
    }
}

#[test]
fn the_sample_error_is_what_sluice_prints() {
    let text = readme();
    let example = block_after(&text, "### pipeline.toml (version 1)", "toml");
    let shown = block_after(&text, "Unknown keys are errors.", "");
    // The sample is the example with its second stage also named `code`.
    let duplicate = example.replacen("name = \"build\"", "name = \"code\"", 1);
    let Err(diag) = sluice_config::parse(Path::new("pipeline.toml"), &duplicate) else {
        panic!("a duplicate stage name must be refused");
    };
    assert_eq!(
        shown.trim_end(),
        format!("error: {diag}"),
        "the README's sample error is not what sluice prints"
    );
}
