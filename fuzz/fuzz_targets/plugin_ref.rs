//! Registry plugin references: any text is refused with a reason or parses to a reference whose
//! display parses back to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_config::plugin_ref::PluginRef;

fuzz_target!(|text: &str| {
    let Ok(reference) = PluginRef::parse(text) else {
        return;
    };
    let shown = reference.to_string();
    match PluginRef::parse(&shown) {
        Ok(again) => assert_eq!(again, reference, "{shown} reads back differently"),
        Err(why) => panic!("{shown}, displayed from {text:?}, does not parse: {why}"),
    }
    assert!(shown.starts_with(&format!("oci://{}", reference.name())));
});
