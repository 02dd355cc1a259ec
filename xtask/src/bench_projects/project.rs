//! The three real projects of the benchmark and, for each, the commands a person runs by hand
//! that do the same work as the stages `sluice init` writes for it — the same programs, arguments
//! and variables as `host/templates/pipelines/*.toml` (and the `cargo-test` stage's own
//! `cargo test` line) — plus the file a "one file touched" round changes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Which registry a project comes from, and so which pipeline `sluice init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rust,
    Npm,
    Python,
}

impl Kind {
    /// As `--project` names it.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "rust" => Self::Rust,
            "npm" => Self::Npm,
            "python" => Self::Python,
            other => bail!("unknown project `{other}`: rust, npm or python"),
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Npm => "npm",
            Self::Python => "python",
        }
    }
}

/// One project: a published version, its registry, the file touched.
#[derive(Debug)]
pub struct Project {
    pub kind: Kind,
    pub name: &'static str,
    pub version: &'static str,
    /// Where its sources come from, for the table.
    pub registry: &'static str,
    /// Relative to the project: the file a comment line is appended to.
    pub touched: &'static str,
    /// The lock file `sluice init` writes when there is none, given to the by-hand copy too.
    pub lock: Option<&'static str>,
}

pub const PROJECTS: [Project; 3] = [
    Project {
        kind: Kind::Rust,
        name: "semver",
        version: "1.0.28",
        registry: "crates.io",
        touched: "src/parse.rs",
        lock: Some("Cargo.lock"),
    },
    Project {
        kind: Kind::Npm,
        name: "deep-is",
        version: "0.1.4",
        registry: "registry.npmjs.org",
        touched: "index.js",
        lock: Some("package-lock.json"),
    },
    Project {
        kind: Kind::Python,
        name: "more-itertools",
        version: "11.2.1",
        registry: "PyPI, sdist",
        touched: "more_itertools/more.py",
        lock: None,
    },
];

/// Where the pipeline file says a step's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An exec stage's `program` and `args`.
    Exec,
    /// One of an exec stage's `before` commands.
    Before,
    /// A stage plugin's own command (`cargo-test`): not in the pipeline file, not checked.
    Plugin,
}

/// One command run by hand, mirroring one stage (or one of its `before` commands).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// A program on PATH, or a path inside the project (`.venv/bin/python`; the pipeline says
    /// `${workspace}/.venv/bin/python`).
    pub program: &'static str,
    /// As the pipeline writes them: `${out}` is the step's output folder.
    pub args: &'static [&'static str],
    /// The variables the stage sets or is granted (a cache volume's variable points at a fresh
    /// folder of the by-hand side instead).
    pub env: Vec<(&'static str, OsString)>,
    pub source: Source,
}

