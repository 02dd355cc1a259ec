//! pipeline.toml: any bytes are either a valid pipeline or one diagnostic that renders — never a
//! panic, a hang or an unbounded allocation. A valid pipeline's remembered places render too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{render, scratch_file, text_of};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("pipeline.toml");
    let text = text_of(&path, data);
    match sluice_config::parse(&path, &text) {
        Err(diag) => {
            render(&diag, &path);
        }
        Ok(pipeline) => {
            let sites = pipeline.stages.iter().flat_map(|stage| {
                let keys = stage.trusted_keys.iter().map(|key| &key.site);
                [&stage.site, &stage.plugin_site].into_iter().chain(keys)
            });
            for site in sites.chain(pipeline.secret_sites.values()) {
                let diag = site.error("fuzz").with_hint("fuzz");
                render(&diag, &path);
            }
        }
    }
});
