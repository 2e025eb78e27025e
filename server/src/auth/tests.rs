//! The decision table against a real engine, in process: every row of docs/auth.md's
//! "Decision", and a sweep of hostile `Authorization` values that must end in a refusal
//! (never a panic, never a grant).

// The limiter and the tests read the clock; the server's rule is not the tests'.
#![allow(clippy::disallowed_methods)]

use super::bearer::Claims;
use super::*;
use crate::config::{Config, Flags};
use crate::secret::{base64_encode, new_token_secret};
use berth_core::oci::RepoName;
use berth_engine::{EngineOptions, Visibility};

struct Fixture {
    _dir: tempfile::TempDir,
    e: Engine,
    auth: Authority,
    writer: String,
    reader: String,
    admin: String,
}

fn token(e: &Engine, kind: TokenKind, org: Option<&str>, rw: (bool, bool)) -> String {
    let prefix = match kind {
        TokenKind::Admin => ADMIN_PREFIX,
        TokenKind::Org => PAT_PREFIX,
        TokenKind::Registry => REGISTRY_PREFIX,
    };
    let s = new_token_secret(prefix).unwrap();
    e.create_token(TokenRec {
        id: crate::secret::new_token_id().unwrap(),
        kind,
        org: org.map(str::to_string),
        read: rw.0,
        write: rw.1,
        registries: if kind == TokenKind::Registry {
            vec!["web".into()]
        } else {
            Vec::new()
        },
        description: String::new(),
        created: 0,
        expires: None,
        last_used: None,
        revoked: None,
        hash: sha256(s.expose().as_bytes()),
    })
    .unwrap();
    s.expose().to_string()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
    e.create_org("acme", 0).unwrap();
    e.create_org("beta", 0).unwrap();
    for (org, slug, vis) in [
        ("acme", "web", Visibility::Private),
        ("acme", "pub", Visibility::Public),
        ("beta", "web", Visibility::Private),
    ] {
        e.create_registry(RegistryRec {
            org: org.into(),
            slug: slug.into(),
            name: slug.into(),
            description: String::new(),
            visibility: vis,
            created: 0,
        })
        .unwrap();
    }
    let cfg = Config::load(&Flags::default(), &[]).unwrap();
    let auth = Authority::new([7; 32], cfg.auth, Arc::new(Metrics::new(1)));
    Fixture {
        writer: token(&e, TokenKind::Org, Some("acme"), (false, true)),
        reader: token(&e, TokenKind::Org, Some("acme"), (true, false)),
        admin: token(&e, TokenKind::Admin, None, (true, true)),
        _dir: dir,
        e,
        auth,
    }
}

fn ctx() -> Ctx {
    Ctx {
        now: Instant::now(),
        unix: 1_000,
        // No address: the sweep below would otherwise only see the lockout's 429s (the
        // lockout has its own test, and one in tests/auth.rs).
        peer: None,
    }
}

fn basic(t: &str) -> Option<String> {
    Some(format!(
        "Basic {}",
        base64_encode(format!("u:{t}").as_bytes())
    ))
}

fn ask(f: &Fixture, cred: Option<String>, repo: &str, actions: Actions) -> Auth {
    ask_on(f, &mut AuthCache::default(), cred, repo, actions, &ctx())
}

/// `ask` on a connection: with that connection's cache.
fn ask_on(
    f: &Fixture,
    cache: &mut AuthCache,
    cred: Option<String>,
    repo: &str,
    actions: Actions,
    ctx: &Ctx,
) -> Auth {
    let req = AuthRequest {
        credentials: cred,
        host: Some("reg.test:5000".into()),
        forwarded_for: None,
        required: Access {
            resource: Resource::Repository(RepoName::parse(repo).unwrap()),
            actions,
        },
        optional: None,
    };
    f.auth.authorize(&f.e, &req, ctx, cache).unwrap().0
}

