//! A real browser for testing the web pages: Debian's headless `chromium`, driven through
//! `chromedriver` over the W3C WebDriver protocol (JSON over HTTP/1.1, spoken with
//! `crate::http`'s raw client).
//!
//! Each `Browser` owns its chromedriver on a free loopback port, one session, and a temp
//! folder that is the browser's HOME and TMPDIR, so the profile, crash database and sockets of
//! parallel tests never meet and vanish with the test. Screenshots go to
//! `<target>/screenshots/<test path>/`, kept after the run for people to look at.
//!
//! Viewport sizes are set through the DevTools `Emulation` domain as well as the window:
//! headless chromium draws a window frame (the viewport is shorter than the window) and will
//! not make a window narrower than 500 px, so only the emulated metrics give a page exactly the
//! width a laptop or a phone would.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{Client, Request};
use crate::registry::free_port;
use crate::tool::require_tool;
use crate::wait;

/// A laptop's viewport.
pub const LAPTOP: (u32, u32) = (1280, 800);
/// A phone's viewport (CSS pixels of a current mid-size phone in portrait).
pub const PHONE: (u32, u32) = (390, 844);

/// How long chromedriver may take to answer `/status` ready on a loaded machine.
const DRIVER_START_LIMIT: Duration = Duration::from_secs(60);
/// A page load's limit inside the browser; the HTTP read waits a little longer, so the
/// browser's own timeout error (which names the page) is what a slow page reports.
const PAGE_LOAD_LIMIT: Duration = Duration::from_secs(120);
const COMMAND_READ_LIMIT: Duration = Duration::from_secs(150);
/// How long a closing browser may take to let its processes go.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The key a WebDriver element reference is stored under (W3C WebDriver §12.1).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One chromedriver and one browser session. Drop ends the session and kills chromedriver and
/// every browser process.
pub struct Browser {
    client: RefCell<Client>,
    session: String,
    driver: Option<Child>,
    dir: tempfile::TempDir,
    shots: PathBuf,
    taken: Cell<u32>,
}

/// A failed WebDriver command: the protocol's error code and the driver's message.
#[derive(Debug)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

/// One entry of the browser's console log.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`, ...
    pub level: String,
    /// `console-api` (console.*), `javascript` (uncaught errors), `security` (CSP
    /// violations), `network` (failed loads), ...
    pub source: String,
    pub message: String,
}

/// A cookie as the browser holds it.
#[derive(Clone, Debug)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub path: String,
    pub http_only: bool,
    pub secure: bool,
    /// `Strict`, `Lax` or `None`.
    pub same_site: String,
}

/// An element found on the current page.
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    css: String,
}

impl Browser {
    /// Starts a browser with a laptop's viewport.
    pub fn start() -> Browser {
        Browser::start_at(LAPTOP)
    }

