//! Problems in a config file, each with its line: the error type, and the
//! parse that collects every problem at once. After a parse error the
//! offending line (and its nested block) is blanked and the text parsed
//! again, so line numbers stay true; the loop is bounded by the number of
//! lines.

use std::fmt;
use std::path::PathBuf;

use super::raw::RawConfig;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

/// Why a config file could not be used: every problem found.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Invalid { path, problems } => {
                write!(f, "{} has {} problem(s):", path.display(), problems.len())?;
                for p in problems {
                    match p.line {
                        Some(l) => write!(f, "\n  {}:{l}: {}", path.display(), p.message)?,
                        None => write!(f, "\n  {}: {}", path.display(), p.message)?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses, and on each error records it and blanks the offending block so
/// the next parse can find the next problem.
pub(super) fn parse_collecting(text: &str) -> (RawConfig, Vec<Problem>) {
    let mut problems = Vec::new();
    // A syntax error makes everything after it unreliable: report it alone.
    if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        problems.push(problem_from(&e));
        return (RawConfig::default(), problems);
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut blanked = std::collections::HashSet::new();
    for _ in 0..=lines.len() {
        let current = lines.join("\n");
        let err = match serde_yaml::from_str::<Option<RawConfig>>(&current) {
            Ok(raw) => return (raw.unwrap_or_default(), problems),
            Err(e) => e,
        };
        let problem = problem_from(&err);
        let line = problem.line;
        problems.push(problem);
        let Some(line) = line else { break };
        if !blanked.insert(line) || line == 0 || line > lines.len() {
            break;
        }
        blank_block(&mut lines, line - 1);
    }
    (RawConfig::default(), problems)
}

fn problem_from(err: &serde_yaml::Error) -> Problem {
    let message = err.to_string();
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    Problem {
        line: err.location().map(|l| l.line()),
        message,
    }
}

/// Blanks line `i` and the more-indented lines after it.
fn blank_block(lines: &mut [String], i: usize) {
    let indent = |s: &str| s.len() - s.trim_start().len();
    let own = indent(&lines[i]);
    lines[i].clear();
    for l in lines.iter_mut().skip(i + 1) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        if indent(l) <= own {
            break;
        }
        l.clear();
    }
}

/// The first line (1-based) that defines `key:`.
pub(super) fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map(|i| i + 1)
}
