//! Authorization in the request flow (docs/auth.md, "Decision"; spec digest §9):
//! every `/v2/` request asks `Need::Authorize` once, before any other need or side effect,
//! and a refusal is answered without touching storage or the body.

mod common;

use berth_core::oci::{ErrorCode, RepoName};
use berth_core::testkit::sim::Step;
use berth_core::testkit::{
    epoch, parse_responses, AuthPolicy, AuthRules, Grants, Harness, ModelStore, Request, Sim,
};
use berth_core::{
    Access, Actions, Auth, AuthRequest, Connection, Input, Limits, Need, NeedId, Output, Reply,
    Resource, UploadInfo,
};
use common::{sha256, OCI_MANIFEST};
use std::sync::Arc;

const GOOD: &str = "Bearer good-token-0123456789abcdef";
const BASIC: &str = "Basic dXNlcjpiZXJ0aF9wYXRfc2VjcmV0";

const ALL: Actions = Actions {
    pull: true,
    push: true,
    delete: true,
};

fn repo(s: &str) -> RepoName {
    RepoName::parse(s).unwrap()
}

fn on_repo(name: &str, actions: Actions) -> Access {
    Access {
        resource: Resource::Repository(repo(name)),
        actions,
    }
}

/// A registry where `GOOD` may do everything and anonymous callers nothing.
fn guarded() -> Harness {
    guarded_with(Limits::default(), AuthRules::default())
}

fn guarded_with(limits: Limits, rules: AuthRules) -> Harness {
    let mut h = Harness::with_limits(limits);
    h.store.auth = AuthPolicy::Rules(rules.credential(GOOD, Grants::everywhere(ALL)));
    h
}

fn refusal(status: u16, code: ErrorCode, message: &str) -> berth_core::Refusal {
    berth_core::Refusal {
        status,
        code,
        message: message.into(),
        www_authenticate: None,
        retry_after: None,
    }
}

/// Starts an upload with good credentials; returns its location.
fn open_upload(h: &mut Harness, name: &str) -> String {
    let r =
        h.send(&Request::post(format!("/v2/{name}/blobs/uploads/")).header("Authorization", GOOD));
    assert_eq!(r.status, 202);
    r.header("Location").unwrap().to_owned()
}

/// Outputs of a connection, owned (a `Need` borrows the connection).
#[derive(Debug)]
enum Seen {
    Transmit(Vec<u8>),
    Need(NeedId, String, Option<AuthRequest>),
    Done,
    Close,
    Blob,
}

fn drain(conn: &mut Connection) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some(out) = conn.poll_output() {
        seen.push(match out {
            Output::Transmit(b) => Seen::Transmit(b.to_vec()),
            Output::Need(id, need) => {
                let auth = match &need {
                    Need::Authorize(a) => Some(a.clone()),
                    _ => None,
                };
                Seen::Need(id, format!("{need:?}"), auth)
            }
            Output::Done(_) => Seen::Done,
            Output::Close => Seen::Close,
            Output::SendBlob { .. } => Seen::Blob,
        });
    }
    seen
}

fn recv(conn: &mut Connection, bytes: &[u8]) {
    let buf = conn.recv_buf();
    buf[..bytes.len()].copy_from_slice(bytes);
    conn.handle_input(Input::Recv {
        now: epoch(),
        n: bytes.len(),
    })
    .unwrap();
}

fn reply(conn: &mut Connection, id: NeedId, reply: Reply) {
    conn.handle_input(Input::Reply {
        now: epoch(),
        id,
        reply,
    })
    .unwrap();
}

