//! One function per page: find the session, get the proof of what the
//! page reads or changes from the authorizer, ask the registry, render.
//!
//! Refusals are decided here once: no session -> the sign-in page; a
//! repository the user may not pull, or that does not exist -> the same
//! 404 page; an action the user may not do -> 403; a `POST` without the
//! session's CSRF token (the sign-in form: without the token of its
//! cookie) -> 403 with a page that says so.

use std::net::SocketAddr;

use http::request::Parts;
use http::{header, Method, Response, StatusCode};
use maud::Markup;

use super::layout::{not_found, problem, Viewer};
use super::route::{repo_path, Page, ASSETS};
use super::signin::{login_form, sign_in, sign_out};
use super::wire::{self, Form, SESSION_COOKIE};
use super::{admin, pages, Ui};
use crate::auth::session::Session;
use crate::auth::{AuthError, Authorized};
use crate::oci::names::{Reference, RepoName};
use crate::oci::response::Body;
use crate::oci::{Action, OciError, Route};
use crate::registry::RegistryError;

type Resp = Response<Body>;

/// What a page handler gets: the request, the session, who is looking.
pub(super) struct Ctx<'a> {
    pub(super) ui: &'a Ui<'a>,
    pub(super) parts: &'a Parts,
    pub(super) session: &'a Session,
    pub(super) viewer: Viewer<'a>,
    pub(super) peer: SocketAddr,
}

pub async fn dispatch(ui: &Ui<'_>, parts: &Parts, form: Option<Form>, peer: SocketAddr) -> Resp {
    let page = Page::parse(parts.uri.path());
    let m = &parts.method;
    let read = m == Method::GET || m == Method::HEAD;
    match (&page, read) {
        (Page::Asset(name), true) => {
            return ASSETS.iter().find(|(n, _, _)| n == name).map_or_else(
                || nf(&Viewer::NOBODY),
                |(_, ct, text)| wire::asset(ct, text),
            )
        }
        (Page::NotFound, _) => return nf(&Viewer::NOBODY),
        (Page::Login, false) if m == Method::POST => return sign_in(ui, parts, form, peer).await,
        _ if !read && m != Method::POST => {
            return wire::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "the web UI takes GET and POST only",
            )
        }
        _ => {}
    }
    let mut new_cookie = None;
    let session = match wire::cookie(&parts.headers, SESSION_COOKIE) {
        Some(c) => match ui.authorizer.session(c).await {
            Ok(s) => s,
            Err(e) => return auth_problem(&Viewer::NOBODY, e),
        },
        None => None,
    };
    let session = match session {
        Some(s) => Some(s),
        None => ui.authorizer.anonymous_session().map(|started| {
            new_cookie = Some(wire::set_cookie(
                SESSION_COOKIE,
                &started.cookie_value,
                started.max_age,
                ui.secure,
            ));
            started.session
        }),
    };
    let Some(session) = session else {
        return match (&page, read) {
            (Page::Login, _) => login_form(ui, "", None, StatusCode::OK),
            (Page::Connect, _) => connect(ui, parts, &Viewer::NOBODY),
            (_, true) => wire::redirect("/ui/login"),
            (_, false) => csrf_refused(&Viewer::NOBODY),
        };
    };
    let ctx = Ctx {
        ui,
        parts,
        session: &session,
        viewer: Viewer {
            user: session.user(),
            csrf: Some(session.csrf_token()),
            admin: ui.authorizer.is_admin(&session),
        },
        peer,
    };
    let mut resp = if read {
        match page {
            Page::Login | Page::Logout => wire::redirect("/ui/"),
            Page::Catalog => catalog(&ctx).await,
            Page::Repo(repo) => repository(&ctx, repo).await,
            Page::Manifest(repo, r) => manifest(&ctx, repo, r).await,
            Page::Delete(repo, r) => confirm_delete(&ctx, repo, r).await,
            Page::Gc => gc_page(&ctx),
            Page::Connect => connect(ui, parts, &ctx.viewer),
            Page::Asset(_) | Page::NotFound => nf(&ctx.viewer),
        }
    } else {
        let form = form.unwrap_or_else(Form::empty);
        if !session.csrf_matches(form.get("csrf").unwrap_or("")) {
            return csrf_refused(&ctx.viewer);
        }
        match page {
            Page::Logout => sign_out(&ctx),
            Page::Delete(repo, r) => delete(&ctx, repo, r).await,
            Page::Gc => gc_run(&ctx, &form).await,
            _ => wire::plain(StatusCode::METHOD_NOT_ALLOWED, "this page takes GET only"),
        }
    };
    if let Some(c) = new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Some(user) = session.user() {
        resp.extensions_mut()
            .insert(super::SignedIn(user.to_string()));
    }
    resp
}

pub(super) fn nf(viewer: &Viewer<'_>) -> Resp {
    wire::html(StatusCode::NOT_FOUND, not_found(viewer))
}

