//! The `gc:` and `uploads:` sections: when garbage collection runs inside
//! `serve`, its grace period, and how long an idle upload is kept.
//! Durations are written `30s`, `15m`, `1h`, `7d` or combined (`1h30m`).

use std::time::Duration;

use serde::Deserialize;

use super::problems::{find_key_line, Problem};
/// Blobs younger than this are never collected (the registry's own default
/// for `regproxy gc` is the same).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// Uploads idle longer than this are abandoned.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(24 * 3600);
/// Online garbage collection runs this often by default.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGc {
    pub(super) interval: Option<String>,
    pub(super) grace: Option<String>,
    pub(super) untagged: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUploads {
    pub(super) max_idle: Option<String>,
}

/// The validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceSettings {
    /// How often `serve` collects garbage; `None`: never (`interval: off`).
    pub gc_interval: Option<Duration>,
    /// Blobs and revisions younger than this are never collected.
    pub gc_grace: Duration,
    /// Scheduled collections also remove untagged manifests.
    pub gc_untagged: bool,
    /// Uploads idle longer than this are purged (at start and periodically).
    pub upload_max_idle: Duration,
}

impl Default for SpaceSettings {
    fn default() -> Self {
        SpaceSettings {
            gc_interval: Some(DEFAULT_GC_INTERVAL),
            gc_grace: DEFAULT_GRACE,
            gc_untagged: false,
            upload_max_idle: DEFAULT_MAX_IDLE,
        }
    }
}

impl SpaceSettings {
    /// How often abandoned uploads are looked for: half the idle age,
    /// between one second and one hour.
    pub fn purge_every(&self) -> Duration {
        (self.upload_max_idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

/// Parses `30s`, `15m`, `1h`, `7d`, `1h30m`, `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("{text:?} is not a duration; write it like 30s, 15m, 1h or 7d");
    let mut total = Duration::ZERO;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        total = total
            .checked_add(Duration::from_secs(n.checked_mul(unit).ok_or_else(bad)?))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

pub(super) fn parse_space(
    gc: Option<RawGc>,
    uploads: Option<RawUploads>,
    text: &str,
    problems: &mut Vec<Problem>,
) -> SpaceSettings {
    let mut s = SpaceSettings::default();
    let mut field = |key: &str, value: &Option<String>, into: &mut Duration| {
        if let Some(v) = value {
            match parse_duration(v) {
                Ok(d) => *into = d,
                Err(e) => problems.push(Problem {
                    line: find_key_line(text, key),
                    message: format!("{key}: {e}"),
                }),
            }
        }
    };
    if let Some(u) = &uploads {
        field("max_idle", &u.max_idle, &mut s.upload_max_idle);
    }
    if let Some(gc) = gc {
        field("grace", &gc.grace, &mut s.gc_grace);
        match gc.interval.as_deref().map(str::trim) {
            None => {}
            Some("off" | "0") => s.gc_interval = None,
            Some(_) => {
                let mut every = DEFAULT_GC_INTERVAL;
                field("interval", &gc.interval, &mut every);
                s.gc_interval = Some(every.max(Duration::from_secs(1)));
            }
        }
        s.gc_untagged = gc.untagged.unwrap_or(false);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "h", "10", "1w", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
