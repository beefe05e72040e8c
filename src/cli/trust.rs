//! `regproxy trust --host NAME`: the commands that make a client trust this
//! registry's CA under the name it uses, read from the files as they are
//! (nothing is issued or changed). Warns when the server certificate does
//! not hold NAME, with the `gen-cert` command that adds it.

use std::path::{Path, PathBuf};

use super::CliError;
use crate::tls::{self, certs, SubjectNames, TlsMode};

#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// Name or address clients use to reach the registry, e.g. registry.local
    #[arg(long, value_name = "NAME")]
    host: String,
    /// Port clients use [default: the port of `listen` in the config]
    #[arg(long)]
    port: Option<u16>,
    /// Config file [default: ./proxy.yaml if it exists, else built-in defaults]
    #[arg(long, short, env = "REGPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Directory with ca.crt and server.crt (overrides tls.dir)
    #[arg(long, value_name = "DIR")]
    certs: Option<PathBuf>,
}

/// Where the CA clients trust and the served certificate are.
struct Files {
    ca: PathBuf,
    server: PathBuf,
    /// The directory `gen-cert --out` would write, for the built-in CA.
    dir: Option<PathBuf>,
}

pub fn run(args: TrustArgs) -> Result<(), CliError> {
    let config = super::config::load_or_default(args.config.as_deref())?;
    let mut check = SubjectNames::default();
    check
        .add_host(&args.host)
        .map_err(|e| CliError::new(e.to_string(), e.hint()))?;
    let files = locate(args.certs.as_deref(), &config.tls)?;
    let port = args.port.unwrap_or(config.listen.port());
    let ca_pem = std::fs::read_to_string(&files.ca).map_err(|e| {
        CliError::new(
            format!("cannot read the CA certificate {}: {e}", files.ca.display()),
            "start `regproxy serve` once (it makes the CA), or run: regproxy gen-cert --host NAME",
        )
    })?;
    let der = certs::pem_to_der(&ca_pem).ok_or_else(|| {
        CliError::new(
            format!("{} holds no PEM certificate", files.ca.display()),
            "restore the CA certificate, or make a new CA with: regproxy gen-cert --force --host NAME",
        )
    })?;
    let fingerprint = certs::Fingerprint::of_der(&der);
    let served =
        certs::read_cert(&files.server).map_err(|e| CliError::new(e.to_string(), e.hint()))?;
    let names = served.names();
    if !names.covers(&args.host) {
        let fix = match &files.dir {
            Some(dir) => format!(
                "add it (keeping the others) with: regproxy gen-cert --host {} --out {}",
                args.host,
                dir.display()
            ),
            None => "use a certificate that includes it (tls.cert)".to_string(),
        };
        eprintln!(
            "warning: {} is not in the server certificate {} (it holds {}), so clients will refuse it; {fix}",
            args.host,
            files.server.display(),
            names.list().join(", ")
        );
    }
    print!(
        "{}",
        tls::trust::instructions(&args.host, port, &fingerprint)
    );
    Ok(())
}

fn locate(certs_dir: Option<&Path>, mode: &TlsMode) -> Result<Files, CliError> {
    let auto = |dir: &Path| Files {
        ca: dir.join(certs::CA_CERT),
        server: dir.join(certs::SERVER_CERT),
        dir: Some(dir.to_path_buf()),
    };
    match (certs_dir, mode) {
        (Some(dir), _) => Ok(auto(dir)),
        (None, TlsMode::Auto { dir, .. }) => Ok(auto(dir)),
        (None, TlsMode::Files { cert, ca: Some(ca), .. }) => Ok(Files {
            ca: ca.clone(),
            server: cert.clone(),
            dir: None,
        }),
        (None, TlsMode::Files { cert, ca: None, .. }) => Err(CliError::new(
            format!(
                "the server uses your own certificate {} and no CA is configured",
                cert.display()
            ),
            "clients that trust its issuer need nothing; otherwise set tls.ca to the CA that signed it",
        )),
        (None, TlsMode::Disabled) => Err(CliError::new(
            "TLS is off in this configuration, so there is no CA to trust",
            "remove `tls: enabled: false` from the config, or give --certs DIR",
        )),
    }
}
