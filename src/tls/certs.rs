//! The built-in certificate authority (rcgen): a local CA, and server
//! certificates signed by it, written as PEM files with private keys 0600.
//!
//! ```text
//! certs/ca.crt       the CA certificate: install it on clients (public)
//! certs/ca.key       the CA private key (0600): never leaves this machine
//! certs/server.crt   server certificate + CA (the chain served)
//! certs/server.key   server private key (0600)
//! ```

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};

pub use super::names::SubjectNames;
use super::TlsError;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";

/// Validity of a new CA.
const CA_DAYS: i64 = 3650;
/// Default validity of a server certificate (the most Apple clients accept).
pub const DEFAULT_SERVER_DAYS: u32 = 825;

/// What `gen-cert` (or the first start) produced.
#[derive(Debug)]
pub struct Issued {
    pub dir: PathBuf,
    pub ca_created: bool,
    pub ca_fingerprint: Fingerprint,
    pub names: SubjectNames,
    pub not_after: OffsetDateTime,
}

/// SHA-256 fingerprint of a certificate's DER bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(sha2::Sha256::digest(der).into())
    }

    /// `AB:CD:...`, as `openssl x509 -fingerprint -sha256` and browsers
    /// print it: the one format regproxy prints and the trust commands check.
    pub fn colon_hex(&self) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Generate(format!("{what}: {e}"))
}

/// Writes a file atomically with the given mode.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::files::write_atomic(path, contents, mode).map_err(|source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes sure `dir` holds a CA: loads it, or creates one (also when `force`).
/// Returns the CA certificate PEM, its key, and whether it was created.
fn ensure_ca(dir: &Path, force: bool) -> Result<(String, KeyPair, bool), TlsError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if !force && cert_path.exists() {
        if !key_path.exists() {
            return Err(TlsError::CaKeyMissing {
                dir: dir.to_path_buf(),
            });
        }
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| TlsError::BadKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        return Ok((read(&cert_path)?, key, false));
    }
    let key = KeyPair::generate().map_err(gen_err("generating the CA key"))?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let host = gethostname::gethostname().into_string().unwrap_or_default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "regproxy");
    // A unique name per CA, so two regproxy CAs are never mistaken for
    // each other by a verifier that matches issuers by name.
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    params
        .distinguished_name
        .push(DnType::CommonName, format!("regproxy CA {host} {id}"));
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(gen_err("signing the CA"))?;
    // Key first: a CA certificate without its key is the state we refuse.
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok((cert.pem(), key, true))
}

/// `regproxy gen-cert`: ensures a CA in `dir` (replaced only with `force`)
/// and issues a server certificate for `names`, valid `days` days.
pub fn issue(dir: &Path, names: &SubjectNames, days: u32, force: bool) -> Result<Issued, TlsError> {
    if names.is_empty() {
        return Err(TlsError::NoNames);
    }
    let (ca_pem, ca_key, ca_created) = ensure_ca(dir, force)?;
    let ca_der = pem_to_der(&ca_pem).ok_or_else(|| TlsError::NoCertificates {
        path: dir.join(CA_CERT),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
        .map_err(gen_err("reading the CA certificate"))?;

    let key = KeyPair::generate().map_err(gen_err("generating the server key"))?;
    let mut params = CertificateParams::default();
    let cn = names
        .dns
        .first()
        .cloned()
        .or_else(|| names.ips.first().map(|i| i.to_string()))
        .unwrap_or_default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "regproxy");
    for d in &names.dns {
        let ia5 = d
            .clone()
            .try_into()
            .map_err(|_| TlsError::BadName(d.clone()))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    for ip in &names.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days.max(1)));
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(gen_err("signing the server certificate"))?;

    let chain = format!("{}{}", cert.pem(), ca_pem);
    write_file(&dir.join(SERVER_KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&dir.join(SERVER_CERT), chain.as_bytes(), 0o644)?;
    Ok(Issued {
        dir: dir.to_path_buf(),
        ca_created,
        ca_fingerprint: Fingerprint::of_der(&ca_der),
        names: names.clone(),
        not_after: params.not_after,
    })
}

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .map(|c| c.to_vec())
}

/// What a certificate says about itself, for checks and messages.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub is_ca: bool,
    pub server_auth: bool,
    pub fingerprint: Fingerprint,
}