    /// Starts chromedriver and a headless chromium session with a `width` x `height` viewport.
    /// Fails the test (never skips) when chromium or chromedriver is missing.
    pub fn start_at((width, height): (u32, u32)) -> Browser {
        let chromium = require_tool("chromium");
        let chromedriver = require_tool("chromedriver");
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("berth-browser-")
            .tempdir()
            .expect("create a temp dir for the browser");
        let (driver, addr) = spawn_driver(&chromedriver, dir.path());
        let client = Client::new(addr).with_timeout(COMMAND_READ_LIMIT);
        let mut b = Browser {
            client: RefCell::new(client),
            session: String::new(),
            driver: Some(driver),
            shots: screenshot_dir(),
            dir,
            taken: Cell::new(0),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {
                "pageLoad": PAGE_LOAD_LIMIT.as_millis() as u64,
                "script": 30_000,
                "implicit": 0,
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // The tests run as root, where chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    format!("--window-size={width},{height}"),
                    // /dev/shm is small in containers; a full one crashes the renderer.
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                ],
            },
        }}});
        let created = b
            .command("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("{}\n{}", e, b.driver_log_tail()));
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session without a sessionId: {created}"))
            .to_string();
        b.set_window_size(width, height);
        eprintln!(
            "browser: chromium {} ready in {:?}",
            created["capabilities"]["browserVersion"]
                .as_str()
                .unwrap_or("?"),
            began.elapsed()
        );
        b
    }

    /// Opens `url` and returns once the page has loaded (its `load` event).
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// The first element matching `css`; fails the test if there is none.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'_> {
        let found = self.try_session_call("POST", "/element", Some(by_css(css)));
        match found {
            Ok(v) => self.element(v, css),
            Err(e) => panic!(
                "no element matches `{css}` on {} ({}: {})",
                self.current_url(),
                e.error,
                e.message
            ),
        }
    }

    /// Every element matching `css` (none is not an error).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let v = self.session_call("POST", "/elements", by_css(css));
        self.elements(v, css)
    }

    /// Polls until an element matches `css`, for pages that change after loading; fails the
    /// test with the page's address and source when none does within `limit`.
    #[track_caller]
    pub fn wait_for(&self, css: &str, limit: Duration) -> Element<'_> {
        let found = wait::until(limit, || self.find_all(css).into_iter().next());
        match found {
            Some(e) => e,
            None => panic!(
                "no element matched `{css}` within {limit:?} on {}; the page is:\n{}",
                self.current_url(),
                excerpt(&self.page_source())
            ),
        }
    }

    /// The document's title.
    pub fn title(&self) -> String {
        string(self.session_call("GET", "/title", Value::Null))
    }

    /// The address of the current page (after any redirects).
    pub fn current_url(&self) -> String {
        string(self.session_call("GET", "/url", Value::Null))
    }

    /// The current DOM serialised as HTML (not the bytes the server sent).
    pub fn page_source(&self) -> String {
        string(self.session_call("GET", "/source", Value::Null))
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page, returning what it
    /// returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// Gives pages a desktop viewport of exactly `width` x `height` CSS pixels.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.resize(width, height, false);
    }

    /// Gives pages a phone's viewport of `width` x `height` CSS pixels, as a phone does:
    /// `<meta name="viewport">` is honoured, and a page without one is laid out 980 px wide
    /// and shrunk, which is what a phone would show of it.
    pub fn set_phone_size(&self, width: u32, height: u32) {
        self.resize(width, height, true);
    }

    fn resize(&self, width: u32, height: u32, mobile: bool) {
        // The window is sized too, so window-level APIs agree with the viewport as far as
        // chromium allows; the emulated metrics are what the page sees and what is captured.
        self.session_call(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        );
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": mobile,
            }),
        );
    }

    /// A DevTools protocol command on the current tab (chromedriver's `goog/cdp/execute`).
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
    }

    /// Saves a PNG of the viewport as `NN-name.png` in this test's screenshot folder (NN
    /// counts this browser's screenshots, so the files sort in the order they were taken),
    /// prints where, and returns the path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = string(self.session_call("GET", "/screenshot", Value::Null));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap_or_else(|e| panic!("screenshot is not base64: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the browser's screenshot is not a PNG ({} bytes)",
            png.len()
        );
        self.taken.set(self.taken.get() + 1);
        std::fs::create_dir_all(&self.shots)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.shots.display()));
        let path = self
            .shots
            .join(format!("{:02}-{name}.png", self.taken.get()));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("browser: screenshot {}", path.display());
        path
    }

    /// The cookies the browser would send to the current page.
    pub fn cookies(&self) -> Vec<Cookie> {
        let v = self.session_call("GET", "/cookie", Value::Null);
        let all = v
            .as_array()
            .unwrap_or_else(|| panic!("cookies are not a list: {v}"));
        all.iter()
            .map(|c| Cookie {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                value: c["value"].as_str().unwrap_or_default().to_string(),
                path: c["path"].as_str().unwrap_or_default().to_string(),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                secure: c["secure"].as_bool().unwrap_or(false),
                same_site: c["sameSite"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Deletes every cookie of the current page's site (a logged-out browser).
    pub fn delete_cookies(&self) {
        self.session_call("DELETE", "/cookie", Value::Null);
    }

    /// The browser console's entries since the last call (reading drains them): console
    /// messages, uncaught exceptions, CSP violations, failed loads.
    pub fn console_log(&self) -> Vec<LogEntry> {
        let v = self.session_call("POST", "/se/log", json!({ "type": "browser" }));
        let all = v
            .as_array()
            .unwrap_or_else(|| panic!("the browser log is not a list: {v}"));
        all.iter()
            .map(|e| LogEntry {
                level: e["level"].as_str().unwrap_or_default().to_string(),
                source: e["source"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// The console's errors since the last read, as `source: message`: `console.error`, uncaught
    /// exceptions (`javascript`), CSP violations (`security`) and failed loads (`network`,
    /// which includes any 4xx/5xx answer, the page's own too). A page test asserts this is
    /// empty after loading and using a page.
    ///
    /// Left out: the failure of `/favicon.ico`, which the browser asks for on its own for
    /// every page that names no icon (plain text and JSON too), so it says nothing about the
    /// page; an icon a page does name is reported like any other load.
    pub fn console_errors(&self) -> Vec<String> {
        self.console_log()
            .into_iter()
            .filter(|e| e.level == "SEVERE")
            .filter(|e| !(e.source == "network" && e.message.contains("/favicon.ico - ")))
            .map(|e| format!("{}: {}", e.source, e.message))
            .collect()
    }

    /// What is left running of this browser: live processes in chromedriver's process group
    /// or naming the browser's folder (the crash handler leaves the group), as `pid name`.
    pub fn leftovers(&self) -> Leftovers {
        Leftovers {
            pgid: self.driver.as_ref().map(|c| c.id() as i32).unwrap_or(0),
            dir: self.dir.path().to_path_buf(),
        }
    }

    fn element(&self, v: Value, css: &str) -> Element<'_> {
        let id = v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {v}"))
            .to_string();
        Element {
            browser: self,
            id,
            css: css.to_string(),
        }
    }

    fn elements(&self, v: Value, css: &str) -> Vec<Element<'_>> {
        let all = v
            .as_array()
            .unwrap_or_else(|| panic!("elements are not a list: {v}"));
        all.iter().map(|e| self.element(e.clone(), css)).collect()
    }

    /// A command on this session; fails the test with the driver's error.
    #[track_caller]
    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        self.try_session_call(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let full = format!("/session/{}{path}", self.session);
        self.command(method, &full, body)
    }

    fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let mut req = Request::new(method, path);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json; charset=utf-8")
                .body(b.to_string());
        }
        let resp = match self.client.borrow_mut().try_send(&req) {
            Ok(r) => r,
            Err(e) => panic!("WebDriver {method} {path}: {e}\n{}", self.driver_log_tail()),
        };
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
            panic!("WebDriver {method} {path} answered non-JSON ({e}):\n{resp:?}")
        });
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if resp.status == 200 {
            return Ok(value);
        }
        Err(WebDriverError {
            status: resp.status,
            error: value["error"].as_str().unwrap_or("?").to_string(),
            message: format!(
                "WebDriver {method} {path}: {}",
                value["message"].as_str().unwrap_or(&v.to_string())
            ),
        })
    }

    /// The end of chromedriver's log, for failures of the driver itself.
    fn driver_log_tail(&self) -> String {
        log_tail(&self.dir.path().join("chromedriver.log"))
    }
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.message, self.error, self.status)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let leftovers = self.leftovers();
        if !self.session.is_empty() {
            // Closing the session lets chromium exit cleanly; a hung driver must not hang
            // the test, so this read has its own short limit.
            let path = format!("/session/{}", self.session);
            let mut quick = Client::new(self.client.borrow().addr()).with_timeout(STOP_LIMIT);
            let _ = quick.try_send(&Request::delete(&path));
        }
        if let Some(mut driver) = self.driver.take() {
            wait::signal_group(&driver, libc::SIGKILL);
            let _ = driver.wait();
        }
        // The folder goes only when nothing writes to it any more.
        if wait::until(STOP_LIMIT, || leftovers.live().is_empty().then_some(())).is_none() {
            eprintln!(
                "browser: still running {STOP_LIMIT:?} after closing: {:?}",
                leftovers.live()
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "--- chromedriver log (end) ---\n{}",
                log_tail(&self.dir.path().join("chromedriver.log"))
            );
        }
    }
}

