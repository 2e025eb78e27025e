//! The data directory: created if missing, proven writable, and locked for the life of the
//! process so two `berth` processes never open one store.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory; it holds the owner's pid.
pub const LOCK_FILE: &str = "berth.lock";

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
    #[error("data directory {path} is in use by another berth{owner}; stop it or pass --data DIR")]
    Locked { path: PathBuf, owner: String },
}

/// A locked data directory. The lock lasts as long as this value.
pub struct DataDir {
    pub path: PathBuf,
    _lock: File,
}

/// Makes (when `create`) and locks `path`.
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
    let lock_path = path.join(LOCK_FILE);
    let mut lock = OpenOptions::new()
        .mode(berth_engine::FILE_MODE)
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| DataDirError::NotWritable(path.to_path_buf(), e))?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let mut pid = String::new();
        let _ = lock.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(DataDirError::Locked {
            path: path.to_path_buf(),
            owner: if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            },
        });
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()
    };
    write_pid(&mut lock).map_err(|e| DataDirError::NotWritable(path.to_path_buf(), e))?;
    // The lock file may pre-exist in a directory that has since become read-only.
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
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_directory_is_refused_naming_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let held = prepare(dir.path(), true).unwrap();
        let e = prepare(dir.path(), true).err().unwrap();
        let msg = e.to_string();
        assert!(msg.contains("in use by another berth"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(held);
        assert!(prepare(dir.path(), true).is_ok(), "lock released on drop");
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
