//! A small W3C WebDriver client (chromedriver driving Debian's headless Chromium), enough to
//! walk the console's pages: navigate, find, click, type, read text, run a script, screenshot.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and chromedriver, where Debian's `chromium` and `chromium-driver` put them.
pub fn browser_paths() -> Option<(&'static str, &'static str)> {
    let (chromium, driver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
    (Path::new(chromium).exists() && Path::new(driver).exists()).then_some((chromium, driver))
}

/// A chromedriver process and one headless browser session.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session of 1280×1000.
    pub async fn start(chromium: &str, driver: &str) -> Browser {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_string();
        Browser {
            driver: child,
            base: format!("{base}/session/{id}"),
            http,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        res["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The element `css` selects, waiting up to 20 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .post("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css:?}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        let v = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(v.is_null(), "click {css:?}: {v}");
    }

    /// Replaces the text of the input `css` selects.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the text of `css` contains `needle`; that text.
    pub async fn wait_text(&self, css: &str, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self
                .post("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = v[ELEMENT].as_str() {
                let t = self
                    .cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                    .await;
                let t = t.as_str().unwrap_or_default();
                if t.contains(needle) {
                    return t.to_string();
                }
                assert!(
                    Instant::now() < deadline,
                    "{css:?} never showed {needle:?}; last: {t}"
                );
            } else {
                assert!(Instant::now() < deadline, "no element {css:?}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits up to 20 s until the element `css` selects is shown (neither it nor a parent
    /// `hidden`): a step the page shows after a round trip to the server.
    pub async fn wait_shown(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let shown = self
                .script(
                    "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');",
                    json!([css]),
                )
                .await;
            if shown == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "{css:?} never shown");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page with `args`; its result.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Picks `value` in the `<select>` `css` selects, as a user would (a `change` event).
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await;
        self.script(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; s.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([css, value]),
        )
        .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a screenshot"))
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session.
    pub async fn quit(self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}
