//! Figure 7's image and client: an OCI layout with N random gzip layers
//! (made locally, no internet), pushed with `skopeo copy oci:... docker://`
//! and pulled back into a fresh layout with TLS verified against the run's
//! CA and the bench user's credentials. The pulled image must be byte for
//! byte the pushed one.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{
    assert_same_oci_image, gzip_stored, random_bytes, run, sha256_hex, tar_archive, Skopeo,
};
use crate::load::{CpuMark, CpuUse};
use crate::servers::{Server, Setup};
use crate::{Ctx, Res};

const TIMEOUT: Duration = Duration::from_secs(600);

/// Writes the image into `dir` as tag `v1`.
pub fn write_image(dir: &Path, layers: usize, layer_size: usize) -> Res<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).ctx("create the OCI layout")?;
    let put = |media: &str, bytes: &[u8]| -> Res<serde_json::Value> {
        let hex = sha256_hex(bytes);
        fs::write(blobs.join(&hex), bytes).ctx("write an OCI blob")?;
        Ok(json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": bytes.len()}))
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let name = format!("data/layer-{i}.bin");
        let tar = tar_archive(&[("data/", &[]), (&name, &random_bytes(layer_size))]);
        diff_ids.push(format!("sha256:{}", sha256_hex(&tar)));
        descs.push(put(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &gzip_stored(&tar),
        )?);
    }
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = put(
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).ctx("config JSON")?,
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descs,
    });
    let mut desc = put(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).ctx("manifest JSON")?,
    )?;
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).ctx("oci-layout")?;
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(dir.join("index.json"), index.to_string()).ctx("index.json")?;
    Ok(())
}

/// One `skopeo copy`: its wall time, the CPU skopeo itself used (user +
/// system, its threads and children), and the server's CPU meanwhile.
pub struct Copy {
    pub secs: f64,
    pub client_cpu_secs: f64,
    pub server: CpuUse,
}

/// `skopeo copy` push then pull against `server`. The pulled layout is
/// compared blob by blob with `image`.
pub fn push_pull(server: &Server, setup: &Setup, image: &Path, round: usize) -> Res<(Copy, Copy)> {
    let skopeo = Skopeo::new();
    let remote = format!("docker://{}/bench/skopeo:v1", server.addr);
    let src = format!("oci:{}:v1", image.display());
    let ca = setup.ca_dir.display().to_string();
    let creds = setup.creds();
    let tls = |side: &str| -> Vec<String> {
        let mut a = Vec::new();
        if server.tls() {
            a.push(format!("--{side}-cert-dir={ca}"));
            a.push(format!("--{side}-creds={creds}"));
        } else {
            a.push(format!("--{side}-tls-verify=false"));
        }
        a
    };
    let mut push = vec!["copy".to_string()];
    push.extend(tls("dest"));
    push.extend([src, remote.clone()]);
    let pushed = timed(&skopeo, &push, server.pid())?;

    let back: PathBuf = setup.fresh_dir(&format!("pulled-{round}-"))?.keep();
    let dest = format!("oci:{}:v1", back.join("image").display());
    let mut pull = vec!["copy".to_string()];
    pull.extend(tls("src"));
    pull.extend([remote, dest]);
    let pulled = timed(&skopeo, &pull, server.pid())?;
    // Panics (exit code 101) on any differing byte.
    assert_same_oci_image(image, "v1", &back.join("image"), "v1");
    fs::remove_dir_all(&back).ctx("remove the pulled image")?;
    Ok((pushed, pulled))
}

fn timed(skopeo: &Skopeo, args: &[String], server: u32) -> Res<Copy> {
    let before = children_cpu_secs();
    let mark = CpuMark::now(server);
    let started = Instant::now();
    let out = run(&mut skopeo.command(args), TIMEOUT);
    let secs = started.elapsed().as_secs_f64();
    let server = mark.since(server);
    // The only child reaped meanwhile is skopeo (the servers are still running).
    let client_cpu_secs = (children_cpu_secs() - before).max(0.0);
    if !out.status.success() {
        return Err(format!(
            "skopeo {}: {}",
            args.join(" ").replace(&args_creds(args), "--*-creds=***"),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Copy {
        secs,
        client_cpu_secs,
        server,
    })
}

/// User + system CPU of this process's reaped children, in seconds.
fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage writes only into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// The credentials argument, to keep it out of error messages.
fn args_creds(args: &[String]) -> String {
    args.iter()
        .find(|a| a.contains("-creds="))
        .cloned()
        .unwrap_or_else(|| "\u{0}".into())
}