pub(super) fn csrf_refused(viewer: &Viewer<'_>) -> Resp {
    wire::html(
        StatusCode::FORBIDDEN,
        problem(
            "Form refused",
            viewer,
            "This form's security token is missing or does not belong to your session, so nothing was changed.",
            "go back, reload the page and submit the form again; sign in again if your session has ended",
        ),
    )
}

/// The page for an authorization refusal.
pub(super) fn auth_problem(viewer: &Viewer<'_>, e: AuthError) -> Resp {
    match e {
        AuthError::Route(OciError::MethodNotAllowed { .. }) => wire::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "this page does not take that method",
        ),
        AuthError::Route(_) => nf(viewer),
        AuthError::Unauthorized { .. } => wire::redirect("/ui/login"),
        AuthError::Denied { action, .. } => wire::html(
            StatusCode::FORBIDDEN,
            problem(
                "Not allowed",
                viewer,
                &format!("You may not {action} in this repository."),
                "ask an administrator for the permission (the access rules in proxy.yaml)",
            ),
        ),
        AuthError::TooManyAttempts { .. } | AuthError::UnsupportedGrant => wire::plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins; try again later",
        ),
        AuthError::Unavailable(_) => wire::html(
            StatusCode::SERVICE_UNAVAILABLE,
            problem(
                "Sign-in unavailable",
                viewer,
                "The authentication service (the LDAP directory) does not answer.",
                "try again in a minute; tell the registry's operator if it persists",
            ),
        ),
    }
}

fn registry_problem(viewer: &Viewer<'_>, e: RegistryError) -> Resp {
    if !e.is_server_fault() {
        return nf(viewer);
    }
    tracing::error!(error = %e, "web UI: reading the registry failed");
    wire::html(
        StatusCode::INTERNAL_SERVER_ERROR,
        problem(
            "Storage error",
            viewer,
            "The registry could not read its storage.",
            "see the server log for the cause (disk, permissions)",
        ),
    )
}

/// Why a page stops before it renders.
enum Stop {
    Auth(AuthError),
    Registry(RegistryError),
}

impl Ctx<'_> {
    fn refuse(&self, stop: Stop) -> Resp {
        match stop {
            Stop::Auth(e) => auth_problem(&self.viewer, e),
            Stop::Registry(e) => registry_problem(&self.viewer, e),
        }
    }
}

fn authorize(ctx: &Ctx<'_>, route: Route, method: &Method) -> Result<Authorized, Stop> {
    (ctx.ui.authorizer)
        .authorize_session(route, method, ctx.session, ctx.peer.ip())
        .map_err(Stop::Auth)
}

/// `host:port` as the browser reached us, for `docker pull` lines.
fn authority(parts: &Parts) -> Option<http::uri::Authority> {
    parts.uri.authority().cloned().or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.parse().ok())
    })
}

fn host_of(parts: &Parts) -> String {
    authority(parts).map_or_else(|| "REGISTRY".to_string(), |a| a.to_string())
}

