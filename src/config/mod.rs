//! `proxy.yaml`: the raw file (`deny_unknown_fields`, every field optional)
//! is parsed into a validated [`Config`] with embedded defaults.
//!
//! A bad file reports every problem at once, each with its file and line:
//! after a parse error we blank the offending line (and its nested block)
//! and parse again, so line numbers stay true. The loop is bounded by the
//! number of lines.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use std::collections::BTreeMap;

use crate::auth::acl::{self, Policy, RawAccess};
use crate::auth::ldap::LdapConfig;
use crate::auth::{AuthSettings, Backend, Challenge};
use crate::tls::certs::SubjectNames;
use crate::tls::TlsMode;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5000";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA: &str = "./data";
/// The config file `serve` picks up from the working directory when no
/// `--config` is given.
pub const DEFAULT_FILE: &str = "proxy.yaml";
/// Where the built-in CA keeps its files, relative to the working directory.
pub const DEFAULT_CERTS: &str = "./certs";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<SocketAddr>,
    storage: Option<RawStorage>,
    trust_forwarded_headers: Option<bool>,
    tls: Option<RawTls>,
    auth: Option<RawAuth>,
    groups: Option<BTreeMap<String, Vec<String>>>,
    access: Option<RawAccess>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    enabled: Option<bool>,
    challenge: Option<Challenge>,
    htpasswd: Option<PathBuf>,
    ldap: Option<LdapConfig>,
    order: Option<Vec<Backend>>,
    token: Option<RawToken>,
    cache_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    service: Option<String>,
    issuer: Option<String>,
    expiry_secs: Option<u64>,
    refresh_expiry_secs: Option<u64>,
    key: Option<PathBuf>,
    realm: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    enabled: Option<bool>,
    dir: Option<PathBuf>,
    #[serde(default)]
    hosts: Vec<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    filesystem: Option<RawFilesystem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    root: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `serve` listens.
    pub listen: SocketAddr,
    /// Root of the filesystem storage (Distribution's `rootdirectory`).
    pub storage_root: PathBuf,
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
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 5000))),
            storage_root: PathBuf::from(DEFAULT_DATA),
            trust_forwarded_headers: false,
            tls: TlsMode::Auto {
                dir: PathBuf::from(DEFAULT_CERTS),
                extra: SubjectNames::default(),
            },
            auth: Some(default_auth(Path::new("."))),
            policy: Policy::no_rules(&BTreeMap::new()),
            warnings: Vec::new(),
            source: None,
        }
    }
}

