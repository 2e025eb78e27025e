//! Arbitrary manifest bodies and content types through the manifest parser. The first
//! byte picks the Content-Type.

#![no_main]

use berth_core::oci::manifest;
use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 7] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/json"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let ct = TYPES[sel as usize % TYPES.len()];
    if let Ok(p) = manifest::parse(body, ct) {
        // What is accepted is consistent: raw annotations are a JSON object.
        if let Some(a) = &p.annotations {
            assert!(a.trim_start().starts_with('{'));
        }
    }
});
