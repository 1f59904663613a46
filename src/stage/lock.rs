//! One run at a time per mirror: an exclusive `flock` on a file beside it.

use std::path::Path;

use deltalake::DeltaTableError;

use super::StageError;

/// An exclusive lock on one mirror (`<mirror>.lock` beside its folder), held by a run from the
/// choice of its write mode to its batch, and by a remap: runs of several dataflows on one
/// account and resource take turns instead of staging the same objects side by side. Released
/// when dropped (or when the process dies).
#[derive(Debug)]
pub struct MirrorLock {
    _file: std::fs::File,
}

/// Takes the lock of the mirror at `path`, waiting while another process or run holds it.
pub async fn lock(path: &Path) -> Result<MirrorLock, StageError> {
    let lock_path = path.with_extension("lock");
    let io = |action: &'static str| {
        let path = lock_path.clone();
        move |e: std::io::Error| StageError::Delta {
            path,
            action,
            source: Box::new(DeltaTableError::Io { source: e }),
        }
    };
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating the folder"))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("opening the lock file"))?;
    if flock(&file, false).is_ok() {
        return Ok(MirrorLock { _file: file });
    }
    tracing::info!(mirror = %path.display(), "another run is using this mirror; waiting for it");
    let file = tokio::task::spawn_blocking(move || flock(&file, true).map(|()| file))
        .await
        .map_err(|e| io("waiting for the lock")(std::io::Error::other(e)))?
        .map_err(io("waiting for the lock"))?;
    Ok(MirrorLock { _file: file })
}

#[cfg(unix)]
fn flock(file: &std::fs::File, wait: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = libc::LOCK_EX | if wait { 0 } else { libc::LOCK_NB };
    // SAFETY: flock on a file descriptor this function borrows; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn flock(_file: &std::fs::File, _wait: bool) -> std::io::Result<()> {
    Ok(())
}
