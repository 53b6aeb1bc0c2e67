//! Durable local writes that bypass the page cache (`O_DIRECT`).
//!
//! A local `put` must be on disk before it returns, so the bytes are written to the device
//! either way. Through the page cache they are first copied into freshly allocated cache
//! pages and then written back by the `fsync`; DICOM objects are written once and read
//! rarely, so that copy buys nothing. In STOW-RS runs it took a quarter of the server's
//! CPU samples (`copy_folio_from_iter_atomic`), and skipping it raised throughput by about
//! an eighth (docs/architecture.md, "Object storage").
//!
//! The steps are those of `object_store`'s `LocalFileSystem` with `fsync` on: write a
//! staging file beside the target (`<name>#<digits>`, which `LocalFileSystem` never lists),
//! `fsync` it, `rename(2)` it into place and `fsync` the directory, so readers see the old
//! object or the whole new one and a returned `put` survives a power cut. Only the write
//! differs: the bytes go through an aligned buffer of [`CHUNK`] bytes, the last block padded
//! with zeros, and the file is then cut to its length.
//!
//! A file system that refuses `O_DIRECT` (ramfs, tmpfs before Linux 6.6, some network and FUSE
//! file systems) answers `EINVAL`; the store then writes through the page cache from that object on,
//! and says so once in the log.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The alignment `O_DIRECT` asks of buffers, offsets and lengths: a page, which is at least
/// the logical block size of every device we expect.
const ALIGN: usize = 4096;

/// Bytes written per `write(2)`: the aligned buffer's size, kept per thread.
pub(super) const CHUNK: usize = 1 << 20;

thread_local! {
    /// One aligned buffer per blocking thread, reused by every write on it.
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes objects under a folder, bypassing the page cache while the file system allows.
#[derive(Debug)]
pub(super) struct DirectWriter {
    direct: AtomicBool,
}

impl DirectWriter {
    pub(super) fn new() -> Self {
        DirectWriter {
            direct: AtomicBool::new(true),
        }
    }

    /// A writer that already found `O_DIRECT` refused (for tests of that path).
    #[cfg(test)]
    pub(super) fn buffered() -> Self {
        DirectWriter {
            direct: AtomicBool::new(false),
        }
    }

    /// Whether writes still bypass the page cache.
    pub(super) fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Stores `bytes` at `target` durably and atomically (blocking).
    pub(super) fn write(&self, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let staging = staging_path(target);
        let written = self.stage(&staging, bytes).and_then(|()| {
            std::fs::rename(&staging, target)?;
            sync_dir(folder_of(target))
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&staging);
        }
        written
    }

    /// Writes and syncs the staging file, creating (and syncing) missing folders first.
    fn stage(&self, staging: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if self.is_direct() {
            match open_new(staging, true).and_then(|file| write_direct(file, bytes)) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let _ = std::fs::remove_file(staging);
                    if self.direct.swap(false, Ordering::Relaxed) {
                        tracing::warn!(
                            folder = %folder_of(staging).display(),
                            "the blob folder's file system refuses O_DIRECT; blobs are written through the page cache"
                        );
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut file = open_new(staging, false)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}

/// `<target>#<digits>`: a staging name `object_store` treats as an upload in progress.
fn staging_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(format!("#{}", uuid::Uuid::new_v4().as_u128() % 10u128.pow(30)));
    name.into()
}

/// Creates `path` (which must not exist), and its missing folders, each synced into its parent.
fn open_new(path: &Path, direct: bool) -> std::io::Result<File> {
    let open = || {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        if direct {
            options.custom_flags(libc::O_DIRECT);
        }
        options.open(path)
    };
    match open() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create_dirs(folder_of(path))?;
            open()
        }
        opened => opened,
    }
}

/// `create_dir_all`, then an `fsync` of every folder that gained an entry, so a new
/// folder outlives a power cut like the file in it.
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    let mut changed = dir.parent();
    while let Some(d) = changed {
        sync_dir(d)?;
        if d == existing {
            break;
        }
        changed = d.parent();
    }
    Ok(())
}

