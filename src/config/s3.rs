//! What `storage.s3` in `proxy.yaml` says (endpoint, region, bucket, key
//! prefix, path-style addressing) and where the credentials come from: a
//! file (`AWS_ACCESS_KEY_ID=...` lines, or an AWS credentials file) or the
//! environment, with a session token (`AWS_SESSION_TOKEN`) for temporary
//! keys. The secret key and the token are [`Secret`]s: they never reach a
//! log. An endpoint with a user name or password in it is refused, and
//! never echoed with them.

use std::path::{Path, PathBuf};

use super::raw::RawS3;
use crate::auth::secret::Secret;

/// The environment variables read when no `credentials_file` is given.
pub const ENV_ACCESS_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Read with them if set: the session token of temporary credentials.
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// A validated `storage.s3` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Keys start with `<prefix>/docker/registry/v2/`; no leading or
    /// trailing `/`; empty for the bucket's root.
    pub prefix: String,
    /// `https://endpoint/bucket/key` (true, what Garage and MinIO need on a
    /// plain address) or `https://bucket.endpoint/key`.
    pub path_style: bool,
    pub credentials: CredentialsSource,
    /// Blob downloads answered with a redirect to a presigned URL
    /// (`redirect: true`): the address clients reach the store at
    /// (`redirect_endpoint`, else `endpoint`). `None`: blobs are streamed
    /// through regproxy (the default).
    pub redirect_endpoint: Option<String>,
}

/// Where the access key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    File(PathBuf),
    /// [`ENV_ACCESS_KEY`] and [`ENV_SECRET_KEY`] (and [`ENV_SESSION_TOKEN`]).
    Env,
}

/// An access key.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// The session token of temporary credentials (STS), if given.
    pub session_token: Option<Secret>,
}

impl CredentialsSource {
    /// Reads the credentials; the error says which ones are missing and
    /// where they were looked for.
    pub fn load(&self) -> Result<Credentials, String> {
        match self {
            CredentialsSource::Env => {
                let read = |name| std::env::var(name).unwrap_or_default();
                let found = Found {
                    id: read(ENV_ACCESS_KEY),
                    secret: read(ENV_SECRET_KEY),
                    token: read(ENV_SESSION_TOKEN),
                };
                complete(found).ok_or_else(|| {
                    format!(
                        "storage.s3: no credentials: set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} \
                         in the environment, or give storage.s3.credentials_file"
                    )
                })
            }
            CredentialsSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("storage.s3.credentials_file {}: {e}", path.display()))?;
                complete(parse_credentials(&text)).ok_or_else(|| {
                    format!(
                        "storage.s3.credentials_file {} has no {ENV_ACCESS_KEY}=... and \
                         {ENV_SECRET_KEY}=... lines",
                        path.display()
                    )
                })
            }
        }
    }
}

/// What a credentials source holds (empty: not given).
#[derive(Default)]
struct Found {
    id: String,
    secret: String,
    token: String,
}

fn complete(f: Found) -> Option<Credentials> {
    (!f.id.is_empty() && !f.secret.is_empty()).then(|| Credentials {
        access_key_id: f.id,
        secret_access_key: Secret::new(f.secret),
        session_token: (!f.token.is_empty()).then(|| Secret::new(f.token)),
    })
}

/// `KEY=VALUE` lines (an env file, as compose's `env_file` reads) or an AWS
/// credentials file (`aws_access_key_id = ...`, first profile wins); `#`
/// comments, `export ` and quotes are allowed.
fn parse_credentials(text: &str) -> Found {
    let mut f = Found::default();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim().to_ascii_uppercase().as_str() {
            "AWS_ACCESS_KEY_ID" if f.id.is_empty() => f.id = v,
            "AWS_SECRET_ACCESS_KEY" if f.secret.is_empty() => f.secret = v,
            "AWS_SESSION_TOKEN" if f.token.is_empty() => f.token = v,
            _ => {}
        }
    }
    f
}