impl Step {
    fn exec(program: &'static str, args: &'static [&'static str]) -> Self {
        Self {
            program,
            args,
            env: Vec::new(),
            source: Source::Exec,
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<OsString>) -> Self {
        self.env.push((name, value.into()));
        self
    }

    fn from(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// `NAME=value program args...`, as a person would type it.
    pub fn shown(&self) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(name, value)| format!("{name}={} ", value.to_string_lossy()))
            .collect();
        let args: Vec<String> = self.args.iter().map(|a| shell_word(a)).collect();
        format!("{}{} {}", env.concat(), self.program, args.join(" "))
    }

    /// The program to start in the project folder `folder`.
    pub fn program_in(&self, folder: &Path) -> PathBuf {
        if self.program.contains('/') {
            folder.join(self.program)
        } else {
            PathBuf::from(self.program)
        }
    }

    /// The arguments with `${out}` replaced by `out`.
    pub fn args_with(&self, out: &Path) -> Vec<String> {
        let out = out.to_string_lossy();
        self.args
            .iter()
            .map(|a| a.replace("${out}", &out))
            .collect()
    }

    /// What the pipeline file holds for this step, each piece as written there.
    fn in_pipeline(&self) -> Vec<String> {
        let program = if self.program.contains('/') {
            format!("${{workspace}}/{}", self.program)
        } else {
            self.program.to_string()
        };
        let words = |words: Vec<&str>| {
            let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
            format!("[{}]", quoted.join(", "))
        };
        match self.source {
            Source::Exec => vec![
                format!("program = \"{program}\""),
                format!("args = {}", words(self.args.to_vec())),
            ],
            Source::Before => {
                let mut all = vec![program.as_str()];
                all.extend(self.args);
                vec![words(all)]
            }
            Source::Plugin => Vec::new(),
        }
    }
}

/// A word quoted for a shell when it holds a space or a shell character.
fn shell_word(word: &str) -> String {
    if word.chars().any(|c| " <>*?;&|$\"'".contains(c)) && !word.contains("${out}") {
        format!("'{word}'")
    } else {
        word.to_string()
    }
}

/// The by-hand commands for `kind`, in order; `caches` is the by-hand side's fresh folder for
/// what the pipeline keeps in cache volumes.
pub fn by_hand(kind: Kind, caches: &Path) -> Vec<Step> {
    match kind {
        // rust.toml: build runs `cargo build --release --locked` with CARGO_TERM_COLOR=never;
        // the cargo-test stage runs `cargo test --locked --no-fail-fast --color never` with the
        // same variable. Both keep cargo's target folder in a volume; by hand it is target/.
        Kind::Rust => vec![
            Step::exec("cargo", &["build", "--release", "--locked"])
                .with("CARGO_TERM_COLOR", "never"),
            Step::exec(
                "cargo",
                &["test", "--locked", "--no-fail-fast", "--color", "never"],
            )
            .with("CARGO_TERM_COLOR", "never")
            .from(Source::Plugin),
        ],
        // node.toml + node-test.toml: deps runs `npm ci` with npm's cache in a volume; test
        // runs `npm test` with nothing granted.
        Kind::Npm => vec![
            Step::exec("npm", &["ci", "--no-audit", "--no-fund"])
                .with("npm_config_cache", caches.join("npm")),
            Step::exec("npm", &["test"]),
        ],
        // python.toml + python-release.toml for more-itertools (a flit package, no test extra):
        // deps makes .venv/ and pip-installs the project with pytest and the build backend, pip's
        // cache in a volume; test runs pytest with JUnit; release builds the sdist and wheel;
        // both with `-B` (no bytecode written into the project).
        Kind::Python => {
            let pip_cache = caches.join("pip");
            let python = ".venv/bin/python";
            vec![
                Step::exec("python3", &["-m", "venv", ".venv"])
                    .from(Source::Before)
                    .with("PIP_CACHE_DIR", &pip_cache),
                Step::exec(
                    python,
                    &[
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "-e",
                        ".",
                        "pytest",
                        "build",
                        "flit_core >=4,<5",
                    ],
                )
                .with("PIP_CACHE_DIR", &pip_cache),
                Step::exec(
                    python,
                    &[
                        "-B",
                        "-m",
                        "pytest",
                        "-p",
                        "no:cacheprovider",
                        "-o",
                        "junit_family=xunit2",
                        "--junitxml=${out}/junit.xml",
                    ],
                ),
                Step::exec(
                    python,
                    &[
                        "-B",
                        "-m",
                        "build",
                        "--no-isolation",
                        "--outdir",
                        "${out}/dist",
                    ],
                ),
            ]
        }
    }
}

/// Fails unless every step of `steps` written in the pipeline file is in the one `sluice init`
/// wrote (an exec stage's program and `args` line, a `before` command), so that a template that
/// changes its commands is noticed here rather than measured against different work.
pub fn check_pipeline(pipeline: &str, steps: &[Step]) -> Result<()> {
    for step in steps {
        if step
            .in_pipeline()
            .iter()
            .any(|piece| !pipeline.contains(piece))
        {
            bail!(
                "the pipeline `sluice init` wrote no longer runs `{}`: update the by-hand \
                 commands in xtask/src/bench_projects/project.rs to its stages",
                step.shown()
            );
        }
    }
    Ok(())
}

/// The comment line appended to `file` in round `round`: new content each time.
pub fn touch_line(file: &str, round: usize) -> String {
    let marker = if file.ends_with(".py") { "#" } else { "//" };
    format!("\n{marker} sluice bench-projects: touched in round {round}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_by_hand_mirrors_build_and_cargo_test() {
        let steps = by_hand(Kind::Rust, Path::new("/c"));
        let shown: Vec<String> = steps.iter().map(Step::shown).collect();
        assert_eq!(
            shown,
            [
                "CARGO_TERM_COLOR=never cargo build --release --locked",
                "CARGO_TERM_COLOR=never cargo test --locked --no-fail-fast --color never",
            ]
        );
        assert_eq!(
            steps.iter().map(|s| s.source).collect::<Vec<_>>(),
            [Source::Exec, Source::Plugin]
        );
    }

    #[test]
    fn npm_by_hand_gets_a_fresh_cache_only_for_ci() {
        let shown: Vec<String> = by_hand(Kind::Npm, Path::new("/c"))
            .iter()
            .map(Step::shown)
            .collect();
        assert_eq!(
            shown,
            [
                "npm_config_cache=/c/npm npm ci --no-audit --no-fund",
                "npm test"
            ]
        );
    }

    #[test]
    fn the_pipeline_check_finds_each_exec_step_or_says_which() {
        let steps = by_hand(Kind::Npm, Path::new("/c"));
        let pipeline = "program = \"npm\"\nargs = [\"ci\", \"--no-audit\", \"--no-fund\"]\n\
                        program = \"npm\"\nargs = [\"test\"]\n";
        assert!(check_pipeline(pipeline, &steps).is_ok());
        let old = pipeline.replace("\"--no-fund\"", "\"--fund\"");
        let err = check_pipeline(&old, &steps)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("npm ci --no-audit --no-fund"), "{err}");
        // cargo test is the cargo-test plugin's own line: not looked for.
        let rust = by_hand(Kind::Rust, Path::new("/c"));
        let built = "program = \"cargo\"\nargs = [\"build\", \"--release\", \"--locked\"]\n";
        assert!(check_pipeline(built, &rust).is_ok());
    }

