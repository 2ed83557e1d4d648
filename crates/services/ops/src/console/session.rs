//! Signing in and out, and the session every other page needs. A person signs in with an
//! API token from `ferry tokens create` (its name as the username, its secret as the
//! password, or the secret alone); the console then keeps a session cookie (HttpOnly,
//! SameSite=Strict, Secure where configured) standing for that token, and every form
//! carries the session's CSRF value back.

use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::html;
use rand::RngCore as _;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::{Console, Refused, layout};
use crate::access::Principal;
use crate::server::{internal, principal};
use crate::tokens;

const SESSION_COOKIE: &str = "ferry_session";
/// The sign-in form's own CSRF value (double submit: cookie and field must agree), so a
/// foreign page cannot sign a browser in as someone else.
const LOGIN_COOKIE: &str = "ferry_login";

/// The signed-in person and the value their forms must carry.
pub(crate) struct Session {
    pub who: Principal,
    pub csrf: String,
    id_hash: Vec<u8>,
}

impl Session {
    /// The refusal of a form that did not carry this session's CSRF value (compared in
    /// constant time); `None` when it did.
    pub fn refuse_forged(&self, sent: &str) -> Option<Response> {
        if bool::from(self.csrf.as_bytes().ct_eq(sent.as_bytes())) {
            None
        } else {
            tracing::warn!(actor = %self.who.name, "console: a form without its CSRF value refused");
            Some(forged())
        }
    }
}

fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        layout::bare(
            "Form refused",
            html! {
                h1 { "Form refused" }
                p.notice.error role="alert" {
                    "This form did not come from your signed-in console page. Nothing was done. "
                    "Reload the page and try again."
                }
                p { a href="/" { "Back to the inbox" } }
            },
        ),
    )
        .into_response()
}

impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let to_sign_in = || {
            let query = serde_urlencoded::to_string([("next", here.as_str())]).unwrap_or_default();
            Redirect::to(&format!("/login?{query}")).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let id_hash = tokens::hash(id);
        let row = state
            .api
            .store()
            .session_by_hash(&id_hash)
            .await
            .map_err(|e| Refused(internal(e)).into_response())?
            .ok_or_else(to_sign_in)?;
        Ok(Session {
            who: principal(row.token).map_err(|s| Refused(s).into_response())?,
            csrf: row.csrf,
            id_hash,
        })
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name && !v.is_empty()).then_some(v))
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Where to go after signing in: only a path on this console (never another site).
fn local(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

pub(crate) async fn login_page(State(console): State<Console>, Query(q): Query<Next>) -> Response {
    sign_in_form(&console, local(q.next.as_deref()), None, StatusCode::OK)
}

fn sign_in_form(
    console: &Console,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = random_hex();
    let page = layout::bare(
        "Sign in",
        html! {
            h1 { "Sign in to Ferry" }
            @if let Some(e) = error { p.notice.error role="alert" { (e) } }
            form.signin method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="username" { "Name (optional)" }
                input #username name="username" autocomplete="username";
                label for="secret" { "Access key" }
                input #secret name="secret" type="password" required autocomplete="current-password";
                p.hint { "Your access key is the secret " code { "ferry tokens create" } " printed for you; ask engineering for one." }
                button type="submit" { "Sign in" }
            }
        },
    );
    let cookie = format!(
        "{LOGIN_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(console)
    );
    (status, [(header::SET_COOKIE, cookie)], page).into_response()
}

fn secure(console: &Console) -> &'static str {
    if console.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    username: String,
    secret: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, Refused> {
    let next = local(Some(&form.next)).to_owned();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return Ok(forged());
    }
    let store = console.api.store();
    let token = store
        .token_by_hash(&tokens::hash(form.secret.trim()))
        .await
        .map_err(internal)?
        .filter(|t| form.username.trim().is_empty() || t.name == form.username.trim());
    let Some(token) = token else {
        tracing::warn!("console: sign-in refused (unknown, revoked or mismatched key)");
        return Ok(sign_in_form(
            &console,
            &next,
            Some("That name and access key do not match a live token."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let id = random_hex();
    let ttl =
        chrono::Duration::from_std(console.session_ttl).unwrap_or(chrono::Duration::hours(12));
    store
        .create_session(
            &tokens::hash(&id),
            token.id,
            &random_hex(),
            Utc::now() + ttl,
        )
        .await
        .map_err(internal)?;
    tracing::info!(actor = %token.name, role = %token.role, "console: signed in");
    let session = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        console.session_ttl.as_secs(),
        secure(&console)
    );
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    for value in [
        session,
        format!("{LOGIN_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn logout(
    State(console): State<Console>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Refused> {
    if let Some(refused) = session.refuse_forged(&form.csrf) {
        return Ok(refused);
    }
    console
        .api
        .store()
        .delete_session(&session.id_hash)
        .await
        .map_err(internal)?;
    let gone = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(&console)
    );
    Ok(([(header::SET_COOKIE, gone)], Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local(Some("/orders?q=1")), "/orders?q=1");
        for foreign in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "",
        ] {
            assert_eq!(local(Some(foreign)), "/", "{foreign}");
        }
        assert_eq!(local(None), "/");
    }

    #[test]
    fn cookies_are_read_by_name_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferry_session=abc"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("ferry_login=xyz"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