/// Every `/v2/` route with the access the table of docs/auth.md gives it.
fn route_table() -> Vec<(Request, Access, Option<Access>)> {
    let d = sha256(b"blob");
    let ping = Access {
        resource: Resource::Ping,
        actions: Actions::default(),
    };
    let (pull, push, del) = (Actions::PULL, Actions::PULL_PUSH, Actions::DELETE);
    let r = |n: &str, a| on_repo(n, a);
    vec![
        (Request::get("/v2/"), ping.clone(), None),
        (Request::get("/v2"), ping.clone(), None),
        (Request::head("/v2/"), ping, None),
        (
            Request::get("/v2/_catalog?n=5"),
            Access {
                resource: Resource::Catalog,
                actions: pull,
            },
            None,
        ),
        (
            Request::get(format!("/v2/o/r/img/blobs/{d}")),
            r("o/r/img", pull),
            None,
        ),
        (
            Request::head(format!("/v2/o/r/img/blobs/{d}")),
            r("o/r/img", pull),
            None,
        ),
        (
            Request::delete(format!("/v2/o/r/img/blobs/{d}")),
            r("o/r/img", del),
            None,
        ),
        (
            Request::post("/v2/o/r/img/blobs/uploads/"),
            r("o/r/img", push),
            None,
        ),
        (
            Request::post("/v2/o/r/img/blobs/uploads"),
            r("o/r/img", push),
            None,
        ),
        (
            Request::post(format!("/v2/o/r/img/blobs/uploads/?digest={d}")).body(&b"blob"[..]),
            r("o/r/img", push),
            None,
        ),
        (
            Request::post(format!(
                "/v2/o/r/img/blobs/uploads/?mount={d}&from=o/src/base"
            )),
            r("o/r/img", push),
            Some(r("o/src/base", pull)),
        ),
        (
            Request::post(format!("/v2/o/r/img/blobs/uploads/?mount={d}")),
            r("o/r/img", push),
            None,
        ),
        (
            Request::get("/v2/o/r/img/blobs/uploads/up-1"),
            r("o/r/img", push),
            None,
        ),
        (
            Request::patch("/v2/o/r/img/blobs/uploads/up-1").body(&b"abc"[..]),
            r("o/r/img", push),
            None,
        ),
        (
            Request::put(format!("/v2/o/r/img/blobs/uploads/up-1?digest={d}")),
            r("o/r/img", push),
            None,
        ),
        (
            Request::delete("/v2/o/r/img/blobs/uploads/up-1"),
            r("o/r/img", push),
            None,
        ),
        (
            Request::get("/v2/o/r/img/manifests/v1"),
            r("o/r/img", pull),
            None,
        ),
        (
            Request::head(format!("/v2/o/r/img/manifests/{d}")),
            r("o/r/img", pull),
            None,
        ),
        (
            Request::put("/v2/o/r/img/manifests/v1")
                .header("Content-Type", OCI_MANIFEST)
                .body(&b"{}"[..]),
            r("o/r/img", push),
            None,
        ),
        (
            Request::delete(format!("/v2/o/r/img/manifests/{d}")),
            r("o/r/img", del),
            None,
        ),
        (
            Request::delete("/v2/o/r/img/manifests/v1"),
            r("o/r/img", del),
            None,
        ),
        (
            Request::get("/v2/o/r/img/tags/list?n=2"),
            r("o/r/img", pull),
            None,
        ),
        (
            Request::get(format!("/v2/o/r/img/referrers/{d}")),
            r("o/r/img", pull),
            None,
        ),
    ]
}

#[test]
fn every_route_asks_authorize_first_with_the_access_it_needs() {
    for (req, required, optional) in route_table() {
        for creds in [None, Some(BASIC)] {
            let req = match creds {
                Some(c) => req.clone().header("Authorization", c),
                None => req.clone(),
            };
            let what = format!("{} {} ({creds:?})", req.method, req.target);
            // The first and only output after the head is the Authorize need: no byte, no
            // `100 Continue`, no storage question before it.
            let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
            recv(&mut conn, &req.to_bytes());
            let seen = drain(&mut conn);
            assert_eq!(seen.len(), 1, "{what}: {seen:?}");
            let Seen::Need(_, _, Some(a)) = &seen[0] else {
                panic!("{what}: first output is not Authorize: {seen:?}");
            };
            assert_eq!(a.required, required, "{what}");
            assert_eq!(a.optional, optional, "{what}");
            assert_eq!(a.credentials.as_deref(), creds, "{what}");
            assert_eq!(a.host.as_deref(), Some("registry.test"), "{what}");
            assert!(conn.is_parked() && !conn.wants_read(), "{what}");
            // Driven to the end, the request asks exactly one Authorize, and first.
            let mut h = Harness::new();
            h.send(&req);
            assert_eq!(h.asked.first(), Some(&"Authorize"), "{what}");
            let n = h.asked.iter().filter(|n| **n == "Authorize").count();
            assert_eq!(n, 1, "{what}: {:?}", h.asked);
            assert_eq!(h.store.auth_log.len(), 1, "{what}");
        }
    }
}

