//! Apache-compatible htpasswd files with bcrypt entries (`$2y$`, `$2b$`,
//! `$2a$`, as `htpasswd -B` writes them).
//!
//! [`HtpasswdFile`] keeps every line (comments, blank lines, refused
//! entries) so an edit changes only the user it is about. Edits are atomic
//! (temp file + rename, mode 0600) and serialized by a lock on a sidecar
//! `.lock` file. [`HtpasswdStore`] is the server's view: reloaded when the
//! file changes.

mod store;

use std::fs;
use std::path::{Path, PathBuf};

use super::secret::Secret;
pub use store::{HtpasswdStore, StoredUser};

/// The cost `htpasswd add` uses unless told otherwise.
pub const DEFAULT_COST: u32 = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Entry {
        user: String,
        hash: String,
    },
    /// Comments, blank lines and entries we refuse, kept as they are.
    Other(String),
}

/// A problem with one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub message: String,
}

/// An htpasswd file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtpasswdFile {
    lines: Vec<Line>,
}

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid user name {0:?}: it must be non-empty and hold no `:`, spaces or control characters")]
    BadUser(String),
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

fn kind_of(hash: &str) -> Option<&'static str> {
    if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
        None
    } else if hash.starts_with("$apr1$") {
        Some("Apache MD5 ($apr1$)")
    } else if hash.starts_with("{SHA}") {
        Some("SHA-1 ({SHA})")
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        Some("SHA-crypt")
    } else {
        Some("crypt or plain text")
    }
}

pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 256
        && !user
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

impl HtpasswdFile {
    /// Parses a file; entries that are not bcrypt are kept as lines but
    /// refused, each reported with its line number.
    pub fn parse(text: &str) -> (HtpasswdFile, Vec<LineProblem>) {
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(raw.to_string()));
                continue;
            }
            let Some((user, hash)) = trimmed.split_once(':') else {
                problems.push(LineProblem {
                    line: i + 1,
                    message: "not a `user:hash` line; ignored".into(),
                });
                lines.push(Line::Other(raw.to_string()));
                continue;
            };
            if let Some(kind) = kind_of(hash) {
                problems.push(LineProblem {
                    line: i + 1,
                    message: format!(
                        "user {user:?} has a {kind} hash, which regproxy refuses (only bcrypt is safe); re-add the user: regproxy htpasswd add {user}"
                    ),
                });
                lines.push(Line::Other(raw.to_string()));
                continue;
            }
            lines.push(Line::Entry {
                user: user.to_string(),
                hash: hash.to_string(),
            });
        }
        (HtpasswdFile { lines }, problems)
    }

    /// Reads a file; a missing file is an empty one.
    pub fn read(path: &Path) -> Result<(HtpasswdFile, Vec<LineProblem>), HtpasswdError> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(HtpasswdFile::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(source) => Err(HtpasswdError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Entry { user, hash } => out.push_str(&format!("{user}:{hash}\n")),
                Line::Other(s) => {
                    out.push_str(s);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry { user: u, hash } if u == user => Some(hash.as_str()),
            _ => None,
        })
    }

    pub fn users(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                Line::Entry { user, .. } => Some(user.as_str()),
                Line::Other(_) => None,
            })
            .collect()
    }

    /// Sets a user's hash, replacing their entry in place (and any refused
    /// line for the same user), or appending one.
    pub fn set(&mut self, user: &str, hash: String) {
        let prefix = format!("{user}:");
        let mut done = false;
        self.lines.retain_mut(|l| match l {
            Line::Entry { user: u, hash: h } if u == user => {
                if done {
                    return false;
                }
                *h = hash.clone();
                done = true;
                true
            }
            Line::Other(s) if s.trim_start().starts_with(&prefix) => false,
            _ => true,
        });
        if !done {
            self.lines.push(Line::Entry {
                user: user.to_string(),
                hash,
            });
        }
    }

    /// Removes a user; false if there was none.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        let prefix = format!("{user}:");
        self.lines.retain(|l| match l {
            Line::Entry { user: u, .. } => u != user,
            Line::Other(s) => !s.trim_start().starts_with(&prefix),
        });
        self.lines.len() != before
    }
}

