//! The data directory's modes. Berth creates it owner-only (directories 0700, files 0600:
//! the packs hold private layers, `admin-token` a secret); one made by an older Berth, a
//! restore or a hand-made copy may be looser. At start such entries are reported, and with
//! `fix_permissions` tightened.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Mode bits that let other local users in.
const OTHERS: u32 = 0o077;
/// Loose entries named in the warning; the rest are counted.
const NAMED: usize = 5;

/// An entry other local users may read or change.
#[derive(Debug, PartialEq, Eq)]
pub struct Loose {
    pub path: PathBuf,
    pub mode: u32,
}

/// The data directory and the entries the store keeps files in: its own, and those of its
/// subdirectories (`packs/`, `uploads/`), one level each. A `stat` per file, as opening the
/// store costs anyway; symbolic links are not followed.
pub fn find_loose(data: &Path) -> io::Result<Vec<Loose>> {
    let mut loose = Vec::new();
    let mut look = |path: PathBuf, m: &std::fs::Metadata| {
        let mode = m.permissions().mode() & 0o7777;
        if mode & OTHERS != 0 && !m.file_type().is_symlink() {
            loose.push(Loose { path, mode });
        }
    };
    look(data.to_path_buf(), &std::fs::metadata(data)?);
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        let m = entry.metadata()?;
        if m.is_dir() {
            for inner in std::fs::read_dir(entry.path())? {
                let inner = inner?;
                look(inner.path(), &inner.metadata()?);
            }
        }
        look(entry.path(), &m);
    }
    Ok(loose)
}

/// Reports (and when `fix`, tightens) entries of `data` other local users may use.
pub fn audit(data: &Path, fix: bool) {
    let loose = match find_loose(data) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "data directory {}: cannot check its permissions", data.display());
            return;
        }
    };
    if loose.is_empty() {
        return;
    }
    let named: Vec<String> = loose
        .iter()
        .take(NAMED)
        .map(|l| format!("{} ({:o})", l.path.display(), l.mode))
        .collect();
    let more = loose.len().saturating_sub(NAMED);
    let named = if more > 0 {
        format!("{} and {more} more", named.join(", "))
    } else {
        named.join(", ")
    };
    if !fix {
        tracing::warn!(
            "data directory {}: other local users may read these ({}): {named}; run `berth serve --fix-permissions` (or set fix_permissions = true) to make them owner-only",
            data.display(),
            loose.len()
        );
        return;
    }
    let mut failed = 0;
    for l in &loose {
        let tight = std::fs::Permissions::from_mode(l.mode & !OTHERS);
        if let Err(e) = std::fs::set_permissions(&l.path, tight) {
            tracing::warn!(error = %e, "cannot make {} owner-only", l.path.display());
            failed += 1;
        }
    }
    tracing::warn!(
        "data directory {}: made owner-only ({}): {named}",
        data.display(),
        loose.len() - failed
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn loose_entries_are_found_at_two_levels_and_tightened_on_request() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path();
        chmod(data, 0o700);
        std::fs::create_dir(data.join("packs")).unwrap();
        chmod(&data.join("packs"), 0o700);
        for (p, mode) in [
            ("meta.redb", 0o644),
            ("packs/1.pack", 0o640),
            ("lock", 0o600),
        ] {
            std::fs::write(data.join(p), b"x").unwrap();
            chmod(&data.join(p), mode);
        }
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        let mut found = find_loose(data).unwrap();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            found,
            vec![
                Loose {
                    path: data.join("meta.redb"),
                    mode: 0o644
                },
                Loose {
                    path: data.join("packs/1.pack"),
                    mode: 0o640
                },
            ]
        );
        audit(data, false);
        assert_eq!(find_loose(data).unwrap().len(), 2, "only reported");
        audit(data, true);
        assert!(find_loose(data).unwrap().is_empty());
        let mode = |p: &str| {
            std::fs::metadata(data.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode("meta.redb"), mode("packs/1.pack")), (0o600, 0o600));
    }
}