/// The folder a file is (to be) in.
fn folder_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` through this thread's aligned buffer, pads the last block, cuts the
/// file to its length and syncs it.
fn write_direct(mut file: File, bytes: &[u8]) -> std::io::Result<()> {
    BUFFER.with_borrow_mut(|buffer| {
        if buffer.len() < CHUNK + ALIGN {
            *buffer = vec![0u8; CHUNK + ALIGN];
        }
        let start = buffer.as_ptr().align_offset(ALIGN);
        if start >= ALIGN {
            // Not alignable (never on the platforms we build for): write through the cache.
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let aligned = &mut buffer[start..start + CHUNK];
        for chunk in bytes.chunks(CHUNK) {
            let padded = chunk.len().div_ceil(ALIGN) * ALIGN;
            aligned[..chunk.len()].copy_from_slice(chunk);
            aligned[chunk.len()..padded].fill(0);
            file.write_all(&aligned[..padded])?;
        }
        std::io::Result::Ok(())
    })?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lengths around the block and chunk boundaries, with bytes that differ by offset.
    fn objects() -> Vec<Vec<u8>> {
        [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK + 3,
        ]
        .into_iter()
        .map(|len| (0..len).map(|i| (i * 7 + i / 4096) as u8).collect())
        .collect()
    }

    /// Every file under `dir`, recursively.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    fn writes_every_length(writer: &DirectWriter, dir: &Path) {
        for (i, object) in objects().iter().enumerate() {
            let target = dir.join(format!("new/folder/{i}.dcm"));
            writer.write(&target, object).unwrap();
            assert_eq!(&std::fs::read(&target).unwrap(), object, "length {}", object.len());
            // Overwriting a longer object with a shorter one leaves no tail.
            writer.write(&target, &object[..object.len() / 2]).unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), object[..object.len() / 2]);
        }
        let names: Vec<_> = files(dir).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(names.len(), objects().len(), "{names:?}");
        assert!(names.iter().all(|n| !n.contains('#')), "staging files left: {names:?}");
    }

    #[test]
    fn direct_writes_keep_every_length_and_leave_no_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        let writer = DirectWriter::new();
        writes_every_length(&writer, dir.path());
        // Bypassing the cache is kept exactly while the file system allows it.
        let accepts = open_new(&dir.path().join("probe"), true).is_ok();
        assert_eq!(writer.is_direct(), accepts);
    }

    #[test]
    fn writes_through_the_page_cache_keep_every_length_too() {
        let dir = tempfile::tempdir().unwrap();
        writes_every_length(&DirectWriter::buffered(), dir.path());
    }

    /// Set in the inner run of the test below: a ramfs folder, mounted in a mount namespace
    /// of its own.
    const REFUSING_DIR: &str = "MEDLEDGER_TEST_RAMFS_DIR";

    /// ramfs has no direct I/O, so it refuses `O_DIRECT` at `open(2)` with `EINVAL`. Mounting
    /// it takes a user and mount namespace (`unshare -rm`, util-linux), which a test process
    /// with threads cannot enter itself: the test runs itself again inside one.
    #[test]
    fn a_file_system_that_refuses_o_direct_gets_writes_through_the_page_cache() {
        if let Some(dir) = std::env::var_os(REFUSING_DIR) {
            let dir = Path::new(&dir);
            let refused = open_new(&dir.join("probe"), true).map(|_| ()).unwrap_err();
            assert_eq!(refused.raw_os_error(), Some(libc::EINVAL), "{refused}");
            std::fs::remove_file(dir.join("probe")).ok();
            let writer = DirectWriter::new();
            assert!(writer.is_direct());
            writes_every_length(&writer, dir);
            assert!(!writer.is_direct(), "the writer went on asking for O_DIRECT");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let name = "blobs::direct::tests::a_file_system_that_refuses_o_direct_gets_writes_through_the_page_cache";
        let out = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(r#"mount -t ramfs ramfs "$MEDLEDGER_TEST_RAMFS_DIR" && exec "$0" --exact "$1" --nocapture"#)
            .arg(std::env::current_exe().unwrap())
            .arg(name)
            .env(REFUSING_DIR, dir.path())
            .output()
            .expect("unshare (util-linux) runs");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the run on ramfs failed:\n{printed}");
        assert!(printed.contains("1 passed"), "the run on ramfs ran no test:\n{printed}");
    }

    #[test]
    fn a_failed_write_leaves_neither_the_object_nor_a_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target's folder is a file: the staging file cannot be created.
        std::fs::write(dir.path().join("taken"), b"x").unwrap();
        let target = dir.path().join("taken/object.dcm");
        assert!(DirectWriter::new().write(&target, b"bytes").is_err());
        assert_eq!(files(dir.path()), vec![dir.path().join("taken")]);
        // The target is a folder: the staging file is written, the rename fails, and the
        // staging file is removed.
        std::fs::create_dir_all(dir.path().join("folder/inside")).unwrap();
        assert!(DirectWriter::new().write(&dir.path().join("folder"), b"bytes").is_err());
        assert_eq!(files(dir.path()), vec![dir.path().join("taken")]);
    }
}
