//! Raw HTTP/1.1 over a socket (plain or TLS): one response read by its
//! `Content-Length`, a read to the server's close, and a request whose
//! head and body arrive in separate writes.

use super::*;

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Reads one `Content-Length`-framed response (bounded in time); `buf`
/// keeps bytes read past it.
pub async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    what: &str,
) -> RawResp {
    let read = async {
        let mut tmp = vec![0u8; 16 * 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: bad status line in {head:?}"));
                let resp = RawResp {
                    status,
                    head,
                    body: Vec::new(),
                };
                let len: usize = resp
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: no Content-Length in {:?}", resp.head));
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    return RawResp { body, ..resp };
                }
            }
            match s.read(&mut tmp).await {
                Ok(0) => panic!(
                    "{what}: connection closed before a complete response: {:?}",
                    String::from_utf8_lossy(buf)
                ),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(e) => panic!("{what}: read failed: {e}"),
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no response in time"))
}

/// Reads until the server closes; `Ok` for a clean close (TLS:
/// close_notify), `Err` with the error otherwise.
pub async fn read_to_close<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, String> {
    let mut rest = Vec::new();
    match tokio::time::timeout(TIMEOUT, s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => Ok(rest),
        Ok(Err(e)) => Err(format!("{e} ({:?})", e.kind())),
        Err(_) => Err("the server did not close the connection in time".into()),
    }
}

/// Sends a request head, waits so that it arrives as its own write, then
/// the body: the server may answer before it has the body.
pub async fn send_split<S: AsyncWrite + Unpin>(s: &mut S, head: &str, body: &[u8]) {
    s.write_all(head.as_bytes()).await.expect("write head");
    s.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    if !body.is_empty() {
        // The server may already have answered; a failed write shows up
        // in the answer checks below.
        let _ = s.write_all(body).await;
        let _ = s.flush().await;
    }
}
