//! What to paste on a client so it trusts the registry's CA: Docker,
//! podman/buildah/skopeo, containerd/k3s and the OS store, including a
//! download from the server that checks the fingerprint before installing.

use std::fmt::Write;

use super::certs::Fingerprint;

/// Trust instructions for a registry reached as `host:port`.
pub fn instructions(host: &str, port: u16, fp: &Fingerprint) -> String {
    let hp = format!("{host}:{port}");
    let hex = fp.hex();
    let mut s = String::new();
    let _ = writeln!(s, "CA fingerprint (SHA-256): {}", fp.colon_hex());
    let _ = writeln!(s);
    let _ = writeln!(s, "On each client (a Raspberry Pi too), download the CA and install it only if the fingerprint matches:");
    let _ = writeln!(
        s,
        "  curl -fsSk https://{hp}/ca.crt -o /tmp/regproxy-ca.crt && \\\n  \
         test \"$(sed '/-----/d' /tmp/regproxy-ca.crt | base64 -d | sha256sum | cut -d' ' -f1)\" = {hex} && \\\n  \
         sudo install -D -m 0644 /tmp/regproxy-ca.crt /etc/docker/certs.d/{hp}/ca.crt && \\\n  \
         sudo install -D -m 0644 /tmp/regproxy-ca.crt /etc/containers/certs.d/{hp}/ca.crt && echo trusted"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Or copy ca.crt yourself to:");
    let _ = writeln!(
        s,
        "  Docker:                  /etc/docker/certs.d/{hp}/ca.crt   (no restart needed)"
    );
    let _ = writeln!(
        s,
        "  podman, buildah, skopeo: /etc/containers/certs.d/{hp}/ca.crt"
    );
    let _ = writeln!(s, "  containerd:              /etc/containerd/certs.d/{hp}/ca.crt, with hosts.toml: [host.\"https://{hp}\"] ca = \"/etc/containerd/certs.d/{hp}/ca.crt\"");
    let _ = writeln!(s, "  k3s:                     /etc/rancher/k3s/registries.yaml: configs: {{\"{hp}\": {{tls: {{ca_file: /etc/rancher/k3s/regproxy-ca.crt}}}}}}");
    let _ = writeln!(s, "  the OS store (curl, git): sudo cp ca.crt /usr/local/share/ca-certificates/regproxy-ca.crt && sudo update-ca-certificates");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_client() {
        let t = instructions("registry.local", 5000, &Fingerprint([1; 32]));
        for want in [
            "/etc/docker/certs.d/registry.local:5000/ca.crt",
            "/etc/containers/certs.d/registry.local:5000/ca.crt",
            "containerd",
            "k3s",
            "update-ca-certificates",
            "https://registry.local:5000/ca.crt",
            &"01".repeat(32),
        ] {
            assert!(t.contains(want), "missing {want}");
        }
    }
}
