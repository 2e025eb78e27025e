//! The pages and sign-in rules against a real engine, in process: access (what a viewer
//! may not read is the unknown-name 404), escaping, sessions ended by sign-out and by
//! revoking their token, CSRF refusals, the throttle on wrong tokens.

// The limiter reads the clock; the server's rule is not the tests'.
#![allow(clippy::disallowed_methods)]

use super::sessions::Sessions;
use super::*;
use crate::auth::credentials::PAT_PREFIX;
use crate::auth::Authority;
use crate::config::UiSettings;
use crate::config::{Config, Flags};
use crate::metrics::Metrics;
use crate::secret::{new_token_secret, sha256};
use berth_engine::Engine;
use berth_engine::{
    BlobKey, EngineOptions, NewManifest, RegistryRec, TokenKind, TokenRec, Visibility,
};
use bytes::Bytes;
use std::time::Instant;

struct Fixture {
    _dir: tempfile::TempDir,
    e: Engine,
    auth: Authority,
    sessions: Sessions,
    settings: UiSettings,
    downloads: crate::package::downloads::Downloads,
    /// A read token of acme, and its id.
    acme: (String, String),
}

/// A token of `org` that may read (`None`: the admin token); its secret and id.
fn token(e: &Engine, org: Option<&str>) -> (String, String) {
    let (kind, prefix) = match org {
        Some(_) => (TokenKind::Org, PAT_PREFIX),
        None => (TokenKind::Admin, crate::auth::credentials::ADMIN_PREFIX),
    };
    let s = new_token_secret(prefix).unwrap();
    let id = crate::secret::new_token_id().unwrap();
    e.create_token(TokenRec {
        id: id.clone(),
        kind,
        org: org.map(str::to_owned),
        read: true,
        write: org.is_none(),
        registries: Vec::new(),
        description: "laptop".into(),
        created: 0,
        expires: None,
        last_used: None,
        revoked: None,
        hash: sha256(s.expose().as_bytes()),
    })
    .unwrap();
    (s.expose().to_string(), id)
}

fn fixture_with(vars: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
    e.create_org("acme", 0).unwrap();
    e.create_org("beta", 0).unwrap();
    for (org, slug, vis, description) in [
        (
            "acme",
            "web",
            Visibility::Private,
            "<script>alert(1)</script>",
        ),
        ("acme", "pub", Visibility::Public, "Public images"),
        ("beta", "web", Visibility::Private, ""),
    ] {
        e.create_registry(RegistryRec {
            org: org.into(),
            slug: slug.into(),
            name: slug.into(),
            description: description.into(),
            visibility: vis,
            created: 0,
        })
        .unwrap();
    }
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cfg = Config::load(&Flags::default(), &vars).unwrap();
    let auth = Authority::new([7; 32], cfg.auth, Arc::new(Metrics::new(1)));
    Fixture {
        acme: token(&e, Some("acme")),
        _dir: dir,
        e,
        auth,
        sessions: Sessions::new(cfg.ui.session_idle, cfg.ui.max_sessions),
        settings: cfg.ui,
        downloads: Default::default(),
    }
}

fn fixture() -> Fixture {
    fixture_with(&[])
}

fn push(e: &Engine, repo: &str, tags: &[&str]) {
    let body = format!("{{\"repo\":\"{repo}\"}}");
    e.put_manifest(
        repo,
        NewManifest {
            key: BlobKey::sha256_of(body.as_bytes()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: body.into_bytes(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            blobs: vec![],
            external: vec![],
            manifests: vec![],
            subject: None,
        },
    )
    .map(|_| ())
    .unwrap();
}

impl Fixture {
    fn site(&self) -> Site<'_> {
        Site {
            engine: &self.e,
            auth: &self.auth,
            sessions: &self.sessions,
            settings: &self.settings,
            downloads: &self.downloads,
            host: "reg.test:5000",
        }
    }

    fn call(&self, method: &str, target: &str, cookies: &str, body: &str) -> WebResponse {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = vec![("host".to_string(), "reg.test:5000".to_string())];
        if !cookies.is_empty() {
            headers.push(("cookie".into(), cookies.into()));
        }
        let req = WebRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers,
            body: Bytes::from(body.to_string()),
        };
        let ctx = Ctx {
            now: Instant::now(),
            unix: 1_000,
            peer: Some("192.0.2.1".parse().unwrap()),
        };
        answer(&self.site(), &req, &ctx)
    }

    fn get(&self, target: &str, cookies: &str) -> WebResponse {
        self.call("GET", target, cookies, "")
    }

    /// Signs in with `token`: the session cookie's value.
    fn sign_in(&self, token: &str) -> String {
        let form = self.get("/signin", "");
        let csrf = set_cookie(&form, "berth_csrf").unwrap();
        let r = self.call(
            "POST",
            "/signin",
            &format!("berth_csrf={csrf}"),
            &format!("csrf={csrf}&token={token}"),
        );
        assert_eq!(r.status, 303, "{}", text(&r));
        set_cookie(&r, "berth_session").unwrap()
    }
}

