//! Early answers to requests whose body is still on the way (401, 404)
//! leave the connection usable for a second request, over TLS and plain
//! HTTP; a body too large to drain gets `Connection: close` and a clean
//! close (TLS close_notify).

use super::*;

/// A request the server answers before reading its body, on a server with
/// token logins: an unauthenticated `PUT` of a blob (401).
pub fn unauthenticated_put(host: &str, len: usize) -> String {
    format!(
        "PUT /v2/team/app/blobs/uploads/0b0d9f5e-0000-4000-8000-000000000000?digest={ZERO_DIGEST} HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// On one connection: a PUT whose body arrives after its head, answered
/// early (401, or 404 for an unknown upload), then a second request.
pub async fn early_answer_then_second_request<S>(mut conn: S, host: &str, unknown_upload: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let body = vec![7u8; 10 * 1024];
    let (head, status) = if unknown_upload {
        let h = format!(
            "PATCH /v2/team/app/blobs/uploads/0b0d9f5e-0000-4000-8000-000000000000 HTTP/1.1\r\n\
             Host: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        (h, 404)
    } else {
        (unauthenticated_put(host, body.len()), 401)
    };
    send_split(&mut conn, &head, &body).await;
    let mut buf = Vec::new();
    let first = read_response(&mut conn, &mut buf, "early answer").await;
    assert_eq!(first.status, status, "{}", first.head);
    assert!(
        String::from_utf8_lossy(&first.body).contains("\"errors\""),
        "an OCI error body: {:?}",
        first.body
    );
    assert_ne!(
        first.header("connection").as_deref(),
        Some("close"),
        "a small body is drained, the connection stays: {}",
        first.head
    );
    let second = format!("GET /v2/team/app/tags/list HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(second.as_bytes())
        .await
        .expect("the connection is still open for a second request");
    let r = read_response(&mut conn, &mut buf, "second request").await;
    assert!(
        r.status == 401 || r.status == 404,
        "second request answered: {}",
        r.head
    );
}

#[tokio::test]
async fn early_answers_keep_the_connection_usable_over_tls() {
    for challenge in ["token", "basic"] {
        let s = auth_server(challenge).await;
        let host = s.addr.to_string();
        let conn = s.connect_tls(Proto::Http1).await;
        early_answer_then_second_request(conn, &host, false).await;
    }
    let open = TlsServer::start("").await;
    let conn = open.connect_tls(Proto::Http1).await;
    early_answer_then_second_request(conn, &open.addr.to_string(), true).await;
}

#[tokio::test]
async fn early_answers_keep_the_connection_usable_over_plain_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    add_users(&dir.path().join("htpasswd"), &[ALICE]);
    let s =
        TlsServer::start_plain_in(dir, "auth:\n  htpasswd: htpasswd\n  challenge: basic\n").await;
    let conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    early_answer_then_second_request(conn, &s.addr.to_string(), false).await;
    let open = TlsServer::start_plain_in(tempfile::tempdir().unwrap(), "").await;
    let conn = tokio::net::TcpStream::connect(open.addr).await.unwrap();
    early_answer_then_second_request(conn, &open.addr.to_string(), true).await;
}

/// A body larger than the server drains: `Connection: close`, then a clean
/// close (TLS close_notify; plain: EOF).
#[tokio::test]
async fn early_answer_to_a_large_body_closes_cleanly() {
    let s = auth_server("token").await;
    let host = s.addr.to_string();
    let head = unauthenticated_put(&host, 4 * 1024 * 1024);
    let mut tls = s.connect_tls(Proto::Http1).await;
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut tls, &mut buf, "large PUT over TLS").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    read_to_close(&mut tls)
        .await
        .expect("a clean TLS close (close_notify)");

    let dir = tempfile::tempdir().expect("temp dir");
    add_users(&dir.path().join("htpasswd"), &[ALICE]);
    let plain = TlsServer::start_plain_in(dir, "auth:\n  htpasswd: htpasswd\n").await;
    let mut tcp = tokio::net::TcpStream::connect(plain.addr).await.unwrap();
    tcp.write_all(unauthenticated_put(&plain.addr.to_string(), 4 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut tcp, &mut buf, "large PUT over plain HTTP").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("connection").as_deref(),
        Some("close"),
        "{}",
        r.head
    );
    read_to_close(&mut tcp).await.expect("the server closes");
}
