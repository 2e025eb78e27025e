//! The management commands (`berth org|registry|token|audit`): a thin client of the running
//! server's management API (docs/auth.md, "Management API and audit log"). They never open the
//! store themselves, so they work against a remote server and never race the one running.
//! Errors are one line on stderr saying what went wrong and what to do, exit code 1.

pub mod client;
mod commands;
pub mod input;
mod package;
mod session;
mod table;
#[cfg(test)]
mod testserver;

use crate::cli::Command;
use std::io::Write as _;
use std::process::ExitCode;

/// Runs one command against a running server: `Org`, `Registry`, `Token`, `Audit`, `Gc`,
/// `Package`, `Search`.
pub fn run(cmd: Command) -> ExitCode {
    let mut out = Vec::new();
    let res = commands::execute(cmd, &mut out, &std::env::var_os("BERTH_TOKEN"));
    // Whatever was produced goes out even on error: nothing is printed twice, and a write
    // failure on a closed stdout is not worth a second error.
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&out).and_then(|()| stdout.flush());
    match res {
        Ok(()) if written.is_ok() => ExitCode::SUCCESS,
        Ok(()) => {
            warn_out!("berth: cannot write the answer to standard output");
            ExitCode::FAILURE
        }
        Err(e) => {
            warn_out!("berth: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::session::{load_token, AdminError, TokenSource};
    use super::testserver::{json, Canned};
    use super::*;
    use clap::Parser as _;
    use std::ffi::OsString;

    /// Runs `berth ARGS --server <canned>` with BERTH_TOKEN set; returns stdout or the error
    /// line, and the requests the server saw.
    fn berth(args: &[&str], responses: Vec<Vec<u8>>) -> (Result<String, String>, Vec<String>) {
        let srv = Canned::start(responses);
        let mut argv = vec!["berth"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--server", &srv.url]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let mut out = Vec::new();
        let res = commands::execute(cli.command, &mut out, &Some(OsString::from("berth_adm_x")));
        let res = res
            .map(|()| String::from_utf8(out).unwrap())
            .map_err(|e| e.to_string());
        (res, srv.requests())
    }

    fn body(req: &str) -> serde_json::Value {
        serde_json::from_str(&req[req.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    }

    #[test]
    fn token_comes_from_the_environment_before_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "berth_adm_file\n").unwrap();
        let env = Some(OsString::from("  berth_pat_env "));
        let (t, s) = load_token(&env, dir.path()).unwrap();
        assert_eq!(
            (t.expose(), s.to_string()),
            ("berth_pat_env", "BERTH_TOKEN".into())
        );
        for unset in [None, Some(OsString::new())] {
            let (t, s) = load_token(&unset, dir.path()).unwrap();
            assert_eq!(t.expose(), "berth_adm_file");
            assert_eq!(s, TokenSource::File(dir.path().join("admin-token")));
        }
        assert_eq!(format!("{t:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn a_missing_or_multi_line_token_says_how_to_provide_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_token(&None, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("set BERTH_TOKEN") && e.contains("admin-token"),
            "{e}"
        );
        std::fs::write(dir.path().join("admin-token"), "a\nb").unwrap();
        let e = load_token(&None, dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a single line"), "{e}");
        let e = load_token(&Some("x\r\nHost: evil".into()), dir.path()).unwrap_err();
        assert!(matches!(e, AdminError::BadToken(TokenSource::Env { .. })));
    }

    #[test]
    fn api_error_messages_are_passed_through() {
        let (r, _) = berth(
            &["org", "create", "acme"],
            vec![json(
                409,
                r#"{"error":{"code":"exists","message":"organisation acme already exists"}}"#,
            )],
        );
        assert_eq!(r.unwrap_err(), "organisation acme already exists");
    }

    #[test]
    fn a_refused_token_names_where_to_fix_it() {
        let (r, _) = berth(
            &["org", "list", "--data", "/srv/berth"],
            vec![json(
                401,
                r#"{"error":{"code":"unauthorized","message":"invalid token"}}"#,
            )],
        );
        assert_eq!(
            r.unwrap_err(),
            "the token was refused (invalid token): set BERTH_TOKEN or check /srv/berth/admin-token"
        );
    }

    #[test]
    fn an_error_without_json_reports_the_status() {
        let (r, _) = berth(
            &["org", "list"],
            vec![b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad".to_vec()],
        );
        assert!(r.unwrap_err().contains("HTTP 502"));
        let (r, _) = berth(
            &["org", "list"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad".to_vec()],
        );
        assert!(r.unwrap_err().contains("not JSON"));
    }

    #[test]
    fn org_list_prints_a_table_with_rfc3339_times() {
        let (r, reqs) = berth(
            &["org", "list"],
            vec![json(
                200,
                r#"[{"slug":"acme","created":0},{"slug":"b","created":951782400}]"#,
            )],
        );
        assert_eq!(
            r.unwrap(),
            "ORG   CREATED\nacme  1970-01-01T00:00:00Z\nb     2000-02-29T00:00:00Z\n"
        );
        assert!(reqs[0].starts_with("GET /api/v1/orgs HTTP/1.1"));
        assert!(reqs[0].contains("Authorization: Bearer berth_adm_x\r\n"));
    }

    #[test]
    fn json_flag_prints_the_api_answer() {
        let (r, _) = berth(
            &["org", "list", "--json"],
            vec![json(200, r#"[{"slug":"acme","created":0}]"#)],
        );
        let v: serde_json::Value = serde_json::from_str(&r.unwrap()).unwrap();
        assert_eq!(v, serde_json::json!([{"slug":"acme","created":0}]));
    }

    #[test]
    fn token_create_sends_scopes_registries_expiry_and_prints_the_secret_last() {
        let (r, reqs) = berth(
            &[
                "token",
                "create",
                "acme",
                "--scopes",
                "write_packages,read_packages",
                "--registry",
                "web",
                "--registry",
                "api",
                "--expires-in",
                "30d",
                "--description",
                "ci",
            ],
            vec![json(
                201,
                r#"{"id":"tok_0123456789abcdef","kind":"org","scopes":["read_packages","write_packages"],"registries":["web","api"],"expires":86400,"token":"berth_pat_SECRET"}"#,
            )],
        );
        let out = r.unwrap();
        assert!(
            out.starts_with("created organisation token for acme: tok_0123456789abcdef\n"),
            "{out}"
        );
        assert!(out.contains("registries: web,api\n"), "{out}");
        assert!(out.contains("expires:    1970-01-02T00:00:00Z\n"), "{out}");
        assert_eq!(out.lines().last(), Some("berth_pat_SECRET"));
        assert_eq!(out.matches("berth_pat_SECRET").count(), 1);
        assert!(reqs[0].starts_with("POST /api/v1/orgs/acme/tokens HTTP/1.1"));
        assert_eq!(
            body(&reqs[0]),
            serde_json::json!({"scopes":["read_packages","write_packages"],
                "registries":["web","api"],"expires_in":2_592_000,"description":"ci"})
        );
    }

    #[test]
    fn registry_set_patches_visibility_and_description() {
        let (r, reqs) = berth(
            &[
                "registry",
                "set",
                "acme/web",
                "--private",
                "--description",
                "d",
            ],
            vec![json(
                200,
                r#"{"org":"acme","slug":"web","name":"Web","description":"d","public":false,"created":0}"#,
            )],
        );
        let out = r.unwrap();
        assert!(out.contains("registry:    acme/web\n"), "{out}");
        assert!(out.contains("visibility:  private\n"), "{out}");
        assert!(reqs[0].starts_with("PATCH /api/v1/orgs/acme/registries/web HTTP/1.1"));
        assert_eq!(
            body(&reqs[0]),
            serde_json::json!({"public":false,"description":"d"})
        );
    }

    #[test]
    fn gc_posts_and_prints_what_was_reclaimed() {
        let report = r#"{"dry_run":true,"uploads_expired":0,"blobs_removed":2,"blob_bytes_removed":3145728,"blobs_moved":0,"bytes_moved":0,"packs_removed":2,"pack_bytes_removed":3145984}"#;
        let (r, reqs) = berth(&["gc", "--dry-run"], vec![json(200, report)]);
        let out = r.unwrap();
        assert!(out.starts_with("dry run: nothing was changed"), "{out}");
        assert!(out.contains("blobs removed:      2\n"), "{out}");
        assert!(
            out.contains("blob bytes removed: 3145728 (3 MiB)\n"),
            "{out}"
        );
        assert!(reqs[0].starts_with("POST /api/v1/gc?dry_run=true HTTP/1.1"));
        let (r, reqs) = berth(
            &["gc"],
            vec![json(
                409,
                r#"{"error":{"code":"CONFLICT","message":"a garbage collection is already running; wait for it to finish"}}"#,
            )],
        );
        assert!(r.unwrap_err().contains("already running"));
        assert!(reqs[0].starts_with("POST /api/v1/gc HTTP/1.1"));
    }

    #[test]
    fn audit_passes_the_limit_and_lists_newest_first_as_sent() {
        let (r, reqs) = berth(
            &["audit", "acme", "--limit", "2"],
            vec![json(
                200,
                r#"[{"seq":2,"time":60,"actor":"admin","action":"registry.create","target":"acme/web","detail":""},
                    {"seq":1,"time":0,"actor":"admin","action":"org.create","target":"acme","detail":""}]"#,
            )],
        );
        let out = r.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TIME                  ACTOR  ACTION           TARGET    DETAIL"
        );
        assert!(lines[1].contains("registry.create"), "{out}");
        assert!(lines[2].contains("org.create"), "{out}");
        assert!(reqs[0].starts_with("GET /api/v1/orgs/acme/audit?limit=2 HTTP/1.1"));
    }
}
