//! A real headless Chromium for the console's tests, driven over WebDriver: Debian's
//! `chromedriver` (package `chromium-driver`, installed by `scripts/setup.sh`) on a free
//! loopback port, one browser session per person, a private profile each.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// chromedriver, running until dropped.
pub struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Driver {
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/setup.sh installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver {
            child,
            url,
            profiles: tempfile::tempdir().expect("a profile directory"),
        }
    }

    /// A new browser (its own profile: no cookies shared with another person's).
    pub async fn browser(&self, who: &str) -> Client {
        let profile = self.profiles.path().join(who);
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session");
        // Elements of a page still loading are waited for, not missed.
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                None,
                None,
                Some(Duration::from_secs(10)),
            ))
            .await
            .expect("timeouts set");
        client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs in at `console` with an access key, as a person would: the form, typed.
pub async fn sign_in(c: &Client, console: &str, secret: &str) {
    c.goto(console).await.expect("the console opens");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .starts_with("/login"),
        "signed out, the console asks to sign in"
    );
    c.find(Locator::Id("secret"))
        .await
        .expect("the access key field")
        .send_keys(secret)
        .await
        .expect("typed");
    c.find(Locator::Css("form.signin button"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("signed in");
    for _ in 0..100 {
        if c.current_url().await.expect("url").path() == "/" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not in the inbox 10 s after signing in: {}", text(c).await);
}

/// The page's text once it says `needle` (a click's page may still be on its way).
pub async fn wait_for(c: &Client, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = text(c).await;
        if last.contains(needle) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page never said {needle:?}: {last}");
}

/// The visible text of the page's main part (read in one script: a page that reloads
/// itself cannot leave a stale element behind).
pub async fn text(c: &Client) -> String {
    for _ in 0..50 {
        let got = c
            .execute(
                "const m = document.querySelector('main'); return m ? m.innerText : null;",
                vec![],
            )
            .await;
        if let Ok(serde_json::Value::String(t)) = got {
            return t;
        }
        // Between two pages: ask again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no page with a main part");
}

/// A POST from inside the signed-in page (its cookies, same origin), answering the
/// status: what a forged or hand-made form would get from the server.
pub async fn post_from_page(c: &Client, path: &str, form: &[(&str, &str)]) -> u16 {
    let body = serde_urlencoded::to_string(form).expect("a form");
    let status = c
        .execute_async(
            "const [path, body, done] = arguments;
             fetch(path, {method: 'POST', body, redirect: 'manual',
                          headers: {'content-type': 'application/x-www-form-urlencoded'}})
               .then(r => done(r.status)).catch(e => done(-1));",
            vec![path.into(), body.into()],
        )
        .await
        .expect("the script ran");
    u16::try_from(status.as_i64().unwrap_or(-1)).unwrap_or(0)
}

/// The page's CSRF value (every signed-in page carries it in the sign-out form).
pub async fn csrf(c: &Client) -> String {
    c.find(Locator::Css("form.signout input[name=csrf]"))
        .await
        .expect("the sign-out form")
        .attr("value")
        .await
        .expect("its value")
        .expect("a CSRF value")
}

/// Saves a screenshot of the page to `$FERRY_CONSOLE_SCREENSHOTS/<name>.png` when that
/// directory is given (`scripts/console-screenshots.sh` refreshes docs/console/).
// A test binary, not a library: the one switch it takes is where to put screenshots.
#[allow(clippy::disallowed_methods)]
pub async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("FERRY_CONSOLE_SCREENSHOTS") {
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
            .expect("the screenshot written");
    }
}

/// Every field of the page has a label a screen reader reads out, and the page has one
/// main heading.
pub async fn assert_labelled(c: &Client) {
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                 .map(e => e.outerHTML);",
            vec![],
        )
        .await
        .expect("the script ran");
    assert_eq!(unlabelled, serde_json::json!([]), "fields without a label");
    let headings = c
        .execute("return document.querySelectorAll('h1').length;", vec![])
        .await
        .expect("the script ran");
    assert_eq!(headings, serde_json::json!(1), "one main heading");
}
