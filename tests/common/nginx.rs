//! nginx as a round-robin load balancer on 127.0.0.1 in front of several
//! regproxy instances: plain HTTP, one upstream connection per request (no
//! keepalive, no sticky sessions), bodies streamed both ways, an instance
//! that refuses connections taken out of the rotation, the long read and
//! send timeouts the README's example gives (a final `PUT` copies the
//! whole layer before it answers). One process
//! (`master_process off`), stopped by its pid: with a master, a killed
//! master left its worker running.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, Proc};
use super::{require_tool, tail_file, temp_dir};

pub struct NginxBalancer {
    proc: Proc,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl NginxBalancer {
    /// Picks a free port (the instances' config may need it before start).
    pub fn pick_port() -> u16 {
        free_port()
    }

    /// Balances `port` over `upstreams`.
    pub fn start(port: u16, upstreams: &[SocketAddr]) -> NginxBalancer {
        let nginx = require_tool("/usr/sbin/nginx", "nginx");
        let dir = temp_dir("nginx-lb-");
        let p = dir.path().display().to_string();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a} max_fails=1 fail_timeout=60s;\n"))
            .collect();
        let conf = format!(
            "master_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {p}/access.log;\n  \
             client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n  \
             fastcgi_temp_path {p}/tmp;\n  uwsgi_temp_path {p}/tmp;\n  scgi_temp_path {p}/tmp;\n  \
             upstream regproxy {{\n{servers}  }}\n  \
             server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 0;\n    \
             proxy_request_buffering off;\n    proxy_buffering off;\n    \
             location / {{\n      proxy_pass http://regproxy;\n      proxy_http_version 1.1;\n      \
             proxy_set_header Host $http_host;\n      proxy_set_header Connection \"\";\n      \
             proxy_read_timeout 3600s;\n      proxy_send_timeout 3600s;\n    }}\n  }}\n}}\n"
        );
        std::fs::create_dir_all(dir.path().join("tmp")).expect("create nginx tmp");
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off; user root;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("nginx", &mut cmd);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if proc.try_exit_status().is_some() {
                panic!(
                    "nginx exited at start:\n{}",
                    tail_file(&dir.path().join("error.log"), 20)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return NginxBalancer { proc, addr, dir };
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn error_log(&self) -> String {
        tail_file(&self.dir.path().join("error.log"), 40)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
