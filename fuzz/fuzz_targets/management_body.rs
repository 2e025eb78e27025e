//! Management API request bodies, as a call taking the fields the first byte picks reads
//! them. Asserts: no panic; an accepted body is a JSON object whose fields are all known.

#![no_main]

use berth_server::untrusted::management_body;
use libfuzzer_sys::fuzz_target;

const CALLS: [&[&str]; 4] = [
    &["slug"],
    &["name", "slug", "description", "visibility"],
    &["visibility", "description"],
    &["description", "scopes", "registries", "expires_in_days"],
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let known = CALLS[sel as usize % CALLS.len()];
    if let Ok(fields) = management_body(body, known) {
        assert!(
            fields.keys().all(|k| known.contains(&k.as_str())),
            "{fields:?}"
        );
    }
});