#[test]
fn invalid_names_and_references_are_answered_without_authorize() {
    let d = sha256(b"x");
    let cases = [
        (Request::get("/v2/UPPER/manifests/v1"), 400, "NAME_INVALID"),
        (
            Request::get(format!("/v2/a//b/blobs/{d}")),
            400,
            "NAME_INVALID",
        ),
        (
            Request::get("/v2/a/manifests/.INVALID"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            Request::get("/v2/a/blobs/sha256:short"),
            400,
            "DIGEST_INVALID",
        ),
        (
            Request::put("/v2/a/manifests/bad%20tag"),
            400,
            "TAG_INVALID",
        ),
        (Request::get("/v2/a/nothing"), 404, "UNSUPPORTED"),
        (Request::post("/v2/"), 405, "UNSUPPORTED"),
    ];
    for (req, status, code) in cases {
        let mut h = guarded();
        let r = h.send(&req);
        assert_eq!(
            (r.status, r.error_codes()),
            (status, vec![code.to_owned()]),
            "{} {}",
            req.method,
            req.target
        );
        assert!(h.asked.is_empty(), "{}: {:?}", req.target, h.asked);
    }
}

#[test]
fn requests_outside_v2_are_not_authorized_by_the_core() {
    let mut h = guarded();
    let r = h.send(&Request::get("/auth/token?service=berth").header("Authorization", BASIC));
    assert_eq!(r.status, 200);
    assert_eq!(h.asked, ["Web"]);
    assert!(h.store.auth_log.is_empty());
}

#[test]
fn anonymous_ping_is_refused_with_a_challenge_and_credentials_are_checked() {
    let mut h = guarded();
    let r = h.send(&Request::get("/v2/"));
    assert_eq!(
        (r.status, r.error_codes()),
        (401, vec!["UNAUTHORIZED".to_owned()])
    );
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(r#"Bearer realm="http://registry.test/auth/token",service="berth""#)
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    let r = h.send(&Request::get("/v2/").header("Authorization", "Bearer forged"));
    assert_eq!(r.status, 401);
    assert!(r
        .header("WWW-Authenticate")
        .unwrap()
        .contains(r#"error="invalid_token""#));
    let r = h.send(&Request::get("/v2/").header("Authorization", GOOD));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    assert!(!h.closed, "refusals keep the connection");
    assert!(h.needs.is_empty(), "no storage need for a ping");
}

#[test]
fn unauthorized_answer_carries_the_challenge_verbatim() {
    // spec digest §9.2, example challenge.
    let challenge = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:samalba/my-app:pull,push""#;
    let mut h = Harness::new();
    h.store
        .scripted_auth
        .push_back(Auth::Refused(berth_core::Refusal {
            www_authenticate: Some(challenge.into()),
            ..refusal(401, ErrorCode::Unauthorized, "authentication required")
        }));
    let r = h.send(&Request::get("/v2/samalba/my-app/manifests/latest"));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), Some(challenge));
    assert_eq!(r.header("Retry-After"), None);
    let v = r.json();
    assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(v["errors"][0]["message"], "authentication required");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(1));
    assert!(
        h.needs.is_empty(),
        "nothing asked of storage: {:?}",
        h.needs
    );
}

#[test]
fn too_many_requests_carries_retry_after_and_no_challenge() {
    let mut h = Harness::new();
    h.store
        .scripted_auth
        .push_back(Auth::Refused(berth_core::Refusal {
            retry_after: Some(17),
            ..refusal(
                429,
                ErrorCode::TooManyRequests,
                "too many failed logins; wait",
            )
        }));
    let r = h.send(&Request::get("/v2/a/tags/list").header("Authorization", BASIC));
    assert_eq!(
        (r.status, r.error_codes()),
        (429, vec!["TOOMANYREQUESTS".to_owned()])
    );
    assert_eq!(r.header("Retry-After"), Some("17"));
    assert_eq!(r.header("WWW-Authenticate"), None);
    assert_eq!(
        r.json()["errors"][0]["message"],
        "too many failed logins; wait"
    );
    // The refusal was one request's answer: the next is served.
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn denied_and_unknown_refusals_keep_their_status_and_message() {
    let mut h = Harness::new();
    h.store.scripted_auth.extend([
        Auth::Refused(refusal(
            403,
            ErrorCode::Denied,
            "token lacks write_packages for acme/web",
        )),
        Auth::Refused(refusal(
            404,
            ErrorCode::NameUnknown,
            "registry acme/web does not exist; create it with: berth registry create acme web",
        )),
    ]);
    let r = h.send(&Request::post("/v2/acme/web/app/blobs/uploads/"));
    assert_eq!(
        (r.status, r.error_codes()),
        (403, vec!["DENIED".to_owned()])
    );
    assert_eq!(
        r.json()["errors"][0]["message"],
        "token lacks write_packages for acme/web"
    );
    let r = h.send(&Request::get("/v2/acme/web/app/manifests/v1"));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["NAME_UNKNOWN".to_owned()])
    );
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("berth registry create acme web"));
    assert!(h.needs.is_empty());
}

