//! Reading the `Authorization` header: the scheme, and `Basic`
//! credentials (`user:password`, base64).

use base64::Engine as _;

use super::identity::Credentials;
use super::secret::Secret;

/// `Bearer xyz` -> `xyz`, for a case-insensitive scheme name.
pub(super) fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Decodes `Authorization: Basic ...`.
pub(super) fn basic_credentials(value: &str) -> Option<Credentials> {
    let encoded = strip_scheme(value, "basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credentials {
        user: user.to_string(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_and_bearer() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pa:ss")
        );
        let c = basic_credentials(&v).unwrap();
        assert_eq!(c.user, "alice");
        assert_eq!(c.password.expose(), "pa:ss");
        assert!(basic_credentials("Basic !!!").is_none());
        assert!(basic_credentials("Bearer x").is_none());
        assert_eq!(strip_scheme("bearer abc", "bearer"), Some("abc"));
    }
}
