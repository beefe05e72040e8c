//! `regproxy gen-cert`: a local CA (made once) and a server certificate
//! signed by it, then the fingerprint and the client trust commands.
//!
//! Re-issuing keeps the names the current certificate holds (a running
//! server reloads the new one, and clients using the old names must not
//! break), unless `--replace-names`; the final list is printed.

use std::path::PathBuf;

use super::CliError;
use crate::tls::{self, certs, SubjectNames, TlsError};

#[derive(Debug, clap::Args)]
pub struct GenCertArgs {
    /// DNS name (or IP address) clients use to reach the registry; repeatable
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// IP address clients use to reach the registry; repeatable
    #[arg(long = "ip", value_name = "ADDRESS")]
    ips: Vec<std::net::IpAddr>,
    /// Directory for ca.crt, ca.key, server.crt, server.key
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Validity of the server certificate, in days
    #[arg(long, default_value_t = certs::DEFAULT_SERVER_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Replace an existing CA (clients must then trust the new one)
    #[arg(long)]
    force: bool,
    /// Port clients use, for the printed trust commands
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Issue for exactly the names given, dropping those the current
    /// server certificate holds
    #[arg(long)]
    replace_names: bool,
}

pub fn run(args: GenCertArgs) -> Result<(), CliError> {
    let tls_err = |e: TlsError| CliError::new(e.to_string(), e.hint());
    let mut given = SubjectNames::default();
    for h in &args.hosts {
        given.add_host(h).map_err(tls_err)?;
    }
    for ip in &args.ips {
        given.add_ip(*ip);
    }
    let mut names = given.clone();
    let current = args.out.join(certs::SERVER_CERT);
    if !args.replace_names && current.exists() {
        let old = certs::read_cert(&current).map_err(|e| {
            CliError::new(
                e.to_string(),
                "give --replace-names to issue for only the names given",
            )
        })?;
        names.merge(&old.names());
    }
    let kept: Vec<String> = names
        .list()
        .into_iter()
        .filter(|n| !given.list().contains(n))
        .collect();
    let issued = certs::issue(&args.out, &names, args.days, args.force).map_err(tls_err)?;
    let dir = args.out.display();
    if issued.ca_created {
        println!("created a new CA:        {dir}/ca.crt (install on clients), {dir}/ca.key (keep private)");
    } else {
        println!("using the existing CA:   {dir}/ca.crt");
    }
    println!("server certificate:      {dir}/server.crt, {dir}/server.key");
    if !issued.names.dns.is_empty() {
        println!("  for names:             {}", issued.names.dns.join(", "));
    }
    if !issued.names.ips.is_empty() {
        let ips: Vec<String> = issued.names.ips.iter().map(|i| i.to_string()).collect();
        println!("  for addresses:         {}", ips.join(", "));
    }
    if !kept.is_empty() {
        println!(
            "  kept from the last one: {} (--replace-names drops them)",
            kept.join(", ")
        );
    }
    println!("  valid until:           {}", issued.not_after.date());
    println!();
    // The commands name the first host given, else the certificate's first.
    let host = given
        .list()
        .into_iter()
        .chain(issued.names.list())
        .next()
        .unwrap_or_else(|| "localhost".into());
    print!(
        "{}",
        tls::trust::instructions(&host, args.port, &issued.ca_fingerprint)
    );
    Ok(())
}