fn query(parts: &Parts, key: &str) -> String {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn catalog(ctx: &Ctx<'_>) -> Resp {
    let access = match authorize(ctx, Route::Catalog, &Method::GET) {
        Ok(a) => a,
        Err(stop) => return ctx.refuse(stop),
    };
    let q = query(ctx.parts, "q");
    match ctx.ui.registry.browse_catalog(&access).await {
        Ok(mut repos) => {
            let needle = q.trim().to_lowercase();
            repos.retain(|r| r.contains(&needle));
            wire::html(
                StatusCode::OK,
                pages::catalog(&ctx.viewer, &repos, q.trim()),
            )
        }
        Err(e) => registry_problem(&ctx.viewer, e),
    }
}

async fn repository(ctx: &Ctx<'_>, repo: RepoName) -> Resp {
    let may_delete = ctx
        .ui
        .authorizer
        .session_may(ctx.session, &repo, Action::Delete);
    let access = match authorize(ctx, Route::Tags(repo), &Method::GET) {
        Ok(a) => a,
        Err(stop) => return ctx.refuse(stop),
    };
    // Only a tag or digest is echoed: a link cannot make the page say
    // anything else.
    let deleted = query(ctx.parts, "deleted");
    let notice = (deleted.parse::<Reference>().ok()).map(|r| format!("Deleted {r}."));
    match ctx.ui.registry.browse_repository(&access).await {
        Ok(view) => {
            let host = host_of(ctx.parts);
            let p = pages::RepoPage {
                view: &view,
                host: &host,
                may_delete,
                notice: notice.as_deref(),
            };
            wire::html(StatusCode::OK, pages::repo(&ctx.viewer, &p))
        }
        Err(e) => registry_problem(&ctx.viewer, e),
    }
}

async fn manifest(ctx: &Ctx<'_>, repo: RepoName, r: Reference) -> Resp {
    let may_delete = ctx
        .ui
        .authorizer
        .session_may(ctx.session, &repo, Action::Delete);
    let access = match authorize(ctx, Route::Manifest(repo.clone(), r), &Method::GET) {
        Ok(a) => a,
        Err(stop) => return ctx.refuse(stop),
    };
    match ctx.ui.registry.browse_manifest(&access).await {
        Ok(view) => {
            let page = pages::manifest(
                &ctx.viewer,
                repo.as_str(),
                &view,
                &host_of(ctx.parts),
                may_delete,
            );
            wire::html(StatusCode::OK, page)
        }
        Err(e) => registry_problem(&ctx.viewer, e),
    }
}

/// Checks that the manifest is there and visible (404 otherwise), then
/// that the user may delete it (403 otherwise): the proof for the delete.
async fn may_delete(ctx: &Ctx<'_>, repo: &RepoName, r: &Reference) -> Result<Authorized, Stop> {
    let pull = authorize(ctx, Route::Manifest(repo.clone(), r.clone()), &Method::GET)?;
    if let Err(e) = ctx.ui.registry.browse_manifest(&pull).await {
        return Err(Stop::Registry(e));
    }
    authorize(
        ctx,
        Route::Manifest(repo.clone(), r.clone()),
        &Method::DELETE,
    )
}

async fn confirm_delete(ctx: &Ctx<'_>, repo: RepoName, r: Reference) -> Resp {
    match may_delete(ctx, &repo, &r).await {
        Ok(_) => wire::html(
            StatusCode::OK,
            pages::confirm_delete(&ctx.viewer, repo.as_str(), &r.to_string()),
        ),
        Err(stop) => ctx.refuse(stop),
    }
}

async fn delete(ctx: &Ctx<'_>, repo: RepoName, r: Reference) -> Resp {
    let access = match may_delete(ctx, &repo, &r).await {
        Ok(a) => a,
        Err(stop) => return ctx.refuse(stop),
    };
    match ctx.ui.registry.delete_manifest(&access).await {
        Ok(()) => {
            tracing::info!(
                target: "regproxy::audit",
                event = "ui_delete",
                peer = %ctx.peer,
                user = ctx.session.user().unwrap_or(""),
                repository = %repo,
                reference = %r,
                "deleted in the web UI"
            );
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("deleted", &r.to_string())
                .finish();
            wire::redirect(&format!("{}?{q}", repo_path(repo.as_str())))
        }
        Err(e) => registry_problem(&ctx.viewer, e),
    }
}

fn admins_only(ctx: &Ctx<'_>) -> Option<Resp> {
    (!ctx.viewer.admin).then(|| {
        wire::html(
            StatusCode::FORBIDDEN,
            problem(
                "Not allowed",
                &ctx.viewer,
                "Only administrators may collect garbage.",
                "ask an administrator (access.admins in proxy.yaml)",
            ),
        )
    })
}

fn gc_page(ctx: &Ctx<'_>) -> Resp {
    if let Some(r) = admins_only(ctx) {
        return r;
    }
    let last = ctx.ui.registry.last_gc_report();
    wire::html(StatusCode::OK, admin::gc(&ctx.viewer, last.as_ref()))
}

async fn gc_run(ctx: &Ctx<'_>, form: &Form) -> Resp {
    if let Some(r) = admins_only(ctx) {
        return r;
    }
    let dry_run = match form.get("mode") {
        Some("dry-run") => true,
        Some("run") => false,
        _ => {
            return wire::plain(
                StatusCode::BAD_REQUEST,
                "mode must be dry-run or run; hint: use the page's buttons",
            )
        }
    };
    let options = crate::registry::gc::GcOptions {
        dry_run,
        ..ctx.ui.gc
    };
    let access = match authorize(ctx, Route::Base, &Method::GET) {
        Ok(a) => a,
        Err(stop) => return ctx.refuse(stop),
    };
    let confirms = form.get("confirms").unwrap_or("");
    match ctx.ui.registry.gc_for(&access, options, confirms).await {
        Ok(None) => wire::html(
            StatusCode::CONFLICT,
            problem(
                "Dry run first",
                &ctx.viewer,
                "A collection runs only to confirm the dry run shown just before it, and this is not the last result (no dry run yet, or a newer collection since): run a dry run first. Nothing was deleted.",
                "press Dry run on the garbage collection page, check what it would free, then press Collect garbage now",
            ),
        ),
        Ok(Some(_)) => {
            tracing::info!(target: "regproxy::audit", event = "ui_gc", peer = %ctx.peer, user = ctx.session.user().unwrap_or(""), dry_run, "garbage collection from the web UI");
            wire::redirect("/ui/gc")
        }
        Err(e) => registry_problem(&ctx.viewer, e),
    }
}

fn connect(ui: &Ui<'_>, parts: &Parts, viewer: &Viewer<'_>) -> Resp {
    let a = authority(parts);
    let host = a.as_ref().map_or("REGISTRY", |a| a.host());
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = a
        .as_ref()
        .and_then(|a| a.port_u16())
        .unwrap_or(if ui.secure { 443 } else { 80 });
    let page: Markup = admin::connect(viewer, host, port, ui.ca_pem.map(|b| b.as_ref()));
    wire::html(StatusCode::OK, page)
}
