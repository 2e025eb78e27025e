//! The web pages against the real binary, in raw HTTP: sign in with a token into a
//! session cookie, see a private registry's page and the image pushed to it, lose it the
//! moment the token is revoked, sign out, CSRF refusals, the security headers, and the
//! server's own paths answering as before.

mod common;

use common::*;

/// The value `r` sets cookie `name` to.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// The hidden CSRF value in a page's forms.
fn form_csrf(r: &Response) -> String {
    let t = r.text();
    let at = t.find("name=\"csrf\" value=\"").expect("a form with csrf") + 19;
    t[at..at + 64].to_string()
}

fn form_post(c: &mut Client, path: &str, cookie: &str, body: &str) -> Response {
    c.request(
        "POST",
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookie),
        ],
        body.as_bytes(),
    )
}

fn get_with(c: &mut Client, path: &str, cookie: &str) -> Response {
    c.request("GET", path, &[("Cookie", cookie)], b"")
}

/// Signs in through the form; the session cookie as `berth_session=…`.
fn sign_in(c: &mut Client, token: &str) -> String {
    let form = c.get("/signin");
    assert_eq!(form.status, 200, "{form:?}");
    let csrf = set_cookie(&form, "berth_csrf").expect("the form's cookie");
    assert_eq!(form_csrf(&form), csrf);
    let r = form_post(
        c,
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={csrf}&token={token}"),
    );
    assert_eq!(r.status, 303, "{r:?} {}", r.text());
    assert_eq!(r.header("location"), Some("/acme"));
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    format!("berth_session={}", set_cookie(&r, "berth_session").unwrap())
}

fn assert_page_headers(r: &Response) {
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").expect("a CSP");
    assert_eq!(
        csp,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn sign_in_browse_a_private_registry_and_lose_it_when_the_token_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut admin = srv.admin_client();
    let r = admin.json(
        "PATCH",
        "/api/v1/orgs/acme/registries/web",
        r#"{"description":"<script>alert(1)</script>"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    // an image in the private registry
    let mut push = srv.client();
    let config = b"{}".to_vec();
    let config_digest = push_blob(&mut push, &config, 1);
    let layer = pattern(1000, 3);
    let layer_digest = push_blob(&mut push, &layer, 1);
    let manifest = image_manifest((&config_digest, config.len()), (&layer_digest, layer.len()));
    for tag in ["1.0", "latest"] {
        let r = push.request(
            "PUT",
            &format!("/v2/{REPO}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.as_bytes(),
        );
        assert_eq!(r.status, 201, "{r:?}");
    }
    let r = admin.json(
        "POST",
        "/api/v1/orgs/acme/tokens",
        r#"{"scopes":["read_packages"],"description":"browser"}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let (token, id) = (
        r.json()["token"].as_str().unwrap().to_string(),
        r.json()["id"].as_str().unwrap().to_string(),
    );

    let mut anon = srv.anonymous();
    let r = anon.get("/acme/web");
    assert_eq!(r.status, 404, "private to anonymous");
    assert_page_headers(&r);
    assert_eq!(anon.get("/acme").status, 404, "nothing visible in acme");

    let mut c = srv.anonymous();
    let session = sign_in(&mut c, &token);
    let r = get_with(&mut c, "/acme", &session);
    assert_eq!(r.status, 200);
    assert_page_headers(&r);
    assert!(r.text().contains("href=\"/acme/web\""), "{}", r.text());
    let r = get_with(&mut c, "/acme/web", &session);
    assert_eq!(r.status, 200);
    assert_page_headers(&r);
    let t = r.text();
    assert!(t.contains("href=\"/acme/web/app\""), "{t}");
    assert!(t.contains("<code>1.0</code> <code>latest</code>"), "{t}");
    assert!(t.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{t}");
    assert!(!t.contains("<script>alert"), "{t}");
    assert!(!t.contains("<style"), "no inline style: {t}");
    assert!(
        t.contains("docker tag IMAGE localhost/acme/web/IMAGE:TAG"),
        "the request's host: {t}"
    );
    // the stylesheet and script the page links
    for asset in ["/static/berth.css", "/static/berth.js"] {
        let at = t.find(&format!("{asset}?v=")).expect(asset);
        let url = &t[at..t[at..].find('"').unwrap() + at];
        let r = c.get(url);
        assert_eq!(r.status, 200, "{url}");
        assert!(r.header("cache-control").unwrap().contains("immutable"));
        let r = c.request(
            "GET",
            url,
            &[("If-None-Match", r.header("etag").unwrap())],
            b"",
        );
        assert_eq!(r.status, 304, "{url}");
    }

    // The Download button: the archive, with the session's access.
    let r = get_with(&mut c, "/acme/web/app:1.0/download", &session);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.contains("app_1.0.tar")),
        "{r:?}"
    );
    assert!(
        r.body.starts_with(b"blobs/"),
        "a tar whose first member is blobs/"
    );
    assert_eq!(anon.get("/acme/web/app:1.0/download").status, 404);

    let r = admin.request("DELETE", &format!("/api/v1/tokens/{id}"), &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let r = get_with(&mut c, "/acme/web", &session);
    assert_eq!(r.status, 404, "revoked: the session is over");
    assert_eq!(set_cookie(&r, "berth_session").as_deref(), Some(""));
    let form = c.get("/signin");
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    let r = form_post(
        &mut c,
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={csrf}&token={token}"),
    );
    assert_eq!(r.status, 401);
    assert!(r.text().contains("token revoked"));
    assert_eq!(set_cookie(&r, "berth_session"), None);
}

#[test]
fn sign_out_and_csrf_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.anonymous();
    // a sign-in post without the form's cookie, or with another value
    let form = c.get("/signin");
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    let r = form_post(
        &mut c,
        "/signin",
        "",
        &format!("csrf={csrf}&token={}", srv.token),
    );
    assert_eq!(r.status, 403);
    assert_page_headers(&r);
    let r = form_post(
        &mut c,
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={}&token={}", "0".repeat(64), srv.token),
    );
    assert_eq!(r.status, 403);
    assert_eq!(set_cookie(&r, "berth_session"), None);

    let session = sign_in(&mut c, &srv.token);
    let page = get_with(&mut c, "/acme/web", &session);
    assert_eq!(page.status, 200);
    let csrf = form_csrf(&page);
    let r = form_post(&mut c, "/signout", &session, "csrf=forged");
    assert_eq!(r.status, 403);
    assert_eq!(get_with(&mut c, "/acme/web", &session).status, 200);
    let r = form_post(&mut c, "/signout", &session, &format!("csrf={csrf}"));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    assert_eq!(get_with(&mut c, "/acme/web", &session).status, 404);
    let r = get_with(&mut c, "/", &session);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("href=\"/signin\""));
}

#[test]
fn the_servers_own_paths_answer_as_before_and_are_no_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut a = srv.admin_client();
    for slug in ["static", "signin", "api", "v2", "healthz", "search"] {
        let r = a.json("POST", "/api/v1/orgs", &format!(r#"{{"slug":"{slug}"}}"#));
        assert_eq!(r.status, 400, "{slug}: {r:?}");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("choose another slug"), "{msg}");
    }
    let mut c = srv.anonymous();
    let r = c.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let r = c.get("/api/v1/nope");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = c.get("/v2/");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let r = c.get("/auth/token?service=berth");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["token"].is_string());
    let r = c.get("/nobody/here");
    assert_eq!(r.status, 404);
    assert_page_headers(&r);
}
