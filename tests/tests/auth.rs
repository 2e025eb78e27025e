//! Multi-tenant access control (issue 3, docs/auth.md) as users meet it: docker, skopeo,
//! podman and containerd log in and push or pull with organisation and registry tokens;
//! what a token may not do fails in the client and leaves nothing behind; anonymous users
//! pull public registries only; revocation and expiry bite at once; one organisation never
//! sees another's; the token endpoint speaks the flows the clients use (spec digest §9).

use berth_tests::Expect as _;
use std::time::Duration;

use berth_tests::auth::{basic, bearer, challenge_param, form_escape, Token};
use berth_tests::clients::{skopeo, skopeo_login, Dockerd, Podman};
use berth_tests::content::Image;
use berth_tests::http::{path_of, Client};
use berth_tests::layout::{self, Layout};
use berth_tests::{repo, Registry, Request, Response, ORG, REGISTRY};
use serde_json::Value;

/// Writes `img` as an OCI layout tagged `tag` under the registry's scratch folder `dir`.
fn layout_of(reg: &Registry, dir: &str, img: &Image, tag: &str) -> String {
    let src = reg.scratch(dir);
    let mut l = Layout::create(&src);
    l.add_image(img, Some(tag));
    l.write_index();
    format!("oci:{}:{tag}", src.display())
}

/// A client presenting the admin token, which may read everything: the referee that says
/// what a refused client did or did not store.
fn referee(reg: &Registry) -> Client {
    Client::new(reg.addr()).with_auth(&bearer(reg.admin_token()))
}

/// Nothing of `img` is visible under `name`: no tag, no manifest, no blob.
#[track_caller]
fn assert_nothing_stored(reg: &Registry, name: &str, img: &Image) {
    let mut c = referee(reg);
    c.head(&format!("/v2/{name}/manifests/{}", img.manifest.digest))
        .expect(404);
    for b in img.blobs() {
        c.head(&format!("/v2/{name}/blobs/{}", b.digest))
            .expect(404);
    }
    let tags = c.get(&format!("/v2/{name}/tags/list"));
    if tags.status == 200 {
        let v = tags.json();
        let none = v["tags"].is_null() || v["tags"].as_array().is_some_and(|t| t.is_empty());
        assert!(none, "a refused push left tags:\n{tags:?}");
    } else {
        tags.expect(404);
    }
}

/// A client command failed, and for the reason under test: the registry refused access (not
/// TLS, not a crash of the client).
#[track_caller]
fn assert_refused_for_access(what: &str, out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "{what} succeeded:\n{stderr}");
    assert!(
        [
            "denied",
            "unauthorized",
            "authentication required",
            "invalid username/password",
            "403",
            "401"
        ]
        .iter()
        .any(|w| stderr.contains(w)),
        "{what} failed, but not because access was refused:\n{stderr}"
    );
}

/// `GET /auth/token?service=berth&scope=…` with `authorization` (if any) → the 200 body's
/// bearer token.
#[track_caller]
fn bearer_from_get(reg: &Registry, authorization: Option<&str>, scope: &str) -> String {
    let r = token_get(reg, authorization, &[scope]).expect(200);
    token_of(&r)
}

fn token_get(reg: &Registry, authorization: Option<&str>, scopes: &[&str]) -> Response {
    let mut path = "/auth/token?service=berth&account=berth".to_string();
    for s in scopes {
        path.push_str(&format!("&scope={}", form_escape(s)));
    }
    let mut req = Request::get(&path);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    reg.anonymous().send(req)
}

#[track_caller]
fn token_of(r: &Response) -> String {
    let v = r.json();
    let t = v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("token response without `token`:\n{r:?}"));
    assert_eq!(
        v["access_token"].as_str(),
        Some(t),
        "`access_token` must equal `token` (containerd reads only access_token):\n{r:?}"
    );
    assert!(
        v["expires_in"].as_u64().is_some_and(|s| s >= 60),
        "expires_in must be at least 60 s:\n{r:?}"
    );
    assert!(
        v.get("refresh_token").is_none(),
        "no refresh_token without the refresh flow:\n{r:?}"
    );
    t.to_string()
}

/// A 401 that is what docs/auth.md says: error JSON with UNAUTHORIZED and a Bearer
/// challenge whose realm is this server's token endpoint.
#[track_caller]
fn assert_401_challenge(reg: &Registry, r: &Response) -> String {
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.error_codes(), ["UNAUTHORIZED"], "{r:?}");
    let ch = r.must_header("WWW-Authenticate").to_string();
    assert_eq!(
        challenge_param(&ch, "realm").as_deref(),
        Some(format!("{}/auth/token", reg.url()).as_str()),
        "{r:?}"
    );
    assert_eq!(
        challenge_param(&ch, "service").as_deref(),
        Some("berth"),
        "{r:?}"
    );
    ch
}

// --- real clients -------------------------------------------------------------------------

