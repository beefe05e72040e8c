//! The names a server certificate is for, and the name clients on the LAN
//! should use to reach this registry.
//!
//! Docker keys `/etc/docker/certs.d/` by the `HOST:PORT` the user types, so
//! the printed `docker login` line, the printed trust commands and the
//! certificate must all agree on one host: the listen address when one is
//! given, else a configured `tls.hosts` name, else the best LAN address of
//! this machine (a physical interface before a bridge, a private IPv4
//! address first), else `<hostname>.local` (mDNS).

use std::net::{IpAddr, SocketAddr};

use super::TlsError;

/// The names a server certificate is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl SubjectNames {
    /// Adds a host given on the command line: an IP address or a DNS name
    /// (a leading `*.` wildcard label is allowed).
    pub fn add_host(&mut self, host: &str) -> Result<(), TlsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.add_ip(ip);
            return Ok(());
        }
        let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if !valid_dns_name(&h) {
            return Err(TlsError::BadName(host.to_string()));
        }
        if !self.dns.contains(&h) {
            self.dns.push(h);
        }
        Ok(())
    }

    pub fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// Adds every name of `other` not already here, keeping this order first.
    pub fn merge(&mut self, other: &SubjectNames) {
        for d in &other.dns {
            if !self.dns.contains(d) {
                self.dns.push(d.clone());
            }
        }
        for ip in &other.ips {
            self.add_ip(*ip);
        }
    }

    /// This machine's names: its hostname, `<short hostname>.local` (the
    /// mDNS name a Raspberry Pi reaches it by), `localhost`, and the
    /// addresses of its interfaces.
    pub fn of_this_machine() -> SubjectNames {
        let mut n = SubjectNames::default();
        if let Some(local) = mdns_name() {
            let _ = n.add_host(&local);
        }
        // A hostname that is not a valid DNS name is left out.
        if let Ok(h) = gethostname::gethostname().into_string() {
            let _ = n.add_host(&h);
        }
        let _ = n.add_host("localhost");
        // Every address but link-local ones (which need a zone), loopback
        // included.
        if let Ok(ifaces) = if_addrs::get_if_addrs() {
            for i in ifaces.iter().filter(|i| !i.is_link_local()) {
                n.add_ip(i.ip());
            }
        }
        n.add_ip(IpAddr::from([127, 0, 0, 1]));
        n
    }

    /// Whether a client connecting to `host` accepts a certificate for
    /// these names (an address, a name, or a name under a `*.` wildcard).
    pub fn covers(&self, host: &str) -> bool {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns.iter().any(|d| match d.strip_prefix("*.") {
            Some(parent) => h
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *d == h,
        })
    }

    /// Every name and address, names first, for messages.
    pub fn list(&self) -> Vec<String> {
        self.dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }
}

/// A DNS name: labels of letters, digits and inner hyphens, 1-63
/// characters each, at most 253 in all; `*.` may start it.
fn valid_dns_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && name.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `<short hostname>.local`, the name mDNS (avahi) answers for this host.
pub fn mdns_name() -> Option<String> {
    let host = gethostname::gethostname().into_string().ok()?;
    let short = host.split('.').next()?.to_ascii_lowercase();
    (!short.is_empty() && short != "localhost" && valid_dns_name(&short))
        .then(|| format!("{short}.local"))
}

/// `HOST:PORT` as clients type it (IPv6 addresses in brackets).
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// The interface addresses other hosts may use: not loopback, not link-local.
fn interface_addresses() -> Vec<(String, IpAddr)> {
    let Ok(ifaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    ifaces
        .into_iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local())
        .map(|i| {
            let ip = i.ip();
            (i.name, ip)
        })
        .collect()
}

