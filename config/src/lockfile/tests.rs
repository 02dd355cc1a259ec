//! The lock file read, changed, rendered and read back; version 1 still read.

use super::*;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn entry(reference: &str, manifest: char) -> LockedPlugin {
    LockedPlugin {
        reference: reference.into(),
        manifest: digest(manifest),
        layer: digest('f'),
        size: 3,
        capabilities: Some(caps(&["describe", "run"], &["sluice:pipeline/log@0.1.0"])),
    }
}

fn caps(exports: &[&str], imports: &[&str]) -> Capabilities {
    Capabilities::new(
        exports.iter().map(|s| s.to_string()).collect(),
        imports.iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn a_lock_round_trips_and_reports_changes() -> Result<(), Box<dyn std::error::Error>> {
    let path = Lock::path_for(Path::new("no/such/dir/pipeline.toml"));
    assert!(path.ends_with("pipeline.lock"));
    let mut lock = Lock::load(&path)?;
    assert!(
        !lock.needs_write(),
        "nothing to lock, no file: nothing to write"
    );
    lock.set(entry("oci://r/a:1", '1'));
    assert_eq!(lock.changes().len(), 1);
    assert!(lock.needs_write());
    let text = lock.render()?;
    assert!(text.starts_with("# Written by sluice"), "{text}");
    lock.mark_written();
    assert!(!lock.needs_write());

    let mut again = Lock::parse(&path, &text)?;
    assert_eq!(again.get("oci://r/a:1"), Some(&entry("oci://r/a:1", '1')));
    assert!(!again.needs_write());
    again.set(entry("oci://r/a:1", '2'));
    assert_eq!(
        again.changes(),
        vec![format!(
            "update oci://r/a:1: {} → {}",
            digest('1'),
            digest('2')
        )]
    );
    again.retain(&[]);
    assert_eq!(again.changes(), vec!["remove oci://r/a:1"]);
    assert!(again.needs_write(), "an emptied lock file is rewritten");
    Ok(())
}

#[test]
fn a_malformed_lock_points_at_the_problem() {
    let text = "version = 1\n[[plugin]]\nreference = 3\n";
    let message = Lock::parse(Path::new("pipeline.lock"), text)
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(message.contains("malformed"), "{message}");
    assert!(message.contains(":3:"), "{message}");
}

#[test]
fn a_version_1_lock_reads_without_capabilities_and_is_rewritten_as_version_2()
-> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new("pipeline.lock");
    let v1 = format!(
        "version = 1\n[[plugin]]\nreference = \"oci://r/a:1\"\nmanifest = \"{}\"\nlayer = \"{}\"\nsize = 3\n",
        digest('1'),
        digest('f')
    );
    let mut lock = Lock::parse(path, &v1)?;
    assert_eq!(lock.read_version(), 1);
    assert_eq!(
        lock.get("oci://r/a:1").map(|e| e.capabilities.is_none()),
        Some(true)
    );
    assert!(!lock.needs_write(), "reading changes nothing");
    lock.set(entry("oci://r/a:1", '1'));
    assert_eq!(
        lock.changes(),
        vec!["record what oci://r/a:1 imports and exports"]
    );
    lock.set_local(LockedLocal {
        path: "plugins/x.wasm".into(),
        sha256: digest('9'),
        size: 7,
        capabilities: caps(&["describe", "run"], &["wasi:cli/stdout@0.2.6"]),
    });
    let text = lock.render()?;
    assert!(text.contains("version = 2"), "{text}");
    assert!(
        text.contains("[[local]]\npath = \"plugins/x.wasm\""),
        "{text}"
    );
    assert!(text.contains("\"sluice:pipeline/log@0.1.0\""), "{text}");
    let again = Lock::parse(path, &text)?;
    assert_eq!(again.read_version(), 2);
    assert_eq!(again.get("oci://r/a:1"), Some(&entry("oci://r/a:1", '1')));
    assert_eq!(
        again
            .local("plugins/x.wasm")
            .map(|l| l.capabilities.imports.clone()),
        Some(vec!["wasi:cli/stdout@0.2.6".to_string()])
    );
    assert_eq!(again.render()?, text, "rendering is stable");

    // A version-1 file with version-2 fields is not a lock sluice wrote.
    let mixed = format!("{v1}imports = []\nexports = []\n");
    let message = Lock::parse(path, &mixed)
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("version-1 lock file records no capability sets"),
        "{message}"
    );
    Ok(())
}
