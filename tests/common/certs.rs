//! Client trust for the registry's CA: a `certs.d/HOST:PORT/ca.crt` entry
//! (e.g. under Docker's `/etc/docker/certs.d`) that is removed again when
//! its guard is dropped.

use std::fs;
use std::path::{Path, PathBuf};

/// `ROOT/HOST:PORT/ca.crt`; the directory is removed on drop.
pub struct CertsDir {
    dir: PathBuf,
}

impl CertsDir {
    pub fn install(root: &Path, host_port: &str, ca: &Path) -> CertsDir {
        let guard = CertsDir {
            dir: root.join(host_port),
        };
        fs::create_dir_all(&guard.dir).expect("create certs.d/HOST:PORT");
        fs::copy(ca, guard.dir.join("ca.crt")).expect("install ca.crt");
        guard
    }
}

impl Drop for CertsDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("cleanup: remove {}: {e}", self.dir.display());
        }
    }
}
