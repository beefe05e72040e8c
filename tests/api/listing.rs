//! Listing: tags (sorted, paginated) and the catalog.

use super::*;

async fn tags_list_sorted_and_paginated(p: Proto) {
    let s = Server::start(p).await;
    let repo = "tags/app";
    let image = s.push_image(repo, "v1", OCI_MANIFEST, 29).await;
    for tag in ["latest", "v2", "A1", "v10", "1.0"] {
        s.push_manifest(repo, tag, OCI_MANIFEST, &image.bytes).await;
    }
    let all = ["1.0", "A1", "latest", "v1", "v10", "v2"];
    let r = s.get(&format!("/v2/{repo}/tags/list")).send().await;
    r.expect(200)
        .expect_header("content-type", "application/json")
        .expect_no_header("link");
    assert_eq!(r.json(), json!({ "name": repo, "tags": all }));

    // n=2: three pages, a Link on all but the last.
    let r = s.get(&format!("/v2/{repo}/tags/list?n=2")).send().await;
    r.expect(200).expect_header(
        "link",
        &format!("</v2/{repo}/tags/list?n=2&last=A1>; rel=\"next\""),
    );
    assert_eq!(r.json()["tags"], json!(["1.0", "A1"]));
    let got = pages(&s, &format!("/v2/{repo}/tags/list?n=2"), "tags").await;
    assert_eq!(
        got,
        [vec!["1.0", "A1"], vec!["latest", "v1"], vec!["v10", "v2"]]
    );

    let got = pages(&s, &format!("/v2/{repo}/tags/list?n=4"), "tags").await;
    assert_eq!(got, [all[..4].to_vec(), all[4..].to_vec()]);

    // `last` alone, `last` with n, n beyond the end.
    let r = s
        .get(&format!("/v2/{repo}/tags/list?last=latest"))
        .send()
        .await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["tags"], json!(["v1", "v10", "v2"]));
    let r = s
        .get(&format!("/v2/{repo}/tags/list?n=1&last=v1"))
        .send()
        .await;
    assert_eq!(r.expect(200).json()["tags"], json!(["v10"]));
    let r = s.get(&format!("/v2/{repo}/tags/list?n=100")).send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["tags"], json!(all));

    // n=0: an empty list and no Link.
    let r = s.get(&format!("/v2/{repo}/tags/list?n=0")).send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["tags"], json!([]));
}

async fn tags_list_errors_and_empty_repositories(p: Proto) {
    let s = Server::start(p).await;
    s.get("/v2/no/such/repo/tags/list")
        .send()
        .await
        .expect_error(404, "NAME_UNKNOWN");
    // A repository with an untagged manifest has an empty list.
    s.push_image("untagged/app", "", OCI_MANIFEST, 30).await;
    let r = s.get("/v2/untagged/app/tags/list").send().await;
    assert_eq!(
        r.expect(200).json(),
        json!({ "name": "untagged/app", "tags": [] })
    );
    for n in ["abc", "-1", "1.5", "99999999999999999999999999"] {
        s.get(&format!("/v2/untagged/app/tags/list?n={n}"))
            .send()
            .await
            .expect_error(400, "PAGINATION_NUMBER_INVALID");
    }
}

async fn catalog_lists_and_paginates_repositories(p: Proto) {
    let s = Server::start(p).await;
    let r = s.get("/v2/_catalog").send().await;
    assert_eq!(r.expect(200).json(), json!({ "repositories": [] }));

    let repos = [
        "zeta",
        "alpha",
        "devops/monitoring/prometheus",
        "beta/x",
        "devops/app",
    ];
    for (i, repo) in repos.iter().enumerate() {
        s.push_image(repo, "v1", OCI_MANIFEST, 40 + i as u64).await;
    }
    let sorted = [
        "alpha",
        "beta/x",
        "devops/app",
        "devops/monitoring/prometheus",
        "zeta",
    ];
    let r = s.get("/v2/_catalog").send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json(), json!({ "repositories": sorted }));

    let r = s.get("/v2/_catalog?n=2").send().await;
    let link = r
        .expect(200)
        .header("link")
        .expect("Link on a partial page");
    assert!(
        link.starts_with("</v2/_catalog?")
            && link.ends_with(">; rel=\"next\"")
            && link.contains("n=2"),
        "Link {link}"
    );
    let got = pages(&s, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(
        got,
        [
            vec!["alpha", "beta/x"],
            vec!["devops/app", "devops/monitoring/prometheus"],
            vec!["zeta"]
        ]
    );
    let r = s.get("/v2/_catalog?n=2&last=devops/app").send().await;
    assert_eq!(
        r.expect(200).json()["repositories"],
        json!(["devops/monitoring/prometheus", "zeta"])
    );
    let r = s.get("/v2/_catalog?n=0").send().await;
    r.expect(200).expect_no_header("link");
    assert_eq!(r.json()["repositories"], json!([]));
    s.get("/v2/_catalog?n=many")
        .send()
        .await
        .expect_error(400, "PAGINATION_NUMBER_INVALID");

    // Multi-level names work on every endpoint.
    assert_eq!(s.tags("devops/monitoring/prometheus").await, ["v1"]);
    s.get("/v2/devops/monitoring/prometheus/manifests/v1")
        .send()
        .await
        .expect(200);
}

both_protocols!(
    tags_list_sorted_and_paginated,
    tags_list_errors_and_empty_repositories,
    catalog_lists_and_paginates_repositories,
);
