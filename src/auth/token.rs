//! The Docker token service's tokens: ES256 JWTs signed with a key made on
//! first start (`certs/token.key`, 0600), with a `kid`.
//!
//! Access tokens carry the granted `access` list (Docker's token format);
//! refresh tokens (`offline_token=true`, `access_type=offline`) let
//! `docker login` store an identity token instead of the password. Both
//! carry the user's source and, for htpasswd users, a fingerprint of their
//! password hash, so a removed user or changed password ends them at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::identity::Source;
use super::verified::VerifiedTokens;
use crate::oci::names::RepoName;
use crate::oci::Action;

/// Leeway for `exp`/`nbf`, for clocks that differ a little.
const LEEWAY_SECS: u64 = 30;
/// Docker and containers/image treat every token as valid for at least
/// this long, so the service never issues shorter ones.
pub const MIN_TOKEN_SECS: u64 = 60;

/// One entry of a token's `access` list (Docker's format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl ResourceActions {
    /// Parses a `scope` value: `repository:team/app:pull,push` or
    /// `registry:catalog:*`. Unknown forms are ignored (`None`).
    pub fn parse_scope(scope: &str) -> Option<ResourceActions> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let actions: Vec<String> = actions
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        match kind {
            "repository" if name.parse::<RepoName>().is_ok() => {}
            "registry" if name == "catalog" => {}
            _ => return None,
        }
        Some(ResourceActions {
            kind: kind.to_string(),
            name: name.to_string(),
            actions,
        })
    }

    /// Whether this entry allows `action` on repository `repo`.
    pub fn allows(&self, repo: &RepoName, action: Action) -> bool {
        self.kind == "repository"
            && self.name == repo.as_str()
            && self
                .actions
                .iter()
                .any(|a| a == action.as_str() || a == "*")
    }
}

/// Access or refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
    /// Where the user was found.
    pub src: Source,
    /// For htpasswd users: fingerprint of the password hash at issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwv: Option<String>,
    /// The user's groups at login (for authorization).
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(rename = "use")]
    pub token_use: Use,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours for this use; the detail is for the log only.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A token of ours whose time is up.
    #[error("the token has expired")]
    Expired,
    #[error("cannot read or write the token key {path}: {reason}")]
    Key { path: String, reason: String },
}

/// Issues and verifies tokens.
pub struct TokenService {
    /// Access tokens that passed [`TokenService::verify`] before.
    verified: VerifiedTokens,
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    pub issuer: String,
    pub service: String,
    pub ttl: Duration,
    pub refresh_ttl: Duration,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenService {
    /// Loads the signing key from `key_path`, making it (0600) if missing;
    /// when several processes make it at once, all end up with the one
    /// that was written first.
    pub fn open(
        key_path: &Path,
        issuer: &str,
        service: &str,
        ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<TokenService, TokenError> {
        let key_err = |reason: String| TokenError::Key {
            path: key_path.display().to_string(),
            reason,
        };
        let pem = match std::fs::read_to_string(key_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate().map_err(|e| key_err(e.to_string()))?;
                let pem = key.serialize_pem();
                // Create-only: instances sharing the directory may start at
                // once; the first key written wins and the others use it.
                let made = crate::files::create_new(key_path, pem.as_bytes(), 0o600)
                    .map_err(|e| key_err(e.to_string()))?;
                if made {
                    tracing::info!(key = %key_path.display(), "generated the token signing key");
                    pem
                } else {
                    tracing::info!(
                        key = %key_path.display(),
                        "another instance generated the token signing key first: using it"
                    );
                    std::fs::read_to_string(key_path).map_err(|e| key_err(e.to_string()))?
                }
            }
            Err(e) => return Err(key_err(e.to_string())),
        };
        let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| key_err(e.to_string()))?;
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| key_err(e.to_string()))?;
        let decoding = DecodingKey::from_ec_pem(key.public_key_pem().as_bytes())
            .map_err(|e| key_err(e.to_string()))?;
        let kid = hex::encode(&sha2::Sha256::digest(key.public_key_pem().as_bytes())[..8]);
        Ok(TokenService {
            verified: VerifiedTokens::default(),
            encoding,
            decoding,
            kid,
            issuer: issuer.to_string(),
            service: service.to_string(),
            ttl: ttl.max(Duration::from_secs(MIN_TOKEN_SECS)),
            refresh_ttl,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a token for `sub` with the configured lifetime for its use;
    /// returns it with its claims.
    pub fn issue(
        &self,
        sub: &str,
        src: Source,
        pwv: Option<String>,
        groups: Vec<String>,
        access: Vec<ResourceActions>,
        token_use: Use,
    ) -> Result<(String, Claims), TokenError> {
        let ttl = match token_use {
            Use::Access => self.ttl,
            Use::Refresh => self.refresh_ttl,
        };
        self.issue_for(sub, src, pwv, groups, access, token_use, ttl)
    }

    /// Like [`TokenService::issue`], valid for `ttl`.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_for(
        &self,
        sub: &str,
        src: Source,
        pwv: Option<String>,
        groups: Vec<String>,
        access: Vec<ResourceActions>,
        token_use: Use,
        ttl: Duration,
    ) -> Result<(String, Claims), TokenError> {
        let iat = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: self.service.clone(),
            exp: iat + ttl.as_secs(),
            nbf: iat.saturating_sub(1),
            iat,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
            src,
            pwv,
            groups,
            token_use,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies an access token: from the cache of tokens verified before,
    /// else fully (as [`TokenService::verify`]), remembering it.
    pub fn verify_access(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let now = now();
        if let Some(claims) = self.verified.get(token, now, LEEWAY_SECS) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify(token, Use::Access)?);
        self.verified
            .insert(token, claims.clone(), now, LEEWAY_SECS);
        Ok(claims)
    }

    /// Forgets every verified access token (users or rules changed), so the
    /// next use of each is verified in full again.
    pub fn forget_verified(&self) {
        self.verified.clear();
    }

    /// Verifies signature, algorithm, `exp`/`nbf` (with leeway), issuer,
    /// audience and use.
    pub fn verify(&self, token: &str, expected: Use) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.service]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid(e.to_string()),
                }
            })?;
        if data.header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::Invalid("unknown key id".into()));
        }
        if data.claims.token_use != expected {
            return Err(TokenError::Invalid("wrong token use".into()));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests;
