//! A real browser driven over WebDriver: Debian's `chromium` through its
//! `chromium-driver` (chromedriver), or Debian's `firefox-esr` through
//! geckodriver (built from crates.io by `scripts/test.sh`); headless, one
//! profile per signed-in person. Included by path from the tests that use it.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::ports;

/// How long a page may take to show what a step waits for.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const FIREFOX: &str = "/usr/bin/firefox-esr";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    fn binary(self) -> &'static str {
        match self {
            Browser::Chromium => CHROMIUM,
            Browser::Firefox => FIREFOX,
        }
    }

    /// The driver's executable: chromedriver where Debian puts it;
    /// geckodriver as `LEASEHOLD_GECKODRIVER` names it, or on `PATH`.
    fn driver(self) -> Option<PathBuf> {
        match self {
            Browser::Chromium => Some(PathBuf::from(CHROMEDRIVER)),
            Browser::Firefox => std::env::var_os("LEASEHOLD_GECKODRIVER").map(PathBuf::from).or_else(|| {
                let path = std::env::var_os("PATH")?;
                std::env::split_paths(&path).map(|d| d.join("geckodriver")).find(|p| p.exists())
            }),
        }
    }

    /// Set by `scripts/test.sh` once it installed the browser and its driver.
    fn required(self) -> &'static str {
        match self {
            Browser::Chromium => "LEASEHOLD_REQUIRE_BROWSER",
            Browser::Firefox => "LEASEHOLD_REQUIRE_FIREFOX",
        }
    }
}

/// A driver process on loopback ports held for this test.
pub struct Driver {
    pub browser: Browser,
    child: Child,
    url: String,
    _ports: Vec<ports::Port>,
    /// Where screenshots go: under the test's own output directory.
    pub shots: PathBuf,
}

impl Driver {
    /// Starts chromedriver; see [`Driver::start_for`].
    pub async fn start() -> Option<Driver> {
        Self::start_for(Browser::Chromium).await
    }

    /// Starts the browser's driver; `None` (after printing SKIPPED) when the
    /// browser or driver is not installed, unless the browser's
    /// `LEASEHOLD_REQUIRE_*` is set, when it fails.
    pub async fn start_for(browser: Browser) -> Option<Driver> {
        let driver = browser.driver().filter(|d| d.exists());
        let Some(driver) = driver.filter(|_| Path::new(browser.binary()).exists()) else {
            let why =
                format!("{} and its WebDriver driver are needed (scripts/test.sh installs both)", browser.binary());
            assert!(std::env::var_os(browser.required()).is_none(), "{why}, and {} is set", browser.required());
            println!("SKIPPED: {why}");
            return None;
        };
        let ports = ports::reserve(2);
        let mut cmd = Command::new(&driver);
        // Its own process group: dropping the driver kills the browsers it
        // started too, even after a failed step.
        cmd.process_group(0).stdout(Stdio::null()).stderr(Stdio::null());
        match browser {
            Browser::Chromium => cmd.arg(format!("--port={}", ports[0].number)),
            // geckodriver's BiDi socket would take 9222, shared by every test.
            Browser::Firefox => cmd.args(["--host", "127.0.0.1", "--port", &ports[0].number.to_string()]).args([
                "--websocket-port",
                &ports[1].number.to_string(),
                "--binary",
                FIREFOX,
            ]),
        };
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{}/", ports[0].number);
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-screens");
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        let driver = Driver { browser, child, url, _ports: ports, shots };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}status", driver.url)).await.is_err() {
            assert!(Instant::now() < deadline, "{browser:?}'s driver did not answer within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(driver)
    }

