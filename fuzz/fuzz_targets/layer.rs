//! Arbitrary layer blobs (plain, gzip or zstd, as sniffed) through the layer lister, then
//! the listing applied twice over a file system: nothing panics, every listed path is
//! normalised, and the tree holds what its directories list.

#![no_main]

use berth_engine::package::{scan_layer, FsTree, ScanLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ScanLimits {
        max_entries: 10_000,
        max_uncompressed_bytes: 64 << 20,
        ..ScanLimits::default()
    };
    let listing = scan_layer(data, &[b"etc/os-release"], &limits);
    for e in listing.entries() {
        assert!(!e.path.is_empty() && !e.path.contains(&0));
        assert!(!e.path.starts_with(b"/") && !e.path.ends_with(b"/"));
    }
    let mut tree = FsTree::new();
    tree.apply(0, &listing);
    tree.apply(1, &listing);
    let mut seen = 0;
    let mut dirs = vec![Vec::new()];
    while let Some(d) = dirs.pop() {
        for (name, node) in tree.children(&d) {
            seen += 1;
            let mut p = d.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&name);
            if node.meta.kind == berth_engine::package::EntryKind::Dir {
                dirs.push(p);
            }
        }
    }
    assert_eq!(seen, tree.len(), "every path is reachable from the root");
});
