//! The data directory: created if missing and proven writable. Its one lock is the
//! engine's (`DIR/lock`, taken when the store opens and held while it is open, with the
//! holder's pid in it), so two `berth` processes never open one store; [`in_use`] turns the
//! engine's refusal into what the operator is told.

use berth_engine::StoreError;
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the data directory cannot be used. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data directory {0} cannot be created: {1}; pass --data DIR with a writable location")]
    Create(PathBuf, std::io::Error),
    #[error("data directory {0} does not exist; pass --data DIR naming an existing store")]
    Missing(PathBuf),
    #[error("data directory {0} is not a directory; pass --data DIR naming a directory")]
    NotDir(PathBuf),
    #[error("data directory {0} is not writable: {1}; fix its permissions or pass --data DIR")]
    NotWritable(PathBuf, std::io::Error),
    /// The engine's words: which directory, held by which pid.
    #[error("{0}; stop it or pass --data DIR")]
    InUse(String),
}

/// Another berth holds the store `e` was refused for: what to tell the operator.
pub fn in_use(e: &StoreError) -> Option<DataDirError> {
    match e {
        StoreError::Io { what, source } if source.kind() == std::io::ErrorKind::WouldBlock => {
            Some(DataDirError::InUse(what.clone()))
        }
        _ => None,
    }
}

/// A usable data directory.
pub struct DataDir {
    pub path: PathBuf,
}

/// Makes (when `create`) and checks `path`.
pub fn prepare(path: &Path, create: bool) -> Result<DataDir, DataDirError> {
    if create {
        // Owner-only (blobs may be private layers); an existing one keeps its mode, which
        // `permissions::audit` checks.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(berth_engine::DIR_MODE)
            .create(path)
            .map_err(|e| DataDirError::Create(path.to_path_buf(), e))?;
    } else if !path.exists() {
        return Err(DataDirError::Missing(path.to_path_buf()));
    }
    if !path.is_dir() {
        return Err(DataDirError::NotDir(path.to_path_buf()));
    }
    // The directory may exist and be read-only.
    let probe = path.join(".berth-write-probe");
    OpenOptions::new()
        .mode(berth_engine::FILE_MODE)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| DataDirError::NotWritable(path.to_path_buf(), e))?;
    Ok(DataDir {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Flags};
    use crate::descriptors::Plan;
    use crate::dispatch::{OpenError, Store};
    use crate::metrics::Metrics;
    use std::sync::Arc;

    #[test]
    fn a_second_store_on_a_directory_is_refused_naming_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::load(&Flags::default(), &[]).unwrap();
        cfg.data = prepare(dir.path(), true).unwrap().path;
        let fds = Plan::new(&cfg, 1024);
        let open = || Store::open(&cfg, Arc::new(Metrics::new(1)), &fds);
        let held = open().ok().unwrap();
        let msg = match open() {
            Err(OpenError::InUse(e)) => e.to_string(),
            _ => panic!("a second open of a held store"),
        };
        let want = format!(
            "data directory {} is in use by another berth (pid {}); stop it or pass --data DIR",
            dir.path().display(),
            std::process::id()
        );
        assert_eq!(msg, want);
        drop(held);
        assert!(open().is_ok(), "lock released on drop");
    }

    #[test]
    fn a_path_below_a_file_cannot_be_a_data_directory() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = prepare(&f.path().join("data"), true).err().unwrap();
        assert!(matches!(e, DataDirError::Create(..)), "{e}");
        let e = prepare(f.path(), true).err().unwrap();
        assert!(
            matches!(e, DataDirError::NotDir(..) | DataDirError::Create(..)),
            "{e}"
        );
    }

    #[test]
    fn check_does_not_create_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("absent");
        assert!(matches!(prepare(&p, false), Err(DataDirError::Missing(_))));
        assert!(!p.exists());
    }
}
