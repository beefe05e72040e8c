//! The browsing pages: sign-in, the repositories grouped by namespace
//! with a search box, a repository's tags, one manifest with its platforms
//! and referrers, and the delete confirmation. Pure functions from data to
//! escaped HTML.

use std::collections::BTreeMap;

use maud::{html, Markup};

use super::layout::{csrf_field, page, Viewer};
use super::route::{delete_path, manifest_path, repo_path};
use crate::registry::browse::{ManifestView, RepoView};
use crate::registry::gc::human_bytes;

pub fn login(login_csrf: &str, user: &str, message: Option<&str>) -> Markup {
    page(
        "Sign in",
        &Viewer::NOBODY,
        html! {
            @if let Some(m) = message {
                p.problem #problem { (m) }
            }
            form.login method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(login_csrf);
                label { "User" input #user type="text" name="user" value=(user) autocomplete="username" required autofocus; }
                label { "Password" input #password type="password" name="password" autocomplete="current-password" required; }
                button #sign-in type="submit" { "Sign in" }
            }
            p.hint { "The same user and password as for " code { "docker login" } "." }
        },
    )
}

/// The namespace a repository is listed under: its first component, or
/// none for a one-component name.
fn namespace(repo: &str) -> &str {
    repo.split_once('/').map_or("", |(ns, _)| ns)
}

pub fn catalog(viewer: &Viewer<'_>, repos: &[String], query: &str) -> Markup {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in repos {
        groups.entry(namespace(r)).or_default().push(r);
    }
    page(
        "Repositories",
        viewer,
        html! {
            form.search method="get" action="/ui/" {
                input #q type="search" name="q" value=(query) placeholder="Search repositories";
                button type="submit" { "Search" }
            }
            @if repos.is_empty() {
                p #empty {
                    @if query.is_empty() { "No repositories you may pull yet." }
                    @else { "No repository you may pull matches " code { (query) } "." }
                }
            }
            @for (ns, names) in &groups {
                section.namespace {
                    h2 { @if ns.is_empty() { "(top level)" } @else { (ns) "/" } }
                    ul.repos {
                        @for name in names {
                            li { a.repo href=(repo_path(name)) { (name) } }
                        }
                    }
                }
            }
        },
    )
}

/// The `docker pull` line, with a copy button.
fn pull_line(host: &str, repo: &str, reference: &str) -> Markup {
    let sep = if reference.contains(':') { "@" } else { ":" };
    let line = format!("docker pull {host}/{repo}{sep}{reference}");
    html! {
        span.pull {
            code { (line) }
            button.copy type="button" data-copy=(line) { "Copy" }
        }
    }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

pub struct RepoPage<'a> {
    pub view: &'a RepoView,
    pub host: &'a str,
    pub may_delete: bool,
    pub notice: Option<&'a str>,
}

