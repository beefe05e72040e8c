//! nginx serving a static file over TLS with the registries' certificate:
//! the ceiling for a static TLS download on this machine (a limit figure).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, tail_file, Proc};
use crate::servers::{Setup, NGINX, READY_TIMEOUT};
use crate::{Ctx, Res};

/// nginx serving `www/` over TLS (HTTP/2 and 1.1) with the registries'
/// certificate: the ceiling for a static TLS download on this machine.
/// Dropping it sends SIGTERM to the master (which stops its workers).
pub struct Nginx {
    proc: Proc,
    pub addr: SocketAddr,
}

impl Nginx {
    pub fn start(setup: &Setup, prefix: &Path) -> Res<Nginx> {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let p = prefix.display();
        let conf = format!(
            "worker_processes auto;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  \
             client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n  \
             fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n  \
             types {{ application/octet-stream bin; }}\n  \
             server {{\n    listen 127.0.0.1:{port} ssl http2;\n    \
             ssl_certificate {cert};\n    ssl_certificate_key {key};\n    \
             root {p}/www;\n  }}\n}}\n",
            cert = setup.certs.join("server.crt").display(),
            key = setup.certs.join("server.key").display(),
        );
        fs::create_dir_all(prefix.join("tmp")).ctx("create nginx tmp dir")?;
        fs::write(prefix.join("nginx.conf"), conf).ctx("write nginx.conf")?;
        let mut cmd = Command::new(NGINX);
        cmd.arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("nginx", &mut cmd);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if proc.try_exit_status().is_some() {
                return Err(format!(
                    "nginx exited at start:\n{}",
                    tail_file(&prefix.join("error.log"), 20)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Nginx { proc, addr });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx did not listen on {addr} within {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(5));
    }
}
