//! Configuration file texts over the defaults. Asserts: no panic; the same text always gets
//! the same answer.

#![no_main]

use berth_server::untrusted::config_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(config_file(&text), config_file(&text));
});
