//! The operator's pages: garbage collection (the last report, a dry run,
//! then the real run) and "connect a machine" (the text `regproxy trust`
//! prints, for the host and port the browser used).

use maud::{html, Markup};

use super::layout::{csrf_field, page, Viewer};
use crate::registry::gc::{human_bytes, GcReport};
use crate::tls::certs::{pem_to_der, Fingerprint};
use crate::tls::names::host_port;
use crate::tls::trust;

fn report(r: &GcReport) -> Markup {
    let verb = if r.dry_run { "Would free" } else { "Freed" };
    html! {
        div.report #gc-report {
            p {
                strong { @if r.dry_run { "Dry run" } @else { "Collection" } }
                " started " (r.started) ", took " (r.duration_ms) " ms. "
                (verb) " " strong #gc-total { (r.total.blobs) " blob(s), " (human_bytes(r.total.bytes)) } "."
            }
            @if !r.repositories.is_empty() {
                table {
                    thead { tr { th { "Repository" } th { "Blobs" } th { "Bytes" } th { "Untagged manifests" } } }
                    tbody {
                        @for x in &r.repositories {
                            tr { td { (x.repository) } td { (x.blobs) } td { (human_bytes(x.bytes)) } td { (x.manifests) } }
                        }
                    }
                }
            }
            @if r.kept_young + r.kept_recent > 0 {
                p.hint {
                    "Kept " (r.kept_young) " unreferenced blob(s) younger than the grace period ("
                    (r.grace_secs) " s) and " (r.kept_recent) " referenced during the collection."
                }
            }
        }
    }
}

pub fn gc(viewer: &Viewer<'_>, last: Option<&GcReport>) -> Markup {
    page(
        "Garbage collection",
        viewer,
        html! {
            p {
                "Removes blobs no manifest needs (older than the grace period). "
                "Run a dry run first: it shows what would go and deletes nothing."
            }
            h2 { "Last result" }
            @match last {
                Some(r) => (report(r)),
                None => p #gc-none { "No collection has run since the server started." },
            }
            // A real run names the dry run it confirms; the server
            // refuses one that does not (not only this disabled button).
            @let confirms = last.filter(|r| r.dry_run).map(|r| r.started.as_str());
            div.actions {
                form.inline method="post" action="/ui/gc" {
                    (csrf_field(viewer.csrf))
                    input type="hidden" name="mode" value="dry-run";
                    button #gc-dry-run type="submit" { "Dry run" }
                }
                form.inline method="post" action="/ui/gc" {
                    (csrf_field(viewer.csrf))
                    input type="hidden" name="mode" value="run";
                    @if let Some(started) = confirms {
                        input type="hidden" name="confirms" value=(started);
                        button.danger #gc-run type="submit" { "Collect garbage now" }
                    } @else {
                        button.danger #gc-run type="submit" disabled title="run a dry run first" { "Collect garbage now" }
                    }
                }
            }
        },
    )
}

/// `host` and `port` as the browser reached us.
pub fn connect(viewer: &Viewer<'_>, host: &str, port: u16, ca_pem: Option<&[u8]>) -> Markup {
    let hp = host_port(host, port);
    let fingerprint = ca_pem
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(pem_to_der)
        .map(|der| Fingerprint::of_der(&der));
    // The lines after the block and the login line: k3s, the OS store.
    let elsewhere = fingerprint.as_ref().map(|fp| {
        let text = trust::instructions(host, port, fp);
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Elsewhere"))
            .collect();
        lines.join("\n")
    });
    page(
        "Connect a machine",
        viewer,
        html! {
            @match &fingerprint {
                Some(fp) => {
                    p {
                        "This registry's certificates come from its own certificate authority. "
                        a #ca-download href="/ca.crt" download="regproxy-ca.crt" { "Download the CA certificate" }
                        " and check its SHA-256 fingerprint:"
                    }
                    p { code #fingerprint { (fp.colon_hex()) } }
                    p { (trust::HEADER) }
                    @let block = trust::commands(host, port, fp);
                    div.block {
                        pre #trust-commands { (block) }
                        button.copy type="button" data-copy=(block) { "Copy" }
                    }
                }
                None => {
                    p #no-ca {
                        "This server does not use the built-in certificate authority (its own certificate, or plain HTTP): "
                        "clients that trust its certificate's issuer need nothing more."
                    }
                }
            }
            h2 { "Log in" }
            @let login = format!("docker login {hp}");
            p.pull { code #login-line { (login) } button.copy type="button" data-copy=(login) { "Copy" } }
            p.hint { "podman and skopeo take the same: " code { "podman login " (hp) } }
            @if let Some(e) = &elsewhere {
                h2 { "Elsewhere" }
                pre #elsewhere { (e) }
            }
        },
    )
}
