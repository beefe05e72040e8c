//! `proxy.yaml`: the raw file ([`raw`]) is parsed into a validated
//! [`Config`] with embedded defaults. A bad file reports every problem at
//! once, each with its file and line ([`problems`]).

mod auth;
mod files;
mod limits;
mod ops;
mod problems;
mod raw;
pub mod s3;
mod space;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::acl::{self, Policy};
use crate::auth::AuthSettings;
use crate::tls::certs::SubjectNames;
use crate::tls::TlsMode;

use auth::{default_auth, parse_auth};
pub use files::{check_files, FileReport};
pub use limits::Limits;
pub use ops::LogFormat;
use problems::{find_key_line, parse_collecting};
pub use problems::{ConfigError, Problem};
pub use space::{parse_duration, SpaceSettings};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5000";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA: &str = "./data";
/// The config file `serve` picks up from the working directory when no
/// `--config` is given.
pub const DEFAULT_FILE: &str = "proxy.yaml";
/// Where the built-in CA keeps its files, relative to the working directory.
pub const DEFAULT_CERTS: &str = "./certs";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// Root of the filesystem storage (Distribution's `rootdirectory`).
    pub storage_root: PathBuf,
    /// S3 storage instead of the filesystem (`storage.s3`), if configured.
    pub s3: Option<s3::S3Settings>,
    /// Build absolute `Location` URLs from `X-Forwarded-Proto` /
    /// `X-Forwarded-Host` (only behind a proxy you run).
    pub trust_forwarded_headers: bool,
    /// TLS: automatic (built-in CA), the operator's files, or off.
    pub tls: TlsMode,
    /// Authentication, or `None` for none (`--no-auth`).
    pub auth: Option<AuthSettings>,
    /// Who may do what where (`groups:` and `access:`).
    pub policy: Policy,
    /// Things worth fixing that do not stop the server (shadowed rules).
    pub warnings: Vec<Problem>,
    /// Garbage collection and the purge of abandoned uploads.
    pub space: SpaceSettings,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// Timeouts and connection caps (`limits:`).
    pub limits: Limits,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`), or `None`.
    pub admin: Option<SocketAddr>,
    /// Text or JSON log lines.
    pub log_format: LogFormat,
    /// How long a stop waits for requests in flight.
    pub shutdown_timeout: std::time::Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 5000))),
            storage_root: PathBuf::from(DEFAULT_DATA),
            s3: None,
            trust_forwarded_headers: false,
            tls: TlsMode::Auto {
                dir: PathBuf::from(DEFAULT_CERTS),
                extra: SubjectNames::default(),
            },
            auth: Some(default_auth(Path::new("."))),
            policy: Policy::no_rules(&BTreeMap::new()),
            warnings: Vec::new(),
            space: SpaceSettings::default(),
            source: None,
            limits: Limits::default(),
            admin: Some(ops::default_admin_listen()),
            log_format: LogFormat::Text,
            shutdown_timeout: ops::DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base)
            .map(|mut c| {
                c.source = Some(path.to_path_buf());
                c
            })
            .map_err(|problems| ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
    }

    /// Parses config text; relative paths are taken from `base` (the
    /// directory of the file).
    pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
        let (raw, mut problems) = parse_collecting(text);
        let mut config = Config::default();
        if let Some(listen) = raw.listen {
            config.listen = listen;
        }
        let (filesystem, s3) = raw
            .storage
            .map(|s| (s.filesystem, s.s3))
            .unwrap_or_default();
        if filesystem.is_some() && s3.is_some() {
            problems.push(Problem {
                line: find_key_line(text, "s3"),
                message: "storage: give either filesystem or s3, not both".into(),
            });
        }
        if let Some(root) = filesystem.and_then(|f| f.root) {
            if root.as_os_str().is_empty() {
                problems.push(Problem {
                    line: find_key_line(text, "root"),
                    message: "storage.filesystem.root is empty; give a directory such as ./data"
                        .into(),
                });
            } else if root.is_absolute() {
                config.storage_root = root;
            } else {
                config.storage_root = base.join(root);
            }
        }
        if let Some(raw_s3) = s3 {
            match s3::validate(raw_s3, base) {
                Ok(settings) => config.s3 = Some(settings),
                Err(messages) => problems.extend(messages.into_iter().map(|message| Problem {
                    line: find_key_line(text, "s3"),
                    message,
                })),
            }
        }
        config.trust_forwarded_headers = raw.trust_forwarded_headers.unwrap_or(false);
        if let Some(l) = raw.limits {
            match l.validate() {
                Ok(l) => config.limits = l,
                Err(messages) => problems.extend(messages.into_iter().map(|message| Problem {
                    line: find_key_line(text, "limits"),
                    message,
                })),
            }
        }
        config.space = space::parse_space(raw.gc, raw.uploads, text, &mut problems);
        match ops::admin_listen(raw.admin, config.listen) {
            Ok(a) => config.admin = a,
            Err(message) => problems.push(Problem {
                line: find_key_line(text, "admin"),
                message,
            }),
        }
        config.log_format = raw.log.and_then(|l| l.format).unwrap_or_default();
        match ops::shutdown_timeout(raw.shutdown_timeout_secs) {
            Ok(t) => config.shutdown_timeout = t,
            Err(message) => problems.push(Problem {
                line: find_key_line(text, "shutdown_timeout_secs"),
                message,
            }),
        }
        if let Some(tls) = raw.tls {
            let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
            let line = || find_key_line(text, "tls");
            config.tls = match (tls.enabled.unwrap_or(true), tls.cert, tls.key) {
                (false, _, _) => TlsMode::Disabled,
                (true, Some(cert), Some(key)) => TlsMode::Files {
                    cert: abs(cert),
                    key: abs(key),
                    ca: tls.ca.map(abs),
                },
                (true, None, None) => {
                    let mut extra = SubjectNames::default();
                    for h in &tls.hosts {
                        if let Err(e) = extra.add_host(h) {
                            problems.push(Problem {
                                line: find_key_line(text, "hosts"),
                                message: format!("tls.hosts: {e}"),
                            });
                        }
                    }
                    TlsMode::Auto {
                        dir: tls.dir.map(abs).unwrap_or_else(|| base.join("certs")),
                        extra,
                    }
                }
                (true, _, _) => {
                    problems.push(Problem {
                        line: line(),
                        message: "tls: give both `cert` and `key` (your own certificate), or neither (the built-in CA)".into(),
                    });
                    config.tls
                }
            };
        }
        if let Some(auth) = raw.auth {
            config.auth = parse_auth(auth, text, base, &mut problems);
        } else {
            config.auth = Some(default_auth(base));
        }
        let groups = raw.groups.unwrap_or_default();
        config.policy = match (&config.auth, raw.access) {
            (None, _) => Policy::open(),
            (Some(_), None) => Policy::no_rules(&groups),
            (Some(auth), Some(access)) => {
                match Policy::build(
                    &groups,
                    &access,
                    &acl::access_lines(text),
                    auth.ldap.is_some(),
                ) {
                    Ok(p) => p,
                    Err(rule_problems) => {
                        problems.extend(rule_problems.into_iter().map(|p| Problem {
                            line: p.line.or_else(|| find_key_line(text, "access")),
                            // `access.default ...` names its key already.
                            message: if p.message.starts_with("access.") {
                                p.message
                            } else {
                                format!("access: {}", p.message)
                            },
                        }));
                        Policy::open()
                    }
                }
            }
        };
        config.warnings = config
            .policy
            .shadowed()
            .into_iter()
            .map(|p| Problem {
                line: p.line,
                message: format!("access: {}", p.message),
            })
            .collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            problems.sort_by_key(|p| p.line);
            Err(problems)
        }
    }
}
