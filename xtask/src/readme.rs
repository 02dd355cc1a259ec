//! `cargo xtask readme`: the README is a test. Its runnable shell blocks (fenced as
//! ```` ```sh runnable ````) run in order, as one bash script, in an empty folder outside the
//! checkout, with the `sluice` this build made installed alone into a fresh `bin/` folder on PATH
//! — what a new user types, from installing to sharing a plugin between two teams — and CI fails
//! naming the block that failed. Before that, the installed binary is checked to name no folder
//! of this build.
//!
//! A runnable line can state what it prints, in a trailing comment that opens with an arrow:
//! `cat runs/latest/artifacts/shout/greeting.txt  # → hello from shout`. The script runs that
//! command as written, in its own shell (so `set -e`, `cd` and variables behave as on any other
//! line), with its standard output kept in a file; prints that output as before; and fails,
//! naming the README line, the expected text and what was printed, unless the output
//! **contains** the text (anywhere: a file's one line, or one element of a longer file); `…` in
//! the text stands for any text, so `# → sluice … (commit …)` leaves the version and the commit
//! free. The command failing still fails the block. Lines inside a here-document are data and
//! stay as they are; a stated output on a continued line (after a `\`) or on a line opening a
//! here-document is refused when the script is made, since the command would not be whole.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::build_env::{build_host, remap_env_for};
use crate::{host_binary, install, plugin_target_dir, services, target_dir};

/// One runnable block: the README line its fence opens on, and its text.
#[derive(Debug, PartialEq, Eq)]
struct Block {
    line: usize,
    text: String,
}

