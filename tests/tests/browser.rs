//! The server's pages in a real browser (headless chromium through chromedriver), at a
//! laptop's and a phone's width, with a screenshot of each kept under
//! `target/screenshots/browser/<test>/`; and the browser harness itself: what page tests
//! rely on (screenshots of the size asked, console errors, no process left behind).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::browser::{Browser, LAPTOP, PHONE};
use berth_tests::Registry;

/// A screenshot is a PNG of the viewport: `(width, height)` in its header, and more than a
/// blank image's few hundred bytes.
#[track_caller]
fn assert_screenshot(path: &Path, (width, height): (u32, u32)) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!(
        (dim(16), dim(20)),
        (width, height),
        "{} has the wrong size",
        path.display()
    );
    assert!(
        png.len() > 1024,
        "{} is only {} bytes: a blank page?",
        path.display(),
        png.len()
    );
}

#[test]
fn healthz_and_a_missing_page_at_laptop_and_phone_width() {
    let reg = Registry::start();
    let began = Instant::now();
    let b = Browser::start_at(LAPTOP);

    let healthz = format!("{}/healthz", reg.url());
    let missing = format!("{}/no/such/page", reg.url());
    for (size, label) in [(LAPTOP, "laptop"), (PHONE, "phone")] {
        if size == PHONE {
            b.set_phone_size(size.0, size.1);
        }
        b.goto(&healthz);
        assert_eq!(b.current_url(), healthz);
        assert_eq!(
            b.wait_for("body", Duration::from_secs(30)).text().trim(),
            "ok"
        );
        assert_screenshot(&b.screenshot(&format!("healthz-{label}")), size);
        if size == LAPTOP {
            eprintln!(
                "browser: started, one page, one screenshot in {:?}",
                began.elapsed()
            );
        }
        assert_eq!(b.console_errors(), Vec::<String>::new(), "on /healthz");

        b.goto(&missing);
        let text = b.find("body").text().to_lowercase().replace('_', " ");
        assert!(
            text.contains("not found") || text.contains("no such page"),
            "the missing page says {text:?}"
        );
        assert_screenshot(&b.screenshot(&format!("missing-{label}")), size);
        let errors = b.console_errors();
        assert!(
            errors.iter().any(|e| e.contains("404")),
            "the browser's console does not report the 404: {errors:?}"
        );
    }
}

#[test]
fn console_errors_report_script_errors_and_csp_violations() {
    let b = Browser::start();
    b.goto(
        "data:text/html,<meta http-equiv='Content-Security-Policy' content=\"script-src \
         'self'\"><title>t</title><p>x</p><script>nosuch()</script>",
    );
    let errors = b.console_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("security: ") && e.contains("Content Security Policy")),
        "no CSP violation reported: {errors:?}"
    );
    b.goto("data:text/html,<title>t</title><script>console.error('boom'); nosuch()</script>");
    let errors = b.console_errors();
    assert!(
        errors.iter().any(|e| e.contains("boom")) && errors.iter().any(|e| e.contains("nosuch")),
        "console.error and the uncaught exception are not both reported: {errors:?}"
    );
    assert_eq!(b.console_errors(), Vec::<String>::new(), "reading drains");
    assert_eq!(b.title(), "t");
}

#[test]
fn a_dropped_browser_leaves_no_process_behind() {
    let b = Browser::start();
    b.goto("data:text/html,<title>t</title><p>x</p>");
    let leftovers = b.leftovers();
    assert!(
        !leftovers.live().is_empty(),
        "a running browser shows no processes: the check would prove nothing"
    );
    drop(b);
    assert_eq!(leftovers.live(), Vec::<String>::new(), "still running");
}
