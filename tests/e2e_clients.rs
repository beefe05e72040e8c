//! End to end with real clients: the Docker engine, podman and skopeo push
//! images to regproxy and pull them back over plain HTTP on 127.0.0.1, and
//! what comes back is identical (image IDs, layer digests, file bytes,
//! manifest bytes).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ACCEPT_ANY_MANIFEST: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

#[test]
fn docker_push_then_pull_returns_the_identical_multilayer_image() {
    let data = temp_dir("regproxy-data-");
    let registry = Regproxy::start(data.path(), &[]);
    let engine = Dockerd::start();
    let host = registry.host();

    // FROM scratch + busybox + 3 x 1 MiB random files: 4 layers.
    let ctx = make_build_context(&engine.dir().join("ctx"), 3, MIB);
    let local = "local/app:v1";
    let image_id = engine.build(&ctx.dir, local);
    let layers = engine.inspect(local, "{{json .RootFS.Layers}}");
    assert_eq!(json_array_len(&layers), ctx.layers, "layers: {layers}");

    let remote = format!("{host}/team/app:v1");
    engine.docker_ok(["tag", local, &remote]);
    let push = engine.docker_ok(["push", &remote]);
    let digest = pushed_digest(&push);

    // The registry serves exactly the manifest the engine pushed.
    let manifest = get_manifest(&host, "team/app", "v1", DOCKER_MANIFEST);
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(digest.clone())
    );
    assert_eq!(
        manifest.header("content-type").as_deref(),
        Some(DOCKER_MANIFEST)
    );
    assert_eq!(format!("sha256:{}", sha256_hex(&manifest.body)), digest);
    let doc = manifest.json();
    assert_eq!(doc["config"]["digest"].as_str(), Some(image_id.as_str()));
    assert_eq!(doc["layers"].as_array().map(Vec::len), Some(ctx.layers));

    // Remove every local copy, so the pull has to download every layer.
    engine.docker_ok(["rmi", local, &remote]);
    assert!(
        !engine
            .docker(["image", "inspect", &remote])
            .status
            .success(),
        "image still present locally after rmi"
    );
    let pull = engine.docker_ok(["pull", &remote]);
    assert!(
        pull.contains(&digest),
        "pull output lacks {digest}:\n{pull}"
    );
    assert_eq!(
        pull.matches("Pull complete").count(),
        ctx.layers,
        "not every layer was downloaded:\n{pull}"
    );
    assert_eq!(engine.inspect(&remote, "{{.Id}}"), image_id);
    assert_eq!(engine.inspect(&remote, "{{json .RootFS.Layers}}"), layers);

    // The files in the pulled image are byte-identical to the build context.
    let cid = engine.docker_ok(["create", &remote]).trim().to_string();
    let export = engine.dir().join("export.tar");
    engine.docker_ok(["export", "-o", path_str(&export), &cid]);
    engine.docker_ok(["rm", &cid]);
    let rootfs = engine.dir().join("exported");
    untar(&export, &rootfs);
    for (in_image, source) in &ctx.files {
        assert_same_file(source, &rootfs.join(in_image.trim_start_matches('/')));
    }
}

#[test]
fn podman_push_then_pull_returns_the_identical_image_in_oci_and_docker_formats() {
    let data = temp_dir("regproxy-data-");
    let registry = Regproxy::start(data.path(), &[]);
    let podman = Podman::new();
    let work = temp_dir("podman-work-");
    let host = registry.host();

    let rootfs = work.path().join("rootfs");
    let files = make_rootfs(&rootfs, 2, 512 * KIB);
    let tarball = work.path().join("rootfs.tar");
    tar_create(&rootfs, &tarball);
    let local = "localhost/podtest:v1";
    podman.run_ok(["import", path_str(&tarball), local]);
    let image_id = podman.run_ok(["image", "inspect", "--format", "{{.Id}}", local]);
    let layers = podman.run_ok([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        local,
    ]);
    assert_eq!(json_array_len(&layers), 1, "layers: {layers}");

    let formats = [("oci", common::OCI_MANIFEST), ("v2s2", DOCKER_MANIFEST)];
    for (format, media_type) in formats {
        let remote = format!("{host}/team/podman:{format}");
        podman.run_ok([
            "push",
            "--tls-verify=false",
            "--format",
            format,
            local,
            &remote,
        ]);
        let manifest = get_manifest(&host, "team/podman", format, ACCEPT_ANY_MANIFEST);
        assert_eq!(manifest.header("content-type").as_deref(), Some(media_type));
        // podman omits the optional mediaType field in OCI manifests.
        let doc = manifest.json();
        let field = doc["mediaType"].as_str();
        assert!(field.is_none() || field == Some(media_type), "{doc}");
        assert_eq!(doc["schemaVersion"], 2, "{doc}");
    }

    podman.run_ok(["rmi", local]);
    assert!(
        !podman.run(["image", "exists", local]).status.success(),
        "image still present locally after rmi"
    );
    for (format, _) in formats {
        let remote = format!("{host}/team/podman:{format}");
        podman.run_ok(["pull", "--tls-verify=false", &remote]);
        let pulled_layers = podman.run_ok([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            &remote,
        ]);
        assert_eq!(pulled_layers, layers, "{format}: layer diff IDs differ");
        if format == "oci" {
            // The OCI push keeps the config, so the image ID is unchanged.
            let id = podman.run_ok(["image", "inspect", "--format", "{{.Id}}", &remote]);
            assert_eq!(id, image_id);
        }
        let cid = podman.run_ok(["create", &remote, "/bin/busybox", "true"]);
        let cid = cid.trim();
        let export = work.path().join(format!("export-{format}.tar"));
        podman.run_ok(["export", "-o", path_str(&export), cid]);
        podman.run_ok(["rm", cid]);
        let out = work.path().join(format!("exported-{format}"));
        untar(&export, &out);
        assert_same_file(Path::new(BUSYBOX), &out.join("bin/busybox"));
        for rel in &files {
            assert_same_file(&rootfs.join(rel), &out.join(rel));
        }
    }
}

