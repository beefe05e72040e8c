//! What `storage.s3` in `proxy.yaml` says (endpoint, region, bucket, key
//! prefix, path-style addressing) and where the credentials come from: a
//! file (`AWS_ACCESS_KEY_ID=...` lines, or an AWS credentials file) or the
//! environment. The secret key is a [`Secret`]: it never reaches a log.

use std::path::{Path, PathBuf};

use super::raw::RawS3;
use crate::auth::secret::Secret;

/// The environment variables read when no `credentials_file` is given.
pub const ENV_ACCESS_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_KEY: &str = "AWS_SECRET_ACCESS_KEY";

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
    /// [`ENV_ACCESS_KEY`] and [`ENV_SECRET_KEY`].
    Env,
}

/// An access key.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl CredentialsSource {
    /// Reads the credentials; the error says which ones are missing and
    /// where they were looked for.
    pub fn load(&self) -> Result<Credentials, String> {
        match self {
            CredentialsSource::Env => {
                let id = std::env::var(ENV_ACCESS_KEY).unwrap_or_default();
                let secret = std::env::var(ENV_SECRET_KEY).unwrap_or_default();
                complete(id, secret).ok_or_else(|| {
                    format!(
                        "storage.s3: no credentials: set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} \
                         in the environment, or give storage.s3.credentials_file"
                    )
                })
            }
            CredentialsSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("storage.s3.credentials_file {}: {e}", path.display()))?;
                let (id, secret) = parse_credentials(&text);
                complete(id, secret).ok_or_else(|| {
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

fn complete(id: String, secret: String) -> Option<Credentials> {
    (!id.is_empty() && !secret.is_empty()).then(|| Credentials {
        access_key_id: id,
        secret_access_key: Secret::new(secret),
    })
}

/// `KEY=VALUE` lines (an env file, as compose's `env_file` reads) or an AWS
/// credentials file (`aws_access_key_id = ...`, first profile wins); `#`
/// comments, `export ` and quotes are allowed.
fn parse_credentials(text: &str) -> (String, String) {
    let (mut id, mut secret) = (String::new(), String::new());
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim().to_ascii_uppercase().as_str() {
            "AWS_ACCESS_KEY_ID" if id.is_empty() => id = v,
            "AWS_SECRET_ACCESS_KEY" if secret.is_empty() => secret = v,
            _ => {}
        }
    }
    (id, secret)
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
        let (id, s) = parse_credentials(
            "# c\nexport AWS_ACCESS_KEY_ID=\"GK1\"\nAWS_SECRET_ACCESS_KEY=abc=\n",
        );
        assert_eq!((id.as_str(), s.as_str()), ("GK1", "abc="));
        let (id, s) = parse_credentials(
            "[default]\naws_access_key_id = GK2\naws_secret_access_key = x\n[other]\naws_access_key_id = no\n",
        );
        assert_eq!((id.as_str(), s.as_str()), ("GK2", "x"));
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
