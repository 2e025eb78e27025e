//! Multi-tenant access control on the real binary (issue 3; docs/auth.md): challenges,
//! the token endpoint as docker, podman and containerd use it, the decision table, token
//! revocation and expiry, catalog filtering, mounts, lockout, the management API's errors,
//! and that no secret reaches the log.

// Tests measure wall time and wait for the process: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;

/// Pushes a one-layer image into `repo` as tag `t`; returns the manifest digest, or the
/// answer that refused a step.
fn push_image(c: &mut Client, repo: &str, tag: &str, seed: u32) -> Result<String, Response> {
    let layer = pattern(2000, seed);
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}");
    c.oci(|conn, h| berth_client::oci::push_image(conn, h, repo, tag, config.as_bytes(), &[&layer]))
        .map_err(|e| match e {
            berth_client::oci::PushError::Refused { response, .. } => *response,
            e => panic!("{e}"),
        })
}

fn error_code(r: &Response) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn api_code(r: &Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

/// Fetches a bearer token by the GET form with `auth` (None: anonymous).
fn bearer_for(srv: &Server, auth: Option<&str>, scope: &str) -> String {
    let mut c = srv.anonymous();
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let path = format!(
        "/auth/token?service=berth&scope={}",
        scope.replace(':', "%3A").replace('/', "%2F")
    );
    let r = c.request("GET", &path, &headers, b"");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["token"].as_str().unwrap().to_string()
}

fn with_auth(srv: &Server, auth: &str) -> Client {
    Client::connect_as(srv.addr, auth)
}

fn create_registry(srv: &Server, org: &str, name: &str, public: bool) {
    let mut a = srv.admin_client();
    let r = a.json(
        "POST",
        &format!("/api/v1/orgs/{org}/registries"),
        &format!(r#"{{"name":"{name}","public":{public}}}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn anonymous_ping_gets_a_bearer_challenge_and_credentials_get_200() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let r = srv.anonymous().get("/v2/");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="http://localhost/auth/token",service="berth""#)
    );
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    // podman's empty Basic is anonymous, not a failure.
    let r = with_auth(&srv, "Basic Og==").get("/v2/");
    assert_eq!(r.status, 401);
    assert!(!r.header("www-authenticate").unwrap().contains("error="));
    assert_eq!(srv.client().get("/v2/").status, 200);
    assert_eq!(srv.admin_client().get("/v2/").status, 200);
}

#[test]
fn token_endpoint_get_post_and_docker_login_flows() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let auth = srv.auth();

    // docker login: GET with account, client_id, offline_token; no scope; then ping.
    let r = srv.anonymous().request(
        "GET",
        "/auth/token?account=ci&client_id=docker&offline_token=true&service=berth",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));
    assert!(v.get("refresh_token").is_none(), "never a refresh token");
    let login = v["token"].as_str().unwrap().to_string();
    let r = with_auth(&srv, &bearer_header(&login)).get("/v2/");
    assert_eq!(r.status, 200, "login check");

    // GET with a scope, then push with the bearer token.
    let t = bearer_for(&srv, Some(&auth), "repository:acme/web/app:pull,push");
    let mut c = with_auth(&srv, &bearer_header(&t));
    push_image(&mut c, "acme/web/app", "v1", 1).unwrap();
    // The login token (no scope) grants nothing on the repository.
    let r = with_auth(&srv, &bearer_header(&login)).get("/v2/acme/web/app/manifests/v1");
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"error="insufficient_scope""#));

    // containerd: POST form with credentials.
    let form = format!(
        "grant_type=password&username=ci&password={}&service=berth&client_id=containerd-client&scope=repository%3Aacme%2Fweb%2Fapp%3Apull",
        srv.token
    );
    let r = srv.anonymous().request(
        "POST",
        "/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let t = r.json()["access_token"].as_str().unwrap().to_string();
    let r = with_auth(&srv, &bearer_header(&t)).get("/v2/acme/web/app/manifests/v1");
    assert_eq!(r.status, 200, "{r:?}");
    // ... whose refresh grant is refused so it falls back to GET.
    let r = srv.anonymous().request(
        "POST",
        "/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=refresh_token&refresh_token=x&client_id=containerd-client&service=berth",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");

    // Bad credentials: 401 JSON; a scope that does not parse: 400 JSON.
    let r = srv.anonymous().request(
        "GET",
        "/auth/token?service=berth",
        &[("Authorization", &basic("berth_pat_nope"))],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    let r = srv
        .anonymous()
        .get("/auth/token?service=berth&scope=repository%3AUPPER%3Apull");
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "UNSUPPORTED");
    // Anonymous with a scope it may not have: 200 with an empty grant.
    let t = bearer_for(&srv, None, "repository:acme/web/app:pull");
    let r = with_auth(&srv, &bearer_header(&t)).get("/v2/acme/web/app/manifests/v1");
    assert_eq!(r.status, 401);
}

#[test]
fn write_tokens_push_read_tokens_pull_and_are_refused_writes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let digest = push_image(&mut srv.client(), "acme/web/app", "1.0", 2).unwrap();
    let read = srv
        .admin_client()
        .create_token("acme", r#"{"scopes":["read_packages"]}"#);
    let mut r_c = with_auth(&srv, &basic(&read));
    let r = r_c.get("/v2/acme/web/app/manifests/1.0");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));

    // Basic read token pushing: 403 DENIED naming the missing scope.
    let r = r_c.request("POST", "/v2/acme/web/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "DENIED");
    assert!(
        r.text().contains("write_packages for acme/web"),
        "{}",
        r.text()
    );
    let r = r_c.request(
        "DELETE",
        &format!("/v2/acme/web/app/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 403);

    // A bearer token from the read token: the push grant is dropped, so the push is
    // refused outright (the credential itself cannot push: asking again will not help).
    // The 403 still names the scope, as every bearer refusal does: a client that asks
    // again on a 403 (the Python ORAS client) gets the same grant, and gives up at once
    // instead of retrying the request it cannot answer.
    let t = bearer_for(
        &srv,
        Some(&basic(&read)),
        "repository:acme/web/app:pull,push",
    );
    let r = with_auth(&srv, &bearer_header(&t)).request(
        "POST",
        "/v2/acme/web/app/blobs/uploads/",
        &[],
        b"",
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "DENIED");
    let ch = r.header("www-authenticate").unwrap_or_default();
    assert!(
        ch.contains(r#"scope="repository:acme/web/app:pull,push""#)
            && ch.contains(r#"error="insufficient_scope""#),
        "{r:?}"
    );

    // A bearer token from the write token that asked only for pull: 403 (RFC 6750 §3.1)
    // insufficient_scope with the scope to ask for.
    let t = bearer_for(&srv, Some(&srv.auth()), "repository:acme/web/app:pull");
    let r = with_auth(&srv, &bearer_header(&t)).request(
        "POST",
        "/v2/acme/web/app/blobs/uploads/",
        &[],
        b"",
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(error_code(&r), "DENIED");
    let ch = r.header("www-authenticate").unwrap();
    assert!(
        ch.contains(r#"scope="repository:acme/web/app:pull,push""#),
        "{ch}"
    );
    assert!(ch.contains(r#"error="insufficient_scope""#), "{ch}");
    // The refused request left nothing behind.
    let text = srv.client().get("/metrics").text();
    assert!(text.contains("berth_uploads_open 0"), "{text}");
}

#[test]
fn public_registries_are_pullable_anonymously_private_ones_challenge_with_scope() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    create_registry(&srv, "acme", "Open Source", true);
    push_image(&mut srv.client(), "acme/open-source/tool", "1", 3).unwrap();
    push_image(&mut srv.client(), "acme/web/app", "1", 4).unwrap();
    let mut anon = srv.anonymous();
    assert_eq!(
        anon.get("/v2/acme/open-source/tool/manifests/1").status,
        200
    );
    let r = anon.get("/v2/acme/web/app/manifests/1");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            r#"Bearer realm="http://localhost/auth/token",service="berth",scope="repository:acme/web/app:pull""#
        )
    );
    // Pushing to a public registry still needs a token.
    let r = anon.request("POST", "/v2/acme/open-source/tool/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"scope="repository:acme/open-source/tool:pull,push""#));
    // The anonymous token flow docker uses for public pulls.
    let t = bearer_for(&srv, None, "repository:acme/open-source/tool:pull");
    let r = with_auth(&srv, &bearer_header(&t)).get("/v2/acme/open-source/tool/manifests/1");
    assert_eq!(r.status, 200);
}

#[test]
fn registry_tokens_read_only_their_registry_and_other_orgs_see_404() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    create_registry(&srv, "acme", "other", false);
    push_image(&mut srv.client(), "acme/web/app", "1", 5).unwrap();
    push_image(&mut srv.client(), "acme/other/app", "1", 6).unwrap();
    let mut a = srv.admin_client();
    let r = a.json("POST", "/api/v1/orgs/acme/registries/web/tokens", "{}");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["kind"], "registry");
    let rt = r.json()["token"].as_str().unwrap().to_string();
    assert!(rt.starts_with("berth_rt_"));
    let mut c = with_auth(&srv, &basic(&rt));
    assert_eq!(c.get("/v2/acme/web/app/manifests/1").status, 200);
    assert_eq!(c.get("/v2/acme/other/app/manifests/1").status, 404);
    let r = c.request("POST", "/v2/acme/web/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 403);

    // Another organisation's token cannot tell acme's private registry from nothing.
    assert_eq!(
        a.json("POST", "/api/v1/orgs", r#"{"slug":"beta"}"#).status,
        201
    );
    let beta = a.create_token("beta", r#"{"scopes":["write_packages"]}"#);
    let mut b = with_auth(&srv, &basic(&beta));
    let r = b.get("/v2/acme/web/app/manifests/1");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "NAME_UNKNOWN");
    let missing = b.get("/v2/acme/nothing/app/manifests/1");
    assert_eq!(
        (missing.status, missing.body.clone()),
        (404, r.body.clone())
    );
    // Its own organisation's missing registry is named, with the command to create it.
    let r = b.request("POST", "/v2/beta/web/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 404);
    assert!(
        r.text().contains("berth registry create beta web"),
        "{}",
        r.text()
    );
    // A limited org token sees only its registries.
    let limited = a.create_token(
        "acme",
        r#"{"scopes":["write_packages"],"registries":["other"]}"#,
    );
    let mut l = with_auth(&srv, &basic(&limited));
    assert_eq!(l.get("/v2/acme/other/app/manifests/1").status, 200);
    assert_eq!(l.get("/v2/acme/web/app/manifests/1").status, 404);
}

#[test]
fn expired_and_revoked_tokens_are_refused_at_once_with_their_bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    push_image(&mut srv.client(), "acme/web/app", "1", 7).unwrap();
    let mut a = srv.admin_client();

    let r = a.json(
        "POST",
        "/api/v1/orgs/acme/tokens",
        r#"{"scopes":["read_packages"]}"#,
    );
    let (id, secret) = (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["token"].as_str().unwrap().to_string(),
    );
    let t = bearer_for(&srv, Some(&basic(&secret)), "repository:acme/web/app:pull");
    let mut basic_c = with_auth(&srv, &basic(&secret));
    let mut bearer_c = with_auth(&srv, &bearer_header(&t));
    assert_eq!(basic_c.get("/v2/acme/web/app/manifests/1").status, 200);
    assert_eq!(bearer_c.get("/v2/acme/web/app/manifests/1").status, 200);
    let r = a.request("DELETE", &format!("/api/v1/tokens/{id}"), &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["revoked"].is_u64());
    for c in [&mut basic_c, &mut bearer_c] {
        let r = c.get("/v2/acme/web/app/manifests/1");
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#));
    }
    // Listed without secrets or hashes, and revoked.
    let r = a.get("/api/v1/orgs/acme/tokens");
    let listed = r.text();
    assert!(
        !listed.contains(&secret) && !listed.contains("hash"),
        "{listed}"
    );
    assert!(listed.contains(&id));

    let short = a.create_token("acme", r#"{"scopes":["read_packages"],"expires_in":1}"#);
    let t = bearer_for(&srv, Some(&basic(&short)), "repository:acme/web/app:pull");
    assert_eq!(
        with_auth(&srv, &basic(&short))
            .get("/v2/acme/web/app/manifests/1")
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        with_auth(&srv, &basic(&short))
            .get("/v2/acme/web/app/manifests/1")
            .status,
        401
    );
    assert_eq!(
        with_auth(&srv, &bearer_header(&t))
            .get("/v2/acme/web/app/manifests/1")
            .status,
        401,
        "a bearer token dies with the token it came from"
    );
}

#[test]
fn tampered_bearer_tokens_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let t = bearer_for(&srv, Some(&srv.auth()), "repository:acme/web/app:pull");
    let (head, mac) = t.rsplit_once('.').unwrap();
    let mut flipped = mac.to_string().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{}", String::from_utf8(flipped).unwrap());
    for bad in [forged.as_str(), "bt1.e30.AAAA", "garbage", "bt1..."] {
        let r = with_auth(&srv, &bearer_header(bad)).get("/v2/acme/web/app/tags/list");
        assert_eq!(r.status, 401, "{bad}: {r:?}");
        let ch = r.header("www-authenticate").unwrap();
        assert!(ch.contains(r#"error="invalid_token""#), "{ch}");
        assert!(
            ch.contains(r#"scope="repository:acme/web/app:pull""#),
            "{ch}"
        );
    }
    for bad in ["Digest abc", "Basic ***", "Basic bm9jb2xvbg=="] {
        let r = with_auth(&srv, bad).get("/v2/");
        assert_eq!(r.status, 401, "{bad}");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
    }
}

#[test]
fn catalog_lists_only_what_the_caller_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    create_registry(&srv, "acme", "pub", true);
    let mut a = srv.admin_client();
    assert_eq!(
        a.json("POST", "/api/v1/orgs", r#"{"slug":"beta"}"#).status,
        201
    );
    create_registry(&srv, "beta", "web", false);
    push_image(&mut a, "acme/pub/a", "1", 10).unwrap();
    push_image(&mut a, "acme/web/b", "1", 11).unwrap();
    push_image(&mut a, "acme/web/c", "1", 12).unwrap();
    push_image(&mut a, "beta/web/d", "1", 13).unwrap();
    let names = |c: &mut Client, q: &str| -> Vec<String> {
        let r = c.get(&format!("/v2/_catalog{q}"));
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&mut a, ""),
        ["acme/pub/a", "acme/web/b", "acme/web/c", "beta/web/d"]
    );
    assert_eq!(
        names(&mut srv.client(), ""),
        ["acme/pub/a", "acme/web/b", "acme/web/c"]
    );
    assert_eq!(names(&mut srv.anonymous(), ""), ["acme/pub/a"]);
    // Pages are cut from the filtered list.
    let mut c = srv.client();
    let r = c.get("/v2/_catalog?n=2");
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["acme/pub/a", "acme/web/b"])
    );
    assert!(r.header("link").is_some(), "more follow: {r:?}");
    let r = c.get("/v2/_catalog?n=2&last=acme/web/b");
    assert_eq!(r.json()["repositories"], serde_json::json!(["acme/web/c"]));
    assert!(r.header("link").is_none(), "{r:?}");
}

#[test]
fn a_mount_from_an_unreadable_repository_opens_an_upload_instead() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let data = pattern(5000, 20);
    let d = push_blob(&mut srv.client(), &data, 1);
    let mut a = srv.admin_client();
    assert_eq!(
        a.json("POST", "/api/v1/orgs", r#"{"slug":"beta"}"#).status,
        201
    );
    create_registry(&srv, "beta", "web", false);
    let beta = a.create_token("beta", r#"{"scopes":["write_packages"]}"#);
    let mut b = with_auth(&srv, &basic(&beta));
    let r = b.request(
        "POST",
        &format!("/v2/beta/web/x/blobs/uploads/?mount={d}&from={REPO}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert!(r.header("location").unwrap().contains("/uploads/"));
    // Without `from`, never a mount either.
    let r = b.request(
        "POST",
        &format!("/v2/beta/web/x/blobs/uploads/?mount={d}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(b.get(&format!("/v2/beta/web/x/blobs/{d}")).status, 404);
    // The owner mounts across its own repositories.
    let r = srv.client().request(
        "POST",
        &format!("/v2/acme/web/copy/blobs/uploads/?mount={d}&from={REPO}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{r:?}");
}

/// The wait a throttled answer names, checked to be within the window.
fn retry_after(r: &Response, window: u64) -> u64 {
    let wait: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After:\n{r:?}"))
        .parse()
        .unwrap();
    assert!((1..=window).contains(&wait), "{wait}");
    wait
}

#[test]
fn failing_attempts_are_throttled_but_credentials_that_verify_never_are() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(
        dir.path(),
        &[
            ("BERTH_AUTH_MAX_FAILURES", "3"),
            ("BERTH_AUTH_FAILURE_WINDOW", "30s"),
        ],
    );
    let wrong = basic("berth_pat_0000000000000000000000000000000000000000");
    let mut bad = with_auth(&srv, &wrong);
    for _ in 0..3 {
        assert_eq!(bad.get("/v2/").status, 401);
    }
    // Past the allowance every failing attempt, wherever it is made, is 429 with Retry-After.
    let r = bad.get("/v2/");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(error_code(&r), "TOOMANYREQUESTS");
    retry_after(&r, 30);
    let r = bad.get("/auth/token?service=berth&scope=repository%3Aacme%2Fweb%2Fapp%3Apull");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(error_code(&r), "TOOMANYREQUESTS");
    retry_after(&r, 30);
    let r = with_auth(
        &srv,
        "Bearer berth_admin_0000000000000000000000000000000000000000",
    )
    .get("/api/v1/orgs");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(api_code(&r), "TOO_MANY_REQUESTS");
    retry_after(&r, 30);
    // A credential that verifies is never refused from that address: a write token on
    // /v2/ (a connection that has not used it yet, and the push that follows), at the
    // token endpoint, and the admin token on the management API.
    assert_eq!(srv.client().get("/v2/").status, 200);
    push_image(&mut srv.client(), REPO, "1", 1).unwrap();
    let t = bearer_for(&srv, Some(&srv.auth()), "repository:acme/web/app:pull");
    let r = with_auth(&srv, &bearer_header(&t)).get("/v2/acme/web/app/manifests/1");
    assert_eq!(r.status, 200, "{r:?}");
    let r = srv.admin_client().get("/api/v1/orgs");
    assert_eq!(r.status, 200, "{r:?}");
    // Nor is a connection that already used a good credential, and anonymous requests
    // are challenged as ever.
    let mut good = srv.client();
    assert_eq!(good.get("/v2/").status, 200);
    assert_eq!(bad.get("/v2/").status, 429);
    assert_eq!(good.get("/v2/").status, 200);
    assert_eq!(srv.anonymous().get("/v2/").status, 401);
    let text = srv.anonymous().get("/metrics").text();
    assert_eq!(counter(&text, "berth_auth_failures_total"), 7, "{text}");
    assert!(
        text.contains("berth_auth_decisions_total{outcome=\"rate_limited\"}"),
        "{text}"
    );
}

#[test]
fn the_token_endpoint_throttles_the_attempt_past_the_allowance() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let wrong = basic("berth_pat_0000000000000000000000000000000000000000");
    let path = "/auth/token?service=berth&scope=repository%3Aacme%2Fweb%2Fapp%3Apull";
    // The default allows 10 failures a minute; the 11th is throttled.
    for i in 0..10 {
        let r = with_auth(&srv, &wrong).get(path);
        assert_eq!(r.status, 401, "failure {i}: {r:?}");
    }
    let r = with_auth(&srv, &wrong).get(path);
    assert_eq!(r.status, 429, "{r:?}");
    retry_after(&r, 60);
    let r = with_auth(&srv, &srv.auth()).get(path);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn behind_trusted_proxies_failures_count_against_the_forwarded_client() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(
        dir.path(),
        &[
            ("BERTH_AUTH_MAX_FAILURES", "2"),
            ("BERTH_TRUSTED_PROXIES", "10.9.0.0/16, 127.0.0.1"),
        ],
    );
    let wrong = basic("berth_pat_0000000000000000000000000000000000000000");
    let from = |xff: &str, path: &str| {
        with_auth(&srv, &wrong).request("GET", path, &[("X-Forwarded-For", xff)], b"")
    };
    for _ in 0..2 {
        assert_eq!(from("203.0.113.5", "/v2/").status, 401);
    }
    assert_eq!(from("203.0.113.5", "/v2/").status, 429);
    // Through a chain of trusted proxies: the rightmost address not itself a proxy.
    assert_eq!(from("203.0.113.5, 10.9.3.4", "/v2/").status, 429);
    // What the client wrote to the left of the address a proxy saw changes nothing.
    assert_eq!(from("203.0.113.7, 203.0.113.5", "/v2/").status, 429);
    // Other clients of the same proxy are not slowed down; nor at the token endpoint or API.
    assert_eq!(from("203.0.113.6", "/v2/").status, 401);
    let r = from("203.0.113.5", "/auth/token?service=berth");
    assert_eq!(r.status, 429, "{r:?}");
    let r = from("203.0.113.6", "/auth/token?service=berth");
    assert_eq!(r.status, 401, "{r:?}");
    let r = with_auth(
        &srv,
        "Bearer berth_admin_0000000000000000000000000000000000000000",
    )
    .request(
        "GET",
        "/api/v1/orgs",
        &[("X-Forwarded-For", "203.0.113.5")],
        b"",
    );
    assert_eq!(r.status, 429, "{r:?}");
    // Without X-Forwarded-For the proxy's own address is the client.
    assert_eq!(with_auth(&srv, &wrong).get("/v2/").status, 401);

    // Not a trusted peer: X-Forwarded-For is ignored, failures count against the socket.
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_AUTH_MAX_FAILURES", "2")]);
    let from = |xff: &str| {
        with_auth(&srv, &wrong).request("GET", "/v2/", &[("X-Forwarded-For", xff)], b"")
    };
    assert_eq!(from("203.0.113.1").status, 401);
    assert_eq!(from("203.0.113.2").status, 401);
    assert_eq!(from("203.0.113.3").status, 429);
}

#[test]
fn the_token_endpoint_serves_only_its_own_service() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let scope = "scope=repository%3Aacme%2Fweb%2Fapp%3Apull";
    let mut c = with_auth(&srv, &srv.auth());
    let r = c.get(&format!("/auth/token?service=elsewhere&{scope}"));
    assert_eq!(r.status, 400, "{r:?}");
    let msg = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("elsewhere") && msg.contains("berth"), "{msg}");
    let r = c.request(
        "POST",
        "/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(
            "grant_type=password&username=berth&password={}&service=elsewhere&{scope}",
            srv.token
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"], "invalid_request", "{r:?}");
    // The service the challenge names, or none (some clients leave it out), is served.
    assert_eq!(
        c.get(&format!("/auth/token?service=berth&{scope}")).status,
        200
    );
    assert_eq!(c.get(&format!("/auth/token?{scope}")).status, 200);
    // A wrong service is the request's mistake, not a failed login.
    let text = srv.anonymous().get("/metrics").text();
    assert_eq!(counter(&text, "berth_auth_failures_total"), 0, "{text}");
}

#[test]
fn management_api_errors_have_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut a = srv.admin_client();
    let r = a.json("POST", "/api/v1/orgs", r#"{"slug":"Bad_Slug"}"#);
    assert_eq!(
        (r.status, api_code(&r).as_str()),
        (400, "BAD_REQUEST"),
        "{r:?}"
    );
    let r = a.json("POST", "/api/v1/orgs", r#"{"slug":"acme"}"#);
    assert_eq!((r.status, api_code(&r).as_str()), (409, "CONFLICT"));
    let r = a.json("POST", "/api/v1/orgs/acme/registries", r#"{"name":"Web"}"#);
    assert_eq!(r.status, 409, "slug web derived from Web exists: {r:?}");
    let r = a.json(
        "POST",
        "/api/v1/orgs/acme/registries",
        r#"{"name":"Web Services"}"#,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["slug"], "web-services");
    assert_eq!(r.json()["public"], false);
    let r = a.json("POST", "/api/v1/orgs", "not json");
    assert_eq!(r.status, 400);
    // A field the call does not take is refused, not a 200 that did nothing.
    let r = a.json(
        "PATCH",
        "/api/v1/orgs/acme/registries/web-services",
        r#"{"visibility":"public"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown field `visibility`"), "{r:?}");
    assert!(r.text().contains("`public`, `description`"), "{r:?}");
    let r = a.json("GET", "/api/v1/orgs/acme/registries/web-services", "");
    assert_eq!(r.json()["public"], false);
    let r = a.json(
        "POST",
        "/api/v1/orgs/acme/tokens",
        r#"{"scopes":["admin"]}"#,
    );
    assert_eq!(r.status, 400);
    let r = a.json(
        "POST",
        "/api/v1/orgs/nope/tokens",
        r#"{"scopes":["read_packages"]}"#,
    );
    assert_eq!(r.status, 404);
    let r = a.json(
        "PATCH",
        "/api/v1/orgs/acme/registries/web-services",
        r#"{"public":true}"#,
    );
    assert_eq!(
        (r.status, r.json()["public"].clone()),
        (200, serde_json::json!(true))
    );

    // Non-empty registry delete: 409; an empty one goes.
    push_image(&mut srv.client(), "acme/web/app", "1", 30).unwrap();
    let r = a.request("DELETE", "/api/v1/orgs/acme/registries/web", &[], b"");
    assert_eq!((r.status, api_code(&r).as_str()), (409, "CONFLICT"));
    let r = a.request(
        "DELETE",
        "/api/v1/orgs/acme/registries/web-services",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        a.get("/api/v1/orgs/acme/registries/web-services").status,
        404
    );

    // No token: 401. A bad token: 401. An org token: reads its own org, writes nothing.
    let r = srv.anonymous().get("/api/v1/orgs");
    assert_eq!((r.status, api_code(&r).as_str()), (401, "UNAUTHORIZED"));
    let r = with_auth(&srv, &bearer_header("berth_adm_wrong")).get("/api/v1/orgs");
    assert_eq!(r.status, 401);
    let mut o = with_auth(&srv, &bearer_header(&srv.token));
    let r = o.get("/api/v1/orgs");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!([{"slug":"acme","created":r.json()[0]["created"]}])
    );
    assert_eq!(o.get("/api/v1/orgs/acme/registries").status, 200);
    let r = o.json(
        "POST",
        "/api/v1/orgs/acme/registries",
        r#"{"name":"sneaky"}"#,
    );
    assert_eq!((r.status, api_code(&r).as_str()), (403, "FORBIDDEN"));
    let r = o.json(
        "POST",
        "/api/v1/orgs/acme/tokens",
        r#"{"scopes":["write_packages"]}"#,
    );
    assert_eq!(r.status, 403);
    let r = o.json("POST", "/api/v1/orgs", r#"{"slug":"mine"}"#);
    assert_eq!(r.status, 403);

    // Every change is in the audit log, newest first, with its actor.
    let r = a.get("/api/v1/orgs/acme/audit?limit=50");
    assert_eq!(r.status, 200);
    let log = r.json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "registry.delete", "{log}");
    for want in [
        "org.create",
        "registry.create",
        "registry.update",
        "token.create",
        "manifest.push",
    ] {
        assert!(actions.contains(&want), "{want} missing: {log}");
    }
    let push = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "manifest.push")
        .unwrap();
    assert_eq!(push["target"], "acme/web/app:1");
    assert!(push["actor"].as_str().unwrap().starts_with("tok_"));
    let r = a.get("/api/v1/orgs/acme/audit?limit=0");
    assert_eq!(r.status, 400);
}

#[test]
fn deletes_are_audited_with_their_actor() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let digest = push_image(&mut c, "acme/web/app", "1", 40).unwrap();
    assert_eq!(
        c.request("DELETE", "/v2/acme/web/app/manifests/1", &[], b"")
            .status,
        202
    );
    let r = c.request(
        "DELETE",
        &format!("/v2/acme/web/app/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let layer = sha256(&pattern(2000, 40));
    let r = c.request(
        "DELETE",
        &format!("/v2/acme/web/app/blobs/{layer}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let log = srv.admin_client().get("/api/v1/orgs/acme/audit").json();
    let got: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["target"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("blob.delete".to_string(), format!("acme/web/app@{layer}")),
            (
                "manifest.delete".to_string(),
                format!("acme/web/app@{digest}")
            ),
            ("tag.delete".to_string(), "acme/web/app:1".to_string()),
        ]
    );
}

#[test]
fn secrets_never_reach_the_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let data = dir.path().join("data");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = serve_command(&data, &[]);
    cmd.env("BERTH_LOG", "trace");
    let mut srv = Server::spawn_logging_to(cmd, Stdio::from(log));
    let t = bearer_for(&srv, Some(&srv.auth()), "repository:acme/web/app:pull,push");
    push_image(
        &mut with_auth(&srv, &bearer_header(&t)),
        "acme/web/app",
        "1",
        50,
    )
    .unwrap();
    let _ = with_auth(
        &srv,
        &basic("berth_pat_badbadbadbadbadbadbadbadbadbadbadbadbad0"),
    )
    .get("/v2/");
    let form = format!(
        "grant_type=password&username=u&password={}&service=berth&client_id=c",
        srv.token
    );
    let r = srv
        .anonymous()
        .request("POST", "/auth/token", &[], form.as_bytes());
    assert_eq!(r.status, 200);
    srv.signal(libc::SIGTERM);
    srv.wait(Duration::from_secs(8));
    let stdout = srv.rest_of_stdout();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("berth::access"),
        "the log was captured: {text}"
    );
    for secret in [
        &srv.admin,
        &srv.token,
        &t,
        &"berth_pat_badbadbad".to_string(),
    ] {
        assert!(!text.contains(secret.as_str()), "a secret is in the log");
        assert!(!stdout.contains(secret.as_str()), "a secret is on stdout");
    }
    // The admin token's secret is in its file, mode 0600.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(data.join("admin-token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let meta = std::fs::metadata(data.join("token-key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn public_url_sets_the_realm_and_last_use_is_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BERTH_PUBLIC_URL", "https://r.example.com/"),
        ("BERTH_AUTH_SERVICE", "r.example.com"),
    ];
    let mut srv = Server::start_with(dir.path(), &env);
    let r = srv.anonymous().get("/v2/_catalog");
    assert_eq!(r.status, 200, "catalog is granted to everyone, filtered");
    let r = srv.anonymous().get("/v2/");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="https://r.example.com/auth/token",service="r.example.com""#)
    );
    let listed = srv.admin_client().get("/api/v1/orgs/acme/tokens").json();
    assert!(listed[0]["last_used"].is_null(), "{listed}");
    assert_eq!(srv.client().get("/v2/").status, 200);
    // Batched: written at the latest on shutdown.
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait(Duration::from_secs(8)).code(), Some(0));
    let srv = Server::start_with(dir.path(), &env);
    let listed = srv.admin_client().get("/api/v1/orgs/acme/tokens").json();
    let used: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["last_used"].is_u64())
        .collect();
    assert_eq!(used.len(), 1, "{listed}");
}

/// The slugs of the registries (or the actions and targets of the audit entries) in an
/// API answer.
fn listed(v: &serde_json::Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|e| e[key].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn management_reads_show_a_token_only_the_registries_it_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    create_registry(&srv, "acme", "apps", false);
    create_registry(&srv, "acme", "sib", false);
    create_registry(&srv, "acme", "pub", true);
    push_image(&mut srv.client(), "acme/apps/app", "1", 50).unwrap();
    let mut a = srv.admin_client();
    let limited = a.create_token(
        "acme",
        r#"{"scopes":["read_packages"],"registries":["apps"]}"#,
    );
    // Pushed last, so the newest entry of the log is one the limited token may not see.
    push_image(&mut srv.client(), "acme/sib/app", "1", 51).unwrap();
    let mut l = with_auth(&srv, &bearer_header(&limited));

    // As on /v2/: apps, and the public registry anyone may pull; sib does not exist.
    let r = l.get("/api/v1/orgs/acme/registries");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(listed(&r.json(), "slug"), ["apps", "pub"]);
    assert_eq!(l.get("/api/v1/orgs/acme/registries/apps").status, 200);
    let sib = l.get("/api/v1/orgs/acme/registries/sib");
    let nothing = l.get("/api/v1/orgs/acme/registries/nothing");
    let unknown = nothing.text().replace("nothing", "sib");
    assert_eq!((sib.status, sib.text()), (404, unknown));
    let r = a.get("/api/v1/orgs/acme/registries");
    assert_eq!(listed(&r.json(), "slug"), ["apps", "pub", "sib", "web"]);

    // The audit log: only entries about registries it may pull, and pages fill up with
    // those (the newest entry overall is about sib).
    let r = l.get("/api/v1/orgs/acme/audit?limit=1");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(listed(&r.json(), "target"), ["acme/apps/app:1"]);
    let log = l.get("/api/v1/orgs/acme/audit").json();
    let targets = listed(&log, "target");
    assert!(
        targets
            .iter()
            .all(|t| t.starts_with("acme/apps") || t.starts_with("acme/pub")),
        "{log}"
    );
    assert!(targets.contains(&"acme/apps".to_string()), "{log}");
    // Token and organisation entries are the admin's: they name every token.
    let full = a.get("/api/v1/orgs/acme/audit").json();
    let actions = listed(&full, "action");
    assert!(actions.contains(&"token.create".to_string()), "{full}");
    assert!(listed(&full, "target").contains(&"acme/sib/app:1".to_string()));
    let mut o = with_auth(&srv, &bearer_header(&srv.token));
    let org_log = o.get("/api/v1/orgs/acme/audit").json();
    let org_actions = listed(&org_log, "action");
    assert!(
        org_actions
            .iter()
            .all(|a| !a.starts_with("token.") && !a.starts_with("org.")),
        "{org_log}"
    );
    assert!(listed(&org_log, "target").contains(&"acme/sib/app:1".to_string()));

    // Listing tokens takes the admin token; organisation tokens are refused, read-only
    // or not.
    for c in [&mut l, &mut o] {
        let r = c.get("/api/v1/orgs/acme/tokens");
        assert_eq!(
            (r.status, api_code(&r).as_str()),
            (403, "FORBIDDEN"),
            "{r:?}"
        );
    }
    assert_eq!(a.get("/api/v1/orgs/acme/tokens").status, 200);
}

#[test]
fn revoking_another_organisations_token_looks_like_revoking_none() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut a = srv.admin_client();
    assert_eq!(
        a.json("POST", "/api/v1/orgs", r#"{"slug":"beta"}"#).status,
        201
    );
    let r = a.json(
        "POST",
        "/api/v1/orgs/beta/tokens",
        r#"{"scopes":["read_packages"]}"#,
    );
    let beta_id = r.json()["id"].as_str().unwrap().to_string();
    let r = a.json(
        "POST",
        "/api/v1/orgs/acme/tokens",
        r#"{"scopes":["read_packages"]}"#,
    );
    let acme_id = r.json()["id"].as_str().unwrap().to_string();
    let mut o = with_auth(&srv, &bearer_header(&srv.token));
    let other = o.request("DELETE", &format!("/api/v1/tokens/{beta_id}"), &[], b"");
    let unknown = o.request("DELETE", "/api/v1/tokens/tok_00000000deadbeef", &[], b"");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let unknown_body = unknown.text().replace("tok_00000000deadbeef", &beta_id);
    assert_eq!((other.status, other.text()), (404, unknown_body));
    // Its own organisation's tokens: organisation tokens change nothing.
    let r = o.request("DELETE", &format!("/api/v1/tokens/{acme_id}"), &[], b"");
    assert_eq!((r.status, api_code(&r).as_str()), (403, "FORBIDDEN"));
    // The beta token still works; the admin revokes it.
    let r = a.request("DELETE", &format!("/api/v1/tokens/{beta_id}"), &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn deleting_a_registry_ends_its_upload_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    create_registry(&srv, "acme", "tmp2", false);
    let mut c = srv.client();
    let r = c.request("POST", "/v2/acme/tmp2/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202, "{r:?}");
    let loc = r.header("location").unwrap().to_string();
    let data = pattern(3000, 60);
    let r = c.request(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        &data[..1000],
    );
    assert_eq!(r.status, 202, "{r:?}");
    let loc = r.header("location").unwrap().to_string();
    let uploads = || {
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count()
    };
    assert_eq!(uploads(), 1);

    let mut a = srv.admin_client();
    let r = a.request("DELETE", "/api/v1/orgs/acme/registries/tmp2", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(uploads(), 0, "the session's file goes with it");
    create_registry(&srv, "acme", "tmp2", false);

    let r = c.request(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        &data[1000..],
    );
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(error_code(&r), "BLOB_UPLOAD_UNKNOWN");
    let digest = sha256(&data[..1000]);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c.request("PUT", &format!("{loc}{sep}digest={digest}"), &[], b"");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(error_code(&r), "BLOB_UPLOAD_UNKNOWN");
    let r = c.request(
        "HEAD",
        &format!("/v2/acme/tmp2/app/blobs/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "nothing appeared in the new registry");
    let r = c.request("GET", "/v2/acme/tmp2/app/tags/list", &[], b"");
    assert_eq!(r.status, 404, "{r:?}");
}