#[test]
fn docker_login_then_push_and_pull_with_a_write_token() {
    let reg = Registry::start();
    let img = Image::random(2, 200_000);
    let archive = reg.scratch("archive").join("image.tar");
    berth_tests::clients::skopeo_copy(
        &layout_of(&reg, "src", &img, "v1"),
        &format!("docker-archive:{}:berth-e2e/auth:v1", archive.display()),
        &[],
    );
    let host = reg.host();
    let dockerd = Dockerd::start(&reg.scratch("docker"), &host);

    // A wrong token: login fails (the server checks it: /v2/ answers 401 to anonymous).
    let (_, bad) = dockerd
        .docker()
        .args(["login", "--username", "berth", "--password"])
        .arg(format!("berth_pat_{}", "x".repeat(40)))
        .arg(&host)
        .output();
    assert_refused_for_access("docker login with a token that does not exist", &bad);

    let out = dockerd.login(&host, reg.token());
    assert!(out.contains("Login Succeeded"), "docker login: {out}");
    dockerd.docker().arg("load").arg("-i").arg(&archive).run();
    let loaded_id = dockerd.image_id("berth-e2e/auth:v1");
    let remote = format!("{host}/{}", repo("docker/login:v1"));
    dockerd
        .docker()
        .args(["tag", "berth-e2e/auth:v1", &remote])
        .run();
    dockerd.docker().args(["push", &remote]).run();
    referee(&reg)
        .head(&format!("/v2/{}/manifests/v1", repo("docker/login")))
        .expect(200);

    dockerd
        .docker()
        .args(["rmi", &remote, "berth-e2e/auth:v1"])
        .run();
    dockerd.docker().args(["pull", &remote]).run();
    let pulled_id = dockerd.image_id(&remote);
    assert_eq!(pulled_id, loaded_id, "image id after push and pull");
}

#[test]
fn skopeo_login_then_copy_pushes_and_pulls_back_with_a_write_token() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    let authfile = reg.scratch("login").join("auth.json");
    let host = reg.host();

    let (_, bad) = skopeo()
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&authfile)
        .args([
            "--username",
            "berth",
            "--password",
            "berth_pat_wrong",
            &host,
        ])
        .output();
    assert_refused_for_access("skopeo login with a bad token", &bad);

    skopeo_login(&authfile, &host, reg.token());
    let remote = format!("docker://{host}/{}", repo("skopeo/login:v1"));
    let auth = ["--authfile", authfile.to_str().expect("utf-8 path")];
    berth_tests::clients::skopeo_copy(&layout_of(&reg, "src", &img, "v1"), &remote, &auth);
    let out = reg.scratch("back");
    berth_tests::clients::skopeo_copy(&remote, &format!("oci:{}:v1", out.display()), &auth);
    assert_eq!(layout::index_entries(&out)[0].digest, img.manifest.digest);
    for b in img.blobs() {
        assert!(layout::read_blob(&out, &b.digest) == b.bytes);
    }
}

/// podman login with a read token: pull works, push fails in the client and stores nothing.
#[test]
fn podman_login_with_a_read_token_pulls_but_cannot_push() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    reg.skopeo_copy(
        &layout_of(&reg, "src", &img, "v1"),
        &format!("docker://{}/{}", reg.host(), repo("podman/src:v1")),
        &[],
    );
    let read = reg.admin().create_token(ORG, &["read_packages"], &[], None);
    let host = reg.host();
    let podman = Podman::new(&reg.scratch("podman"));

    let (_, bad) = podman
        .cmd()
        .args([
            "login",
            "--tls-verify=false",
            "--username",
            "berth",
            "--password",
        ])
        .arg("berth_pat_wrong")
        .arg(&host)
        .output();
    assert_refused_for_access("podman login with a bad token", &bad);

    podman.login(&host, &read.token);
    let src = format!("{host}/{}", repo("podman/src:v1"));
    podman
        .cmd()
        .args(["pull", "--tls-verify=false", &src])
        .run();
    let digest = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Digest}}", &src])
        .run();
    assert_eq!(digest.trim(), img.manifest.digest);

    let dst = format!("{host}/{}", repo("podman/refused:v1"));
    podman.cmd().args(["tag", &src, &dst]).run();
    let (_, push) = podman
        .cmd()
        .args(["push", "--tls-verify=false", &dst])
        .output();
    assert_refused_for_access("podman push with a read-only token", &push);
    assert_nothing_stored(&reg, &repo("podman/refused"), &img);
}

#[test]
fn push_with_a_write_token_and_pull_with_a_read_token() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    let admin = reg.admin();
    let write = admin.create_token(ORG, &["write_packages"], &[], None);
    let read = admin.create_token(ORG, &["read_packages"], &[], None);
    let remote = format!("docker://{}/{}", reg.host(), repo("tokens/app:v1"));
    berth_tests::clients::skopeo_copy(
        &layout_of(&reg, "src", &img, "v1"),
        &remote,
        &["--dest-creds", &format!("berth:{}", write.token)],
    );
    let out = reg.scratch("back");
    berth_tests::clients::skopeo_copy(
        &remote,
        &format!("oci:{}:v1", out.display()),
        &["--src-creds", &format!("berth:{}", read.token)],
    );
    assert_eq!(layout::index_entries(&out)[0].digest, img.manifest.digest);
    for b in img.blobs() {
        assert!(layout::read_blob(&out, &b.digest) == b.bytes);
    }
    // The raw client agrees: the read token pulls what the write token pushed.
    let mut c = reg.client_as(&read.token);
    c.assert_manifest(&repo("tokens/app"), "v1", &img.manifest);
}