    /// A new browser, with a profile of its own, on the node at `base`.
    /// geckodriver holds one at a time: close a Firefox page before the next.
    pub async fn open(&self, base: &str) -> Page {
        let caps = match self.browser {
            Browser::Chromium => json!({
                "browserName": "chrome",
                // Dialogs (confirm, prompt) are the test's to answer.
                "unhandledPromptBehavior": "ignore",
                "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"},
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--window-size=1280,900", "--no-first-run", "--no-default-browser-check",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--disable-default-apps", "--disable-extensions", "--password-store=basic"],
                },
            }),
            Browser::Firefox => json!({
                "browserName": "firefox",
                "unhandledPromptBehavior": "ignore",
                "moz:firefoxOptions": {
                    "binary": FIREFOX,
                    "args": ["-headless", "--width=1280", "--height=900"],
                    // Nothing but the node: no updates, telemetry or portal checks.
                    "prefs": {
                        "app.update.enabled": false, "datareporting.policy.dataSubmissionEnabled": false,
                        "network.captive-portal-service.enabled": false, "browser.safebrowsing.update.enabled": false,
                        "toolkit.telemetry.enabled": false, "network.connectivity-service.enabled": false,
                    },
                },
            }),
        };
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("a {:?} session: {e}", self.browser));
        let base = base.trim_end_matches('/').to_string();
        Page { client, browser: self.browser, base, shots: self.shots.clone(), network: Vec::new() }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// chromedriver's log endpoint, which W3C WebDriver leaves out.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": self.0}).to_string()))
    }
}

/// One person's browser, signed in at one node.
pub struct Page {
    pub client: Client,
    pub browser: Browser,
    /// The node's origin, `http://127.0.0.1:PORT`.
    pub base: String,
    shots: PathBuf,
    /// Every DevTools network event the browser logged so far.
    pub network: Vec<Value>,
}

