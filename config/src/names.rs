//! Naming rules and length limits for everything a pipeline names: the pipeline, stages, secrets,
//! outputs. Stage and output names become directory and file names, so they stay plain.

use std::path::{Component, Path};

/// Longest pipeline name, in characters.
pub const MAX_PIPELINE_NAME_CHARS: usize = 64;
/// Longest stage name, in characters (stage names are ASCII).
pub const MAX_STAGE_NAME_CHARS: usize = 64;
/// Longest secret name, in characters (secret names are ASCII).
pub const MAX_SECRET_NAME_CHARS: usize = 64;
/// Longest pipeline or stage description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest output (artifact) name, in bytes: a file name limit on common file systems.
pub const MAX_OUTPUT_NAME_BYTES: usize = 255;

/// Output names are relative paths of plain components: no `..`, no root, no `.`, no empty part.
/// How a program inside the workspace is granted: `${workspace}/.venv/bin/python`.
pub const WORKSPACE_PROGRAM_PREFIX: &str = "${workspace}/";

/// The path inside the workspace a `${workspace}/…` program names (`.venv/bin/python`), when
/// `program` is one and that path is plain (no `..`, `.` or empty parts).
pub fn workspace_program(program: &str) -> Option<&str> {
    let rest = program.strip_prefix(WORKSPACE_PROGRAM_PREFIX)?;
    check_relative_name(rest).ok().map(|()| rest)
}

pub fn check_relative_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.contains('\\') || name.contains('\0') {
        return Err("the name contains `\\` or NUL");
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains a control character");
    }
    if name.len() > MAX_OUTPUT_NAME_BYTES {
        return Err("the name is longer than 255 bytes");
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." {
            return Err("the name has an empty or `.` component");
        }
        if part == ".." {
            return Err("the name contains `..`");
        }
    }
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err("the name is not a plain relative path");
    }
    Ok(())
}

/// `it is 70 characters long; the limit is 64`, or nothing when within the limit.
fn check_length(subject: &str, count: usize, limit: usize, unit: &str) -> Result<(), String> {
    if count > limit {
        Err(format!(
            "{subject} is {count} {unit} long; the limit is {limit}"
        ))
    } else {
        Ok(())
    }
}

/// A pipeline name is shown in reports and approvals: any text on one line, not too long.
pub fn check_pipeline_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("it contains the control character {c:?}"));
    }
    check_length(
        "it",
        name.chars().count(),
        MAX_PIPELINE_NAME_CHARS,
        "characters",
    )
}

/// Stage names become directory and log-file names, so they stay simple.
pub fn check_stage_name(name: &str) -> Result<(), String> {
    match name.chars().next() {
        None => return Err("it is empty".into()),
        Some(first) if !first.is_ascii_alphabetic() => {
            return Err("it must start with a letter".into());
        }
        Some(_) => {}
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("only letters, digits, `-` and `_` are allowed".into());
    }
    check_length("it", name.len(), MAX_STAGE_NAME_CHARS, "characters")
}

/// Secret names appear in grants and logs (never their values).
pub fn check_secret_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("only letters, digits, `_` and `-` are allowed".into());
    }
    check_length("it", name.len(), MAX_SECRET_NAME_CHARS, "characters")
}

/// Descriptions are free text, within reason.
pub fn check_description(text: &str) -> Result<(), String> {
    check_length(
        "it",
        text.chars().count(),
        MAX_DESCRIPTION_CHARS,
        "characters",
    )
}

/// An output name as written in an `inputs` entry; says the length when it is too long.
pub fn check_output_name(name: &str) -> Result<(), String> {
    check_length(
        "the output name",
        name.len(),
        MAX_OUTPUT_NAME_BYTES,
        "bytes",
    )?;
    check_relative_name(name).map_err(String::from)
}

/// An environment variable name as a grant or a secret source names it.
pub fn check_env_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("it starts with a digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("only letters, digits and `_` are allowed");
    }
    Ok(())
}

/// The variable an operator lists more names in (comma-separated; `NAME*` for a prefix) that no
/// pipeline may read: an agent's or a runner's own credentials.
pub const PROTECTED_ENV_VARIABLE: &str = "SLUICE_PROTECTED_ENV";

