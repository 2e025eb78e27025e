//! Starting write-back of upload bytes before they are needed on disk: the engine's one
//! syscall outside `std`, so its `unsafe` lives here alone.
//!
//! A finished large upload is `fdatasync`ed before it becomes a pack. Left to the kernel,
//! all its dirty pages would be written in that one call, after the last byte arrived;
//! asking for write-out as the bytes come in overlaps the disk with the transfer, and the
//! final `fdatasync` finds only the tail dirty. This is a hint, never a durability step:
//! it does not wait, and it does not consume write-back errors (no `SYNC_FILE_RANGE_WAIT_*`
//! flag, so the file's error state is not advanced), which the final `fdatasync` still
//! reports.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// Asks the kernel to start writing out the dirty pages of `file` in
/// `offset..offset + len`, without waiting for them.
#[cfg(target_os = "linux")]
pub(crate) fn start(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let off = i64::try_from(offset).map_err(|_| io::Error::other("offset out of range"))?;
    let n = i64::try_from(len).map_err(|_| io::Error::other("length out of range"))?;
    // SAFETY: sync_file_range(2) takes a descriptor and three integers and touches no
    // memory of ours; `file` is borrowed for the call, so the descriptor stays open (and
    // names this file) until it returns.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere there is no portable equivalent; the final `fdatasync` does all the work.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}
