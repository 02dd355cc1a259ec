//! What `sluice init` reads of a Python project to write its pipeline: whether it is a package
//! (`pyproject.toml` with `[project]`/`[build-system]`, `setup.py`, `setup.cfg`), its test
//! extra or dependency group, its requirement files, and the build backend the release stage
//! needs — turned into the one `pip install` the deps stage runs.

use std::path::Path;

/// The paths the stages write into the project, left out of the packed sources and of every
/// stage-cache key: the virtual environment, build output, caches and bytecode.
pub const WRITTEN_BY_STAGES: &[&str] = &[
    ".venv/",
    "__pycache__/",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".tox/",
    ".nox/",
    ".eggs/",
    "*.egg-info/",
    "/build/",
    "/dist/",
    ".sluice/",
];

/// Names a test extra or dependency group goes by, in the order they are looked for.
const TEST_NAMES: &[&str] = &["test", "tests", "testing", "dev"];

/// A Python project as the pipeline sees it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PythonProject {
    /// `[project] name`, if the pyproject gives one.
    pub name: Option<String>,
    /// Installable with pip (`pip install -e .`) and buildable into a wheel and an sdist.
    pub packaged: bool,
    /// The optional-dependencies extra holding the test requirements (`test`).
    pub test_extra: Option<String>,
    /// Requirements from a `[dependency-groups]` test group (pip of Debian 12 has no
    /// `--group`, so they are passed as requirements; `{include-group}` entries are skipped).
    pub group_requirements: Vec<String>,
    /// `requirements*.txt` / `*requirements.txt` files at the top, sorted.
    pub requirement_files: Vec<String>,
    /// `[build-system] requires` (setuptools and wheel when there is none), for a release
    /// built without a download.
    pub build_requires: Vec<String>,
}

impl PythonProject {
    /// The project in `dir`, if it is one: a pyproject.toml, setup.py or requirement file.
    pub fn read(dir: &Path) -> Option<Self> {
        let requirement_files = requirement_files(dir);
        let pyproject: Option<toml::Table> = std::fs::read_to_string(dir.join("pyproject.toml"))
            .ok()
            .and_then(|text| toml::from_str(&text).ok());
        let has_setup = dir.join("setup.py").is_file() || dir.join("setup.cfg").is_file();
        if pyproject.is_none()
            && !dir.join("pyproject.toml").is_file()
            && !has_setup
            && requirement_files.is_empty()
        {
            return None;
        }
        let table = pyproject.unwrap_or_default();
        let project = table.get("project").and_then(|p| p.as_table());
        let build_system = table.get("build-system").and_then(|b| b.as_table());
        let packaged = has_setup || project.is_some() || build_system.is_some();
        let extras = project
            .and_then(|p| p.get("optional-dependencies"))
            .and_then(|e| e.as_table());
        let test_extra = TEST_NAMES
            .iter()
            .find(|name| extras.is_some_and(|e| e.contains_key(**name)))
            .map(|name| name.to_string());
        let groups = table.get("dependency-groups").and_then(|g| g.as_table());
        let group_requirements = TEST_NAMES
            .iter()
            .find_map(|name| groups.and_then(|g| g.get(*name)).and_then(|g| g.as_array()))
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let build_requires = match build_system
            .and_then(|b| b.get("requires"))
            .and_then(|r| r.as_array())
        {
            Some(list) => list
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            None if packaged => vec!["setuptools>=40.8.0".into(), "wheel".into()],
            None => Vec::new(),
        };
        // setuptools before 70.1 asks for `wheel` to build one (a venv comes with an old
        // setuptools, which satisfies `setuptools>=61`).
        let mut build_requires = build_requires;
        let named = |prefix: &str| {
            build_requires
                .iter()
                .any(|r| r.trim_start().starts_with(prefix))
        };
        if named("setuptools") && !named("wheel") {
            build_requires.push("wheel".into());
        }
        Some(Self {
            name: project
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string),
            packaged,
            test_extra,
            group_requirements,
            requirement_files,
            build_requires,
        })
    }

    /// The arguments of the deps stage's `python -m pip install …`: the project (editable, with
    /// its test extra), its requirement files, its test group, pytest, and for a package the
    /// `build` front end with the backend, so the release stage needs no network.
    pub fn install_args(&self) -> Vec<String> {
        let mut args: Vec<String> = ["-m", "pip", "install", "--disable-pip-version-check"]
            .map(String::from)
            .to_vec();
        if self.packaged {
            args.push("-e".into());
            args.push(match &self.test_extra {
                Some(extra) => format!(".[{extra}]"),
                None => ".".into(),
            });
        }
        for file in &self.requirement_files {
            args.push("-r".into());
            args.push(file.clone());
        }
        args.extend(self.group_requirements.iter().cloned());
        args.push("pytest".into());
        if self.packaged {
            args.push("build".into());
            args.extend(self.build_requires.iter().cloned());
        }
        args
    }
}

fn requirement_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".txt")
                && (name.starts_with("requirements") || name.ends_with("requirements.txt"))
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Option<PythonProject>) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let read = PythonProject::read(dir.path());
        (dir, read)
    }

    #[test]
    fn a_pyproject_package_installs_itself_with_its_test_extra_and_backend() {
        let (_dir, read) = project(&[(
            "pyproject.toml",
            "[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n\
             [project]\nname = \"more-itertools\"\n[project.optional-dependencies]\ndev = [\"x\"]\ntests = [\"hypothesis\"]\n",
        )]);
        let read = read.expect("a Python project");
        assert_eq!(read.name.as_deref(), Some("more-itertools"));
        assert_eq!(
            read.install_args()[4..],
            ["-e", ".[tests]", "pytest", "build", "flit_core >=3.2,<4"]
        );
    }

    #[test]
    fn requirement_files_and_a_test_group_without_a_package() {
        let (_dir, read) = project(&[
            ("requirements.txt", "requests\n"),
            ("requirements-dev.txt", "pytest-cov\n"),
            ("dev-requirements.txt", "mock\n"),
            ("notes.txt", ""),
            (
                "pyproject.toml",
                "[tool.black]\nline-length = 100\n[dependency-groups]\ntest = [\"pytest-xdist\", {include-group = \"lint\"}]\n",
            ),
        ]);
        let read = read.expect("a Python project");
        assert!(!read.packaged);
        assert_eq!(
            read.install_args()[4..],
            [
                "-r",
                "dev-requirements.txt",
                "-r",
                "requirements-dev.txt",
                "-r",
                "requirements.txt",
                "pytest-xdist",
                "pytest"
            ]
        );
    }

    #[test]
    fn a_setup_py_gets_setuptools_to_build_with_and_nothing_is_no_project() {
        let (_dir, read) = project(&[("setup.py", "from setuptools import setup\nsetup()\n")]);
        let read = read.expect("a Python project");
        assert_eq!(
            read.install_args()[4..],
            ["-e", ".", "pytest", "build", "setuptools>=40.8.0", "wheel"]
        );
        let (_dir, modern) = project(&[(
            "pyproject.toml",
            "[build-system]\nrequires = [\"setuptools>=61\"]\n[project]\nname = \"x\"\n",
        )]);
        let modern = modern.expect("a Python project");
        assert_eq!(modern.build_requires, ["setuptools>=61", "wheel"]);
        let (_dir, none) = project(&[("README.md", "# hi\n")]);
        assert_eq!(none, None);
    }
}