/// A bcrypt hash in the `$2y$` form Apache writes.
pub fn hash_password(password: &Secret, cost: u32) -> Result<String, HtpasswdError> {
    bcrypt::hash_with_result(password.expose(), cost)
        .map(|h| h.format_for_version(bcrypt::Version::TwoY))
        .map_err(|e| HtpasswdError::Hash(e.to_string()))
}

/// Checks a password against a bcrypt hash. Slow on purpose: call it off
/// the async reactor.
pub fn verify_password(password: &Secret, hash: &str) -> bool {
    bcrypt::verify(password.expose(), hash).unwrap_or(false)
}

/// Edits the file under an exclusive lock: reads it, applies `f`, writes it
/// atomically with mode 0600. Returns what `f` returned.
pub fn edit<T>(path: &Path, f: impl FnOnce(&mut HtpasswdFile) -> T) -> Result<T, HtpasswdError> {
    let write_err = |source| HtpasswdError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(write_err)?;
    let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(lock_name))
        .map_err(write_err)?;
    lock.lock().map_err(write_err)?;
    let (mut file, _) = HtpasswdFile::read(path)?;
    let out = f(&mut file);
    crate::files::write_atomic(path, file.render().as_bytes(), 0o600).map_err(write_err)?;
    drop(lock);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# team file\n\nalice:$2y$04$abcdefghijklmnopqrstuu5Y3k3HnSIWhm1q8pbGEeZ7JZ5Zb.EOu\nold:$apr1$xyz$abc\nbob:$2b$04$abcdefghijklmnopqrstuuq0uQ6Cw6C0XGQ8Uz1Q5K9V3Ew0uXnW\ngarbage line\n";

    #[test]
    fn parses_keeps_lines_and_refuses_other_hashes() {
        let (f, problems) = HtpasswdFile::parse(FILE);
        assert_eq!(f.users(), vec!["alice", "bob"]);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, 4);
        assert!(
            problems[0].message.contains("$apr1$")
                && problems[0].message.contains("htpasswd add old")
        );
        assert_eq!(problems[1].line, 6);
        assert_eq!(f.render(), FILE, "untouched lines are kept");
    }

    #[test]
    fn set_replaces_in_place_and_remove_removes() {
        let (mut f, _) = HtpasswdFile::parse(FILE);
        f.set("alice", "$2y$04$new".into());
        f.set("old", "$2y$04$fixed".into());
        f.set("carol", "$2y$04$c".into());
        let text = f.render();
        assert!(
            text.starts_with("# team file\n\nalice:$2y$04$new\n"),
            "{text}"
        );
        assert!(!text.contains("$apr1$"));
        assert!(text.ends_with("carol:$2y$04$c\n"));
        assert!(f.remove("bob"));
        assert!(!f.remove("bob"));
        assert_eq!(f.users(), vec!["alice", "old", "carol"]);
    }

    #[test]
    fn hash_and_verify() {
        let pw = Secret::new("correct horse");
        let h = hash_password(&pw, 4).unwrap();
        assert!(h.starts_with("$2y$04$"));
        assert!(verify_password(&pw, &h));
        assert!(!verify_password(&Secret::new("wrong"), &h));
        assert!(!verify_password(&pw, "not a hash"));
    }

    #[test]
    fn user_names() {
        assert!(valid_user("alice"));
        for bad in ["", "a:b", "a b", "a\nb"] {
            assert!(!valid_user(bad), "{bad:?}");
        }
    }

    #[test]
    fn edit_is_atomic_keeps_mode_and_serializes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    edit(path, |f| f.set(&format!("u{i}"), "$2y$04$x".into())).unwrap()
                });
            }
        });
        let (f, _) = HtpasswdFile::read(&path).unwrap();
        assert_eq!(f.users().len(), 8, "no edit lost");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
