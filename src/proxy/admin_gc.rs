//! `/gc` on the admin listener: `POST /gc` runs one garbage collection
//! through [`Registry::try_gc`] and answers its report as JSON (`dry_run`,
//! `untagged` and `grace` in the query); `GET /gc` answers the last report.
//! One collection at a time: a POST while one runs (also a scheduled one)
//! answers 409 at once.

use http::header::{HeaderValue, ALLOW};
use http::{Method, Response, StatusCode};

use crate::config::parse_duration;
use crate::oci::response::{self, Body};
use crate::registry::gc::GcOptions;
use crate::registry::Registry;

/// The methods `/gc` answers.
const ALLOWED: &str = "GET, HEAD, POST";

/// Answers a request for `/gc`. `defaults` are the settings of `gc:` in
/// proxy.yaml (the grace period; `untagged` as for scheduled runs is not
/// taken: the query says).
pub async fn handle(
    registry: &Registry,
    defaults: GcOptions,
    method: &Method,
    query: Option<&str>,
) -> Response<Body> {
    match *method {
        Method::GET | Method::HEAD => last(registry),
        Method::POST => match options(defaults, query) {
            Ok(o) => run(registry, o).await,
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                &e,
                "POST /gc takes dry_run=true|false, untagged=true|false and grace=DURATION (e.g. 1h, 0s)",
            ),
        },
        _ => {
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("/gc does not answer {method}"),
                "POST /gc runs a collection, GET /gc shows the last report",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOWED));
            r
        }
    }
}

fn last(registry: &Registry) -> Response<Body> {
    match registry.last_gc_report() {
        Some(report) => report_json(&report),
        None => error(
            StatusCode::NOT_FOUND,
            "no garbage collection has run since the server started",
            "POST /gc runs one (POST /gc?dry_run=true only reports what it would free)",
        ),
    }
}

async fn run(registry: &Registry, options: GcOptions) -> Response<Body> {
    // Its own task: a client that hangs up does not cut the collection
    // short, and its report is still kept for GET /gc.
    let registry = registry.clone();
    let task = tokio::spawn(async move { registry.try_gc(options).await });
    match task.await {
        Ok(Some(Ok(report))) => {
            tracing::info!(
                dry_run = options.dry_run,
                untagged = options.untagged,
                blobs = report.total.blobs,
                bytes = report.total.bytes,
                "gc requested on the admin listener: done"
            );
            report_json(&report)
        }
        Ok(None) => error(
            StatusCode::CONFLICT,
            "a garbage collection is already running",
            "wait for it to finish and retry; GET /gc then shows its report",
        ),
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "gc requested on the admin listener failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the garbage collection failed: {e}"),
                "check the data directory (see the server log); nothing was deleted after the failure",
            )
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the garbage collection did not finish: {e}"),
            "see the server log, then retry",
        ),
    }
}

/// The collection the query asks for.
fn options(defaults: GcOptions, query: Option<&str>) -> Result<GcOptions, String> {
    let mut o = GcOptions {
        dry_run: false,
        untagged: false,
        grace: defaults.grace,
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "dry_run" => o.dry_run = flag(&key, &value)?,
            "untagged" => o.untagged = flag(&key, &value)?,
            "grace" => o.grace = parse_duration(&value).map_err(|e| format!("grace: {e}"))?,
            other => return Err(format!("unknown query parameter {other:?}")),
        }
    }
    Ok(o)
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        v => Err(format!("{key}={v:?} is not true or false")),
    }
}

fn report_json(report: &crate::registry::gc::GcReport) -> Response<Body> {
    match serde_json::to_value(report) {
        Ok(v) => response::json(StatusCode::OK, &v),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot write the report as JSON: {e}"),
            "see the server log",
        ),
    }
}

fn error(status: StatusCode, message: &str, hint: &str) -> Response<Body> {
    response::json(
        status,
        &serde_json::json!({ "error": message, "hint": hint }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn query_options() {
        let d = GcOptions {
            dry_run: false,
            untagged: true,
            grace: Duration::from_secs(60),
        };
        let o = options(d, Some("dry_run=true&untagged=1&grace=0s")).unwrap();
        assert!(o.dry_run && o.untagged && o.grace.is_zero());
        let o = options(d, None).unwrap();
        assert!(!o.dry_run && !o.untagged && o.grace == d.grace);
        assert!(options(d, Some("dry_run=maybe"))
            .unwrap_err()
            .contains("maybe"));
        assert!(options(d, Some("force=1")).unwrap_err().contains("force"));
        assert!(options(d, Some("grace=soon")).is_err());
    }
}
