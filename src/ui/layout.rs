//! The frame around every page: title, navigation (with the sign-out
//! form and its CSRF token), and the error pages. Templates are maud
//! macros: every value inserted is HTML-escaped unless marked otherwise,
//! and nothing here marks one.

use maud::{html, Markup, DOCTYPE};

/// Who is looking, for the navigation.
pub struct Viewer<'a> {
    /// `None`: nobody signed in (or a server without logins).
    pub user: Option<&'a str>,
    /// The session's CSRF token, when there is a session.
    pub csrf: Option<&'a str>,
    pub admin: bool,
}

impl Viewer<'_> {
    pub const NOBODY: Viewer<'static> = Viewer {
        user: None,
        csrf: None,
        admin: false,
    };
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(token: Option<&str>) -> Markup {
    html! { input type="hidden" name="csrf" value=(token.unwrap_or("")); }
}

pub fn page(title: &str, viewer: &Viewer<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · regproxy" }
                link rel="stylesheet" href="/ui/assets/style.css";
                script src="/ui/assets/ui.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "regproxy" }
                    nav {
                        a href="/ui/" { "Repositories" }
                        a href="/ui/connect" { "Connect a machine" }
                        @if viewer.admin {
                            a href="/ui/gc" { "Garbage collection" }
                        }
                    }
                    div.who {
                        @if let Some(user) = viewer.user {
                            span #signed-in-as { "Signed in as " strong { (user) } }
                            form.inline method="post" action="/ui/logout" {
                                (csrf_field(viewer.csrf))
                                button #sign-out type="submit" { "Sign out" }
                            }
                        } @else if viewer.csrf.is_none() {
                            a href="/ui/login" { "Sign in" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page that says what went wrong and what to do.
pub fn problem(title: &str, viewer: &Viewer<'_>, message: &str, hint: &str) -> Markup {
    page(
        title,
        viewer,
        html! {
            p.problem #problem { (message) }
            p.hint { "Hint: " (hint) }
            p { a href="/ui/" { "Back to the repositories" } }
        },
    )
}

/// The same answer for a repository that does not exist and for one the
/// user may not pull, so a page never tells which.
pub fn not_found(viewer: &Viewer<'_>) -> Markup {
    problem(
        "Not found",
        viewer,
        "There is no such repository, tag or manifest here, or you may not see it.",
        "check the name; ask an administrator if you should have access",
    )
}