/// `storage.s3.<key>` without a `user:password@` part; a problem if it
/// had one (the part is never echoed).
fn refuse_userinfo(key: &str, url: &str, problems: &mut Vec<String>) -> String {
    let (url, had) = without_userinfo(url);
    if had {
        problems.push(format!(
            "storage.s3.{key} has a user name or password in it (user:password@); remove it \
             (it would reach logs and errors) and put the access key in \
             storage.s3.credentials_file or the environment ({ENV_ACCESS_KEY}, \
             {ENV_SECRET_KEY}); the address is then {url}"
        ));
    }
    url
}

/// The endpoint without a `user:password@` part, and whether it had one.
fn without_userinfo(endpoint: &str) -> (String, bool) {
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), endpoint),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => (format!("{scheme}{}", &rest[at + 1..]), true),
        None => (endpoint.to_string(), false),
    }
}

/// Validates the raw fields; every problem is returned.
pub(super) fn validate(raw: RawS3, base: &Path) -> Result<S3Settings, Vec<String>> {
    let RawS3 {
        endpoint,
        region,
        bucket,
        prefix,
        path_style,
        credentials_file,
        redirect,
        redirect_endpoint,
    } = raw;
    let mut problems = Vec::new();
    let endpoint = endpoint
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    // Never echoed with a password in it, not even in a problem.
    let endpoint = refuse_userinfo("endpoint", &endpoint, &mut problems);
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        || endpoint
            .split_once("://")
            .is_some_and(|(_, h)| h.is_empty())
    {
        problems.push(format!(
            "storage.s3.endpoint {endpoint:?} is not a URL; give the S3 API's address, \
             e.g. https://s3.example.com or http://127.0.0.1:3900"
        ));
    }
    let redirect_endpoint = match (redirect.unwrap_or(false), redirect_endpoint) {
        (false, None) => None,
        (false, Some(_)) => {
            problems.push(
                "storage.s3.redirect_endpoint is set but redirect is not; \
                 add `redirect: true` (or remove redirect_endpoint)"
                    .into(),
            );
            None
        }
        (true, None) => Some(endpoint.clone()),
        (true, Some(e)) => {
            let e = e.trim_end_matches('/').to_string();
            let e = refuse_userinfo("redirect_endpoint", &e, &mut problems);
            if !is_base_url(&e) {
                problems.push(format!(
                    "storage.s3.redirect_endpoint {e:?} is not a URL; give the store's address \
                     as clients reach it, e.g. https://s3.example.com"
                ));
            }
            Some(e)
        }
    };
    let bucket = bucket.unwrap_or_default();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        problems.push(format!(
            "storage.s3.bucket {bucket:?} is not a bucket name (3 to 63 of a-z 0-9 . -)"
        ));
    }
    let prefix = prefix.unwrap_or_default().trim_matches('/').to_string();
    if prefix
        .split('/')
        .any(|seg| (seg.is_empty() && !prefix.is_empty()) || seg == "." || seg == "..")
    {
        problems.push(format!(
            "storage.s3.prefix {prefix:?} has an empty, . or .. segment; give a path such as registry/prod"
        ));
    }
    let region = region.unwrap_or_else(|| "us-east-1".into());
    if region.trim().is_empty() {
        problems
            .push("storage.s3.region is empty; give the store's region (Garage: garage)".into());
    }
    let credentials = match credentials_file {
        Some(p) if p.is_absolute() => CredentialsSource::File(p),
        Some(p) => CredentialsSource::File(base.join(p)),
        None => CredentialsSource::Env,
    };
    if problems.is_empty() {
        Ok(S3Settings {
            endpoint,
            region,
            bucket,
            prefix,
            path_style: path_style.unwrap_or(true),
            credentials,
            redirect_endpoint,
        })
    } else {
        Err(problems)
    }
}

