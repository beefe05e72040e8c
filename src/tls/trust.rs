//! What to paste on a client so it trusts the registry's CA: one block of
//! shell that downloads the CA from the server, refuses it loudly unless
//! its fingerprint is the one printed, and installs it for Docker,
//! podman/buildah/skopeo and containerd, as root or through sudo; then the
//! `docker login` line, and where k3s and the OS store want the file.
//!
//! The fingerprint is written one way everywhere: SHA-256 of the DER bytes
//! as `AB:CD:...`, as `openssl x509 -fingerprint -sha256` prints it.

use std::fmt::Write;

use super::certs::Fingerprint;
use super::names::host_port;

/// The header line before the commands (tests find the block by it).
pub const HEADER: &str = "On each client (a Raspberry Pi too), paste this into a shell, as root or as a user with sudo; \
it installs the CA for Docker, podman/skopeo and containerd only if its fingerprint matches:";

/// The directories clients read a registry's CA from, keyed by `HOST:PORT`.
pub const CLIENT_CERT_DIRS: [&str; 3] = [
    "/etc/docker/certs.d",
    "/etc/containers/certs.d",
    "/etc/containerd/certs.d",
];

/// The shell block that trusts the CA of the registry at `host:port`.
/// It runs in a subshell, so `set -e` and `exit` never end the user's shell.
pub fn commands(host: &str, port: u16, fp: &Fingerprint) -> String {
    let hp = host_port(host, port);
    let mut s = String::new();
    let mut line = |l: &str| {
        let _ = writeln!(s, "  {l}");
    };
    line("(");
    line("  set -e");
    line("  SUDO=; [ \"$(id -u)\" = 0 ] || SUDO=sudo");
    line("  ca=$(mktemp)");
    line(&format!("  curl -fsSk https://{hp}/ca.crt -o \"$ca\""));
    line("  fp=$(sed '/-----/d' \"$ca\" | base64 -d | sha256sum | cut -c1-64 | tr a-f A-F | sed 's/../&:/g; s/:$//')");
    line(&format!(
        "  if [ \"$fp\" != {} ]; then echo \"fingerprint mismatch, not trusting https://{hp}/ca.crt (SHA-256 $fp)\" >&2; rm -f \"$ca\"; exit 1; fi",
        fp.colon_hex()
    ));
    for dir in CLIENT_CERT_DIRS {
        line(&format!(
            "  $SUDO install -D -m 0644 \"$ca\" {dir}/{hp}/ca.crt"
        ));
    }
    line("  rm -f \"$ca\"");
    line(&format!("  echo \"trusted the CA of {hp}\""));
    line(")");
    s
}

/// Everything a client needs: the fingerprint, the commands, the login
/// line and the other places a CA can go.
pub fn instructions(host: &str, port: u16, fp: &Fingerprint) -> String {
    let hp = host_port(host, port);
    let mut s = String::new();
    let _ = writeln!(s, "CA fingerprint (SHA-256): {}", fp.colon_hex());
    let _ = writeln!(s, "{HEADER}");
    s.push_str(&commands(host, port, fp));
    let _ = writeln!(s, "Then log in with: docker login {hp}");
    let _ = writeln!(s, "Elsewhere, copy the same ca.crt (checked as above):");
    let _ = writeln!(
        s,
        "  k3s: /etc/rancher/k3s/regproxy-ca.crt, and in /etc/rancher/k3s/registries.yaml: \
         configs: {{\"{hp}\": {{tls: {{ca_file: /etc/rancher/k3s/regproxy-ca.crt}}}}}}"
    );
    let _ = writeln!(
        s,
        "  the OS store (curl, git): /usr/local/share/ca-certificates/regproxy-ca.crt, then run update-ca-certificates"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_client_and_one_host() {
        let fp = Fingerprint([0xab; 32]);
        let t = instructions("registry.local", 5000, &fp);
        for want in [
            "/etc/docker/certs.d/registry.local:5000/ca.crt",
            "/etc/containers/certs.d/registry.local:5000/ca.crt",
            "/etc/containerd/certs.d/registry.local:5000/ca.crt",
            "k3s",
            "update-ca-certificates",
            "https://registry.local:5000/ca.crt",
            "docker login registry.local:5000",
            &fp.colon_hex(),
        ] {
            assert!(t.contains(want), "missing {want}");
        }
        assert!(!t.contains(&"ab".repeat(32)), "one fingerprint format");
        assert!(!t.contains("sudo install"), "sudo only through $SUDO");
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let t = commands("fd00::2", 5000, &Fingerprint([1; 32]));
        assert!(t.contains("https://[fd00::2]:5000/ca.crt"), "{t}");
    }
}