pub fn repo(viewer: &Viewer<'_>, p: &RepoPage<'_>) -> Markup {
    let name = p.view.name.as_str();
    page(
        name,
        viewer,
        html! {
            @if let Some(n) = p.notice { p.notice #notice { (n) } }
            p.usage #usage {
                "Storage used: " strong { (human_bytes(p.view.bytes)) } " in " (p.view.blobs) " blob(s)"
            }
            @if p.view.tags.is_empty() {
                p #empty { "No tags." }
            } @else {
                table.tags #tags {
                    thead { tr { th { "Tag" } th { "Digest" } th { "Size" } th { "Created" } th { "Platforms" } th { "Pull" } @if p.may_delete { th {} } } }
                    tbody {
                        @for t in &p.view.tags {
                            @let tag = t.tag.as_deref().unwrap_or("");
                            tr.tag data-tag=(tag) {
                                td.nowrap {
                                    a href=(manifest_path(name, tag)) { (tag) }
                                    @if !t.referrers.is_empty() {
                                        " " span.badge title="signatures, SBOMs and other artifacts that refer to this manifest" {
                                            (t.referrers.len()) " referrer(s)"
                                        }
                                    }
                                }
                                td { code title=(t.digest) { (short(&t.digest.to_string())) } }
                                td.nowrap { (human_bytes(t.size)) }
                                td.nowrap { (t.created.as_deref().unwrap_or("")) }
                                td.platforms { @for pl in &t.platforms { span.platform { (pl.platform) } " " } @if let Some(one) = &t.platform { span.platform { (one) } } }
                                td { (pull_line(p.host, name, tag)) }
                                @if p.may_delete {
                                    td { a.danger href=(delete_path(name, tag)) { "Delete" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn manifest(
    viewer: &Viewer<'_>,
    repo: &str,
    m: &ManifestView,
    host: &str,
    may_delete: bool,
) -> Markup {
    let digest = &m.digest.to_string();
    let reference = m.tag.as_deref().unwrap_or(digest);
    let title = format!(
        "{repo}{}{reference}",
        if m.tag.is_some() { ":" } else { "@" }
    );
    page(
        &title,
        viewer,
        html! {
            p { a href=(repo_path(repo)) { "← " (repo) } }
            dl.facts {
                dt { "Digest" } dd { code #digest { (digest) } }
                dt { "Media type" } dd { code { (m.media_type) } }
                dt { "Size" } dd { (human_bytes(m.size)) " (" (m.size) " bytes)" }
                dt { "Created" } dd { (m.created.as_deref().unwrap_or("unknown")) }
                @if let Some(p) = &m.platform { dt { "Platform" } dd { span.platform { (p) } } }
                @if m.platforms.is_empty() { dt { "Layers" } dd { (m.layers) } }
                dt { "Pull" } dd { (pull_line(host, repo, reference)) br; (pull_line(host, repo, digest)) }
            }
            @if !m.platforms.is_empty() {
                h2 { "Platforms" }
                table #platforms {
                    thead { tr { th { "Platform" } th { "Digest" } th { "Size" } th { "Created" } } }
                    tbody {
                        @for pl in &m.platforms {
                            tr {
                                td { span.platform { (pl.platform) } }
                                td { a href=(manifest_path(repo, &pl.digest.to_string())) { code { (short(&pl.digest.to_string())) } } }
                                td.nowrap { (human_bytes(pl.size)) }
                                td.nowrap { (pl.created.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            h2 { "Referrers" }
            @if m.referrers.is_empty() {
                p { "None (no signatures or SBOMs refer to this manifest)." }
            } @else {
                table #referrers {
                    thead { tr { th { "Artifact type" } th { "Digest" } th { "Size" } } }
                    tbody {
                        @for r in &m.referrers {
                            tr {
                                td { (r.artifact_type.as_deref().unwrap_or("")) }
                                td { a href=(manifest_path(repo, &r.digest.to_string())) { code { (short(&r.digest.to_string())) } } }
                                td { (human_bytes(r.size)) }
                            }
                        }
                    }
                }
            }
            @if may_delete {
                h2 { "Delete" }
                p {
                    @if let Some(tag) = &m.tag { a.danger href=(delete_path(repo, tag)) { "Delete the tag " (tag) } " · " }
                    a.danger href=(delete_path(repo, digest)) { "Delete the manifest and all its tags" }
                }
            }
        },
    )
}

pub fn confirm_delete(viewer: &Viewer<'_>, repo: &str, reference: &str) -> Markup {
    let by_digest = reference.contains(':');
    page(
        "Delete?",
        viewer,
        html! {
            p #confirm-text {
                @if by_digest {
                    "Delete the manifest " code { (reference) } " of " strong { (repo) } " and every tag that points to it?"
                } @else {
                    "Delete the tag " strong { (repo) ":" (reference) } "? The manifest stays if other tags or digests refer to it."
                }
            }
            form method="post" action=(delete_path(repo, reference)) {
                (csrf_field(viewer.csrf))
                div.actions {
                    button.danger #confirm-delete type="submit" { "Delete" }
                    a href=(repo_path(repo)) { "Cancel" }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_pull_lines() {
        assert_eq!(namespace("team-a/app"), "team-a");
        assert_eq!(namespace("team-a/x/y"), "team-a");
        assert_eq!(namespace("tools"), "");
        let by_tag = pull_line("r.local:5000", "team-a/app", "1.0").into_string();
        assert!(
            by_tag.contains("docker pull r.local:5000/team-a/app:1.0"),
            "{by_tag}"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let by_digest = pull_line("r.local:5000", "team-a/app", &d).into_string();
        assert!(
            by_digest.contains(&format!("team-a/app@{d}")),
            "{by_digest}"
        );
    }

    #[test]
    fn what_users_type_is_escaped() {
        let page = catalog(&Viewer::NOBODY, &[], "<img src=x onerror=alert(1)>").into_string();
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
    }
}
