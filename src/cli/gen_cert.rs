//! `regproxy gen-cert`: a local CA (made once) and a server certificate
//! signed by it, then the fingerprint and the client trust commands.

use std::path::PathBuf;

use super::CliError;
use crate::tls::{self, certs};

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
}

pub fn run(args: GenCertArgs) -> Result<(), CliError> {
    let mut names = certs::SubjectNames::default();
    for h in &args.hosts {
        names
            .add_host(h)
            .map_err(|e| CliError::new(e.to_string(), e.hint()))?;
    }
    for ip in &args.ips {
        names.add_ip(*ip);
    }
    let issued = certs::issue(&args.out, &names, args.days, args.force)
        .map_err(|e| CliError::new(e.to_string(), e.hint()))?;
    let dir = args.out.display();
    if issued.ca_created {
        println!("created a new CA:        {dir}/ca.crt (install on clients), {dir}/ca.key (keep private)");
    } else {
        println!("using the existing CA:   {dir}/ca.crt");
    }
    println!("server certificate:      {dir}/server.crt, {dir}/server.key");
    println!("  for names:             {}", issued.names.dns.join(", "));
    if !issued.names.ips.is_empty() {
        let ips: Vec<String> = issued.names.ips.iter().map(|i| i.to_string()).collect();
        println!("  for addresses:         {}", ips.join(", "));
    }
    println!("  valid until:           {}", issued.not_after.date());
    println!();
    let host = issued
        .names
        .dns
        .first()
        .cloned()
        .or_else(|| issued.names.ips.first().map(|i| i.to_string()))
        .unwrap_or_else(|| "HOST".into());
    print!(
        "{}",
        tls::trust::instructions(&host, args.port, &issued.ca_fingerprint)
    );
    Ok(())
}