/// One keep-alive connection's cache never outlives a change that decides: revocation, a
/// registry turned private, expiry, another header on the same connection.
#[test]
fn a_connections_cached_credential_follows_every_change() {
    let f = fixture();
    let mut c = AuthCache::default();
    let pull = |c: &mut AuthCache, cred: Option<String>, repo: &str, unix: u64| {
        let at = Ctx { unix, ..ctx() };
        status(&ask_on(&f, c, cred, repo, Actions::PULL, &at))
    };
    let reader = basic(&f.reader);
    assert_eq!(pull(&mut c, reader.clone(), "acme/web/app", 1_000), 200);
    assert_eq!(pull(&mut c, reader.clone(), "acme/web/app", 1_000), 200);
    // Another header on the same connection is checked for itself.
    assert_eq!(
        pull(&mut c, basic("berth_pat_wrong"), "acme/web/app", 1_000),
        401
    );
    assert_eq!(pull(&mut c, None, "acme/web/app", 1_000), 401);
    assert_eq!(pull(&mut c, reader.clone(), "acme/web/app", 1_000), 200);
    // A public registry turned private: the cached record is not used again.
    assert_eq!(pull(&mut c, None, "acme/pub/app", 1_000), 200);
    f.e.update_registry("acme", "pub", Some(Visibility::Private), None)
        .unwrap();
    assert_eq!(pull(&mut c, None, "acme/pub/app", 1_000), 401);
    // The cache never shows the secret it holds.
    assert_eq!(pull(&mut c, reader.clone(), "acme/web/app", 1_000), 200);
    let shown = format!("{c:?}");
    assert!(!shown.contains(&f.reader), "{shown}");
    assert!(!shown.contains(reader.as_deref().unwrap()), "{shown}");
    // Revocation: granted from the cache just before, refused on the very next request.
    let rec = f
        .auth
        .token(&f.e, &Secret::new(f.reader.clone()), &ctx())
        .unwrap();
    f.e.revoke_token(&rec.id, 1_000).unwrap();
    assert_eq!(pull(&mut c, reader, "acme/web/app", 1_000), 401);
    // A deleted registry: credential and registry record both cached just before.
    let writer = basic(&f.writer);
    assert_eq!(pull(&mut c, writer.clone(), "acme/web/app", 1_000), 200);
    assert_eq!(pull(&mut c, writer.clone(), "acme/web/app", 1_000), 200);
    f.e.delete_registry("acme", "web", 1_000).unwrap();
    assert_eq!(pull(&mut c, writer, "acme/web/app", 1_000), 404);
    // Expiry is read from the clock on every request, not from the cache.
    let mut c = AuthCache::default();
    let s = new_token_secret(PAT_PREFIX).unwrap();
    f.e.create_token(TokenRec {
        id: crate::secret::new_token_id().unwrap(),
        kind: TokenKind::Org,
        org: Some("acme".into()),
        read: true,
        write: false,
        registries: Vec::new(),
        description: String::new(),
        created: 0,
        expires: Some(2_000),
        last_used: None,
        revoked: None,
        hash: sha256(s.expose().as_bytes()),
    })
    .unwrap();
    let short = basic(s.expose());
    assert_eq!(pull(&mut c, short.clone(), "acme/pub/app", 1_999), 200);
    assert_eq!(pull(&mut c, short, "acme/pub/app", 2_000), 401);
}

fn status(a: &Auth) -> u16 {
    match a {
        Auth::Granted { .. } => 200,
        Auth::Refused(r) => r.status,
    }
}

#[test]
fn decision_table_rows() {
    let f = fixture();
    let push = Actions::PULL_PUSH;
    let pull = Actions::PULL;
    // (what, credentials, repository, actions, status, code)
    type Row<'a> = (&'a str, Option<String>, &'a str, Actions, u16, &'a str);
    let rows: Vec<Row> = vec![
        (
            "writer pushes",
            basic(&f.writer),
            "acme/web/app",
            push,
            200,
            "",
        ),
        (
            "writer deletes",
            basic(&f.writer),
            "acme/web/app",
            Actions::DELETE,
            200,
            "",
        ),
        (
            "reader pulls",
            basic(&f.reader),
            "acme/web/app",
            pull,
            200,
            "",
        ),
        (
            "reader pushes",
            basic(&f.reader),
            "acme/web/app",
            push,
            403,
            "DENIED",
        ),
        (
            "anonymous private",
            None,
            "acme/web/app",
            pull,
            401,
            "UNAUTHORIZED",
        ),
        ("anonymous public", None, "acme/pub/app", pull, 200, ""),
        (
            "anonymous pushes public",
            None,
            "acme/pub/app",
            push,
            401,
            "UNAUTHORIZED",
        ),
        (
            "other org public",
            basic(&f.writer),
            "acme/pub/x",
            pull,
            200,
            "",
        ),
        (
            "other org private",
            basic(&f.writer),
            "beta/web/app",
            pull,
            404,
            "NAME_UNKNOWN",
        ),
        (
            "own org missing registry",
            basic(&f.writer),
            "acme/nope/app",
            push,
            404,
            "NAME_UNKNOWN",
        ),
        (
            "admin anywhere",
            basic(&f.admin),
            "beta/web/app",
            push,
            200,
            "",
        ),
        (
            "admin missing org",
            basic(&f.admin),
            "zeta/web/app",
            push,
            404,
            "NAME_UNKNOWN",
        ),
        (
            "two components",
            basic(&f.writer),
            "acme/app",
            pull,
            404,
            "NAME_UNKNOWN",
        ),
        (
            "unknown token",
            basic("berth_pat_nope"),
            "acme/web/app",
            pull,
            401,
            "UNAUTHORIZED",
        ),
    ];
    for (what, cred, repo, actions, want, code) in rows {
        let a = ask(&f, cred, repo, actions);
        assert_eq!(status(&a), want, "{what}: {a:?}");
        if let Auth::Refused(r) = &a {
            assert_eq!(r.code.as_str(), code, "{what}");
            assert_eq!(r.www_authenticate.is_some(), r.status == 401, "{what}");
        }
    }
    let a = ask(&f, basic(&f.writer), "acme/nope/app", Actions::PULL_PUSH);
    let Auth::Refused(r) = a else { panic!() };
    assert!(
        r.message.contains("berth registry create acme nope"),
        "{}",
        r.message
    );
    let a = ask(&f, basic(&f.admin), "zeta/web/app", Actions::PULL_PUSH);
    let Auth::Refused(r) = a else { panic!() };
    assert!(r.message.contains("berth org create zeta"), "{}", r.message);
    let a = ask(&f, None, "acme/web/app", Actions::PULL_PUSH);
    let Auth::Refused(r) = a else { panic!() };
    assert_eq!(
        r.www_authenticate.as_deref(),
        Some(
            r#"Bearer realm="http://reg.test:5000/auth/token",service="berth",scope="repository:acme/web/app:pull,push""#
        )
    );
}

