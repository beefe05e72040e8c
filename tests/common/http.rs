//! Blocking HTTP helpers for tests (reqwest on a per-call tokio runtime).
//! Only for 127.0.0.0/8; proxies from the environment are ignored.

use std::time::Duration;

use reqwest::header::HeaderMap;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A whole HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
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

fn try_http_request(
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
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("client: {e}"))?;
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
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| format!("body: {e:?}"))?;
        Ok(HttpResponse {
            status,
            headers,
            body: body.to_vec(),
        })
    })
}