/// Whether a pipeline may read host variable `name` (through `allow.env` or a secret's `env`):
/// never sluice's own settings and credentials (`SLUICE_*`: the NATS password, the cluster and
/// cache keys), nor what the operator protects in `SLUICE_PROTECTED_ENV`.
pub fn check_readable_variable(name: &str) -> Result<(), String> {
    if name.starts_with("SLUICE_") {
        return Err(format!(
            "`{name}` is one of sluice's own settings (`SLUICE_*`: credentials and keys among them); a pipeline may not read it"
        ));
    }
    let protected = std::env::var(PROTECTED_ENV_VARIABLE).unwrap_or_default();
    for entry in protected
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let hit = match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == entry,
        };
        if hit {
            return Err(format!(
                "`{name}` is protected on this machine ({PROTECTED_ENV_VARIABLE} lists `{entry}`); a pipeline may not read it"
            ));
        }
    }
    Ok(())
}

/// Variables that make a program load or run code other than itself: the dynamic loader's,
/// shells', interpreters', and build tools' hooks, and the variables that point a tool at its
/// configuration. A plugin may never set these on a host program, whatever it is granted.
/// The variables a cache volume can be handed to a program through: each is where one tool
/// reads the folder it keeps its incremental state or downloads in, and none makes it load
/// code from there (`CARGO_HOME`, `GRADLE_USER_HOME` and `XDG_CACHE_HOME` hold configuration and
/// init scripts, so they are not here). An allow list: a variable not here is refused.
pub const CACHE_VARIABLES: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CCACHE_DIR",
    "GOCACHE",
    "GOMODCACHE",
    "PIP_CACHE_DIR",
    "SCCACHE_DIR",
    "UV_CACHE_DIR",
    "YARN_CACHE_FOLDER",
    "npm_config_cache",
    "npm_config_store_dir",
];

/// Variables a plugin may be granted to set on a host program (`allow.exec_env`): each changes
/// only how output looks, the locale or time zone, or how much a program logs — none makes a
/// program load or run other code, read configuration from elsewhere, or talk to another host.
/// An allow list: anything else needs `exec_env_unchecked`, which `sluice check` flags.
pub const SAFE_EXEC_VARIABLES: &[&str] = &[
    "CARGO_TERM_COLOR",
    "CARGO_TERM_VERBOSE",
    "CARGO_TERM_QUIET",
    "CARGO_TERM_PROGRESS_WHEN",
    "CARGO_TERM_PROGRESS_WIDTH",
    "CARGO_INCREMENTAL",
    "CI",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "FORCE_COLOR",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
    "LINES",
    "NO_COLOR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
    "RUST_TEST_THREADS",
    "SOURCE_DATE_EPOCH",
    "TERM",
    "TZ",
];

/// Whether `name` is on [`SAFE_EXEC_VARIABLES`].
pub fn is_safe_exec_variable(name: &str) -> bool {
    SAFE_EXEC_VARIABLES.contains(&name)
}

