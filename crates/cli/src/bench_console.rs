//! The console's pages for `ferry bench ops`: signed in as finance over HTTP, each page
//! fetched many times with the bench's history in the ledger; the time to the last byte
//! over loopback bounds the server's time. Also the first load's weight (the inbox, its
//! stylesheet and script).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::header::{COOKIE, SET_COOKIE};

/// Each page's p99 in milliseconds, and the first load in bytes.
pub struct ConsolePages {
    pub p99_ms: BTreeMap<String, f64>,
    pub first_load_bytes: usize,
}

/// The `name=value` of every cookie a response sets.
fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect()
}

/// The hidden `csrf` field of a page.
fn csrf(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().map(str::to_owned)
}

pub async fn pages(
    console: &str,
    secret: &str,
    paths: &[(&str, String)],
    calls: usize,
) -> anyhow::Result<ConsolePages> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = http.get(format!("{console}login")).send().await?;
    let login_cookie = cookies(&login).join("; ");
    let form = login.text().await?;
    let signed = http
        .post(format!("{console}login"))
        .header(COOKIE, login_cookie)
        .form(&[
            ("secret", secret),
            (
                "csrf",
                csrf(&form)
                    .context("the sign-in form's CSRF value")?
                    .as_str(),
            ),
            ("next", "/"),
        ])
        .send()
        .await?;
    let session = cookies(&signed)
        .into_iter()
        .find(|c| c.starts_with("ferry_session=") && c.len() > "ferry_session=".len())
        .context("signed in")?;
    let mut first_load_bytes = 0;
    for path in ["", "static/console.css", "static/console.js"] {
        let body = http
            .get(format!("{console}{path}"))
            .header(COOKIE, &session)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        first_load_bytes += body.len();
    }
    let mut p99_ms = BTreeMap::new();
    for (name, path) in paths {
        let mut took: Vec<Duration> = Vec::with_capacity(calls);
        for i in 0..calls + 10 {
            let t = Instant::now();
            let answer = http
                .get(format!("{console}{path}"))
                .header(COOKIE, &session)
                .send()
                .await?;
            anyhow::ensure!(answer.status().is_success(), "{path}: {}", answer.status());
            answer.bytes().await?;
            if i >= 10 {
                took.push(t.elapsed());
            }
        }
        took.sort();
        let at = ((took.len() as f64 * 0.99).ceil() as usize).clamp(1, took.len()) - 1;
        p99_ms.insert(
            (*name).to_owned(),
            (took[at].as_secs_f64() * 10_000.0).round() / 10.0,
        );
    }
    Ok(ConsolePages {
        p99_ms,
        first_load_bytes,
    })
}
