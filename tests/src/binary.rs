//! Where the `berth` binary under test lives.

use std::path::{Path, PathBuf};

/// The workspace root: this crate sits in `<root>/tests`.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Invariant: CARGO_MANIFEST_DIR is `<workspace>/tests`, which has a parent.
    here.parent().expect("tests/ has a parent").to_path_buf()
}

/// Finds the binary: `BERTH_BIN`, else the release build, else the debug build.
///
/// The tests exercise a built binary rather than building one themselves, so that
/// `cargo test -p berth-tests` never starts a second, competing cargo build.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "BERTH_BIN={} is not a file; point it at a built `berth` binary",
            p.display()
        );
        return p;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("berth");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "no berth binary found (looked at $BERTH_BIN, {}/release/berth, {}/debug/berth): \
         run `cargo build --release -p berth-server` first",
        target.display(),
        target.display()
    );
}