    #[test]
    fn python_by_hand_mirrors_venv_install_pytest_and_build() {
        let steps = by_hand(Kind::Python, Path::new("/c"));
        let shown: Vec<String> = steps.iter().map(Step::shown).collect();
        let env = "PIP_CACHE_DIR=/c/pip";
        assert_eq!(
            shown,
            [
                format!("{env} python3 -m venv .venv"),
                format!(
                    "{env} .venv/bin/python -m pip install --disable-pip-version-check -e . \
                     pytest build 'flit_core >=4,<5'"
                ),
                ".venv/bin/python -B -m pytest -p no:cacheprovider -o junit_family=xunit2 \
                 --junitxml=${out}/junit.xml"
                    .to_string(),
                ".venv/bin/python -B -m build --no-isolation --outdir ${out}/dist".to_string(),
            ]
        );
        let folder = Path::new("/p");
        assert_eq!(
            steps[1].program_in(folder),
            Path::new("/p/.venv/bin/python")
        );
        assert_eq!(steps[0].program_in(folder), Path::new("python3"));
        assert_eq!(
            steps[3].args_with(Path::new("/o"))[4..],
            ["--outdir", "/o/dist"]
        );
        let pipeline = "before = [[\"python3\", \"-m\", \"venv\", \".venv\"]]\n\
             program = \"${workspace}/.venv/bin/python\"\n\
             args = [\"-m\", \"pip\", \"install\", \"--disable-pip-version-check\", \"-e\", \".\", \
             \"pytest\", \"build\", \"flit_core >=4,<5\"]\n\
             args = [\"-B\", \"-m\", \"pytest\", \"-p\", \"no:cacheprovider\", \"-o\", \
             \"junit_family=xunit2\", \"--junitxml=${out}/junit.xml\"]\n\
             args = [\"-B\", \"-m\", \"build\", \"--no-isolation\", \"--outdir\", \"${out}/dist\"]\n";
        assert!(check_pipeline(pipeline, &steps).is_ok());
        let without_venv = pipeline.replace("\"venv\"", "\"virtualenv\"");
        assert!(check_pipeline(&without_venv, &steps).is_err());
    }

    #[test]
    fn touch_lines_differ_by_round_and_language() {
        assert_eq!(
            touch_line("src/parse.rs", 2),
            "\n// sluice bench-projects: touched in round 2\n"
        );
        assert!(touch_line("more_itertools/more.py", 1).starts_with("\n# "));
        assert_ne!(touch_line("index.js", 1), touch_line("index.js", 2));
    }

    #[test]
    fn kinds_parse_by_name() {
        for project in &PROJECTS {
            assert_eq!(Kind::parse(project.kind.label()).ok(), Some(project.kind));
        }
        assert!(Kind::parse("go").is_err());
    }
}