impl Page {
    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.expect("navigate");
    }

    /// The path (and query) the page shows now.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until an element matching `css` has `text` in its text.
    pub async fn wait_text(&self, css: &str, text: &str) -> Element {
        self.wait_text_for(css, text, STEP_TIMEOUT).await
    }

    pub async fn wait_text_for(&self, css: &str, text: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
                if e.text().await.is_ok_and(|t| t.contains(text)) {
                    return e;
                }
            }
            if Instant::now() > deadline {
                let body = self.client.find(Locator::Css("body")).await.expect("body").text().await.unwrap_or_default();
                let console = self.console().await.join("\n");
                panic!(
                    "no `{css}` with {text:?} on {} within {within:?}; the page says:\n{body}\nits console:\n{console}",
                    self.path().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait(&self, css: &str) -> Element {
        self.wait_text(css, "").await
    }

    /// Clicks the button (or link, or summary) whose text is `label`, inside
    /// the first element matching `within`.
    pub async fn click(&self, within: &str, label: &str) {
        assert!(!label.contains('"'), "a label with a double quote: {label}");
        let xpath = format!(r#".//*[self::button or self::a or self::summary][normalize-space(.)="{label}"]"#);
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let scope = self.wait(within).await;
            if let Ok(e) = scope.find(Locator::XPath(&xpath)).await {
                if e.is_enabled().await.unwrap_or(false) {
                    e.click().await.expect("click");
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no {label:?} to click in `{within}` on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces what the field matching `css` holds with `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.wait(css).await;
        // Select all and delete, as a person would: WebDriver's clear sets
        // the value without the input event the page's state follows.
        e.send_keys("\u{E009}a\u{E000}\u{E003}").await.expect("select all and delete");
        e.send_keys(value).await.expect("type");
        let now = e.prop("value").await.expect("the field's value");
        assert_eq!(now.as_deref(), Some(value), "`{css}` holds something else than what was typed");
    }

    /// Types `text` into the header's search box and presses Enter.
    pub async fn search(&self, text: &str) {
        const BOX: &str = "header input[aria-label=Search]";
        self.fill(BOX, text).await;
        self.wait(BOX).await.send_keys("\u{E007}").await.expect("press Enter");
    }

    /// Presses and lets go of `key` (a character, or a WebDriver key code
    /// such as Tab `\u{E004}`), sent to whatever has focus, as a person's is.
    pub async fn press(&self, key: char) {
        let keys =
            KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.expect("press a key");
    }

    /// Presses Tab until the focused element matches `css`: the page is
    /// walked as a keyboard user walks it, and `css` must be reachable so.
    pub async fn tab_to(&self, css: &str) {
        const MAX_TABS: usize = 200;
        self.wait(css).await;
        let focused = format!("return document.activeElement.matches({})", json!(css));
        for _ in 0..MAX_TABS {
            if self.js(&focused).await == json!(true) {
                return;
            }
            self.press('\u{E004}').await;
        }
        panic!("{MAX_TABS} presses of Tab never reached `{css}` on {}", self.path().await);
    }

    /// Answers the dialog the last click opened: typing `text` into a
    /// prompt first, if given.
    pub async fn answer(&self, text: Option<&str>) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        while self.client.get_alert_text().await.is_err() {
            assert!(Instant::now() < deadline, "no dialog opened on {}", self.path().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(t) = text {
            self.client.send_alert_text(t).await.expect("type into the prompt");
        }
        self.client.accept_alert().await.expect("accept the dialog");
    }

    /// Signs in through the page's own form.
    pub async fn sign_in(&self, token: &str) {
        self.fill("#token", token).await;
        self.click("form", "Sign in").await;
        self.wait("header .me").await;
    }

    /// The labels of every button the page shows.
    pub async fn buttons(&self) -> Vec<String> {
        let mut out = Vec::new();
        for b in self.client.find_all(Locator::Css("button, summary")).await.unwrap_or_default() {
            if b.is_displayed().await.unwrap_or(false) {
                out.push(b.text().await.unwrap_or_default());
            }
        }
        out
    }

    /// Runs `script` in the page; its `return` value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect("run a script in the page")
    }

    /// Runs `script` in the page; it calls `arguments[0]` with its answer.
    pub async fn js_async(&self, script: &str) -> Value {
        self.client.execute_async(script, vec![]).await.expect("run a script in the page")
    }

    /// Writes a screenshot of the page as it is to `NAME.png`.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Scrolls the first element matching `css` to the middle of the
    /// window, then writes the screenshot.
    pub async fn shot_at(&self, name: &str, css: &str) {
        let script = format!("document.querySelector({}).scrollIntoView({{block: 'center'}})", json!(css));
        self.js(&script).await;
        self.shot(name).await;
    }

    /// Moves what the browser logged about the network since the last call
    /// into `network`; returns how many events came.
    pub async fn drain_network(&mut self) -> usize {
        assert_eq!(self.browser, Browser::Chromium, "only chromedriver keeps a network log");
        let entries = self.client.issue_cmd(GetLog("performance")).await.expect("the performance log");
        let before = self.network.len();
        for e in entries.as_array().into_iter().flatten() {
            if let Some(m) = e["message"].as_str().and_then(|m| serde_json::from_str::<Value>(m).ok()) {
                self.network.push(m["message"].clone());
            }
        }
        self.network.len() - before
    }

    /// The browser's console messages since the last call.
    pub async fn console(&self) -> Vec<String> {
        if self.browser != Browser::Chromium {
            return vec!["(geckodriver keeps no console log)".into()];
        }
        let entries = self.client.issue_cmd(GetLog("browser")).await.expect("the console log");
        entries.as_array().into_iter().flatten().filter_map(|e| e["message"].as_str().map(String::from)).collect()
    }

    /// Every URL the browser asked for, from its own network log.
    pub fn requested(&self) -> Vec<String> {
        let sent = self.network.iter().filter(|m| m["method"] == "Network.requestWillBeSent");
        sent.filter_map(|m| m["params"]["request"]["url"].as_str().map(String::from)).collect()
    }

    pub async fn close(self) {
        self.client.close().await.expect("close the browser");
    }
}
