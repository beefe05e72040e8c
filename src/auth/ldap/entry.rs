//! What the directory answers, read without trusting it: search entries,
//! the first RDN value of a group DN; and what we send it: placeholders
//! filled once, user names checked before they are used.

/// Longest username accepted, in bytes.
const MAX_USERNAME: usize = 256;

/// The attribute a user filter compares with the name, e.g. `uid` in
/// `(&(objectClass=person)(uid={username}))`.
pub(super) fn name_attribute(filter: &str) -> Option<String> {
    let before = &filter[..filter.find("={username}")?];
    let attr = &before[before.rfind('(')? + 1..];
    let ok = !attr.is_empty()
        && attr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    ok.then(|| attr.to_string())
}

/// The attribute of the RDN holding the name in a DN template, e.g. `uid`
/// in `uid={username},ou=people,dc=example,dc=org`.
pub(super) fn dn_name_attribute(template: &str) -> Option<String> {
    let before = &template[..template.find("={username}")?];
    let attr = before.rsplit([',', '+']).next()?.trim();
    let ok = !attr.is_empty()
        && attr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
    ok.then(|| attr.to_string())
}

/// A search entry, parsed without trusting the server's bytes (ldap3's
/// `SearchEntry::construct` panics on malformed input).
pub(super) struct Entry {
    pub(super) dn: String,
    attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    pub(super) fn parse(tag: ldap3::asn1::StructureTag) -> Option<Entry> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attrs = Vec::new();
        for attr in parts.next()?.expect_constructed()? {
            let mut attr = attr.expect_constructed()?.into_iter();
            let name = String::from_utf8(attr.next()?.expect_primitive()?).ok()?;
            let values = attr.next()?.expect_constructed()?.into_iter();
            attrs.push((
                name,
                values
                    .filter_map(|v| String::from_utf8(v.expect_primitive()?).ok())
                    .collect(),
            ));
        }
        Some(Entry { dn, attrs })
    }

    /// A short digest of these attributes' values, if the entry has any of
    /// them: it changes when they do.
    pub(super) fn version(&self, names: &[&str]) -> Option<String> {
        use sha2::Digest as _;
        let mut hash = sha2::Sha256::new();
        let mut any = false;
        for name in names {
            for value in self.values(name) {
                hash.update(format!("{}={value}\n", name.to_ascii_lowercase()));
                any = true;
            }
        }
        any.then(|| hex::encode(&hash.finalize()[..8]))
    }

    /// The values of an attribute (names compare case-insensitively).
    pub(super) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        let matching = self
            .attrs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name));
        matching.flat_map(|(_, v)| v.iter().cloned())
    }
}

pub(super) fn bad_username(user: &str) -> Option<&'static str> {
    match user {
        "" => Some("empty"),
        u if u.len() > MAX_USERNAME => Some("longer than 256 bytes"),
        u if u.chars().any(char::is_control) => Some("control characters"),
        _ => None,
    }
}

/// Replaces each `{placeholder}` in one pass, so a value that contains a
/// placeholder is never expanded again.
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        match values.iter().find(|(k, _)| rest.starts_with(k)) {
            Some((k, v)) => (out.push_str(v), rest = &rest[k.len()..]),
            None => (out.push(c), rest = &rest[c.len_utf8()..]),
        };
    }
    out
}

/// `cn=team-a,ou=groups,dc=example,dc=org` -> `team-a`, with RFC 4514
/// escapes (`\,`, `\2C`) decoded.
pub(super) fn first_rdn_value(dn: &str) -> Option<String> {
    let (_, value) = dn.split_once('=')?;
    let bytes = value.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while let Some(&b) = bytes.get(i) {
        let hex = (bytes.get(i + 1..i + 3))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b, hex) {
            (b',' | b'+', _) => break,
            (b'\\', Some(h)) => (out.push(h), i += 3),
            (b'\\', None) => (out.push(*bytes.get(i + 1)?), i += 2),
            (b, _) => (out.push(b), i += 1),
        };
    }
    let value = String::from_utf8(out).ok()?;
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod name_tests {
    use super::{dn_name_attribute, name_attribute};

    #[test]
    fn finds_the_attribute_compared_with_the_name() {
        assert_eq!(name_attribute("(uid={username})").as_deref(), Some("uid"));
        assert_eq!(
            name_attribute("(&(objectClass=inetOrgPerson)(sAMAccountName={username}))").as_deref(),
            Some("sAMAccountName")
        );
        assert_eq!(name_attribute("(cn=*)"), None);
        assert_eq!(
            dn_name_attribute("uid={username},ou=people,dc=x").as_deref(),
            Some("uid")
        );
        assert_eq!(
            dn_name_attribute("cn=x+sAMAccountName={username},dc=x").as_deref(),
            Some("sAMAccountName")
        );
        assert_eq!(dn_name_attribute("ou=people"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::{dn_escape, ldap_escape};

    #[test]
    pub(super) fn first_rdn_value_of_member_of() {
        assert_eq!(
            first_rdn_value("cn=team-a,ou=groups,dc=example,dc=org").as_deref(),
            Some("team-a")
        );
        assert_eq!(
            first_rdn_value("CN=Dev\\, Ops,OU=x").as_deref(),
            Some("Dev, Ops")
        );
        assert_eq!(
            first_rdn_value("cn=a\\2Cb+uid=1,dc=x").as_deref(),
            Some("a,b")
        );
        assert_eq!(
            first_rdn_value("cn=caf\\C3\\A9,dc=x").as_deref(),
            Some("café")
        );
        assert_eq!(first_rdn_value("no-equals-sign"), None);
        assert_eq!(first_rdn_value("cn=,dc=x"), None);
        assert_eq!(first_rdn_value("cn=bad\\"), None);
    }

    #[test]
    fn placeholders_filled_once_and_escaped() {
        let f = fill(
            "(|(member={dn})(memberUid={username}))",
            &[("{dn}", "{username}"), ("{username}", "bob")],
        );
        assert_eq!(f, "(|(member={username})(memberUid=bob))");
        let user = ldap_escape("alice)(uid=*");
        assert_eq!(
            fill("(uid={username})", &[("{username}", &user)]),
            "(uid=alice\\29\\28uid=\\2a)"
        );
        assert_eq!(
            fill("uid={username},dc=x", &[("{username}", &dn_escape("a,b"))]),
            "uid=a\\2cb,dc=x"
        );
    }

    #[test]
    fn unusable_usernames() {
        assert!(bad_username("alice").is_none() && bad_username("o'brien").is_none());
        for bad in ["", "a\nb", "a\0b", &"x".repeat(257)] {
            assert!(bad_username(bad).is_some(), "{bad:?}");
        }
    }
}