impl<'b> Element<'b> {
    /// Clicks it (scrolled into view; fails if something covers it).
    pub fn click(&self) {
        self.call("POST", "/click", json!({}));
    }

    /// Types `text` into it.
    pub fn send_keys(&self, text: &str) {
        self.call("POST", "/value", json!({ "text": text }));
    }

    /// Its rendered text (what a reader sees; hidden text is left out).
    pub fn text(&self) -> String {
        string(self.call("GET", "/text", Value::Null))
    }

    /// An attribute (or the property of that name, as WebDriver defines it), if set.
    pub fn attribute(&self, name: &str) -> Option<String> {
        self.call("GET", &format!("/attribute/{name}"), Value::Null)
            .as_str()
            .map(str::to_string)
    }

    /// The first element matching `css` inside this one.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'b> {
        let v = self.call("POST", "/element", by_css(css));
        self.browser.element(v, css)
    }

    /// Every element matching `css` inside this one.
    pub fn find_all(&self, css: &str) -> Vec<Element<'b>> {
        let v = self.call("POST", "/elements", by_css(css));
        self.browser.elements(v, css)
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let path = format!("/element/{}{path}", self.id);
        self.browser
            .try_session_call(method, &path, body)
            .unwrap_or_else(|e| panic!("on the element `{}`: {e}", self.css))
    }
}

