//! A real Chromium driven over WebDriver: Debian's `chromium` and
//! `chromium-driver` (chromedriver), headless, one profile per signed-in
//! person. Included by path from the tests that use it.
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

/// A chromedriver process on a loopback port held for this test.
pub struct Driver {
    child: Child,
    url: String,
    _port: ports::Port,
    /// Where screenshots go: under the test's own output directory.
    pub shots: PathBuf,
}

impl Driver {
    /// Starts chromedriver; `None` (after printing SKIPPED) when Chromium is
    /// not installed, unless `LEASEHOLD_REQUIRE_BROWSER` is set
    /// (`scripts/test.sh` sets it after installing both), when it fails.
    pub async fn start() -> Option<Driver> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("LEASEHOLD_REQUIRE_BROWSER").is_none(),
                "{CHROMIUM} or {CHROMEDRIVER} is missing, and LEASEHOLD_REQUIRE_BROWSER is set"
            );
            println!("SKIPPED: {CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = ports::reserve(1).pop().expect("a port for chromedriver");
        // Its own process group: dropping the driver kills the browsers it
        // started too, even after a failed step.
        let child = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={}", port.number))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{}/", port.number);
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-screens");
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        let driver = Driver { child, url, _port: port, shots };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{}status", driver.url)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(driver)
    }

    /// A new browser, with a profile of its own, on the node at `base`.
    pub async fn open(&self, base: &str) -> Page {
        let caps = json!({
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
        });
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        Page { client, base: base.trim_end_matches('/').to_string(), shots: self.shots.clone(), network: Vec::new() }
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