fn text(r: &WebResponse) -> String {
    String::from_utf8_lossy(r.body.bytes().unwrap()).into_owned()
}

fn header<'a>(r: &'a WebResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The value a `Set-Cookie` of the response gives cookie `name`.
fn set_cookie(r: &WebResponse, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k == "Set-Cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

/// The hidden `csrf` value of the page's forms.
fn form_csrf(r: &WebResponse) -> String {
    let t = text(r);
    let at = t
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + 19;
    t[at..at + 64].to_string()
}

#[test]
fn anonymous_viewers_see_public_registries_and_a_404_for_the_rest() {
    let f = fixture();
    let r = f.get("/", "");
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("href=\"/signin\""));
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert!(header(&r, "content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    let r = f.get("/acme", "");
    assert_eq!(r.status, 200);
    let t = text(&r);
    assert!(t.contains("href=\"/acme/pub\""), "{t}");
    assert!(!t.contains("/acme/web\""), "private registry listed: {t}");
    assert_eq!(f.get("/acme/pub", "").status, 200);
    for unseen in [
        "/acme/web",
        "/beta",
        "/beta/web",
        "/nope",
        "/acme/nope",
        "/Acme",
        "/static",
    ] {
        let r = f.get(unseen, "");
        assert_eq!(r.status, 404, "{unseen}");
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        assert!(text(&r).contains("Not found"));
    }
    assert_eq!(f.get("/a/b/c/d/e/f", "").status, 404);
    let r = f.call("POST", "/acme", "", "");
    assert_eq!((r.status, header(&r, "allow")), (405, Some("GET, HEAD")));
}

#[test]
fn a_session_shows_its_private_registries_until_its_token_is_revoked() {
    let f = fixture();
    let session = f.sign_in(&f.acme.0);
    let cookie = format!("berth_session={session}");
    let r = f.get("/", &cookie);
    assert_eq!((r.status, header(&r, "location")), (303, Some("/acme")));
    let r = f.get("/acme", &cookie);
    let t = text(&r);
    assert!(
        t.contains("href=\"/acme/web\"") && t.contains("href=\"/acme/pub\""),
        "{t}"
    );
    assert!(t.contains("Signed in as"), "{t}");
    assert!(t.contains("acme · laptop"), "{t}");
    // the description is text, never markup
    assert!(t.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{t}");
    assert!(!t.contains("<script>alert"), "{t}");
    let r = f.get("/acme/web", &cookie);
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!text(&r).contains("<script>alert"));
    // another organisation's private registry does not exist for it
    assert_eq!(f.get("/beta/web", &cookie).status, 404);
    assert_eq!(f.get("/beta", &cookie).status, 404);

    f.e.revoke_token(&f.acme.1, 2_000).unwrap();
    let r = f.get("/acme/web", &cookie);
    assert_eq!(r.status, 404);
    assert_eq!(set_cookie(&r, "berth_session").as_deref(), Some(""));
    assert!(text(&r).contains("href=\"/signin\""));
    // the session is gone, not just refused once
    assert_eq!(f.get("/acme/web", &cookie).status, 404);
    let form = f.get("/signin", "");
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    let r = f.call(
        "POST",
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={csrf}&token={}", f.acme.0),
    );
    assert_eq!(r.status, 401);
    assert!(text(&r).contains("token revoked"), "{}", text(&r));
}

#[test]
fn sign_in_refuses_a_form_without_its_double_submit_token() {
    let f = fixture();
    let form = f.get("/signin", "");
    assert_eq!(form.status, 200);
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    assert_eq!(form_csrf(&form), csrf);
    assert!(text(&form).contains("type=\"password\""));
    let set = header(&form, "set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    // the form shown again keeps the cookie it has
    let again = f.get("/signin", &format!("berth_csrf={csrf}"));
    assert_eq!(form_csrf(&again), csrf);
    assert_eq!(set_cookie(&again, "berth_csrf"), None);
    let good = &f.acme.0;
    let other = "b".repeat(64);
    for (cookie, body) in [
        (String::new(), format!("csrf={csrf}&token={good}")),
        (format!("berth_csrf={csrf}"), format!("token={good}")),
        (
            format!("berth_csrf={csrf}"),
            format!("csrf={other}&token={good}"),
        ),
        ("berth_csrf=".to_string(), format!("csrf=&token={good}")),
        (
            "berth_csrf=short".to_string(),
            format!("csrf=short&token={good}"),
        ),
    ] {
        let r = f.call("POST", "/signin", &cookie, &body);
        assert_eq!(r.status, 403, "{cookie} {body}");
        assert_eq!(set_cookie(&r, "berth_session"), None);
    }
    let r = f.call(
        "POST",
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={csrf}&token={good}"),
    );
    assert_eq!(r.status, 303);
    let set = r
        .headers
        .iter()
        .find(|(k, v)| k == "Set-Cookie" && v.starts_with("berth_session="))
        .unwrap()
        .1
        .clone();
    assert!(set.contains("; HttpOnly; SameSite=Lax; Path=/"), "{set}");
    assert!(!set.contains("Secure"), "plain http: {set}");
}

#[test]
fn cookies_are_secure_when_the_public_url_is_https() {
    let f = fixture_with(&[("BERTH_PUBLIC_URL", "https://registry.example.com")]);
    let form = f.get("/signin", "");
    assert!(header(&form, "set-cookie").unwrap().ends_with("; Secure"));
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    let r = f.call(
        "POST",
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={csrf}&token={}", f.acme.0),
    );
    let set = header(&r, "set-cookie").unwrap();
    assert!(
        set.starts_with("berth_session=") && set.ends_with("; Secure"),
        "{set}"
    );
    // and the publish commands name the public host
    let session = set_cookie(&r, "berth_session").unwrap();
    let t = text(&f.get("/acme/web", &format!("berth_session={session}")));
    assert!(
        t.contains("docker login registry.example.com -u berth -p &lt;write token&gt;"),
        "{t}"
    );
}

#[test]
fn sign_out_needs_the_session_csrf_token_and_ends_the_session() {
    let f = fixture();
    let session = f.sign_in(&f.acme.0);
    let cookie = format!("berth_session={session}");
    let page = f.get("/acme", &cookie);
    let csrf = form_csrf(&page);
    assert!(text(&page).contains("action=\"/signout\""));
    for body in [String::new(), "csrf=nope".to_string()] {
        let r = f.call("POST", "/signout", &cookie, &body);
        assert_eq!(r.status, 403);
        assert_eq!(f.get("/acme/web", &cookie).status, 200, "still signed in");
    }
    let r = f.call("POST", "/signout", &cookie, &format!("csrf={csrf}"));
    assert_eq!((r.status, header(&r, "location")), (303, Some("/")));
    assert_eq!(set_cookie(&r, "berth_session").as_deref(), Some(""));
    assert_eq!(f.get("/acme/web", &cookie).status, 404);
    assert_eq!(f.get("/signout", &cookie).status, 405);
}

#[test]
fn wrong_tokens_are_throttled_like_the_api() {
    let f = fixture_with(&[("BERTH_AUTH_MAX_FAILURES", "2")]);
    let form = f.get("/signin", "");
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    let cookie = format!("berth_csrf={csrf}");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = f.call(
            "POST",
            "/signin",
            &cookie,
            &format!("csrf={csrf}&token=berth_pat_wrong"),
        );
        statuses.push(r.status);
        if r.status == 429 {
            assert!(header(&r, "retry-after").is_some());
        }
    }
    assert_eq!(statuses, [401, 401, 429]);
    let r = f.call("POST", "/signin", &cookie, &format!("csrf={csrf}&token="));
    assert_eq!(r.status, 400);
}

#[test]
fn a_registry_lists_its_images_a_page_at_a_time_with_the_publish_commands() {
    let mut f = fixture();
    f.settings.page_size = 2;
    push(&f.e, "acme/pub/app", &["1.0", "2.0", "3.0", "latest"]);
    push(&f.e, "acme/pub/tools/cli", &[]);
    push(&f.e, "acme/pub/zeta", &["v1"]);
    push(&f.e, "acme/pubx/other", &["v1"]);
    let r = f.get("/acme/pub", "");
    let t = text(&r);
    assert!(t.contains("href=\"/acme/pub/app\""), "{t}");
    assert!(
        t.contains("<code>1.0</code> <code>2.0</code> <code>3.0</code> …"),
        "{t}"
    );
    assert!(t.contains("href=\"/acme/pub/tools/cli\""), "{t}");
    assert!(t.contains("untagged"), "{t}");
    assert!(!t.contains("zeta"), "{t}");
    assert!(t.contains("href=\"/acme/pub?after=tools/cli\""), "{t}");
    assert!(
        t.contains("docker login reg.test:5000 -u berth -p &lt;write token&gt;"),
        "{t}"
    );
    assert!(
        t.contains("docker tag IMAGE reg.test:5000/acme/pub/IMAGE:TAG"),
        "{t}"
    );
    assert!(
        t.contains("docker push reg.test:5000/acme/pub/IMAGE:TAG"),
        "{t}"
    );
    assert!(t.contains("data-copy=\"docker push reg.test:5000/acme/pub/IMAGE:TAG\""));
    let t = text(&f.get("/acme/pub?after=tools/cli", ""));
    assert!(t.contains("href=\"/acme/pub/zeta\""), "{t}");
    assert!(
        !t.contains("href=\"/acme/pub/app\"") && !t.contains("other"),
        "{t}"
    );
    assert!(!t.contains("?after="), "last page: {t}");
    let t = text(&f.get("/acme", ""));
    assert!(t.contains("<td class=\"num\">3</td>"), "three images: {t}");
}

#[test]
fn image_and_version_paths_reach_their_pages_and_their_download() {
    let f = fixture();
    push(&f.e, "acme/pub/tools/cli", &["1.0"]);
    push(&f.e, "acme/web/app", &["1.0"]);
    let r = f.get("/acme/pub/tools/cli", "");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(text(&r).contains("href=\"/acme/pub/tools/cli:1.0\""));
    let r = f.get("/acme/pub/tools/cli:1.0", "");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(text(&r).contains("href=\"/acme/pub/tools/cli:1.0?tab=details\""));
    let r = f.get("/acme/pub/tools/cli:1.0?tab=details", "");
    assert_eq!(r.status, 200, "{}", text(&r));
    // The Download button's route: the archive itself, with the viewer's access.
    // (this one is an artifact: the page says why it has none).
    let r = f.get("/acme/pub/tools/cli:1.0/download", "");
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(
        text(&r).contains("only images have a Download"),
        "{}",
        text(&r)
    );
    assert_eq!(f.get("/acme/pub/tools/cli:2.0/download", "").status, 404);
    assert_eq!(f.get("/acme/pub/tools/cli:2.0", "").status, 404);
    let r = f.get("/acme/pub/tools/cli:1.0?tab=nope", "");
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("There is no tab `nope`"), "{}", text(&r));
    let r = f.get("/acme/pub/tools/cli:-bad", "");
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("is not a tag"), "{}", text(&r));
    // A private registry's image is the unknown-name 404 until its reader signs in.
    assert_eq!(f.get("/acme/web/app", "").status, 404);
    assert_eq!(f.get("/acme/web/app:1.0", "").status, 404);
    let cookie = format!("berth_session={}", f.sign_in(&f.acme.0));
    assert_eq!(f.get("/acme/web/app:1.0", &cookie).status, 200);
}