#[test]
fn push_with_a_read_token_fails_in_the_client_and_stores_nothing() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    let read = reg.admin().create_token(ORG, &["read_packages"], &[], None);
    let name = repo("tokens/refused");
    let (_, out) = berth_tests::clients::skopeo()
        .arg("copy")
        .args(["--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("berth:{}", read.token))
        .arg(layout_of(&reg, "src", &img, "v1"))
        .arg(format!("docker://{}/{name}:v1", reg.host()))
        .limit(Duration::from_secs(120))
        .output();
    assert_refused_for_access("skopeo push with a read-only token", &out);
    assert_nothing_stored(&reg, &name, &img);

    // Raw: Basic with the read token on a push is 403 DENIED naming the missing scope
    // (decision 5), and starts no upload.
    let mut c = reg.client_as(&read.token);
    let r =
        c.send(Request::post(&format!("/v2/{name}/blobs/uploads/")).header("Content-Length", "0"));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.error_codes(), ["DENIED"], "{r:?}");
    let msg = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(msg.contains("write_packages"), "{r:?}");
    assert!(r.header("Location").is_none(), "{r:?}");
}

#[test]
fn anonymous_pull_of_a_public_registry_works_with_skopeo_and_podman() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    let admin = reg.admin();
    let slug = admin.create_registry(ORG, "Open Images", true);
    assert_eq!(slug, "open-images");
    let name = format!("{ORG}/{slug}/app");
    reg.skopeo_copy(
        &layout_of(&reg, "src", &img, "v1"),
        &format!("docker://{}/{name}:v1", reg.host()),
        &[],
    );

    // skopeo without any credentials (not even the machine's).
    let out = reg.scratch("anon");
    berth_tests::clients::skopeo_copy(
        &format!("docker://{}/{name}:v1", reg.host()),
        &format!("oci:{}:v1", out.display()),
        &["--src-no-creds"],
    );
    assert_eq!(layout::index_entries(&out)[0].digest, img.manifest.digest);

    // podman with an empty auth file.
    let podman = Podman::new(&reg.scratch("podman"));
    let r = format!("{}/{name}:v1", reg.host());
    podman.cmd().args(["pull", "--tls-verify=false", &r]).run();
    let digest = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Digest}}", &r])
        .run();
    assert_eq!(digest.trim(), img.manifest.digest);

    // Anonymous push into the public registry is still refused, and stores nothing.
    let other = format!("{}/{ORG}/{slug}/anon:v1", reg.host());
    podman.cmd().args(["tag", &r, &other]).run();
    let (_, push) = podman
        .cmd()
        .args(["push", "--tls-verify=false", &other])
        .output();
    assert_refused_for_access("anonymous podman push", &push);
    assert_nothing_stored(&reg, &format!("{ORG}/{slug}/anon"), &img);

    // Made private again, the same anonymous pull is refused at once.
    admin.set_public(ORG, &slug, false);
    let r = reg.anonymous().get(&format!("/v2/{name}/manifests/v1"));
    assert_401_challenge(&reg, &r);
}

/// Issue 3: "anonymous pull works with docker, podman, skopeo and containerd". docker and
/// containerd meet the 401 on their anonymous request, fetch an anonymous bearer token from
/// the realm and pull with it; neither has logged in.
#[test]
fn anonymous_pull_of_a_public_registry_works_with_docker_and_containerd() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    let admin = reg.admin();
    let slug = admin.create_registry(ORG, "Public Docker", true);
    let name = format!("{ORG}/{slug}/app");
    reg.client().push_image(&name, &img, "v1");
    let host = reg.host();
    let r = format!("{host}/{name}:v1");
    let dockerd = Dockerd::start(&reg.scratch("docker"), &host);

    dockerd.docker().args(["pull", &r]).run();
    let digests = dockerd
        .docker()
        .args(["image", "inspect", "--format", "{{json .RepoDigests}}", &r])
        .run();
    assert!(
        digests.contains(&img.manifest.digest),
        "docker pulled {digests}, pushed {}",
        img.manifest.digest
    );

    dockerd.ctr_pull(&r, None).run();
    let list = dockerd.ctr().args(["images", "ls"]).run();
    assert!(
        list.contains(&r) && list.contains(&img.manifest.digest),
        "ctr images ls:\n{list}"
    );

    // Private again: the same anonymous pull fails in the client at once.
    admin.set_public(ORG, &slug, false);
    dockerd.docker().args(["rmi", &r]).run();
    let (_, out) = dockerd.docker().args(["pull", &r]).output();
    assert_refused_for_access("anonymous docker pull of a private registry", &out);
}

// --- raw client ----------------------------------------------------------------------------