/// Authentication on, htpasswd users from `./htpasswd`, Docker tokens.
fn default_auth(base: &Path) -> AuthSettings {
    AuthSettings {
        htpasswd: base.join("htpasswd"),
        ldap: None,
        order: vec![Backend::Htpasswd],
        challenge: Challenge::Token,
        service: "regproxy".into(),
        issuer: "regproxy".into(),
        token_ttl: std::time::Duration::from_secs(300),
        refresh_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
        token_key: base.join("certs").join("token.key"),
        realm: None,
        cache_ttl: std::time::Duration::from_secs(300),
    }
}

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
        if let Some(root) = raw.storage.and_then(|s| s.filesystem).and_then(|f| f.root) {
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
        config.trust_forwarded_headers = raw.trust_forwarded_headers.unwrap_or(false);
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

fn parse_auth(
    raw: RawAuth,
    text: &str,
    base: &Path,
    problems: &mut Vec<Problem>,
) -> Option<AuthSettings> {
    if raw.enabled == Some(false) {
        return None;
    }
    let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let mut a = default_auth(base);
    if let Some(c) = raw.challenge {
        a.challenge = c;
    }
    if let Some(p) = raw.htpasswd {
        a.htpasswd = abs(p);
    }
    if let Some(mut ldap) = raw.ldap {
        ldap.ca_file = ldap.ca_file.map(abs);
        ldap.bind_password_file = ldap.bind_password_file.map(abs);
        for message in ldap.validate() {
            problems.push(Problem {
                line: find_key_line(text, "ldap"),
                message: format!("auth.ldap: {message}"),
            });
        }
        a.order = vec![Backend::Htpasswd, Backend::Ldap];
        a.ldap = Some(ldap);
    }
    if let Some(order) = raw.order {
        if order.is_empty() {
            problems.push(Problem {
                line: find_key_line(text, "order"),
                message: "auth.order is empty: list htpasswd and/or ldap".into(),
            });
        }
        if order.contains(&Backend::Ldap) && a.ldap.is_none() {
            problems.push(Problem {
                line: find_key_line(text, "order"),
                message: "auth.order names ldap, but there is no auth.ldap section".into(),
            });
        }
        a.order = order;
    }
    if let Some(secs) = raw.cache_secs {
        a.cache_ttl = std::time::Duration::from_secs(secs);
    }
    if let Some(t) = raw.token {
        if let Some(s) = t.service {
            a.service = s;
        }
        if let Some(i) = t.issuer {
            a.issuer = i;
        }
        if let Some(e) = t.expiry_secs {
            if e < crate::auth::token::MIN_TOKEN_SECS {
                problems.push(Problem {
                    line: find_key_line(text, "expiry_secs"),
                    message: format!(
                        "auth.token.expiry_secs must be at least {}: Docker and podman treat every token as valid that long",
                        crate::auth::token::MIN_TOKEN_SECS
                    ),
                });
            }
            a.token_ttl = std::time::Duration::from_secs(e);
        }
        if let Some(e) = t.refresh_expiry_secs {
            a.refresh_ttl = std::time::Duration::from_secs(e);
        }
        if let Some(k) = t.key {
            a.token_key = abs(k);
        }
        if let Some(r) = t.realm {
            if !(r.starts_with("https://") || r.starts_with("http://")) {
                problems.push(Problem {
                    line: find_key_line(text, "realm"),
                    message: "auth.token.realm must be an absolute URL such as https://registry.example.com/auth/token".into(),
                });
            }
            a.realm = Some(r);
        }
    }
    Some(a)
}

/// Parses, and on each error records it and blanks the offending block so
/// the next parse can find the next problem.
fn parse_collecting(text: &str) -> (RawConfig, Vec<Problem>) {
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
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", Path::new("/etc/regproxy")).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.storage_root, PathBuf::from(DEFAULT_DATA));
    }

    #[test]
    fn relative_root_is_relative_to_the_file() {
        let c = Config::parse(
            "storage:\n  filesystem:\n    root: data\n",
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(c.storage_root, PathBuf::from("/srv/data"));
        assert_eq!(c.listen.port(), 5000);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
listen: not-an-address
storage:
  filesystem:
    rooot: /x
    nested:
      deeper: 1
extra: true
trust_forwarded_headers: maybe
";
        let problems = Config::parse(text, Path::new(".")).unwrap_err();
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            vec![Some(1), Some(4), Some(5), Some(7), Some(8)],
            "{problems:#?}"
        );
        assert!(problems[1].message.contains("rooot"), "{problems:#?}");
        assert!(problems[3].message.contains("extra"));
    }

    #[test]
    fn access_rules_with_lines() {
        let text = "\
groups:
  team-a: [alice]
access:
  rules:
    - subjects: [group:team-a]
      repositories: [team-a]
      actions: [pull, push]
    - subjects: [group:nobody]
      repositories: [x]
      actions: [pull]
";
        let p = Config::parse(text, Path::new(".")).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, Some(8));
        assert!(p[0].message.contains("nobody"));
        let ok = text
            .replace("group:nobody", "group:team-a")
            .replace("[x]", "[team-a/app]")
            .replace("[pull]\n", "[push]\n");
        let c = Config::parse(&ok, Path::new(".")).unwrap();
        assert_eq!(c.warnings.len(), 1, "the second rule is shadowed");
        assert_eq!(c.warnings[0].line, Some(8));
        assert!(
            c.policy
                .decide(
                    &acl::Subject {
                        user: Some("alice".into()),
                        groups: c.policy.groups_of("alice")
                    },
                    &"team-a/app".parse().unwrap(),
                    crate::oci::Action::Push
                )
                .allowed
        );
    }

    #[test]
    fn auth_settings() {
        let base = Path::new("/srv");
        let c = Config::parse("", base).unwrap();
        let a = c.auth.unwrap();
        assert_eq!(a.htpasswd, PathBuf::from("/srv/htpasswd"));
        assert_eq!(a.order, vec![Backend::Htpasswd]);
        assert!(Config::parse("auth:\n  enabled: false\n", base)
            .unwrap()
            .auth
            .is_none());
        let c = Config::parse(
            "auth:\n  challenge: basic\n  token:\n    expiry_secs: 120\n",
            base,
        )
        .unwrap();
        assert_eq!(c.auth.unwrap().challenge, Challenge::Basic);
        let p = Config::parse(
            "auth:\n  token:\n    expiry_secs: 5\n  order: [ldap]\n",
            base,
        )
        .unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].line, Some(3));
        assert_eq!(p[1].line, Some(4));
    }

    #[test]
    fn tls_modes() {
        let base = Path::new("/srv");
        let c = Config::parse("tls:\n  enabled: false\n", base).unwrap();
        assert_eq!(c.tls, TlsMode::Disabled);
        let c = Config::parse("tls:\n  cert: a.crt\n  key: /k/a.key\n", base).unwrap();
        assert_eq!(
            c.tls,
            TlsMode::Files {
                cert: "/srv/a.crt".into(),
                key: "/k/a.key".into(),
                ca: None
            }
        );
        let c = Config::parse("tls:\n  hosts: [registry.local, 10.0.0.2]\n", base).unwrap();
        let TlsMode::Auto { dir, extra } = c.tls else {
            panic!("auto expected")
        };
        assert_eq!(dir, PathBuf::from("/srv/certs"));
        assert_eq!(extra.dns, vec!["registry.local"]);
        assert_eq!(extra.ips.len(), 1);
        let problems =
            Config::parse("listen: 127.0.0.1:1\ntls:\n  cert: a.crt\n", base).unwrap_err();
        assert_eq!(problems[0].line, Some(2));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let problems = Config::parse("listen: [\nfoo", Path::new(".")).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].line.is_some());
    }

    #[test]
    fn error_display_lists_file_and_lines() {
        let e = ConfigError::Invalid {
            path: "proxy.yaml".into(),
            problems: vec![Problem {
                line: Some(3),
                message: "unknown field `x`".into(),
            }],
        };
        assert_eq!(
            e.to_string(),
            "proxy.yaml has 1 problem(s):\n  proxy.yaml:3: unknown field `x`"
        );
    }
}
