//! The body types shared by every layer (requests stream in as a
//! [`ByteStream`], answers go out as a [`Body`]) and the response builders,
//! including the one that turns an [`OciError`] into its HTTP answer.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};

use super::error::OciError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A stream of bytes coming from a client (an upload body) or from storage.
pub type ByteStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>,
>;

/// Wraps any stream of byte chunks as a [`ByteStream`].
pub fn byte_stream<S, E>(s: S) -> ByteStream
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + Sync + 'static,
    E: Into<BoxError> + 'static,
{
    use futures_util::TryStreamExt;
    Box::pin(s.map_err(std::io::Error::other))
}

/// The body of every response regproxy sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn stream(s: ByteStream) -> Body {
    use futures_util::TryStreamExt;
    StreamBody::new(s.map_ok(hyper::body::Frame::data).map_err(BoxError::from)).boxed_unsync()
}

/// A response with a status and an empty body (`Content-Length: 0`).
pub fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// A JSON response.
pub fn json(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = Bytes::from(value.to_string());
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    *r.body_mut() = full(bytes);
    r
}

/// The one place a registry error becomes an HTTP answer.
pub fn error(err: &OciError) -> Response<Body> {
    let mut r = json(err.status(), &err.to_json());
    match err {
        OciError::RangeNotSatisfiable { size } => {
            r.headers_mut().insert(
                http::header::CONTENT_RANGE,
                header(&format!("bytes */{size}")),
            );
        }
        OciError::MethodNotAllowed { allow, .. } => {
            r.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        _ => {}
    }
    r
}

/// Header value from a string we built ourselves; falls back to an empty
/// value rather than panicking if it somehow holds a forbidden byte.
pub fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