#[test]
fn anonymous_access_to_a_private_registry_gets_a_bearer_challenge_naming_the_scope() {
    let reg = Registry::start();
    let img = Image::random(1, 1000);
    let name = repo("private/app");
    reg.client().push_image(&name, &img, "v1");
    let mut anon = reg.anonymous();

    let ping = anon.get("/v2/");
    let ch = assert_401_challenge(&reg, &ping);
    assert_eq!(challenge_param(&ch, "scope"), None, "ping challenge: {ch}");

    for (req, scope) in [
        (
            Request::get(&format!("/v2/{name}/manifests/v1")),
            format!("repository:{name}:pull"),
        ),
        (
            Request::head(&format!("/v2/{name}/blobs/{}", img.config.digest)),
            format!("repository:{name}:pull"),
        ),
        (
            Request::get(&format!("/v2/{name}/tags/list")),
            format!("repository:{name}:pull"),
        ),
        (
            Request::post(&format!("/v2/{name}/blobs/uploads/")).header("Content-Length", "0"),
            format!("repository:{name}:pull,push"),
        ),
        (
            Request::put(&format!("/v2/{name}/manifests/v2"))
                .header("Content-Type", &img.manifest.media_type)
                .body(img.manifest.bytes.clone()),
            format!("repository:{name}:pull,push"),
        ),
    ] {
        let what = format!("{} {}", req.method, req.path);
        let head = req.method == "HEAD";
        let r = anon.send(req);
        assert_eq!(r.status, 401, "{what}:\n{r:?}");
        if !head {
            assert_401_challenge(&reg, &r);
        }
        let ch = r.must_header("WWW-Authenticate");
        assert_eq!(
            challenge_param(ch, "scope").as_deref(),
            Some(scope.as_str()),
            "{what}: {ch}"
        );
    }
    // The refused PUT stored nothing.
    referee(&reg)
        .head(&format!("/v2/{name}/manifests/v2"))
        .expect(404);
}

#[test]
fn registry_token_reads_its_registry_only() {
    let reg = Registry::start();
    let admin = reg.admin();
    let other = admin.create_registry(ORG, "other", false);
    let img = Image::random(1, 1000);
    let mine = repo("app");
    let theirs = format!("{ORG}/{other}/app");
    let mut w = reg.client();
    w.push_image(&mine, &img, "v1");
    w.push_image(&theirs, &img, "v1");

    let rt = admin.create_registry_token(ORG, REGISTRY);
    assert!(rt.token.starts_with("berth_rt_"), "{rt:?}");
    let mut c = reg.client_as(&rt.token);
    c.get("/v2/").expect(200);
    c.assert_manifest(&mine, "v1", &img.manifest);
    c.assert_blob(&mine, &img.layers[0]);

    // Another registry of the same organisation: as if it did not exist.
    let r = c.get(&format!("/v2/{theirs}/manifests/v1")).expect(404);
    assert_eq!(r.error_codes(), ["NAME_UNKNOWN"], "{r:?}");
    c.head(&format!("/v2/{theirs}/blobs/{}", img.config.digest))
        .expect(404);

    // Read-only: a push into its own registry is denied, nothing is started or stored.
    let r =
        c.send(Request::post(&format!("/v2/{mine}/blobs/uploads/")).header("Content-Length", "0"));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.error_codes(), ["DENIED"], "{r:?}");
    let fresh = Image::random(1, 500);
    let r = c.send(
        Request::put(&format!("/v2/{mine}/manifests/v2"))
            .header("Content-Type", &fresh.manifest.media_type)
            .body(fresh.manifest.bytes.clone()),
    );
    assert_eq!(r.status, 403, "{r:?}");
    let r = c.send(Request::delete(&format!(
        "/v2/{mine}/manifests/{}",
        img.manifest.digest
    )));
    assert_eq!(r.status, 403, "{r:?}");
    w.assert_manifest(&mine, "v1", &img.manifest);

    // Through the token flow the grant is the intersection: pull only, on its registry.
    let t = bearer_from_get(
        &reg,
        Some(&basic(&rt.token)),
        &format!("repository:{mine}:pull,push"),
    );
    let mut b = reg.anonymous().with_auth(&bearer(&t));
    b.assert_manifest(&mine, "v1", &img.manifest);
    let r =
        b.send(Request::post(&format!("/v2/{mine}/blobs/uploads/")).header("Content-Length", "0"));
    assert!(matches!(r.status, 401 | 403), "{r:?}");
}

