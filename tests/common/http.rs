//! Blocking HTTP helpers for tests (reqwest on a per-call tokio runtime).
//! Only for 127.0.0.0/8; proxies from the environment are ignored.
//! [`http_request_as`] speaks a chosen version on plain HTTP: HTTP/1.1, or
//! HTTP/2 with prior knowledge (h2c), as a Go client behind a TLS-ending
//! balancer would reach an instance.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::inproc::Proto;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A whole HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub version: reqwest::Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The header's value as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }
}

/// `GET url`; panics on a transport error.
pub fn http_get(url: &str) -> HttpResponse {
    http_request("GET", url, &[], None)
}

/// `GET url`, returning transport errors (used while waiting for a server).
pub fn try_http_get(url: &str) -> Result<HttpResponse, String> {
    try_http_request("GET", url, &[], None)
}

/// Sends one request; panics on a transport error (not on an HTTP error
/// status: tests assert on `status`).
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> HttpResponse {
    try_http_request(method, url, headers, body)
        .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"))
}

/// Like [`http_request`], over exactly `proto` on a plain `http://` URL
/// (HTTP/2 with prior knowledge); panics unless the answer came back over
/// that version.
pub fn http_request_as(
    proto: Proto,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> HttpResponse {
    let r = send(Some(proto), method, url, headers, body)
        .unwrap_or_else(|e| panic!("{method} {url} over {proto:?} failed: {e}"));
    assert_eq!(
        r.version,
        proto.version(),
        "{method} {url}: answered over {:?}",
        r.version
    );
    r
}

fn try_http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<HttpResponse, String> {
    send(None, method, url, headers, body)
}

fn send(
    proto: Option<Proto>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<HttpResponse, String> {
    // reqwest is built with rustls but no default crypto provider; plain
    // HTTP still needs one installed (a second install is a harmless error).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        let builder = match proto {
            None => builder,
            Some(Proto::Http1) => builder.http1_only(),
            Some(Proto::Http2) => builder.http2_prior_knowledge(),
        };
        let client = builder.build().map_err(|e| format!("client: {e}"))?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = client.request(method, url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| format!("body: {e:?}"))?;
        Ok(HttpResponse {
            status,
            version,
            headers,
            body: body.to_vec(),
        })
    })
}
