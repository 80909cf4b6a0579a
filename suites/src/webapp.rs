//! The Camunda webapp's login flow, spoken with explicit cookies: XSRF token from an app page,
//! form login with the `X-XSRF-TOKEN` header, "who am I", logout.

use anyhow::{bail, Context, Result};
use reqwest::{Client, StatusCode};
use serde::Deserialize;

use crate::http::{excerpt, Cookies};
use crate::target::Secret;

pub(crate) const SESSION_COOKIE: &str = "JSESSIONID";
const XSRF_COOKIE: &str = "XSRF-TOKEN";
const XSRF_HEADER: &str = "X-XSRF-TOKEN";

/// The webapp as reached through one origin (the ingress, or a replica directly).
pub(crate) struct Webapp<'c> {
    pub label: String,
    pub client: &'c Client,
    /// `scheme://authority` + webapp path.
    pub base: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserInfo {
    user_id: String,
}

impl Webapp<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs an app page, which (re)issues the XSRF token for the current session.
    pub async fn fetch_xsrf(&self, cookies: &mut Cookies) -> Result<String> {
        let url = self.url("/app/welcome/default/");
        let response = self
            .client
            .get(&url)
            .header(reqwest::header::COOKIE, cookies.header())
            .send()
            .await
            .with_context(|| format!("{}: GET {url}", self.label))?;
        cookies.absorb(response.headers());
        let status = response.status();
        let header = response
            .headers()
            .get(XSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status != StatusCode::OK {
            bail!(
                "{}: GET {url}: expected 200, got {}",
                self.label,
                status.as_u16()
            );
        }
        header
            .or_else(|| cookies.get(XSRF_COOKIE).map(str::to_string))
            .with_context(|| {
                format!(
                    "{}: GET {url}: no {XSRF_COOKIE} cookie or {XSRF_HEADER} header",
                    self.label
                )
            })
    }

    /// Posts the login form. With `xsrf` the header is sent; the answer's status and body.
    pub async fn post_login(
        &self,
        cookies: &mut Cookies,
        xsrf: Option<&str>,
        username: &str,
        password: &Secret,
    ) -> Result<(StatusCode, String)> {
        let url = self.url("/api/admin/auth/user/default/login/welcome");
        let mut request = self
            .client
            .post(&url)
            .header(reqwest::header::COOKIE, cookies.header())
            .form(&[("username", username), ("password", password.expose())]);
        if let Some(token) = xsrf {
            request = request.header(XSRF_HEADER, token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{}: POST {url}", self.label))?;
        cookies.absorb(response.headers());
        let status = response.status();
        Ok((status, response.text().await.unwrap_or_default()))
    }

    /// The full login: XSRF token, form login (which issues a new session id), fresh XSRF token
    /// for the new session. Returns the logged-in user id.
    pub async fn login(
        &self,
        cookies: &mut Cookies,
        username: &str,
        password: &Secret,
    ) -> Result<String> {
        let before = cookies.get(SESSION_COOKIE).map(str::to_string);
        let token = self.fetch_xsrf(cookies).await?;
        let (status, body) = self
            .post_login(cookies, Some(&token), username, password)
            .await?;
        if status != StatusCode::OK {
            // With the header sent, 403 means the answering replica does not know the session
            // that issued the token.
            let hint = if status == StatusCode::FORBIDDEN {
                " (the XSRF token was refused: the replica that answered does not know the session that issued it; neither affinity nor a shared session store?)"
            } else {
                ""
            };
            bail!(
                "{}: login as `{username}`: expected 200 with a userId, got {}{}{hint}",
                self.label,
                status.as_u16(),
                excerpt(&body)
            );
        }
        let info: UserInfo = serde_json::from_str(&body).with_context(|| {
            format!(
                "{}: login as `{username}`: the answer has no userId{}",
                self.label,
                excerpt(&body)
            )
        })?;
        if cookies.get(SESSION_COOKIE).is_none()
            || cookies.get(SESSION_COOKIE).map(str::to_string) == before
        {
            bail!(
                "{}: login as `{username}` did not issue a new {SESSION_COOKIE}",
                self.label
            );
        }
        self.fetch_xsrf(cookies).await?;
        Ok(info.user_id)
    }

    /// `Some(user)` when the cookies carry a logged-in session here, `None` when not (404).
    pub async fn whoami(&self, cookies: &Cookies) -> Result<Option<String>> {
        let url = self.url("/api/admin/auth/user/default");
        let response = self
            .client
            .get(&url)
            .header(reqwest::header::COOKIE, cookies.header())
            .send()
            .await
            .with_context(|| format!("{}: GET {url}", self.label))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        match status {
            StatusCode::OK => {
                let info: UserInfo = serde_json::from_str(&body).with_context(|| {
                    format!(
                        "{}: GET {url}: 200 without a userId{}",
                        self.label,
                        excerpt(&body)
                    )
                })?;
                Ok(Some(info.user_id))
            }
            StatusCode::NOT_FOUND => Ok(None),
            other => bail!(
                "{}: GET {url}: expected 200 (logged in) or 404 (not), got {}{}",
                self.label,
                other.as_u16(),
                excerpt(&body)
            ),
        }
    }

    pub async fn logout(&self, cookies: &mut Cookies) -> Result<()> {
        let token = self.fetch_xsrf(cookies).await?;
        let url = self.url("/api/admin/auth/user/default/logout");
        let response = self
            .client
            .post(&url)
            .header(reqwest::header::COOKIE, cookies.header())
            .header(XSRF_HEADER, token)
            .send()
            .await
            .with_context(|| format!("{}: POST {url}", self.label))?;
        let status = response.status();
        cookies.absorb(response.headers());
        if !status.is_success() {
            bail!(
                "{}: POST {url}: expected 2xx, got {}",
                self.label,
                status.as_u16()
            );
        }
        Ok(())
    }
}