/// Bridges and tunnels of container runtimes and VMs: reachable from this
/// machine, rarely from the LAN.
fn is_virtual_interface(name: &str) -> bool {
    [
        "docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "podman", "lxc", "lxd", "tun",
        "tap", "vnet", "kube",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Lower is better: physical interfaces first, then private IPv4, other
/// IPv4, unique-local IPv6, other IPv6.
fn address_rank(iface: &str, ip: &IpAddr) -> (bool, u8) {
    let family = match ip {
        IpAddr::V4(v4) if v4.is_private() => 0,
        IpAddr::V4(_) => 1,
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => 2,
        IpAddr::V6(_) => 3,
    };
    (is_virtual_interface(iface), family)
}

/// The host clients should use, and the other names they could use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHosts {
    pub best: String,
    pub others: Vec<String>,
}

/// Chooses the host to print in the login line and the trust commands.
///
/// `listen` is the bound address; `preferred` the configured `tls.hosts`;
/// `cert` the names in the served certificate, when known. A specific
/// listen address is always the answer (the only one that reaches this
/// server); otherwise the first preferred name, LAN address or mDNS name
/// that the certificate covers.
pub fn client_hosts(
    listen: IpAddr,
    preferred: &SubjectNames,
    cert: Option<&SubjectNames>,
) -> ClientHosts {
    if !listen.is_unspecified() {
        return ClientHosts {
            best: listen.to_string(),
            others: Vec::new(),
        };
    }
    let mut lan = interface_addresses();
    // 0.0.0.0 accepts IPv4 only; [::] accepts both.
    lan.retain(|(_, ip)| listen.is_ipv6() || ip.is_ipv4());
    lan.sort_by_key(|(name, ip)| address_rank(name, ip));
    let mut candidates: Vec<String> = preferred.list();
    candidates.extend(lan.iter().map(|(_, ip)| ip.to_string()));
    candidates.extend(mdns_name());
    if let Ok(h) = gethostname::gethostname().into_string() {
        candidates.push(h.to_ascii_lowercase());
    }
    let mut seen = Vec::new();
    candidates.retain(|c| {
        let new = !seen.contains(c);
        seen.push(c.clone());
        new
    });
    let covered: Vec<String> = candidates
        .iter()
        .filter(|c| cert.is_none_or(|n| n.covers(c)))
        .cloned()
        .collect();
    let mut usable = if covered.is_empty() {
        // The certificate names none of them: fall back to its own names.
        cert.map(|n| {
            n.list()
                .into_iter()
                .filter(|c| {
                    c != "localhost" && !c.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                })
                .collect()
        })
        .unwrap_or_default()
    } else {
        covered
    };
    if usable.is_empty() {
        usable.push("localhost".into());
    }
    let best = usable.remove(0);
    ClientHosts {
        best,
        others: usable,
    }
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

    #[test]
    fn dns_names_are_checked() {
        let mut n = SubjectNames::default();
        for ok in [
            "registry.local",
            "a-b.c",
            "*.example.com",
            "REG.Local.",
            "localhost",
        ] {
            n.add_host(ok).unwrap_or_else(|_| panic!("{ok}"));
        }
        assert!(n.dns.contains(&"reg.local".to_string()));
        for bad in [
            "bad name!",
            "",
            "-a.b",
            "a..b",
            "a_b",
            &"a".repeat(64),
            "*.",
        ] {
            assert!(n.add_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn this_machine_has_localhost_loopback_and_its_mdns_name() {
        let n = SubjectNames::of_this_machine();
        assert!(n.dns.contains(&"localhost".to_string()));
        assert!(n.ips.contains(&IpAddr::from([127, 0, 0, 1])));
        let v6_loopback = if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .any(|i| i.ip() == IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
        assert_eq!(
            n.ips.contains(&"::1".parse().unwrap()),
            v6_loopback,
            "{n:?}"
        );
        if let Some(local) = mdns_name() {
            assert!(local.ends_with(".local"));
            assert!(n.dns.contains(&local), "{n:?}");
        }
    }

    #[test]
    fn covers_names_addresses_and_wildcards() {
        let n = names(&["registry.local", "*.lan", "10.0.0.2", "::1"]);
        assert!(n.covers("registry.local"));
        assert!(n.covers("REGISTRY.local."));
        assert!(n.covers("pi.lan"));
        assert!(!n.covers("a.b.lan"));
        assert!(!n.covers("lan"));
        assert!(n.covers("10.0.0.2"));
        assert!(n.covers("[::1]"));
        assert!(!n.covers("10.0.0.3"));
        assert!(!n.covers("other.local"));
    }

    #[test]
    fn a_specific_listen_address_is_the_client_host() {
        let cert = names(&["registry.local"]);
        let h = client_hosts("10.1.2.3".parse().unwrap(), &cert, Some(&cert));
        assert_eq!(h.best, "10.1.2.3");
        assert!(h.others.is_empty());
    }

    #[test]
    fn on_every_interface_a_configured_name_in_the_certificate_wins() {
        let preferred = names(&["registry.local"]);
        let mut cert = SubjectNames::of_this_machine();
        cert.merge(&preferred);
        let h = client_hosts("0.0.0.0".parse().unwrap(), &preferred, Some(&cert));
        assert_eq!(h.best, "registry.local");
        assert!(!h.others.contains(&h.best));
        for o in &h.others {
            assert!(cert.covers(o), "{o} is not in the certificate");
        }
    }

    #[test]
    fn on_every_interface_without_preference_a_lan_address_or_mdns_name_wins() {
        let cert = SubjectNames::of_this_machine();
        let h = client_hosts(
            "0.0.0.0".parse().unwrap(),
            &SubjectNames::default(),
            Some(&cert),
        );
        assert!(cert.covers(&h.best), "{h:?}");
        assert_ne!(h.best, "localhost");
        if let Ok(ip) = h.best.parse::<IpAddr>() {
            assert!(ip.is_ipv4() && !ip.is_loopback(), "{h:?}");
        }
    }

    #[test]
    fn address_ranking_prefers_physical_private_ipv4() {
        let mut v = [
            ("docker0", "172.17.0.1"),
            ("eth0", "fd00::2"),
            ("eth0", "203.0.113.5"),
            ("wlan0", "192.168.1.10"),
        ]
        .map(|(n, ip)| (n.to_string(), ip.parse::<IpAddr>().unwrap()));
        v.sort_by_key(|(n, ip)| address_rank(n, ip));
        let order: Vec<String> = v.iter().map(|(_, ip)| ip.to_string()).collect();
        assert_eq!(
            order,
            ["192.168.1.10", "203.0.113.5", "fd00::2", "172.17.0.1"]
        );
    }

    #[test]
    fn host_port_brackets_ipv6() {
        assert_eq!(host_port("::1", 5000), "[::1]:5000");
        assert_eq!(host_port("10.0.0.1", 5000), "10.0.0.1:5000");
        assert_eq!(host_port("registry.local", 5000), "registry.local:5000");
    }
}
