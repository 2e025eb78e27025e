//! Package paths as the package pages and API read them (`org[/registry[/image[:tag|@digest
//! [/what]]]]`). Asserts: no panic; what a path is read as, written back, reads the same.

#![no_main]

use berth_server::untrusted::package_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(read) = package_path(&text) {
        assert_eq!(package_path(&read).as_ref(), Ok(&read), "{text:?}");
    }
});