/// A bearer minted from a token, and the token itself, both work before and fail after.
fn assert_refused_at_once(reg: &Registry, tok: &Token, end: impl FnOnce()) {
    let name = repo("app");
    let img = Image::random(1, 1000);
    reg.client().push_image(&name, &img, "v1");
    let t = bearer_from_get(
        reg,
        Some(&basic(&tok.token)),
        &format!("repository:{name}:pull"),
    );
    let path = format!("/v2/{name}/manifests/v1");
    reg.client_as(&tok.token).get(&path).expect(200);
    reg.anonymous()
        .with_auth(&bearer(&t))
        .get(&path)
        .expect(200);

    end();

    for (what, auth) in [
        ("Basic with the token", basic(&tok.token)),
        ("Bearer with the token", bearer(&tok.token)),
        ("a bearer issued before", bearer(&t)),
    ] {
        let r = reg.anonymous().with_auth(&auth).get(&path);
        let ch = assert_401_challenge(reg, &r);
        assert_eq!(
            challenge_param(&ch, "error").as_deref(),
            Some("invalid_token"),
            "{what}:\n{r:?}"
        );
        let r = reg.anonymous().with_auth(&auth).get("/v2/");
        assert_eq!(r.status, 401, "{what}, ping:\n{r:?}");
    }
    // Nor can it get a new bearer.
    let r = token_get(
        reg,
        Some(&basic(&tok.token)),
        &[&format!("repository:{name}:pull")],
    );
    assert_eq!(r.status, 401, "{r:?}");
    r.json();
}

#[test]
fn revoked_token_is_refused_at_once_with_basic_and_with_a_bearer_issued_before() {
    let reg = Registry::start();
    let tok = reg.admin().create_token(ORG, &["read_packages"], &[], None);
    assert_refused_at_once(&reg, &tok, || reg.admin().revoke(&tok.id));
}

#[test]
fn expired_token_is_refused_at_once_with_basic_and_with_a_bearer_issued_before() {
    let reg = Registry::start();
    let tok = reg
        .admin()
        .create_token(ORG, &["read_packages"], &[], Some(4));
    let created = std::time::Instant::now();
    assert_refused_at_once(&reg, &tok, || {
        // Whole seconds on the server's clock: wait past the next boundary after 4 s.
        let left = Duration::from_secs(6).saturating_sub(created.elapsed());
        std::thread::sleep(left);
    });
}

#[test]
fn token_of_one_organisation_gets_404_in_another_like_a_missing_repository() {
    let reg = Registry::start();
    let admin = reg.admin();
    admin.create_org("other");
    admin.create_registry("other", "web", false);
    let img = Image::random(1, 1000);
    referee(&reg).push_image("other/web/app", &img, "v1");

    let mut c = reg.client();
    // Normalise the name so only what the caller may learn is compared.
    let seen = |c: &mut Client, name: &str, req: Request| {
        let r = c.send(req);
        (
            r.status,
            String::from_utf8_lossy(&r.body).replace(name, "NAME"),
            r.header("WWW-Authenticate").map(str::to_string),
        )
    };
    for suffix in ["manifests/v1", "tags/list"] {
        let exists = seen(
            &mut c,
            "other/web/app",
            Request::get(&format!("/v2/other/web/app/{suffix}")),
        );
        assert_eq!(exists.0, 404, "{exists:?}");
        assert!(exists.1.contains("NAME_UNKNOWN"), "{exists:?}");
        for missing in [
            "other/web/nothing",
            "other/nothing/app",
            "nosuchorg/web/app",
        ] {
            let m = seen(
                &mut c,
                missing,
                Request::get(&format!("/v2/{missing}/{suffix}")),
            );
            assert_eq!(m, exists, "{missing} vs other/web/app ({suffix})");
        }
    }
    let b = c.head(&format!("/v2/other/web/app/blobs/{}", img.config.digest));
    assert_eq!(b.status, 404, "{b:?}");
    // A push there is refused the same way and stores nothing.
    let fresh = Image::random(1, 500);
    let r = c.send(Request::post("/v2/other/web/app/blobs/uploads/").header("Content-Length", "0"));
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.error_codes(), ["NAME_UNKNOWN"], "{r:?}");
    let r = c.send(
        Request::put("/v2/other/web/app/manifests/v2")
            .header("Content-Type", &fresh.manifest.media_type)
            .body(fresh.manifest.bytes.clone()),
    );
    assert_eq!(r.status, 404, "{r:?}");
    referee(&reg)
        .head("/v2/other/web/app/manifests/v2")
        .expect(404);

    // Nor can a blob of the other organisation be mounted into one's own repository: the
    // mount falls back to a plain upload session (202), and the blob stays unlinked here.
    let mine = repo("thief");
    let r = c.send(
        Request::post(&format!(
            "/v2/{mine}/blobs/uploads/?mount={}&from=other/web/app",
            img.config.digest
        ))
        .header("Content-Length", "0"),
    );
    assert_eq!(r.status, 202, "cross-organisation mount:\n{r:?}");
    c.head(&format!("/v2/{mine}/blobs/{}", img.config.digest))
        .expect(404);

    // An upload session of this organisation is unknown to the other's token: it can
    // neither append to nor close it, and the owner's upload is unharmed.
    let theirs = admin.create_token("other", &["write_packages"], &[], None);
    let mut t = reg.client_as(&theirs.token);
    let loc = c.start_upload(&repo("victim"));
    let bytes = b"owner's bytes".to_vec();
    let digest = berth_tests::sha256_digest(&bytes);
    let r = t.send(Request::patch(&loc).octets().body(b"intruder".to_vec()));
    assert_eq!(r.status, 404, "foreign PATCH:\n{r:?}");
    let r = t.send(
        Request::put(&berth_tests::http::with_query(
            &loc,
            &format!("digest={digest}"),
        ))
        .octets()
        .body(bytes.clone()),
    );
    assert_eq!(r.status, 404, "foreign close:\n{r:?}");
    referee(&reg)
        .head(&format!("/v2/{}/blobs/{digest}", repo("victim")))
        .expect(404);
    c.send(
        Request::put(&berth_tests::http::with_query(
            &loc,
            &format!("digest={digest}"),
        ))
        .octets()
        .body(bytes.clone()),
    )
    .expect(201);
    let got = c
        .get(&format!("/v2/{}/blobs/{digest}", repo("victim")))
        .expect(200);
    assert!(got.body == bytes, "the owner's blob holds other bytes");
}

