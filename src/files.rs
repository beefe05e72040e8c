//! Writing a small file so it is never seen half-written: a temp file in
//! the same directory, the mode set before any byte lands, fsync, rename.
//! Shared by certificates, the token key and the htpasswd file.
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
    match tmp.persist(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.raw_os_error() == Some(libc::EBUSY) && path.is_file() => {
            rewrite_in_place(path, contents, mode)
        }
        Err(e) => Err(e.error),
    }
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