/// The processes a browser could leave behind, checkable after it is dropped.
pub struct Leftovers {
    pgid: i32,
    dir: PathBuf,
}

impl Leftovers {
    /// Live (not zombie) processes of the browser, as `pid name`.
    pub fn live(&self) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut found = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return found;
        };
        for p in procs.flatten() {
            let name = p.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or(head);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.first() == Some(&"Z") {
                continue;
            }
            let pgrp: i32 = fields.get(2).and_then(|f| f.parse().ok()).unwrap_or(0);
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let names_dir = String::from_utf8_lossy(&cmdline).contains(&dir);
            if (self.pgid != 0 && pgrp == self.pgid) || names_dir {
                found.push(format!("{pid} {comm}"));
            }
        }
        found
    }
}

/// Starts chromedriver on a free port with `dir` as the browser's HOME and TMPDIR, in its own
/// process group (so one signal reaches the browser it starts), and waits for it to be ready.
fn spawn_driver(bin: &Path, dir: &Path) -> (Child, SocketAddr) {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create the browser's TMPDIR");
    let log = dir.join("chromedriver.log");
    let mut last_err = String::new();
    // The port was free a moment ago; another process may take it first, so a driver that
    // exits before it is ready is retried on a new port.
    for _attempt in 0..5 {
        let addr = free_port();
        let out = File::create(dir.join("chromedriver.out")).expect("chromedriver output file");
        let mut child = Command::new(bin)
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--log-path={}", log.display()))
            .env("HOME", dir)
            .env("TMPDIR", &tmp)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone a file handle"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut status = Client::new(addr).with_timeout(Duration::from_secs(10));
        let up = wait::until(DRIVER_START_LIMIT, || {
            if let Ok(Some(code)) = child.try_wait() {
                return Some(Err(code));
            }
            let resp = status.try_send(&Request::get("/status")).ok()?;
            let ready = serde_json::from_slice::<Value>(&resp.body).ok()?["value"]["ready"]
                .as_bool()
                .unwrap_or(false);
            ready.then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => return (child, addr),
            Some(Err(code)) => last_err = format!("chromedriver exited early with {code}"),
            None => {
                wait::signal_group(&child, libc::SIGKILL);
                let _ = child.wait();
                last_err = format!("chromedriver was not ready within {DRIVER_START_LIMIT:?}");
            }
        }
    }
    let out = std::fs::read_to_string(dir.join("chromedriver.out")).unwrap_or_default();
    panic!(
        "could not start {}: {last_err}\n{out}\n{}",
        bin.display(),
        log_tail(&log)
    );
}

/// `<target>/screenshots/<test path>`: beside the build, so it survives the test's temp
/// folders. The test is named by its thread (libtest and nextest name it `module::test`).
/// The folder is emptied the first time a process uses it, so it shows one run.
fn screenshot_dir() -> PathBuf {
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| n.replace("::", "/"))
        .unwrap_or_else(|| format!("unnamed-{}", std::process::id()));
    let dir = screenshots_root().join(test);
    static CLEARED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let mut cleared = CLEARED.lock().unwrap_or_else(|p| p.into_inner());
    if cleared.get_or_insert_with(HashSet::new).insert(dir.clone()) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    dir
}

/// Where screenshots go: the target folder this test binary was built in (it runs as
/// `<target>/<profile>/deps/e2e-<hash>`), else `CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn screenshots_root() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent()?.parent().map(Path::to_path_buf))?
    });
    let target = from_exe
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        })
        .unwrap_or_else(|| crate::binary::workspace_root().join("target"));
    target.join("screenshots")
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

fn string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => panic!("WebDriver answered {other}, want a string"),
    }
}

/// The first few KiB of a page, for failure messages.
fn excerpt(s: &str) -> String {
    let end = s
        .char_indices()
        .nth(4096)
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    format!("{}{}", &s[..end], if end < s.len() { "..." } else { "" })
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