/// containerd's flow (spec digest §9.5/§9.6): on a 401 it reads the challenge, POSTs an
/// OAuth2 password grant, uses `access_token`; a refresh grant it does not get falls back to
/// GET with Basic.
#[test]
fn token_flow_as_containerd_does_it_post_password_grant_then_get_fallback() {
    let reg = Registry::start();
    let img = Image::random(1, 1000);
    let name = repo("flow/app");
    reg.client().push_image(&name, &img, "v1");
    let path = format!("/v2/{name}/manifests/v1");

    let r = reg.anonymous().get(&path);
    let ch = assert_401_challenge(&reg, &r);
    let realm = challenge_param(&ch, "realm").expect("realm");
    let service = challenge_param(&ch, "service").expect("service");
    let scope = challenge_param(&ch, "scope").expect("scope");
    assert_eq!(scope, format!("repository:{name}:pull"));

    let post = |fields: &[(&str, &str)]| {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", form_escape(v)))
            .collect::<Vec<_>>()
            .join("&");
        reg.anonymous().send(
            Request::post(&path_of(&realm))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.into_bytes()),
        )
    };
    let r = post(&[
        ("grant_type", "password"),
        ("username", "berth"),
        ("password", reg.token()),
        ("scope", &scope),
        ("service", &service),
        ("client_id", "containerd-client"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{r:?}"
    );
    let t = token_of(&r);
    let mut b = reg.anonymous().with_auth(&bearer(&t));
    b.assert_manifest(&name, "v1", &img.manifest);
    // Scoped to what was asked: a push with this bearer needs a wider token (403
    // insufficient_scope, RFC 6750 §3.1, naming the scope to ask for).
    let r =
        b.send(Request::post(&format!("/v2/{name}/blobs/uploads/")).header("Content-Length", "0"));
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.error_codes(), ["DENIED"], "{r:?}");
    let ch = r.must_header("WWW-Authenticate");
    assert_eq!(
        challenge_param(ch, "error").as_deref(),
        Some("insufficient_scope"),
        "{r:?}"
    );
    assert_eq!(
        challenge_param(ch, "scope"),
        Some(format!("repository:{name}:pull,push")),
        "{r:?}"
    );

    // A bearer is limited to the repositories it names, even where its credential could
    // do more: elsewhere it needs a new token (403 insufficient_scope naming the scope).
    let elsewhere = repo("flow/other");
    reg.client().push_image(&elsewhere, &img, "v1");
    let r = b.get(&format!("/v2/{elsewhere}/manifests/v1"));
    assert_eq!(r.status, 403, "{r:?}");
    let ch = r.must_header("WWW-Authenticate");
    assert_eq!(
        challenge_param(ch, "error").as_deref(),
        Some("insufficient_scope"),
        "{r:?}"
    );
    assert_eq!(
        challenge_param(ch, "scope"),
        Some(format!("repository:{elsewhere}:pull")),
        "{r:?}"
    );

    // Wrong password: 401 with JSON (containerd then falls back to GET, which fails too).
    let r = post(&[
        ("grant_type", "password"),
        ("username", "berth"),
        ("password", "berth_pat_wrong"),
        ("scope", &scope),
        ("service", &service),
        ("client_id", "containerd-client"),
    ]);
    assert_eq!(r.status, 401, "{r:?}");
    r.json();

    // A refresh grant is not offered: 400 unsupported_grant_type, and the GET fallback
    // with Basic (what containerd does next) works.
    let r = post(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "whatever"),
        ("scope", &scope),
        ("service", &service),
        ("client_id", "containerd-client"),
    ]);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.json()["error"].as_str(),
        Some("unsupported_grant_type"),
        "{r:?}"
    );
    let t = bearer_from_get(&reg, Some(&basic(reg.token())), &scope);
    reg.anonymous()
        .with_auth(&bearer(&t))
        .get(&path)
        .expect(200);

    // docker login's GET (§9.6): no scope, offline_token=true, client_id=docker. The token
    // must pass the login check (GET /v2/ → 200) and come without a refresh_token, or docker
    // would switch to the refresh grant that is not offered.
    let r = reg.anonymous().send(
        Request::get("/auth/token?account=berth&client_id=docker&offline_token=true&service=berth")
            .header("Authorization", &basic(reg.token())),
    );
    let t = token_of(&r.expect(200));
    reg.anonymous()
        .with_auth(&bearer(&t))
        .get("/v2/")
        .expect(200);

    // Without credentials the GET form gives an anonymous token that grants nothing here.
    let t = bearer_from_get(&reg, None, &scope);
    let r = reg.anonymous().with_auth(&bearer(&t)).get(&path);
    assert!(matches!(r.status, 401 | 404), "{r:?}");
}

