//! Clients of one instance while another instance's collection sweeps the
//! shared bucket of a real Garage node, when things go wrong: the client
//! gives up while its manifest `PUT` waits for the sweep, and the
//! collecting instance is killed with `kill -9` mid-sweep, leaving its
//! claim (and the blobs it announced) behind.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::s3::*;
use common::{Garage, Relay};

/// The same push, but the client gives up while B's `PUT` waits for the
/// sweep (a proxy's read timeout, or Ctrl-C): B must still finish the
/// check and unlink the manifest whose layer the sweep deleted, not leave
/// a revision that points at missing content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_abandoned_while_it_waits_for_a_sweep_leaves_no_broken_manifest() {
    use std::io::Write;
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-abandon-");
    let HeldSweep {
        b,
        image: second,
        relay: _relay,
        collecting,
    } = sweep_held_at_the_old_layer(&g, dir.path()).await;
    let layer = second.blobs[1].0.clone();
    let (u, host, log, img) = (
        b.url(),
        b.host(),
        b.log_path().to_path_buf(),
        second.clone(),
    );
    let waited = tokio::task::spawn_blocking(move || {
        for (d, bytes) in &img.blobs {
            common::push_blob(&u, "team/app", d, bytes);
        }
        // The manifest PUT on a raw connection, closed once B waits.
        let mut conn = std::net::TcpStream::connect(&host).unwrap();
        let head = format!(
            "PUT /v2/team/app/manifests/v2 HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\n\
             Content-Length: {}\r\n\r\n",
            host,
            img.media_type,
            img.manifest.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&img.manifest).unwrap();
        let waited = (0..600).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("waiting for it"))
        });
        drop(conn);
        waited
    })
    .await
    .unwrap();
    assert!(waited, "B's PUT did not wait for the sweep:\n{}", b.logs());
    collecting.await.unwrap().unwrap();
    // B re-checks every half second while it waits: give it a few rounds.
    let url = format!("{}/v2/team/app/manifests/{}", b.url(), second.digest);
    let unlinked = tokio::task::spawn_blocking(move || {
        (0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(250));
            let r = common::http_request("GET", &url, &[("Accept", common::RAW_MANIFEST)], None);
            r.status == 404
        })
    })
    .await
    .unwrap();
    assert!(
        unlinked,
        "the abandoned manifest stayed linked though the sweep deleted its layer {layer}"
    );
    // The client pushes again: the layer is uploaded anew.
    push(&b.url(), &second).await;
    pull(&b.url(), &second).await;
}

/// Sends `img`'s manifest `PUT` on a raw connection with no client
/// timeout of its own (as Docker's), and returns the status line.
fn put_manifest_raw(host: &str, img: &common::RawImage) -> String {
    use std::io::{BufRead, Write};
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    let head = format!(
        "PUT /v2/team/app/manifests/v2 HTTP/1.1\r\nHost: {host}\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        img.media_type,
        img.manifest.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&img.manifest).unwrap();
    let mut status = String::new();
    std::io::BufReader::new(conn)
        .read_line(&mut status)
        .unwrap();
    status
}

/// Instance A (a real `regproxy serve`) is killed with `kill -9` during
/// its sweep, after it announced the old layer and before it deleted it.
/// Its claim stays in the bucket; a push through B that re-uses the layer
/// must not be refused because of it for longer than a claim's time to
/// live: B's `PUT` waits for the dead claim to expire, finds the layer
/// there, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_after_a_sweeper_was_killed_succeeds_once_its_claim_expires() {
    let g = Garage::start(BUCKET);
    let dir = common::temp_dir("s3-gc-killed-");
    let (b, second) = instance_with_an_old_unreferenced_layer(&g, dir.path()).await;
    let (layer, _) = second.blobs[1].clone();
    let hex = layer.trim_start_matches("sha256:").to_string();
    let relay = Arc::new(Relay::start(&g.endpoint));
    // The delete never reaches the store while the test runs.
    relay.set_rules(vec![rule(
        "",
        &["<Delete", &format!("{hex}/data")],
        Duration::from_secs(600),
    )]);
    let a_dir = dir.path().join("a");
    std::fs::create_dir_all(&a_dir).unwrap();
    let yaml = format!(
        "tls:\n  enabled: false\nauth:\n  enabled: false\n{}",
        g.storage_yaml(BUCKET, "", &g.credentials_file(&a_dir))
            .replace(&g.endpoint, &relay.endpoint)
    );
    let config = common::write_config(&a_dir, &yaml);
    let mut a = common::Regproxy::start_with_args(&[
        "serve",
        "--config",
        common::path_str(&config),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let gc_url = a.admin_url("/gc?dry_run=false&untagged=false&grace=0s");
    std::thread::spawn(move || common::http_request("POST", &gc_url, &[], None));
    assert!(wait_held(&relay).await, "A never deleted the old layer");
    a.kill9();
    let (u, host, img) = (b.url(), b.host(), second.clone());
    let status = tokio::task::spawn_blocking(move || {
        for (d, bytes) in &img.blobs {
            common::push_blob(&u, "team/app", d, bytes);
        }
        put_manifest_raw(&host, &img)
    })
    .await
    .unwrap();
    assert!(
        status.contains(" 201 "),
        "the push was refused because of a dead sweeper's claim: {status}\n{}",
        b.logs()
    );
    pull(&b.url(), &second).await;
}