#[test]
fn a_refusal_with_a_success_status_is_answered_with_the_code_status() {
    let mut h = Harness::new();
    h.store
        .scripted_auth
        .push_back(Auth::Refused(refusal(200, ErrorCode::Denied, "")));
    let r = h.send(&Request::delete(format!("/v2/a/blobs/{}", sha256(b"x"))));
    assert_eq!(
        (r.status, r.error_codes()),
        (403, vec!["DENIED".to_owned()])
    );
    // An empty message falls back to the code's own.
    assert_eq!(
        r.json()["errors"][0]["message"],
        "requested access to the resource is denied"
    );
    assert!(h.needs.is_empty());
}

#[test]
fn rules_answer_403_to_a_puller_who_pushes_and_404_to_a_stranger() {
    let rules = AuthRules::default().credential(
        "Bearer reader",
        Grants::none().on("acme/web/app", Actions::PULL),
    );
    let mut h = guarded_with(Limits::default(), rules);
    let r = h.send(
        &Request::post("/v2/acme/web/app/blobs/uploads/").header("Authorization", "Bearer reader"),
    );
    assert_eq!(
        (r.status, r.error_codes()),
        (403, vec!["DENIED".to_owned()])
    );
    let r = h.send(
        &Request::get("/v2/acme/other/app/tags/list").header("Authorization", "Bearer reader"),
    );
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["NAME_UNKNOWN".to_owned()])
    );
    let r = h.send(&Request::get("/v2/acme/web/app/tags/list"));
    assert_eq!(r.status, 401);
    assert!(r
        .header("WWW-Authenticate")
        .unwrap()
        .contains(r#"scope="repository:acme/web/app:pull""#));
    assert!(h.needs.is_empty());
}

#[test]
fn refused_patch_never_appends_and_its_body_is_discarded_for_the_next_request() {
    let mut h = guarded();
    let loc = open_upload(&mut h, "a/b");
    let before = h.needs.len();
    for req in [
        Request::patch(&loc).body(vec![7u8; 1000]),
        Request::patch(&loc).body(vec![7u8; 1000]).chunked(33),
        Request::patch(&loc)
            .header("Content-Range", "0-999")
            .body(vec![7u8; 1000]),
    ] {
        let r = h.send(&req);
        assert_eq!(
            (r.status, r.error_codes()),
            (401, vec!["UNAUTHORIZED".to_owned()])
        );
        assert!(r
            .header("WWW-Authenticate")
            .unwrap()
            .contains(r#"scope="repository:a/b:pull,push""#));
        assert_eq!(
            r.header("Connection"),
            None,
            "small bodies keep the connection"
        );
        assert!(!h.closed);
    }
    assert_eq!(
        h.needs.len(),
        before,
        "no storage need: {:?}",
        &h.needs[before..]
    );
    // The discarded bodies were not mistaken for requests: the next one is served, and the
    // session is still empty.
    let r = h.send(&Request::get(&loc).header("Authorization", GOOD));
    assert_eq!((r.status, r.header("Range")), (204, Some("0-0")));
    let routes: Vec<(&str, u16, u64)> = h
        .records
        .iter()
        .map(|r| (r.route, r.status, r.bytes_in))
        .collect();
    assert_eq!(
        routes,
        [
            ("upload_start", 202, 0),
            ("upload_patch", 401, 0),
            ("upload_patch", 401, 0),
            ("upload_patch", 401, 0),
            ("upload_status", 204, 0),
        ]
    );
}

#[test]
fn refused_put_never_finishes_and_a_large_body_closes_the_connection() {
    let mut h = guarded_with(
        Limits {
            discard_bytes: 64,
            ..Limits::default()
        },
        AuthRules::default(),
    );
    let loc = open_upload(&mut h, "a/b");
    let data = vec![3u8; 1000];
    let d = sha256(&data);
    let r = h.send(&Request::put(format!("{loc}?digest={d}")));
    assert_eq!(r.status, 401);
    assert!(!h.closed, "no body, nothing to discard");
    let r = h.send(&Request::put(format!("{loc}?digest={d}")).body(data.clone()));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(h.closed, "a body beyond discard_bytes is not read");
    assert_eq!(h.needs, ["StartUpload"]);
    assert!(!h.store.has_blob(&repo("a/b"), &d));
    assert_eq!(h.store.open_uploads(), 1);
}

#[test]
fn refused_chunked_body_beyond_the_discard_budget_closes_the_connection() {
    let mut h = guarded_with(
        Limits {
            discard_bytes: 64,
            ..Limits::default()
        },
        AuthRules::default(),
    );
    let loc = open_upload(&mut h, "a/b");
    let r = h.send(&Request::patch(&loc).body(vec![1u8; 1000]).chunked(100));
    assert_eq!(r.status, 401);
    assert!(h.closed);
    assert_eq!(h.needs, ["StartUpload"]);
}

#[test]
fn refused_manifest_put_stores_nothing() {
    let mut h = guarded();
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    h.store.check_references = false;
    let r = h.send(
        &Request::put("/v2/a/b/manifests/v1")
            .header("Content-Type", OCI_MANIFEST)
            .body(&m[..]),
    );
    assert_eq!(r.status, 401);
    assert!(h.needs.is_empty(), "{:?}", h.needs);
    let v1 = berth_core::oci::Reference::Tag(berth_core::oci::Tag::parse("v1").unwrap());
    assert!(h.store.manifest(&repo("a/b"), &v1).is_none());
    // With credentials the same bytes on the same connection are stored.
    let r = h.send(
        &Request::put("/v2/a/b/manifests/v1")
            .header("Content-Type", OCI_MANIFEST)
            .header("Authorization", GOOD)
            .body(&m[..]),
    );
    assert_eq!(r.status, 201);
    assert!(h.store.manifest(&repo("a/b"), &v1).is_some());
}

#[test]
fn refused_single_post_with_a_body_opens_no_session() {
    let mut h = guarded();
    let data = b"config";
    let r = h.send(
        &Request::post(format!("/v2/a/b/blobs/uploads/?digest={}", sha256(data))).body(&data[..]),
    );
    assert_eq!(r.status, 401);
    assert_eq!(h.store.open_uploads(), 0);
    assert!(h.needs.is_empty());
}

#[test]
fn no_100_continue_before_the_grant() {
    let head = b"PATCH /v2/a/blobs/uploads/up-1 HTTP/1.1\r\nHost: r\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
    // Refused: no 100 ever; the body may or may not follow, so the connection closes.
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    recv(&mut conn, head);
    let seen = drain(&mut conn);
    let [Seen::Need(id, _, Some(_))] = seen.as_slice() else {
        panic!("only Authorize before the grant: {seen:?}");
    };
    reply(
        &mut conn,
        *id,
        Reply::Auth(Auth::Refused(refusal(401, ErrorCode::Unauthorized, "no"))),
    );
    let seen = drain(&mut conn);
    let Seen::Transmit(wire) = &seen[0] else {
        panic!("{seen:?}")
    };
    assert!(
        wire.starts_with(b"HTTP/1.1 401 "),
        "{}",
        String::from_utf8_lossy(wire)
    );
    assert!(!seen
        .iter()
        .any(|s| matches!(s, Seen::Transmit(w) if w.starts_with(b"HTTP/1.1 100"))));
    assert!(matches!(seen.last(), Some(Seen::Close)));

    // Granted: still no 100 until the session check passes, then 100 and the body.
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let mut store = ModelStore::new();
    let up = match store.answer(&Need::StartUpload { repo: repo("a") }) {
        Reply::Upload(Some(UploadInfo { id, .. })) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(up.as_str(), "up-1");
    recv(&mut conn, head);
    let seen = drain(&mut conn);
    let [Seen::Need(id, _, Some(_))] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    reply(
        &mut conn,
        *id,
        Reply::Auth(Auth::Granted { optional: false }),
    );
    let seen = drain(&mut conn);
    let [Seen::Need(id, need, None)] = seen.as_slice() else {
        panic!("the session check comes before any byte: {seen:?}")
    };
    assert!(need.starts_with("UploadStatus"), "{need}");
    reply(
        &mut conn,
        *id,
        Reply::Upload(Some(UploadInfo { id: up, offset: 0 })),
    );
    let seen = drain(&mut conn);
    assert!(
        matches!(seen.as_slice(), [Seen::Transmit(w)] if w == b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{seen:?}"
    );
}

#[test]
fn mount_whose_source_is_not_readable_opens_a_plain_upload() {
    let rules = AuthRules::default().credential(
        "Bearer pusher",
        Grants::none().on("acme/web/app", Actions::PULL_PUSH),
    );
    let mut h = guarded_with(Limits::default(), rules);
    let d = h
        .store
        .insert_blob(&repo("other/secret/base"), b"private layer");
    let r = h.send(
        &Request::post(format!(
            "/v2/acme/web/app/blobs/uploads/?mount={d}&from=other/secret/base"
        ))
        .header("Authorization", "Bearer pusher"),
    );
    assert_eq!(r.status, 202);
    assert!(r
        .header("Location")
        .unwrap()
        .starts_with("/v2/acme/web/app/blobs/uploads/"));
    assert_eq!(h.needs, ["StartUpload"], "never MountBlob");
    assert!(!h.store.has_blob(&repo("acme/web/app"), &d));
    let a = &h.store.auth_log[0];
    assert_eq!(
        a.optional,
        Some(on_repo("other/secret/base", Actions::PULL))
    );
}

#[test]
fn mount_from_a_readable_source_is_201() {
    let rules = AuthRules::default().credential(
        "Bearer pusher",
        Grants::none()
            .on("acme/web/app", Actions::PULL_PUSH)
            .on("acme/web/base", Actions::PULL),
    );
    let mut h = guarded_with(Limits::default(), rules);
    let d = h.store.insert_blob(&repo("acme/web/base"), b"shared layer");
    let r = h.send(
        &Request::post(format!(
            "/v2/acme/web/app/blobs/uploads/?mount={d}&from=acme/web/base"
        ))
        .header("Authorization", "Bearer pusher"),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/acme/web/app/blobs/{d}").as_str())
    );
    assert_eq!(h.needs, ["MountBlob"]);
    assert!(h.store.has_blob(&repo("acme/web/app"), &d));
}

#[test]
fn mount_granted_without_its_optional_access_falls_back_whatever_the_policy() {
    let mut h = Harness::new();
    let d = h.store.insert_blob(&repo("src"), b"layer");
    h.store
        .scripted_auth
        .push_back(Auth::Granted { optional: false });
    let r = h.send(&Request::post(format!(
        "/v2/dst/blobs/uploads/?mount={d}&from=src"
    )));
    assert_eq!(r.status, 202);
    assert_eq!(h.needs, ["StartUpload"]);
    // A mount without `from` has no optional access: MountBlob { from: None } as before.
    h.store
        .scripted_auth
        .push_back(Auth::Granted { optional: false });
    let r = h.send(&Request::post(format!("/v2/dst/blobs/uploads/?mount={d}")));
    assert_eq!(r.status, 201);
    assert_eq!(h.needs, ["StartUpload", "MountBlob"]);
    assert_eq!(h.store.auth_log[1].optional, None);
}

#[test]
fn a_failed_authorization_is_500_without_side_effects() {
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let req = Request::put("/v2/a/manifests/v1").body(&b"{}"[..]);
    recv(&mut conn, &req.to_bytes());
    let seen = drain(&mut conn);
    let [Seen::Need(id, _, Some(_))] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    reply(
        &mut conn,
        *id,
        Reply::Failed("token store unreadable".into()),
    );
    let seen = drain(&mut conn);
    assert!(
        !seen.iter().any(|s| matches!(s, Seen::Need(..))),
        "{seen:?}"
    );
    let Seen::Transmit(w) = &seen[0] else {
        panic!("{seen:?}")
    };
    assert!(w.starts_with(b"HTTP/1.1 500 "));
    assert!(
        !conn.is_closed() && conn.wants_read(),
        "the 2-byte body is discarded"
    );
}

#[test]
fn a_reply_of_the_wrong_kind_to_authorize_fails_the_request_and_closes() {
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    recv(&mut conn, &Request::get("/v2/a/tags/list").to_bytes());
    let seen = drain(&mut conn);
    let [Seen::Need(id, _, Some(_))] = seen.as_slice() else {
        panic!("{seen:?}")
    };
    reply(&mut conn, *id, Reply::Blob(None));
    let seen = drain(&mut conn);
    assert!(
        !seen.iter().any(|s| matches!(s, Seen::Need(..))),
        "{seen:?}"
    );
    assert!(matches!(&seen[0], Seen::Transmit(w) if w.starts_with(b"HTTP/1.1 500 ")));
    assert!(matches!(seen.last(), Some(Seen::Close)));
}

#[test]
fn credentials_never_appear_in_records_or_the_debug_output_of_needs() {
    let secret = "berth_pat_Zq8s3cr3tZq8s3cr3tZq8s3cr3tZq8s3cr3tXY";
    let basic = format!("Basic {secret}");
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let mut store = ModelStore::new();
    let reqs = [
        Request::get("/v2/").header("Authorization", &basic),
        Request::post("/v2/a/blobs/uploads/").header("Authorization", &basic),
        Request::patch("/v2/a/blobs/uploads/up-1")
            .header("Authorization", &basic)
            .body(&b"data"[..]),
        Request::get("/v2/a/tags/list").header("Authorization", &basic),
        Request::post("/auth/token")
            .header("Authorization", &basic)
            .body(format!("grant_type=password&password={secret}")),
    ];
    let bytes: Vec<u8> = reqs.iter().flat_map(Request::to_bytes).collect();
    recv(&mut conn, &bytes);
    let mut debug = String::new();
    let mut records = 0;
    loop {
        let mut next = None;
        while let Some(out) = conn.poll_output() {
            debug.push_str(&format!("{out:?}\n"));
            match out {
                Output::Need(id, need) => next = Some((id, store.answer(&need))),
                Output::Done(_) => records += 1,
                _ => {}
            }
        }
        let Some((id, r)) = next else { break };
        reply(&mut conn, id, r);
    }
    assert_eq!(records, reqs.len());
    assert!(debug.contains("Authorize"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!debug.contains(secret), "{debug}");
    // The server did get them.
    assert_eq!(store.auth_log.len(), 4);
    assert!(store
        .auth_log
        .iter()
        .all(|a| a.credentials.as_deref() == Some(basic.as_str())));
    // A parsed head does not print them either.
    let head =
        berth_core::http::head::parse(&reqs[0].to_bytes(), &Limits::default(), |_| false).unwrap();
    assert_eq!(
        head.authorization.as_ref().map(|s| s.expose()),
        Some(basic.as_str())
    );
    assert!(!format!("{head:?}").contains(secret));
}

#[test]
fn repeated_authorization_fields_reach_the_server_joined() {
    let mut h = Harness::new();
    let raw = b"GET /v2/ HTTP/1.1\r\nHost: a.example:5000\r\nAuthorization: Bearer one\r\nAuthorization: Bearer two\r\n\r\n";
    let rs = h.send_raw(raw, &[false]);
    assert_eq!(rs[0].status, 200);
    let a = &h.store.auth_log[0];
    assert_eq!(a.credentials.as_deref(), Some("Bearer one, Bearer two"));
    assert_eq!(a.host.as_deref(), Some("a.example:5000"));
    // No Authorization or Host: both absent, not empty.
    let rs = h.send_raw(b"GET /v2/ HTTP/1.0\r\n\r\n", &[false]);
    assert_eq!(rs[0].status, 200);
    let a = &h.store.auth_log[1];
    assert_eq!((a.credentials.as_deref(), a.host.as_deref()), (None, None));
}

/// The recorded push session from an anonymous client of a registry that lets anonymous
/// callers pull (a public registry): pulls run, pushes are refused with no effect.
fn public_registry_harness(limits: Limits) -> Harness {
    let mut h = Harness::with_limits(limits);
    h.store.auth = AuthPolicy::Rules(AuthRules {
        anonymous: Grants::everywhere(Actions::PULL),
        anonymous_ping: true,
        ..AuthRules::default()
    });
    h
}

const ANONYMOUS_SESSION: [u16; 12] = [200, 404, 401, 401, 401, 401, 401, 401, 404, 404, 404, 404];

fn run_anonymous(stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<(&'static str, u16, u64)>) {
    let mut h = public_registry_harness(Limits::default());
    let mut prev = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    for c in cuts {
        assert_eq!(h.feed(&stream[prev..c]), c - prev);
        prev = c;
    }
    assert!(h
        .needs
        .iter()
        .all(|n| n != "AppendUpload" && n != "StartUpload"));
    let recs = h
        .records
        .iter()
        .map(|r| (r.route, r.status, r.bytes_in))
        .collect();
    (h.wire, recs)
}

#[test]
fn anonymous_push_session_is_refused_with_no_effect_and_pulls_still_run() {
    let (reqs, stream) = common::push_session();
    let (wire, recs) = run_anonymous(&stream, &[]);
    let heads: Vec<bool> = reqs.iter().map(|r| r.is_head()).collect();
    let (rs, used) = parse_responses(&wire, &heads);
    assert_eq!(used, wire.len());
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, ANONYMOUS_SESSION);
    assert_eq!(recs.len(), reqs.len());
}

#[test]
fn refused_session_split_at_every_byte_gives_identical_output() {
    let (_, stream) = common::push_session();
    let whole = run_anonymous(&stream, &[]);
    let cuts: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(run_anonymous(&stream, &cuts), whole);
    for cut in (0..stream.len()).step_by(7) {
        assert_eq!(run_anonymous(&stream, &[cut]), whole, "split at {cut}");
    }
}

#[test]
fn every_prefix_and_mutation_of_a_refused_session_ends_cleanly() {
    let (_, stream) = common::push_session();
    let limits = Limits {
        header_bytes: 512,
        manifest_bytes: 1024,
        discard_bytes: 64,
        ..Limits::default()
    };
    let survive = |s: &[u8]| {
        let mut h = public_registry_harness(limits.clone());
        h.piece = 61;
        h.feed(s);
        h.eof();
        assert!(h.closed, "EOF always ends the connection");
        assert!(h.asked.len() <= s.len() + 16);
        assert!(!h.needs.iter().any(|n| n == "AppendUpload"));
    };
    for n in 0..=stream.len() {
        survive(&stream[..n]);
    }
    let mut m = stream.clone();
    for i in 0..stream.len() {
        for v in [stream[i] ^ 0x20, b'\n', 0] {
            m[i] = v;
            survive(&m);
        }
        m[i] = stream[i];
    }
}

#[test]
fn sim_clients_with_and_without_credentials_share_one_guarded_store() {
    for seed in 0..6 {
        let mut sim = Sim::new(seed, Limits::default());
        sim.max_piece = 1 + (seed as usize * 13 % 61);
        sim.store.auth =
            AuthPolicy::Rules(AuthRules::default().credential(GOOD, Grants::everywhere(ALL)));
        let mut expect = Vec::new();
        for i in 0..4 {
            let creds = (i % 2 == 0).then_some(GOOD);
            let (steps, statuses) = script(i, creds);
            sim.add_client(steps);
            expect.push(statuses);
        }
        sim.run(2_000_000);
        for (i, c) in sim.conns.iter().enumerate() {
            let got: Vec<u16> = c.responses.iter().map(|r| r.status).collect();
            assert_eq!(got, expect[i], "client {i}, seed {}", sim.seed);
            let layer = layer(i);
            let d = sha256(&layer);
            let name = repo(&format!("sim/c{i}"));
            assert_eq!(sim.store.has_blob(&name, &d), i % 2 == 0, "client {i}");
            if i % 2 == 0 {
                assert_eq!(c.responses[3].body, layer);
            }
        }
        // Only the credentialed clients opened sessions, and they closed them.
        assert_eq!(sim.store.open_uploads(), 0);
        assert_eq!(sim.store.auth_log.len(), 4 * 4);
    }
}

fn layer(i: usize) -> Vec<u8> {
    (0..(300 + i * 41)).map(|j| (j * (i + 5)) as u8).collect()
}

/// POST, chunked PATCH, PUT, GET of one layer; with `creds` on every request, or none.
fn script(i: usize, creds: Option<&'static str>) -> (Vec<Step>, Vec<u16>) {
    let name = format!("sim/c{i}");
    let data = layer(i);
    let d = sha256(&data).to_string();
    let with = move |r: Request| match creds {
        Some(c) => r.header("Authorization", c),
        None => r,
    };
    let loc = move |prev: Option<&berth_core::testkit::Response>| {
        prev.and_then(|r| r.header("Location"))
            .unwrap_or("/v2/sim/none/blobs/uploads/up-999")
            .to_owned()
    };
    let (n1, n2, d2) = (name.clone(), name, d.clone());
    let steps: Vec<Step> = vec![
        Box::new(move |_| with(Request::post(format!("/v2/{n1}/blobs/uploads/")))),
        Box::new(move |prev| with(Request::patch(loc(prev)).body(data.clone()).chunked(17 + i))),
        Box::new(move |prev| with(Request::put(format!("{}?digest={d}", loc(prev))))),
        Box::new(move |_| with(Request::get(format!("/v2/{n2}/blobs/{d2}")))),
    ];
    let statuses = match creds {
        Some(_) => vec![202, 202, 201, 200],
        None => vec![401, 401, 401, 401],
    };
    (steps, statuses)
}