/// The real containerd (`ctr`, on the containerd the test's dockerd runs) pulls a private
/// image with `--user berth:TOKEN`, and fails without it.
#[test]
fn containerd_ctr_pulls_a_private_image_with_a_token() {
    let reg = Registry::start();
    let img = Image::random(2, 100_000);
    let name = repo("ctr/app");
    reg.client().push_image(&name, &img, "v1");
    let read = reg.admin().create_token(ORG, &["read_packages"], &[], None);
    let host = reg.host();
    let dockerd = Dockerd::start(&reg.scratch("docker"), &host);
    let r = format!("{host}/{name}:v1");

    let (_, anon) = dockerd
        .ctr()
        .args(["content", "fetch", "--plain-http", &r])
        .output();
    assert_refused_for_access("anonymous ctr content fetch", &anon);

    let user = format!("berth:{}", read.token);
    let (_, out) = dockerd
        .ctr()
        .args([
            "images",
            "pull",
            "--plain-http",
            "--http-dump",
            "--user",
            &user,
        ])
        .args(["--snapshotter", "native", &r])
        .output();
    let dump = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ctr images pull failed ({}):\nstdout:\n{}\nstderr:\n{dump}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        dump.contains("POST /auth/token"),
        "containerd did not use the POST password grant:\n{dump}"
    );
    let list = dockerd.ctr().args(["images", "ls"]).run();
    assert!(
        list.contains(&r) && list.contains(&img.manifest.digest),
        "ctr images ls:\n{list}"
    );
}

