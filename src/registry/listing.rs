//! Listing endpoints: `/v2/_catalog`, `/v2/<name>/tags/list` (both with
//! `n`/`last` pagination and a `Link` header) and the OCI 1.1 referrers API.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LINK};
use http::StatusCode;

use super::error::RegistryError;
use super::manifests::{ManifestDoc, MAX_MANIFEST_SIZE, OCI_INDEX};
use super::{HandlerResult, Registry, Request};
use crate::auth::Authorized;
use crate::oci::digest::Digest;
use crate::oci::names::RepoName;
use crate::oci::response::{self, header};
use crate::oci::OciError;

/// The most entries one page returns, whatever `n` asks for.
pub const MAX_PAGE: usize = 10_000;

/// One page of a sorted list, and whether more follow.
fn paginate(
    all: Vec<String>,
    req: &Request,
) -> Result<(Vec<String>, Option<usize>), RegistryError> {
    let n = match req.query.get("n") {
        Some(s) => Some(s.parse::<usize>().map_err(|_| {
            OciError::PaginationInvalid(format!("n={s:?} is not a non-negative number"))
        })?),
        None => None,
    };
    let last = req.query.get("last");
    let after: Vec<String> = match last {
        Some(last) => all.into_iter().filter(|x| x.as_str() > last).collect(),
        None => all,
    };
    let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let more = after.len() > limit;
    let page: Vec<String> = after.into_iter().take(limit).collect();
    Ok((page, more.then_some(limit)))
}

fn with_link(
    mut resp: http::Response<super::Body>,
    path: &str,
    page: &[String],
    next_n: Option<usize>,
) -> http::Response<super::Body> {
    if let (Some(n), Some(last)) = (next_n, page.last()) {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", last)
            .finish();
        resp.headers_mut()
            .insert(LINK, header(&format!("<{path}?{q}>; rel=\"next\"")));
    }
    resp
}

/// `GET /v2/_catalog`: the repositories this caller may pull.
pub async fn catalog(reg: &Registry, access: &Authorized, req: &Request) -> HandlerResult {
    let all: Vec<String> = reg
        .storage()
        .list_repositories()
        .await?
        .into_iter()
        .filter(|r| r.parse::<RepoName>().is_ok_and(|r| access.may_list(&r)))
        .collect();
    let (page, next) = paginate(all, req)?;
    let resp = response::json(StatusCode::OK, &serde_json::json!({ "repositories": page }));
    Ok(with_link(resp, "/v2/_catalog", &page, next))
}

/// `GET /v2/<name>/tags/list`
pub async fn tags(reg: &Registry, repo: &RepoName, req: &Request) -> HandlerResult {
    let all = reg
        .storage()
        .list_tags(repo)
        .await?
        .ok_or(OciError::NameUnknown)?;
    let (page, next) = paginate(all, req)?;
    let resp = response::json(
        StatusCode::OK,
        &serde_json::json!({ "name": repo.as_str(), "tags": page }),
    );
    Ok(with_link(
        resp,
        &format!("/v2/{repo}/tags/list"),
        &page,
        next,
    ))
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=...]`: an OCI image
/// index of the manifests whose `subject` is `digest`.
pub async fn referrers(
    reg: &Registry,
    repo: &RepoName,
    subject: &Digest,
    req: &Request,
) -> HandlerResult {
    let storage = reg.storage();
    if !storage.repository_exists(repo).await? {
        return Err(OciError::NameUnknown.into());
    }
    let filter = req.query.get("artifactType");
    let mut manifests = Vec::new();
    for d in storage.list_referrers(repo, subject).await? {
        // The index may outlive a manifest deleted behind our back.
        if !storage.manifest_linked(repo, &d).await? {
            continue;
        }
        let Some(bytes) = storage.read_small_blob(&d, MAX_MANIFEST_SIZE).await? else {
            continue;
        };
        let Ok(doc) = ManifestDoc::parse(&bytes) else {
            continue;
        };
        let artifact_type = doc.artifact_type().map(str::to_string);
        if filter.is_some() && filter != artifact_type.as_deref() {
            continue;
        }
        let mut desc = serde_json::json!({
            "mediaType": doc.effective_media_type(),
            "digest": d,
            "size": bytes.len(),
        });
        if let Some(t) = artifact_type {
            desc["artifactType"] = t.into();
        }
        if let Some(a) = doc.annotations {
            desc["annotations"] = a.into();
        }
        manifests.push(desc);
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    })
    .to_string();
    let mut resp = response::status(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, header(OCI_INDEX));
    h.insert(CONTENT_LENGTH, body.len().into());
    if filter.is_some() {
        h.insert("OCI-Filters-Applied", header("artifactType"));
    }
    *resp.body_mut() = response::full(body);
    Ok(resp)
}
