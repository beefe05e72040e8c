//! Writing a small file so it is never seen half-written: a temp file in
//! the same directory, the mode set before any byte lands, fsync, rename.
//! Shared by certificates, the token key and the htpasswd file.
//! [`create_new`] is the create-only form, for a file several processes may
//! make at once (the token key of instances sharing a directory): one wins,
//! the others learn that it exists and read it.
//!
//! A file that is itself a mount point (a single file bind-mounted into a
//! container, e.g. compose's `./htpasswd:/srv/regproxy/htpasswd`) cannot be
//! replaced by a rename (EBUSY): it is then rewritten in place and synced,
//! which a reader may catch half-written (the htpasswd reload re-reads it
//! when its size or time stamp changes again).

use std::io::Write;
use std::path::Path;

/// Writes `contents` to `path` atomically with `mode` (unix permissions),
/// creating the parent directory if needed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = synced_temp(path, contents, mode)?;
    match tmp.persist(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.raw_os_error() == Some(libc::EBUSY) && path.is_file() => {
            rewrite_in_place(path, contents, mode)
        }
        Err(e) => Err(e.error),
    }
}

/// Writes `contents` to `path` with `mode` only if nothing is there yet:
/// `Ok(false)` when the file exists (another process made it first; it is
/// left as it is). Atomic like [`write_atomic`]: a reader sees no file or
/// all of it, never a half-written one (`renameat2(RENAME_NOREPLACE)`, or a
/// hard link where that is missing).
pub fn create_new(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<bool> {
    let tmp = synced_temp(path, contents, mode)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// A temp file next to `path` (its directory made if needed) holding
/// `contents` with `mode`, synced; removed when dropped unpersisted.
fn synced_temp(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Truncates and rewrites `path` (same inode), with `mode`, then fsync.
fn rewrite_in_place(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_keeps_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/key");
        assert!(create_new(&p, b"first", 0o600).unwrap());
        assert!(!create_new(&p, b"second", 0o600).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/secret");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