#[test]
fn catalog_lists_only_what_the_caller_may_pull() {
    let reg = Registry::start();
    let admin = reg.admin();
    let public = admin.create_registry(ORG, "pub", true);
    let side = admin.create_registry(ORG, "side", false);
    admin.create_org("other");
    admin.create_registry("other", "web", false);
    admin.create_registry("other", "open", true);
    let img = Image::random(1, 200);
    let all = [
        repo("a"),
        format!("{ORG}/{public}/b"),
        format!("{ORG}/{side}/c"),
        "other/web/d".to_string(),
        "other/open/e".to_string(),
    ];
    let mut root = referee(&reg);
    for n in &all {
        root.push_image(n, &img, "v1");
    }
    let catalog = |c: &mut Client| -> Vec<String> {
        let r = c.get("/v2/_catalog").expect(200);
        let v: Value = r.json();
        v["repositories"]
            .as_array()
            .unwrap_or_else(|| panic!("{r:?}"))
            .iter()
            .map(|s| {
                s.as_str()
                    .expect("repository names are strings")
                    .to_string()
            })
            .collect()
    };
    let sorted = |v: &[&String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let [a, b, c, d, e] = &all;
    assert_eq!(catalog(&mut root), sorted(&[a, b, c, d, e]), "admin");
    assert_eq!(
        catalog(&mut reg.client()),
        sorted(&[a, b, c, e]),
        "org write token"
    );
    let only_side = admin.create_token(ORG, &["read_packages"], &[&side], None);
    assert_eq!(
        catalog(&mut reg.client_as(&only_side.token)),
        sorted(&[b, c, e]),
        "org token limited to {side}"
    );
    let rt = admin.create_registry_token(ORG, REGISTRY);
    assert_eq!(
        catalog(&mut reg.client_as(&rt.token)),
        sorted(&[a, b, e]),
        "registry token"
    );
    assert_eq!(catalog(&mut reg.anonymous()), sorted(&[b, e]), "anonymous");
    // Pagination pages through the filtered list, never past what the caller may see.
    let page = |c: &mut Client, q: &str| -> Value {
        c.get(&format!("/v2/_catalog?{q}")).expect(200).json()
    };
    let want = sorted(&[b, e]);
    let p1 = page(&mut reg.anonymous(), "n=1");
    assert_eq!(p1["repositories"], serde_json::json!([want[0]]), "{p1}");
    let p2 = page(&mut reg.anonymous(), &format!("n=1&last={}", want[0]));
    assert_eq!(p2["repositories"], serde_json::json!([want[1]]), "{p2}");
    let p3 = page(&mut reg.anonymous(), &format!("n=5&last={}", want[1]));
    let rest = p3["repositories"].as_array().map_or(0, Vec::len);
    assert_eq!(
        rest, 0,
        "anonymous catalog after its last visible entry: {p3}"
    );
}

#[test]
fn malformed_authorization_tampered_bearers_and_unparsable_scopes_get_401_or_400_with_error_json() {
    // Every case here is a failed authentication; keep the per-IP slowdown out of the way.
    let reg = Registry::start_with_env(&[("BERTH_AUTH_MAX_FAILURES", "1000")]);
    let name = repo("app");
    let img = Image::random(1, 200);
    reg.client().push_image(&name, &img, "v1");
    let path = format!("/v2/{name}/manifests/v1");
    let good = bearer_from_get(
        &reg,
        Some(&basic(reg.token())),
        &format!("repository:{name}:pull"),
    );
    reg.anonymous()
        .with_auth(&bearer(&good))
        .get(&path)
        .expect(200);

    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3, "bearer token format bt1.claims.mac: {good}");
    let flip = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        let i = b.len() / 2;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).expect("ascii")
    };
    let tampered_claims = format!("{}.{}.{}", parts[0], flip(parts[1]), parts[2]);
    let tampered_mac = format!("{}.{}.{}", parts[0], parts[1], flip(parts[2]));
    let truncated = good[..good.len() - 4].to_string();
    let no_mac = format!("{}.{}", parts[0], parts[1]);
    let mut cases: Vec<(&str, String)> = vec![
        ("Basic, not base64", "Basic !!!not-base64!!!".into()),
        (
            "Basic without a colon",
            format!("Basic {}", berth_tests::auth::base64(b"no-colon")),
        ),
        (
            "Basic, unknown token",
            basic("berth_pat_0000000000000000000000000000000000000000"),
        ),
        ("Basic, not a token", basic("hunter2")),
        ("empty Bearer", "Bearer".into()),
        ("unknown scheme", "Digest username=\"x\"".into()),
        ("Bearer, garbage", "Bearer not-a-token".into()),
        ("bearer, claims changed", bearer(&tampered_claims)),
        ("bearer, MAC changed", bearer(&tampered_mac)),
        ("bearer, truncated", bearer(&truncated)),
        ("bearer, no MAC", bearer(&no_mac)),
    ];
    cases.push(("Bearer with spaces", format!("Bearer {good} extra")));
    // A bearer minted by another berth (same org, registry and repository names, another
    // DATA/token-key) is a forgery here.
    let elsewhere = Registry::start();
    let foreign = bearer_from_get(
        &elsewhere,
        Some(&basic(elsewhere.token())),
        &format!("repository:{name}:pull"),
    );
    drop(elsewhere);
    cases.push(("bearer of another server", bearer(&foreign)));
    for (what, auth) in &cases {
        for p in [path.as_str(), "/v2/"] {
            let r = reg
                .anonymous()
                .send(Request::get(p).header("Authorization", auth));
            assert_eq!(r.status, 401, "{what} on {p}:\n{r:?}");
            assert_eq!(r.error_codes(), ["UNAUTHORIZED"], "{what} on {p}:\n{r:?}");
            let ch = r.must_header("WWW-Authenticate");
            assert_eq!(
                challenge_param(ch, "error").as_deref(),
                Some("invalid_token"),
                "{what} on {p}:\n{r:?}"
            );
        }
        // The token endpoint refuses the same credentials with JSON.
        if auth.starts_with("Basic") {
            let r = token_get(&reg, Some(auth), &[&format!("repository:{name}:pull")]);
            assert!(
                matches!(r.status, 400 | 401),
                "{what} at /auth/token:\n{r:?}"
            );
            r.json();
        }
    }

    for scope in [
        "repository",
        &format!("repository:{name}"),
        "repository:Upper/Case/app:pull",
        &format!("repository:{name}:PULL"),
        &format!("Repository:{name}:pull"),
        "repository(broken:e2e/tests/app:pull",
    ] {
        let r = token_get(&reg, Some(&basic(reg.token())), &[scope]);
        assert_eq!(r.status, 400, "scope {scope:?}:\n{r:?}");
        let v = r.json();
        assert!(
            v["errors"].is_array() || v["error"].is_string(),
            "scope {scope:?}: no error JSON:\n{r:?}"
        );
    }
}

/// Past `auth.max_failures` failed authentications from one address within the window,
/// its further failing attempts get 429 TOOMANYREQUESTS with Retry-After until the window
/// passes; a credential that verifies is never refused. Each node counts for itself (a
/// shared count would cost a database write per failure, which an attacker could make),
/// so behind a front of several nodes, each taking connections in turn, the limit is
/// reached on each of them.
#[test]
fn repeated_failed_authentications_are_slowed_down_with_429_and_retry_after() {
    let reg = Registry::start_with_env(&[
        ("BERTH_AUTH_MAX_FAILURES", "3"),
        ("BERTH_AUTH_FAILURE_WINDOW", "60s"),
    ]);
    let bad = basic("berth_pat_0000000000000000000000000000000000000000");
    // Three failures (per node) are each answered 401, the next is slowed down.
    for i in 0..3 * reg.nodes() {
        let r = reg.anonymous().with_auth(&bad).get("/v2/");
        assert_eq!(r.status, 401, "failure {i}:\n{r:?}");
    }
    let r = reg.anonymous().with_auth(&bad).get("/v2/");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.error_codes(), ["TOOMANYREQUESTS"], "{r:?}");
    let after: u64 = r
        .must_header("Retry-After")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not seconds:\n{r:?}"));
    assert!((1..=60).contains(&after), "{r:?}");
    let r = reg.client().get("/v2/");
    assert_eq!(
        r.status, 200,
        "a valid credential from the same address:\n{r:?}"
    );
}
