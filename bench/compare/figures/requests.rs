//! Figures 5 and 6, small requests under wrk (HTTP/1.1 keep-alive):
//! `GET /v2/` over TLS with a Bearer token (regproxy's token service;
//! Distribution has none, so it gets Basic) and with Basic; and, without
//! TLS or logins, a manifest GET against `GET /v2/`.

use std::time::Duration;

use http::Method;

use crate::client::{empty, expect, Conn, Target};
use crate::load::{wrk, CpuMark, CpuUse};
use crate::ops::{bounded, push_small_image, token, OCI_MANIFEST};
use crate::servers::{Kind, Server};
use crate::{Params, Res};

const LIMIT: Duration = Duration::from_secs(120);

pub struct Auth {
    /// regproxy: Bearer; Distribution: Basic.
    pub bearer: Option<(f64, CpuUse)>,
    pub basic: (f64, CpuUse),
}

/// `GET /v2/` must answer 200 with this `Authorization`.
async fn check_v2(target: &Target, auth: &str) -> Res<()> {
    let t = Target {
        auth: Some(auth.to_string()),
        ..target.clone()
    };
    let mut c = Conn::open(&t).await?;
    let (st, _, body) = c.call(&t, Method::GET, "/v2/", &[], empty()).await?;
    expect("GET /v2/", st, 200, &body)
}

fn wrk_measured(server: &Server, path: &str, headers: &[String], p: &Params) -> Res<(f64, CpuUse)> {
    let mark = CpuMark::now(server.pid());
    let rps = wrk(
        &format!("{}{path}", server.url()),
        headers,
        p.wrk_conns,
        p.wrk_secs,
    )?;
    Ok((rps, mark.since(server.pid())))
}

/// Figure 5 on a TLS + login server; `basic` is the Basic header value.
pub fn auth(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    target: &Target,
    basic: &str,
    p: &Params,
) -> Res<Auth> {
    let bearer = if server.kind == Kind::Regproxy {
        let tok = rt.block_on(bounded("token", LIMIT, token(target, "")))?;
        let header = format!("Bearer {tok}");
        rt.block_on(bounded(
            "GET /v2/ with Bearer",
            LIMIT,
            check_v2(target, &header),
        ))?;
        Some(wrk_measured(
            server,
            "/v2/",
            &[format!("Authorization: {header}")],
            p,
        )?)
    } else {
        None
    };
    rt.block_on(bounded(
        "GET /v2/ with Basic",
        LIMIT,
        check_v2(target, basic),
    ))?;
    let basic = wrk_measured(server, "/v2/", &[format!("Authorization: {basic}")], p)?;
    Ok(Auth { bearer, basic })
}

pub struct Manifest {
    pub manifest: (f64, CpuUse),
    pub v2: (f64, CpuUse),
}

/// Figure 6 on a plain server: push a small image, then wrk its manifest
/// (by tag, with the OCI `Accept`) and `/v2/`.
pub fn manifest(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    target: &Target,
    p: &Params,
) -> Res<Manifest> {
    rt.block_on(bounded(
        "push a small image",
        LIMIT,
        push_small_image(target, "bench/small", "v1"),
    ))?;
    let manifest = wrk_measured(
        server,
        "/v2/bench/small/manifests/v1",
        &[format!("Accept: {OCI_MANIFEST}")],
        p,
    )?;
    let v2 = wrk_measured(server, "/v2/", &[], p)?;
    Ok(Manifest { manifest, v2 })
}