#[test]
fn skopeo_copies_a_multiarch_index_in_and_out_unchanged() {
    let data = temp_dir("regproxy-data-");
    let registry = Regproxy::start(data.path(), &[]);
    let skopeo = Skopeo::new();
    let work = temp_dir("skopeo-work-");
    let host = registry.host();

    let src = write_oci_multiarch(&work.path().join("src"), "v1", 256 * KIB);
    let remote = format!("{host}/team/multi:v1");
    skopeo.copy(&src.skopeo_ref(), &format!("docker://{remote}"), true);

    // The index is stored and served byte for byte, listing both platforms.
    let raw = skopeo.inspect_raw(&remote);
    assert!(
        raw == src.manifest,
        "served index differs from the pushed one"
    );
    let index: Value = serde_json::from_slice(&raw).expect("index is JSON");
    let platforms: BTreeSet<String> = index["manifests"]
        .as_array()
        .expect("index has manifests")
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut name = format!("{}/{}", json_str(&p["os"]), json_str(&p["architecture"]));
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            name
        })
        .collect();
    let expected: BTreeSet<String> = ["linux/amd64", "linux/arm/v6"].map(String::from).into();
    assert_eq!(platforms, expected);

    // By digest, the index comes back with its media type.
    let by_digest = get_manifest(&host, "team/multi", &src.digest, ACCEPT_ANY_MANIFEST);
    assert_eq!(by_digest.status, 200);
    assert_eq!(
        by_digest.header("content-type").as_deref(),
        Some(common::OCI_INDEX)
    );
    assert_eq!(
        by_digest.header("docker-content-digest"),
        Some(src.digest.clone())
    );
    assert!(by_digest.body == src.manifest);

    // Everything copied back out is identical: index, manifests, configs, layers.
    let back = work.path().join("back");
    skopeo.copy(
        &format!("docker://{remote}"),
        &format!("oci:{}:v1", back.display()),
        true,
    );
    let compared = assert_same_oci_image(&src.dir, "v1", &back, "v1");
    assert_eq!(compared, src.blobs.len());

    // A client that asks for one platform gets that platform's manifest.
    let (arm_name, arm_digest) = &src.platforms[1];
    assert_eq!(arm_name, "linux/arm/v6");
    let arm = work.path().join("arm");
    skopeo.run_ok([
        "--override-os",
        "linux",
        "--override-arch",
        "arm",
        "--override-variant",
        "v6",
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{remote}"),
        &format!("oci:{}:arm", arm.display()),
    ]);
    assert_eq!(&read_oci_ref(&arm, "arm").0, arm_digest);
    assert_eq!(oci_reachable_blobs(&arm, "arm").len(), 4);

    // And a platform manifest can be fetched by its digest.
    let (_, amd_digest) = &src.platforms[0];
    let amd = work.path().join("amd64");
    skopeo.copy(
        &format!("docker://{host}/team/multi@{amd_digest}"),
        &format!("oci:{}:amd64", amd.display()),
        false,
    );
    assert_eq!(&read_oci_ref(&amd, "amd64").0, amd_digest);
}

// ---------------------------------------------------------------------------

fn get_manifest(host: &str, repo: &str, reference: &str, accept: &str) -> HttpResponse {
    let url = format!("http://{host}/v2/{repo}/manifests/{reference}");
    let resp = http_request("GET", &url, &[("Accept", accept)], None);
    assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
    resp
}

/// The digest from `docker push` output (`v1: digest: sha256:... size: N`).
fn pushed_digest(output: &str) -> String {
    output
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .filter(|d| d.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{output}"))
        .to_string()
}

fn json_array_len(text: &str) -> usize {
    let value: Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    value.as_array().map(Vec::len).unwrap_or(0)
}

fn json_str(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn tar_create(dir: &Path, tarball: &Path) {
    let tar = require_tool(TAR, "tar");
    run_ok(
        Command::new(tar)
            .arg("-C")
            .arg(dir)
            .arg("-cf")
            .arg(tarball)
            .arg("."),
        Duration::from_secs(60),
    );
}

fn untar(tarball: &Path, dir: &Path) {
    let tar = require_tool(TAR, "tar");
    std::fs::create_dir_all(dir).expect("create extraction dir");
    run_ok(
        Command::new(tar).arg("-xf").arg(tarball).arg("-C").arg(dir),
        Duration::from_secs(60),
    );
}
