//! Data files written around the page cache (`O_DIRECT` on Linux).
//!
//! Writing through the page cache costs this kind of machine ~1.4 CPU-seconds per GB in the
//! kernel (allocating, charging and copying every page), against ~0.1 with `O_DIRECT`, which
//! hands the device the process's own buffer; a run writes ~0.75 GB per million charges (mirror
//! and batch), so the cache cost a twentieth of the run's CPU (BENCHMARKS.md §2h). Nothing reads
//! these files while they are written; a remap or an upload reads them later, from the device.
//!
//! [`DirectFile`] gathers writes in one block-aligned buffer and writes whole buffers straight
//! to the device; [`DirectFile::finish`] writes the last partial block through the cache and
//! syncs the file. Where a file system refuses `O_DIRECT` (tmpfs, some network file systems),
//! or outside Linux, the file is written through the cache as any other.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The alignment of buffer addresses, lengths and file offsets for `O_DIRECT`: 4 KiB covers
/// devices with 512-byte and 4 KiB logical blocks.
const ALIGN: usize = 4096;
/// Bytes gathered before a direct write.
const BUFFER: usize = 1 << 20;

/// A file being written with `O_DIRECT` where the file system allows it.
pub struct DirectFile {
    file: File,
    /// `BUFFER + ALIGN` bytes; the aligned window starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes gathered in the window.
    len: usize,
    /// Whether writes still bypass the cache.
    direct: bool,
    finished: bool,
}

impl DirectFile {
    /// Creates (or truncates) `path` for writing.
    pub fn create(path: &Path) -> io::Result<DirectFile> {
        DirectFile::create_with(path, true)
    }

    /// Creates `path`, trying `O_DIRECT` when `try_direct`.
    fn create_with(path: &Path, try_direct: bool) -> io::Result<DirectFile> {
        let attempt = if try_direct {
            open(path, true)
        } else {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        };
        let (file, direct) = match attempt {
            Ok(file) => (file, true),
            // EINVAL: the file system does not do direct I/O.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(path, false)?, false),
            Err(e) => return Err(e),
        };
        let buf = vec![0u8; BUFFER + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Ok(DirectFile {
            file,
            buf,
            start,
            len: 0,
            direct,
            finished: false,
        })
    }

    /// Whether the file is (still) written around the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes what is gathered (the last partial block through the cache) and syncs the file's
    /// data to the device: after it returns, everything written is durable.
    pub fn finish(&mut self) -> io::Result<()> {
        self.write_rest()?;
        self.file.sync_data()
    }

    /// Writes everything gathered, once: the whole blocks as they are, the last partial block
    /// through the cache.
    fn write_rest(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.write_window(self.len / ALIGN * ALIGN)?;
        self.set_direct(false)?;
        self.write_window(self.len)
    }

    /// Writes the first `n` gathered bytes (a multiple of [`ALIGN`] while direct) and moves the
    /// rest to the front of the window.
    fn write_window(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut done = 0;
        while done < n {
            match self
                .file
                .write(&self.buf[self.start + done..self.start + n])
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Accepted at open, refused at write (or a short direct write left the rest
                // unaligned): the rest goes through the cache. A refused write wrote nothing.
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    self.set_direct(false)?
                }
                Err(e) => return Err(e),
            }
        }
        self.buf
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        if self.direct == on {
            return Ok(());
        }
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this struct owns; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.direct = on;
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        self.direct = on && self.direct;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn open(path: &Path, direct: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

#[cfg(not(target_os = "linux"))]
fn open(path: &Path, direct: bool) -> io::Result<File> {
    if direct {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.finished {
            return Err(io::Error::other("write to a finished file"));
        }
        let n = data.len().min(BUFFER - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == BUFFER {
            self.write_window(BUFFER)?;
        }
        Ok(n)
    }

    /// Writes the whole blocks gathered so far; the last partial block waits for more bytes or
    /// for [`DirectFile::finish`] (a direct write takes whole blocks only).
    fn flush(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        let n = if self.direct {
            self.len / ALIGN * ALIGN
        } else {
            self.len
        };
        self.write_window(n)
    }
}

impl Drop for DirectFile {
    /// A file dropped without [`DirectFile::finish`] (a failed run) still gets its bytes.
    fn drop(&mut self) {
        let _ = self.write_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Files of sizes around the block and buffer sizes, written in uneven pieces, read back
    /// byte for byte.
    #[test]
    fn writes_every_byte_whatever_the_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            BUFFER - 1,
            BUFFER,
            BUFFER + 7,
            3 * BUFFER + ALIGN + 5,
        ] {
            let data = bytes(size);
            let path = dir.path().join(format!("f{size}"));
            let mut f = DirectFile::create(&path).unwrap();
            let mut at = 0;
            let mut piece = 1;
            while at < size {
                let end = (at + piece).min(size);
                f.write_all(&data[at..end]).unwrap();
                if piece % 5 == 0 {
                    f.flush().unwrap();
                }
                at = end;
                piece = piece * 3 + 17;
            }
            f.finish().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data, "size {size}");
        }
    }

    #[test]
    fn a_dropped_file_keeps_its_bytes_and_a_finished_one_takes_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dropped");
        let data = bytes(BUFFER + 3 * ALIGN + 11);
        {
            let mut f = DirectFile::create(&path).unwrap();
            f.write_all(&data).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let mut f = DirectFile::create(&dir.path().join("finished")).unwrap();
        f.write_all(b"x").unwrap();
        f.finish().unwrap();
        assert!(f.write_all(b"y").is_err());
        f.finish().unwrap();
    }

    /// Through the cache (a file system that refuses `O_DIRECT`), the same bytes land.
    #[test]
    fn writes_through_the_cache_where_direct_io_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = DirectFile::create_with(&path, false).unwrap();
        assert!(!f.is_direct());
        let data = bytes(2 * BUFFER + 1);
        f.write_all(&data[..10]).unwrap();
        f.flush().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &data[..10],
            "flushed through the cache"
        );
        f.write_all(&data[10..]).unwrap();
        f.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }
}