fn runnable_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        match open.as_mut() {
            None => {
                let info = line
                    .trim_start()
                    .strip_prefix("```")
                    .map(str::split_whitespace);
                if let Some(mut words) = info
                    && words.next() == Some("sh")
                    && words.any(|w| w == "runnable")
                {
                    open = Some(Block {
                        line: index + 1,
                        text: String::new(),
                    });
                }
            }
            Some(block) => {
                if line.trim_start().starts_with("```") {
                    blocks.extend(open.take());
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    blocks
}

/// What opens a line's stated output: a comment whose text starts with an arrow.
const PRINTS: &str = " # → ";
/// In a stated output, any text (possibly none, possibly across lines).
const ANY: char = '…';

/// The script: stop at the first failing command and say which block it was in; check each
/// stated output and say which line printed something else.
fn script(blocks: &[Block]) -> Result<String> {
    let mut script = String::from(
        "set -euo pipefail\n\
         trap 'echo \"README.md: the block at line $README_BLOCK failed\" >&2' ERR\n\
         README_OUTPUT_FILE=$(mktemp)\n\
         trap 'rm -f \"$README_OUTPUT_FILE\"' EXIT\n",
    );
    for block in blocks {
        script.push_str(&format!(
            "README_BLOCK={line}\necho \"--- README.md line {line} (at ${{SECONDS}} s)\" >&2\n",
            line = block.line,
        ));
        script.push_str(&block_script(block)?);
    }
    Ok(script)
}

/// A block's text with each line that states its output replaced by a checked run of it.
fn block_script(block: &Block) -> Result<String> {
    let mut out = String::new();
    // The delimiter of the here-document the line is in, and whether it is `<<-` (tabs stripped).
    let mut heredoc: Option<(String, bool)> = None;
    let mut continued = false;
    for (index, line) in block.text.lines().enumerate() {
        let readme_line = block.line + 1 + index;
        if let Some((delimiter, strip_tabs)) = &heredoc {
            let end = if *strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if end == delimiter {
                heredoc = None;
            }
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let stated = line
            .find(PRINTS)
            .map(|at| (line[..at].trim_end(), line[at + PRINTS.len()..].trim()));
        let was_continued = continued;
        continued = stated.is_none() && line.trim_end().ends_with('\\');
        heredoc = heredoc_opened(line);
        let Some((command, expected)) = stated else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if was_continued {
            bail!(
                "README.md line {readme_line}: an output is stated (`# →`) on a line that continues the one before; put the command on one line"
            );
        }
        if heredoc.is_some() {
            bail!(
                "README.md line {readme_line}: an output is stated (`# →`) on a line that opens a here-document; state it on a command of its own"
            );
        }
        if command.trim().is_empty() || expected.replace(ANY, "").trim().is_empty() {
            bail!(
                "README.md line {readme_line}: `# →` needs a command before it and the text it prints after it"
            );
        }
        out.push_str(&checked(readme_line, command, expected));
    }
    Ok(out)
}

/// The here-document a line opens (`<<EOF`, `<<'EOF'`, `<<-"EOF"`), if any; here-strings
/// (`<<<`) open none.
fn heredoc_opened(line: &str) -> Option<(String, bool)> {
    let mut rest = line;
    while let Some(at) = rest.find("<<") {
        let after = &rest[at + 2..];
        if let Some(here_string) = after.strip_prefix('<') {
            rest = here_string.trim_start_matches('<');
            continue;
        }
        let (strip_tabs, after) = match after.strip_prefix('-') {
            Some(after) => (true, after),
            None => (false, after),
        };
        let word: String = after
            .trim_start()
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '&' | '|' | ')' | '<' | '>'))
            .filter(|c| !matches!(c, '\'' | '"' | '\\'))
            .collect();
        if !word.is_empty() {
            return Some((word, strip_tabs));
        }
        rest = after;
    }
    None
}

/// Bash that runs `command` with its standard output kept, prints that output, and exits naming
/// the README line unless it contains `expected` (`…` standing for any text).
fn checked(readme_line: usize, command: &str, expected: &str) -> String {
    // `*'part'*'part'*`: the quoted parts are literal text to bash, the stars any text.
    let pattern: String = std::iter::once(String::new())
        .chain(expected.split(ANY).map(single_quoted))
        .chain(std::iter::once(String::new()))
        .collect::<Vec<_>>()
        .join("*");
    let message = single_quoted(&format!(
        "README.md line {readme_line}: `{command}` should print \"{expected}\" (its `# →` comment), but it printed:"
    ));
    // The command runs in the script's own shell, as written (`set -e`, `cd`, variables), its
    // standard output into a file; on a line of its own, so a comment in it cannot hide the `}`.
    format!(
        "{{ {command}\n}} >\"$README_OUTPUT_FILE\"\n\
         cat \"$README_OUTPUT_FILE\"\n\
         README_OUTPUT=$(<\"$README_OUTPUT_FILE\")\n\
         if [[ $README_OUTPUT != {pattern} ]]; then\n\
         \x20 printf '%s\\n' {message} \"${{README_OUTPUT:-(nothing)}}\" >&2\n\
         \x20 exit 1\n\
         fi\n"
    )
}

/// `text` as one bash word that means exactly `text`.
fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `cargo xtask readme`: builds the host as CI does (a no-op after CI's build step: another
/// command could unify features differently and build another binary in its place), then runs
/// the blocks.
pub fn run(root: &Path) -> Result<()> {
    build_host(root)?;
    run_built(root)
}

/// The blocks, with the binary CI's host build made (CI runs this beside the tests, so it runs
/// no cargo command on the host's target folder, which `cargo test` holds).
pub fn run_built(root: &Path) -> Result<()> {
    let readme =
        std::fs::read_to_string(root.join("README.md")).context("cannot read README.md")?;
    let blocks = runnable_blocks(&readme);
    if blocks.is_empty() {
        bail!("README.md has no ```sh runnable blocks");
    }
    let built = host_binary(root, "debug");
    install::check_names_no_build_folder(root, &built)?;

    let home = tempfile::Builder::new()
        .prefix("sluice-readme-")
        .tempdir_in(std::env::temp_dir())
        .context("cannot make a temporary folder")?;
    let top = home.path().canonicalize()?;
    if top.starts_with(root) {
        bail!(
            "the temporary folder {} is inside the checkout; set TMPDIR elsewhere",
            top.display()
        );
    }
    let bin = top.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(&built, bin.join("sluice")).context("cannot install sluice")?;
    let work = top.join("work");
    std::fs::create_dir_all(&work)?;

    let port = free_port()?;
    let _registry = services::start_registry(root, port, &top.join("registry"))?;

    // The user's data and cache folders are under the target folder: empty on a fresh clone, so
    // the toolchains and the SDK are installed on first use, as for anyone; kept between local
    // runs to save time. Speed only, too: pip's wheel cache is the real one (it saves
    // downloads), and Rust scaffolds build into the guest plugins' target folder with the same
    // flags, reusing the dependencies compiled there (2.5 min → 0.5 min on a fresh clone).
    let user = target_dir(root).join("readme-user");
    let real_pip_cache = dirs_cache().map(|c| c.join("pip"));
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script(&blocks)?)
        .current_dir(&work)
        .env("PATH", path)
        .env("REGISTRY", format!("127.0.0.1:{port}"))
        .env("XDG_CACHE_HOME", user.join("cache"))
        .env("XDG_DATA_HOME", user.join("data"))
        .env("XDG_STATE_HOME", top.join("state"))
        .env("XDG_CONFIG_HOME", top.join("config"))
        .env("CARGO_TARGET_DIR", plugin_target_dir(root))
        .envs(remap_env_for(&plugin_target_dir(root)))
        .env_remove("SLUICE_TOOLCHAINS")
        .env_remove("SLUICE_SDK_DIR")
        .env_remove("SLUICE_PLUGIN_STORE")
        .env_remove("SLUICE_STAGE_CACHE")
        .env_remove("SLUICE_CACHE_DIR")
        .env_remove("SLUICE_RUNS_DIR");
    if let Some(pip) = real_pip_cache {
        command.env("PIP_CACHE_DIR", pip);
    }
    eprintln!(
        "xtask: running {} README blocks in {} with {} on PATH",
        blocks.len(),
        work.display(),
        bin.join("sluice").display()
    );
    let status = command.status().context("cannot run bash")?;
    if !status.success() {
        bail!("a README block failed ({status}); the message above names its line");
    }
    Ok(())
}

fn dirs_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocks_marked_runnable_are_taken_with_their_lines() {
        let md = "# t\n```sh\nnot me\n```\n\n```sh runnable\necho a\necho b\n```\n```toml runnable\nx = 1\n```\n```sh runnable\necho c\n```\n";
        let blocks = runnable_blocks(md);
        assert_eq!(
            blocks,
            vec![
                Block {
                    line: 6,
                    text: "echo a\necho b\n".into()
                },
                Block {
                    line: 13,
                    text: "echo c\n".into()
                },
            ]
        );
        assert!(script(&blocks).is_ok_and(|script| script.contains("README_BLOCK=13\n")));
    }

    /// One block of `text` (its fence on README line 10, its first line on 11), made into the
    /// script and run by real bash in an empty folder: whether it succeeded, its stdout and its
    /// stderr.
    fn run_block(text: &str) -> (bool, String, String) {
        let blocks = [Block {
            line: 10,
            text: text.into(),
        }];
        let script = script(&blocks).expect("the block makes a script");
        let folder = tempfile::tempdir().expect("a temporary folder");
        let output = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(folder.path())
            .output()
            .expect("bash runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[test]
    fn the_readme_makes_a_script_and_states_what_its_cat_lines_print() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md is readable");
        let blocks = runnable_blocks(&readme);
        assert!(
            script(&blocks).is_ok(),
            "{:?}",
            script(&blocks).map_err(|e| e.to_string())
        );
        let cats: Vec<&str> = blocks
            .iter()
            .flat_map(|block| block.text.lines())
            .filter(|line| line.trim_start().starts_with("cat ") && !line.contains("cat >"))
            .collect();
        assert!(cats.len() >= 5, "{cats:?}");
        for line in cats {
            assert!(
                line.contains(PRINTS),
                "{line:?} does not state what it prints"
            );
        }
    }

    #[test]
    fn a_stated_output_that_is_printed_passes_and_is_printed_as_before() {
        let (ok, stdout, stderr) =
            run_block("echo one\necho hello  # → hello\nprintf 'a\\nb\\n'  # → a\necho after\n");
        assert!(ok, "{stderr}");
        assert_eq!(stdout, "one\nhello\na\nb\nafter\n");
    }

    #[test]
    fn a_stated_output_that_is_not_printed_fails_naming_the_line_the_text_and_the_output() {
        let (ok, stdout, stderr) = run_block("echo one\necho bye  # → hello\necho after\n");
        assert!(
            !ok,
            "the script passed though line 12 printed bye, not hello"
        );
        assert_eq!(stdout, "one\nbye\n", "nothing runs after the failed check");
        assert!(
            stderr.contains(
                "README.md line 12: `echo bye` should print \"hello\" (its `# →` comment), but it printed:\nbye\n"
            ),
            "{stderr}"
        );
    }

    #[test]
    fn an_empty_output_is_named_as_nothing() {
        let (ok, _, stderr) = run_block("true  # → hello\n");
        assert!(!ok);
        assert!(stderr.contains("it printed:\n(nothing)\n"), "{stderr}");
    }

    #[test]
    fn the_command_failing_still_fails_the_block() {
        let (ok, stdout, stderr) = run_block("{ echo hello; false; }  # → hello\necho after\n");
        assert!(!ok, "a failing command passed because it printed the text");
        assert!(!stdout.contains("after"), "{stdout}");
        assert!(
            stderr.contains("README.md: the block at line 10 failed"),
            "{stderr}"
        );
        let (ok, _, _) = run_block("echo hello | grep -q nothing; echo hello  # → hello\n");
        assert!(!ok, "pipefail and errexit hold before the checked command");
    }

    #[test]
    fn the_text_is_literal_but_for_the_ellipsis() {
        let (ok, _, stderr) =
            run_block("echo 'sluice 0.1.0 (commit abc)'  # → sluice … (commit …)\n");
        assert!(ok, "{stderr}");
        let (ok, _, stderr) =
            run_block("echo \"it's a *\\\"quoted\\\"* \\$HOME\"  # → it's a *\"quoted\"* $HOME\n");
        assert!(ok, "{stderr}");
        // `*`, `?` and `[` are not patterns, quotes and `$` are not shell syntax.
        let (ok, _, _) = run_block("echo 'it is a quoted thing'  # → it is * thing\n");
        assert!(!ok, "`*` in the text matched any text");
        let (ok, _, _) = run_block("echo 'x'  # → ?\n");
        assert!(!ok, "`?` in the text matched any character");
        let (ok, _, _) = run_block("echo 'home'  # → $HOME\n");
        assert!(!ok, "`$HOME` in the text was expanded");
        // The ellipsis keeps the order of the parts.
        let (ok, _, _) = run_block("echo 'b a'  # → a … b\n");
        assert!(!ok);
    }

    #[test]
    fn a_checked_command_runs_in_the_scripts_own_shell() {
        let (ok, stdout, stderr) = run_block(
            "mkdir -p d && cd d && pwd  # → /d\nname=x; echo $name  # → x\necho \"${PWD##*/} $name\"\n",
        );
        assert!(ok, "{stderr}");
        assert!(stdout.ends_with("x\nd x\n"), "{stdout}");
    }

    #[test]
    fn a_stated_output_works_inside_a_loop_and_after_a_comment() {
        let (ok, stdout, stderr) =
            run_block("for w in hi ho; do\n  echo \"$w there\" # says it # → there\ndone\n");
        assert!(ok, "{stderr}");
        assert_eq!(stdout, "hi there\nho there\n");
    }

    #[test]
    fn here_documents_are_data_and_other_arrows_are_comments() {
        let text = "cat > f <<'EOF'\nx  # → not checked\nEOF\ncat f  # → x  # → not checked\necho a  # code → build\n";
        let (ok, stdout, stderr) = run_block(text);
        assert!(ok, "{stderr}");
        assert_eq!(stdout, "x  # → not checked\na\n");
        assert_eq!(
            heredoc_opened("cat <<-\"END\" > x"),
            Some(("END".into(), true))
        );
        assert_eq!(heredoc_opened("grep x <<< \"$y\""), None);
    }

    #[test]
    fn a_stated_output_the_script_cannot_check_is_refused_naming_the_line() {
        for (text, line, why) in [
            ("printf '%s' \\\n  hello  # → hello\n", 12, "continues"),
            ("cat <<EOF  # → hello\nhello\nEOF\n", 11, "here-document"),
            ("echo hello  # →  \n", 11, "needs a command"),
            ("  # → hello\n", 11, "needs a command"),
        ] {
            let blocks = [Block {
                line: 10,
                text: text.into(),
            }];
            let message = script(&blocks).map_err(|e| e.to_string());
            assert!(
                message.as_ref().is_err_and(
                    |m| m.contains(&format!("README.md line {line}: ")) && m.contains(why)
                ),
                "{text:?}: {message:?}"
            );
        }
    }
}