pub fn is_program_hook(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "PATH",
        "HOME",
        "SHELL",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "ZDOTDIR",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "MANPAGER",
        "LESSOPEN",
        "LESSCLOSE",
        "BROWSER",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "NLSPATH",
        "LOCPATH",
        "MAKEFILES",
        "MAKEFLAGS",
        "MFLAGS",
        "CC",
        "CXX",
        "LD",
        "AR",
        "CPP",
        "RUSTC",
        "RUSTDOC",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "TCLLIBPATH",
        "PHPRC",
        "PHP_INI_SCAN_DIR",
        "GEM_HOME",
        "GEM_PATH",
        "BUNDLE_GEMFILE",
        "TERMINFO",
        "PKG_CONFIG_PATH",
        // Compiler drivers: `-wrapper`, `-B`, `-fplugin=` and search paths run other code.
        "CFLAGS",
        "CXXFLAGS",
        "CPPFLAGS",
        "LDFLAGS",
        "FFLAGS",
        "OBJCFLAGS",
        "GCC_EXEC_PREFIX",
        "COMPILER_PATH",
        "LIBRARY_PATH",
        "CPATH",
        "C_INCLUDE_PATH",
        "CPLUS_INCLUDE_PATH",
        "GNUMAKEFLAGS",
        // Go: `-toolexec=`, toolchain downloads, module proxies.
        "GOFLAGS",
        "GOTOOLCHAIN",
        "GOPROXY",
        "GOENV",
        "GOROOT",
        "GOPATH",
        "GOBIN",
        "GOPRIVATE",
        "GONOSUMDB",
        "GONOPROXY",
        "GOINSECURE",
        "GOSUMDB",
        // Tools that run a command or read credentials from where a variable says.
        "TAR_OPTIONS",
        "KUBECONFIG",
        "CURL_HOME",
        "WGETRC",
        "HGRCPATH",
        // Network: proxies and trust roots redirect or intercept what a program fetches.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
    ];
    const PREFIXES: &[&str] = &[
        "LD_",
        "DYLD_",
        "XDG_",
        "BASH_FUNC_",
        "GIT_",
        "PYTHON",
        "PERL",
        "RUBY",
        "NODE_",
        "NPM_CONFIG_",
        "LUA_",
        "RUSTC_",
        "RUSTUP_",
        "CARGO_",
        "AWS_",
        "AZURE_",
        "CLOUDSDK_",
        "DOCKER_",
        "DOTNET_",
        "COMPLUS_",
        "CORECLR_",
        "MAVEN_",
        "GRADLE_",
        "JAVA_",
        "SBT_",
        "ANT_",
        "YARN_",
        "PIP_",
        "UV_",
        "CONDA",
        "BUNDLE_",
        "GEM_",
        "CCACHE_",
        "SCCACHE_",
        "DISTCC_",
    ];
    /// Cargo settings that only change how output looks or how much is kept.
    const SAFE_CARGO: &[&str] = &["CARGO_TERM_", "CARGO_INCREMENTAL"];
    let upper = name.to_ascii_uppercase();
    if SAFE_CARGO.iter().any(|safe| upper.starts_with(safe)) {
        return false;
    }
    EXACT.contains(&upper.as_str()) || PREFIXES.iter().any(|prefix| upper.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_hooks_are_recognised_and_harmless_names_are_not() {
        for hook in [
            "LD_PRELOAD",
            "ld_library_path",
            "PATH",
            "BASH_ENV",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "GIT_CONFIG_COUNT",
            "RUSTC_WRAPPER",
            "CARGO_BUILD_RUSTC_WRAPPER",
            "CARGO_HOME",
            "HOME",
            "XDG_CONFIG_HOME",
            "PERL5OPT",
            "RUBYOPT",
            "OPENSSL_CONF",
            "CFLAGS",
            "LDFLAGS",
            "GCC_EXEC_PREFIX",
            "COMPILER_PATH",
            "GNUMAKEFLAGS",
            "GOFLAGS",
            "TAR_OPTIONS",
            "KUBECONFIG",
            "AWS_CONFIG_FILE",
            "DOCKER_CONFIG",
            "DOTNET_STARTUP_HOOKS",
            "MAVEN_OPTS",
            "YARN_RC_FILENAME",
            "PIP_INDEX_URL",
            "UV_INDEX_URL",
            "https_proxy",
            "SSL_CERT_FILE",
        ] {
            assert!(is_program_hook(hook), "{hook}");
        }
        // Every safe name is safe: the two lists never overlap.
        for safe in SAFE_EXEC_VARIABLES {
            assert!(!is_program_hook(safe), "{safe} is both safe and a hook");
        }
        for fine in [
            "CARGO_TERM_COLOR",
            "CARGO_INCREMENTAL",
            "RUST_LOG",
            "TZ",
            "NO_COLOR",
            "CI",
        ] {
            assert!(!is_program_hook(fine), "{fine}");
        }
    }

    #[test]
    fn names_are_plain_relative_paths() {
        for good in ["a.txt", "dir/a.txt", "a..b", ".hidden"] {
            assert!(check_relative_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a/",
            "report\u{1b}[2J.txt",
        ] {
            assert!(check_relative_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_say_the_limit_and_the_length() {
        let long = "a".repeat(70);
        assert_eq!(
            check_stage_name(&long),
            Err("it is 70 characters long; the limit is 64".to_string())
        );
        assert!(check_pipeline_name(&long).is_err());
        assert!(check_secret_name(&long).is_err());
        assert_eq!(
            check_output_name(&"x".repeat(300)),
            Err("the output name is 300 bytes long; the limit is 255".to_string())
        );
        assert!(check_pipeline_name(&"é".repeat(64)).is_ok());
        assert!(check_description(&"d".repeat(1024)).is_ok());
        assert!(check_description(&"d".repeat(1025)).is_err());
    }

    #[test]
    fn stage_and_pipeline_names() {
        assert!(check_stage_name("build-2_x").is_ok());
        assert!(check_stage_name("2build").is_err());
        assert!(check_stage_name("../b").is_err());
        assert!(check_pipeline_name("My pipeline ✓").is_ok());
        assert!(check_pipeline_name("two\nlines").is_err());
        assert!(check_pipeline_name("  ").is_err());
        assert!(check_env_name("RUST_LOG").is_ok());
        assert!(check_env_name("A=B").is_err());
        assert!(check_env_name("1A").is_err());
    }
}