/// `http(s)://host[:port]`, with nothing after the authority.
fn is_base_url(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.is_empty() && !rest.contains(['/', '?', '#', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_env_files_and_aws_credentials_files() {
        let f = parse_credentials(
            "# c\nexport AWS_ACCESS_KEY_ID=\"GK1\"\nAWS_SECRET_ACCESS_KEY=abc=\nAWS_SESSION_TOKEN=t0k\n",
        );
        assert_eq!(
            (f.id.as_str(), f.secret.as_str(), f.token.as_str()),
            ("GK1", "abc=", "t0k")
        );
        let f = parse_credentials(
            "[default]\naws_access_key_id = GK2\naws_secret_access_key = x\naws_session_token = y\n[other]\naws_access_key_id = no\n",
        );
        assert_eq!(
            (f.id.as_str(), f.secret.as_str(), f.token.as_str()),
            ("GK2", "x", "y")
        );
        let c = complete(f).unwrap();
        assert_eq!(c.session_token.as_ref().map(Secret::expose), Some("y"));
        assert!(!format!("{c:?}").contains("\"y\""), "{c:?}");
        let f = parse_credentials("AWS_ACCESS_KEY_ID=a\nAWS_SECRET_ACCESS_KEY=b\n");
        assert!(complete(f).unwrap().session_token.is_none());
    }

    #[test]
    fn an_endpoint_with_userinfo_is_refused_and_never_echoed() {
        for e in [
            "http://admin:pw-123@127.0.0.1:3900",
            "https://pw-123@s3.example.com/",
            "admin:pw-123@s3.example.com",
        ] {
            let problems = validate(raw(e, "registry", ""), Path::new("/etc")).unwrap_err();
            let all = problems.join("\n");
            assert!(all.contains("user name or password"), "{all}");
            assert!(!all.contains("pw-123"), "{all}");
            let redirect = RawS3 {
                redirect: Some(true),
                redirect_endpoint: Some(e.into()),
                ..raw("http://127.0.0.1:3900", "registry", "")
            };
            let all = validate(redirect, Path::new("/etc"))
                .unwrap_err()
                .join("\n");
            assert!(all.contains("redirect_endpoint has a user name"), "{all}");
            assert!(!all.contains("pw-123"), "{all}");
        }
        assert_eq!(
            without_userinfo("http://h:1/p@q"),
            ("http://h:1/p@q".into(), false)
        );
    }

    fn raw(endpoint: &str, bucket: &str, prefix: &str) -> RawS3 {
        RawS3 {
            endpoint: Some(endpoint.into()),
            bucket: Some(bucket.into()),
            prefix: Some(prefix.into()),
            ..RawS3::default()
        }
    }

    #[test]
    fn validation_lists_every_problem() {
        let e = validate(
            RawS3 {
                region: Some(" ".into()),
                ..raw("s3.example.com", "B", "a//b")
            },
            Path::new("/etc"),
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        let ok = validate(
            RawS3 {
                credentials_file: Some("s3.env".into()),
                ..raw("http://127.0.0.1:3900/", "registry", "/prod/")
            },
            Path::new("/etc/regproxy"),
        )
        .unwrap();
        assert_eq!(ok.endpoint, "http://127.0.0.1:3900");
        assert_eq!(ok.prefix, "prod");
        assert!(ok.path_style);
        assert_eq!(ok.redirect_endpoint, None);
        assert_eq!(
            ok.credentials,
            CredentialsSource::File("/etc/regproxy/s3.env".into())
        );
    }

    #[test]
    fn redirects_are_off_by_default_and_take_the_endpoint_or_their_own() {
        let base = Path::new("/etc");
        let on = |endpoint: Option<&str>| RawS3 {
            redirect: Some(true),
            redirect_endpoint: endpoint.map(Into::into),
            ..raw("http://garage:3900", "registry", "")
        };
        let same = validate(on(None), base).unwrap();
        assert_eq!(
            same.redirect_endpoint.as_deref(),
            Some("http://garage:3900")
        );
        let own = validate(on(Some("https://s3.example.com/")), base).unwrap();
        assert_eq!(
            own.redirect_endpoint.as_deref(),
            Some("https://s3.example.com")
        );
        for bad in [
            "s3.example.com",
            "https://s3.example.com/bucket",
            "https://",
        ] {
            let e = validate(on(Some(bad)), base).unwrap_err();
            assert!(e[0].contains("redirect_endpoint"), "{bad}: {e:?}");
        }
        let orphan = RawS3 {
            redirect_endpoint: Some("https://s3.example.com".into()),
            ..raw("http://garage:3900", "registry", "")
        };
        let e = validate(orphan, base).unwrap_err();
        assert!(e[0].contains("redirect: true"), "{e:?}");
    }
}
