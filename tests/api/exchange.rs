//! One request and its response: [`Call`] builds and sends it (the answer's
//! HTTP version is checked), [`Resp`] holds the whole answer and its checks
//! (status, headers, the OCI error JSON).
//!
//! Every `GET` sent through [`Call::send`] is repeated as `HEAD`, which must
//! answer the same status and headers, `Content-Length` included, with no
//! body.

use super::*;

/// A request being built.
pub struct Call {
    pub what: String,
    pub proto: Proto,
    pub builder: reqwest::RequestBuilder,
}

impl Call {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.builder = self.builder.body(bytes.into());
        self
    }

    /// A body of unknown length (`Transfer-Encoding: chunked` on HTTP/1.1).
    pub fn chunked(mut self, chunks: Vec<Vec<u8>>) -> Self {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        self.builder = self.builder.body(reqwest::Body::wrap_stream(stream));
        self
    }

    /// Sends the request; a `GET` is then repeated as `HEAD`, which must
    /// answer the same status and headers with no body.
    pub async fn send(self) -> Resp {
        let (client, req) = self.builder.build_split();
        let req = req.unwrap_or_else(|e| panic!("{}: bad request: {e}", self.what));
        let head = (req.method() == Method::GET).then(|| {
            let mut h = req.try_clone().expect("a GET without a streamed body");
            *h.method_mut() = Method::HEAD;
            h
        });
        let resp = execute(&client, req, self.what.clone(), self.proto).await;
        resp.check_api_version();
        if let Some(h) = head {
            let what = self.what.replacen("GET", "HEAD (after GET)", 1);
            let head = execute(&client, h, what, self.proto).await;
            head.check_same_as_get(&resp);
        }
        resp
    }
}

async fn execute(
    client: &reqwest::Client,
    req: reqwest::Request,
    what: String,
    proto: Proto,
) -> Resp {
    let r = client
        .execute(req)
        .await
        .unwrap_or_else(|e| panic!("{what}: transport error: {e:?}"));
    assert_eq!(r.version(), proto.version(), "{what}: HTTP version");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the body failed: {e}"))
        .to_vec();
    Resp {
        what,
        status,
        headers,
        body,
    }
}

/// A whole response.
pub struct Resp {
    pub what: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.text()))
    }

    /// Every answer, success or error, carries the API version header.
    #[track_caller]
    pub fn check_api_version(&self) {
        assert_eq!(
            self.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{}: Docker-Distribution-Api-Version missing (status {})",
            self.what,
            self.status
        );
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text()
        );
        self
    }

    #[track_caller]
    pub fn expect_header(&self, name: &str, value: &str) -> &Self {
        assert_eq!(
            self.header(name),
            Some(value),
            "{}: header {name} (status {}, body {})",
            self.what,
            self.status,
            self.text()
        );
        self
    }

    #[track_caller]
    pub fn expect_no_header(&self, name: &str) -> &Self {
        assert_eq!(
            self.header(name),
            None,
            "{}: header {name} must be absent",
            self.what
        );
        self
    }

    /// The OCI error JSON: `{"errors":[{"code":..., "message":...}]}` with
    /// codes of upper-case letters and `_`. Returns the first code.
    pub fn error_code(&self) -> Result<String, String> {
        let ct = self.header("content-type").unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(format!("Content-Type {ct:?} is not application/json"));
        }
        let v: Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.text()))?;
        let errors = v["errors"]
            .as_array()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| format!("no `errors` array: {v}"))?;
        for e in errors {
            let code = e["code"]
                .as_str()
                .ok_or_else(|| format!("error without a string `code`: {v}"))?;
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(format!("code {code:?} is not upper-case letters and `_`"));
            }
            if !(e["message"].is_string() || e["message"].is_null()) {
                return Err(format!("`message` is not a string: {v}"));
            }
        }
        Ok(errors[0]["code"].as_str().unwrap_or_default().to_string())
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        match self.error_code() {
            Ok(c) => assert_eq!(c, code, "{}: error code; body: {}", self.what, self.text()),
            Err(e) => panic!("{}: not an OCI error body: {e}", self.what),
        }
        self
    }

    /// For `HEAD`: the status, and no body.
    #[track_caller]
    pub fn expect_head_error(&self, status: u16) -> &Self {
        self.expect(status);
        assert!(
            self.body.is_empty(),
            "{}: HEAD answer has a body",
            self.what
        );
        self
    }

    /// A `HEAD` answer against the `GET` answer for the same request: same
    /// status, the same headers (`Date` aside), `Content-Length` of the
    /// GET body, and no body.
    #[track_caller]
    pub fn check_same_as_get(&self, get: &Resp) {
        assert_eq!(
            self.status, get.status,
            "{}: status differs from GET",
            self.what
        );
        assert!(
            self.body.is_empty(),
            "{}: HEAD answer has a body",
            self.what
        );
        if get.status == 405 {
            // Both refused; the message names the method each one used.
            assert_eq!(self.header("allow"), get.header("allow"), "{}", self.what);
            return;
        }
        for (name, value) in &get.headers {
            if name != "date" {
                assert_eq!(
                    self.headers.get_all(name).iter().collect::<Vec<_>>(),
                    get.headers.get_all(name).iter().collect::<Vec<_>>(),
                    "{}: header {name} differs from GET ({value:?})",
                    self.what
                );
            }
        }
        assert_eq!(
            self.header("content-length"),
            Some(get.body.len().to_string().as_str()),
            "{}: Content-Length is not the GET body's length",
            self.what
        );
        assert!(
            self.body.is_empty(),
            "{}: HEAD answer has a body",
            self.what
        );
    }

    pub fn location(&self) -> String {
        self.header("location")
            .unwrap_or_else(|| panic!("{}: no Location header", self.what))
            .to_string()
    }
}