impl CertInfo {
    /// The subject alternative names, as [`SubjectNames`].
    pub fn names(&self) -> SubjectNames {
        SubjectNames {
            dns: self.dns_names.clone(),
            ips: self.ips.clone(),
        }
    }
}

/// Reads the first certificate of a PEM file (a server chain's leaf).
pub fn read_cert(path: &Path) -> Result<CertInfo, TlsError> {
    let der = pem_to_der(&read(path)?).ok_or_else(|| TlsError::NoCertificates {
        path: path.to_path_buf(),
    })?;
    inspect(&der).map_err(|reason| TlsError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses a DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertInfo, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let ts = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    let mut info = CertInfo {
        not_before: ts(cert.validity().not_before),
        not_after: ts(cert.validity().not_after),
        dns_names: Vec::new(),
        ips: Vec::new(),
        is_ca: cert.is_ca(),
        server_auth: false,
        fingerprint: Fingerprint::of_der(der),
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => info.dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => info
                        .ips
                        .push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                    16 => info
                        .ips
                        .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        info.server_auth = eku.value.server_auth;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(hosts: &[&str]) -> SubjectNames {
        let mut n = SubjectNames::default();
        for h in hosts {
            n.add_host(h).unwrap();
        }
        n
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn issues_a_ca_and_a_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let issued = issue(
            dir.path(),
            &names(&["registry.local", "192.168.1.10", "::1"]),
            30,
            false,
        )
        .unwrap();
        assert!(issued.ca_created);

        let ca_der = pem_to_der(&fs::read_to_string(dir.path().join(CA_CERT)).unwrap()).unwrap();
        let ca = inspect(&ca_der).unwrap();
        assert!(ca.is_ca);
        assert_eq!(ca.fingerprint, issued.ca_fingerprint);

        let chain = fs::read_to_string(dir.path().join(SERVER_CERT)).unwrap();
        assert_eq!(
            chain.matches("BEGIN CERTIFICATE").count(),
            2,
            "server cert + CA"
        );
        let leaf = inspect(&pem_to_der(&chain).unwrap()).unwrap();
        assert!(!leaf.is_ca);
        assert!(leaf.server_auth);
        assert_eq!(leaf.dns_names, vec!["registry.local"]);
        assert_eq!(
            leaf.ips,
            vec![
                "192.168.1.10".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        let days = (leaf.not_after - OffsetDateTime::now_utc()).whole_days();
        assert!((29..=30).contains(&days), "{days}");
        assert!(leaf.not_before < OffsetDateTime::now_utc());
        let key = fs::read_to_string(dir.path().join(SERVER_KEY)).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.path().join(CA_KEY)), 0o600);
            assert_eq!(mode(&dir.path().join(SERVER_KEY)), 0o600);
            assert_eq!(mode(&dir.path().join(CA_CERT)), 0o644);
        }
    }

    #[test]
    fn reissuing_keeps_the_ca_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let first = issue(dir.path(), &names(&["a.local"]), 30, false).unwrap();
        let second = issue(dir.path(), &names(&["b.local"]), 30, false).unwrap();
        assert!(!second.ca_created);
        assert_eq!(first.ca_fingerprint, second.ca_fingerprint);
        let leaf = inspect(
            &pem_to_der(&fs::read_to_string(dir.path().join(SERVER_CERT)).unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(leaf.dns_names, vec!["b.local"]);
        let third = issue(dir.path(), &names(&["b.local"]), 30, true).unwrap();
        assert!(third.ca_created);
        assert_ne!(first.ca_fingerprint, third.ca_fingerprint);
    }

    #[test]
    fn ca_without_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        issue(dir.path(), &names(&["a.local"]), 30, false).unwrap();
        fs::remove_file(dir.path().join(CA_KEY)).unwrap();
        assert!(matches!(
            issue(dir.path(), &names(&["a.local"]), 30, false),
            Err(TlsError::CaKeyMissing { .. })
        ));
    }

    #[test]
    fn fingerprint_formats() {
        let f = Fingerprint([0xab; 32]);
        assert!(f.colon_hex().starts_with("AB:AB:"));
        assert_eq!(f.colon_hex().len(), 95);
    }
}