#[test]
fn the_admin_sees_every_organisation() {
    let f = fixture();
    let (admin, _) = token(&f.e, None);
    let form = f.get("/signin", "");
    let csrf = set_cookie(&form, "berth_csrf").unwrap();
    let r = f.call(
        "POST",
        "/signin",
        &format!("berth_csrf={csrf}"),
        &format!("csrf={csrf}&token={admin}"),
    );
    assert_eq!(header(&r, "location"), Some("/"));
    let cookie = format!("berth_session={}", set_cookie(&r, "berth_session").unwrap());
    let t = text(&f.get("/", &cookie));
    assert!(
        t.contains("href=\"/acme\"") && t.contains("href=\"/beta\""),
        "{t}"
    );
    assert_eq!(f.get("/beta/web", &cookie).status, 200);
}

#[test]
fn reserved_names_cover_every_top_level_path_of_the_server() {
    for p in [
        "/healthz",
        "/metrics",
        "/api/v1/orgs",
        "/auth/token",
        "/v2/",
        "/static/berth.css",
        "/signin",
        "/signout",
        "/search",
    ] {
        let top = p.trim_start_matches('/').split('/').next().unwrap();
        assert!(RESERVED.contains(&top), "{top}");
    }
}

#[test]
fn the_search_page_finds_images_by_name_that_the_viewer_may_see_and_escapes_the_query() {
    let f = fixture();
    push(&f.e, "acme/pub/tools/cli", &["1.0"]);
    push(&f.e, "acme/web/app", &["1.0"]);
    let t = text(&f.get("/search", ""));
    assert!(t.contains("name=\"path\""), "the form: {t}");
    // Anonymous: the public registry's image, not the private one.
    let t = text(&f.get("/search?q=c", ""));
    assert!(t.contains("href=\"/acme/pub/tools/cli\""), "{t}");
    assert!(!t.contains("acme/web/app"), "{t}");
    let t = text(&f.get("/search?q=app&org=acme", ""));
    assert!(t.contains("Nothing found"), "{t}");
    let cookie = format!("berth_session={}", f.sign_in(&f.acme.0));
    let t = text(&f.get("/search?q=app", &cookie));
    assert!(t.contains("href=\"/acme/web/app:1.0\""), "signed in: {t}");
    let t = text(&f.get("/search?q=%3Cscript%3E", ""));
    assert!(t.contains("value=\"&lt;script&gt;\""), "{t}");
    assert!(!t.contains("<script>"), "{t}");
    assert_eq!(f.get("/search?org=nobody&q=x", "").status, 404);
}