#[test]
fn bearer_claims_narrow_and_insufficient_scope_names_the_scope() {
    let f = fixture();
    let rec = f
        .auth
        .token(&f.e, &Secret::new(f.writer.clone()), &ctx())
        .unwrap();
    let claims = Claims {
        sub: rec.id.clone(),
        access: vec![bearer::ClaimAccess {
            kind: "repository".into(),
            name: "acme/web/app".into(),
            actions: vec!["pull".into()],
        }],
        iat: 900,
        exp: 1_200,
        jti: "j".into(),
    };
    let t = bearer::issue(f.auth.key(), &claims);
    let cred = Some(format!("Bearer {}", t.expose()));
    assert_eq!(
        status(&ask(&f, cred.clone(), "acme/web/app", Actions::PULL)),
        200
    );
    let a = ask(&f, cred.clone(), "acme/web/app", Actions::PULL_PUSH);
    let Auth::Refused(r) = &a else {
        panic!("{a:?}")
    };
    assert_eq!((r.status, r.code), (403, ErrorCode::Denied));
    assert!(r
        .www_authenticate
        .as_ref()
        .unwrap()
        .contains("insufficient_scope"));
    // Another repository the token could pull, not in the claims.
    let a = ask(&f, cred.clone(), "acme/web/other", Actions::PULL);
    assert_eq!(status(&a), 403);
    // Revocation reaches the bearer token at once.
    f.e.revoke_token(&rec.id, 1_000).unwrap();
    let a = ask(&f, cred, "acme/web/app", Actions::PULL);
    let Auth::Refused(r) = &a else {
        panic!("{a:?}")
    };
    assert!(r
        .www_authenticate
        .as_ref()
        .unwrap()
        .contains("invalid_token"));
}

#[test]
fn hostile_authorization_headers_are_refused_never_granted_nor_panicking() {
    let f = fixture();
    let good = basic(&f.writer).unwrap();
    let t = bearer::issue(
        f.auth.key(),
        &Claims {
            sub: String::new(),
            access: Vec::new(),
            iat: 0,
            exp: 5_000,
            jti: String::new(),
        },
    );
    let bearer = format!("Bearer {}", t.expose());
    let mut n = 0;
    for seed in [good.as_str(), bearer.as_str()] {
        for i in 0..seed.len() {
            for b in [b'A', b'/', b'.', b' ', b':', 0xff] {
                let mut v = seed.as_bytes().to_vec();
                v[i] = b;
                let s = String::from_utf8_lossy(&v).into_owned();
                if s == seed {
                    continue;
                }
                // Beyond-private repository: only the writer may push there.
                let a = ask(&f, Some(s.clone()), "acme/web/app", Actions::PULL_PUSH);
                n += 1;
                // Only a spelling of the same credential (`BAsic …`) may pass.
                let same = credentials::parse(Some(&s)) == credentials::parse(Some(&good));
                assert!(
                    !matches!(a, Auth::Granted { .. }) || same,
                    "mutation {s:?} granted"
                );
                let p = &seed[..i];
                let a = ask(&f, Some(p.to_string()), "acme/web/app", Actions::PULL_PUSH);
                let same = credentials::parse(Some(p)) == credentials::parse(Some(&good));
                assert!(
                    !matches!(a, Auth::Granted { .. }) || same,
                    "prefix {p:?} granted"
                );
            }
        }
    }
    assert!(n > 100);
}
