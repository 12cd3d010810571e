//! Okta: `GET {org_url}/api/v1/users/{id}` with `Authorization: SSWS <API token>`. The answer
//! is a User: `id`, `status` (`STAGED`, `PROVISIONED`, `ACTIVE`, `RECOVERY`, `LOCKED_OUT`,
//! `PASSWORD_EXPIRED`, `SUSPENDED`, `DEPROVISIONED`) and `profile` with Okta's base
//! attributes (`login`, `email`, `firstName`, `lastName`, `displayName`, `title`,
//! `department`, `city`, `countryCode`, `manager`, `managerId`, `employeeType`, …). While a
//! lifecycle operation runs asynchronously, `transitioningToStatus` names the state the user
//! is moving to. A user deleted from Okta answers 404 (`errorCode` `E0000007`). Every answer
//! carries `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (UTC epoch
//! seconds), which `send_json` reads to hold further reads when the quota is nearly spent.
//!
//! The roster (reconcile) is `GET {org_url}/api/v1/users?limit=200` (200 is the largest page),
//! then the same with `search=status eq "DEPROVISIONED"`: the plain listing leaves
//! deprovisioned users out. Each answer is an array of Users; the next page is the URL in the
//! `Link` header whose `rel` is `next` (there may be several `Link` headers, `self` among
//! them), and the last page has none. The `after` cursor in it is opaque, so the URL is
//! followed as given, but only on the org URL's origin: the API token goes with it.
//! Sources: https://developer.okta.com/docs/api/openapi/okta-management/management/tag/User/
//! (Retrieve a User; List all Users; the User object), the Okta user-profile base attributes,
//! https://developer.okta.com/docs/api/#pagination (Link headers) and
//! https://developer.okta.com/docs/reference/rl-best-practices/ (rate-limit headers).

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;

use reqwest::header::{HeaderMap, LINK};
use serde_json::Value;

use super::roster::{People, Roster, roster_page, unexpected};
use super::{EnrichError, Read, first_text, join_url, parse_base_url, send_json, text_at};
use crate::event::Attributes;
use crate::secrets::SecretString;

pub(super) struct Okta {
    base: url::Url,
    authorization: reqwest::header::HeaderValue,
}

impl Okta {
    pub(super) fn new(connection: &str, org_url: &str, api_token: &SecretString) -> Result<Self, EnrichError> {
        let base = parse_base_url(connection, org_url)?;
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("SSWS {}", api_token.expose()))
            .map_err(|_| EnrichError::Misconfigured {
                connection: connection.to_owned(),
                reason: "api_token contains characters not allowed in an HTTP header".into(),
            })?;
        // Keeps the value out of HTTP-level debug output.
        authorization.set_sensitive(true);
        Ok(Okta { base, authorization })
    }

    pub(super) async fn fetch(&self, read: Read<'_>, user_id: &str) -> Result<Option<Attributes>, EnrichError> {
        let url = join_url(&self.base, &["api", "v1", "users", user_id]);
        let request = read
            .http
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone());
        Ok(send_json(read, request).await?.map(|body| attributes(&body)))
    }

    /// Every user: the plain listing, then the deprovisioned ones, each page by page.
    pub(super) async fn roster(&self, read: Read<'_>, sent: &AtomicUsize) -> Result<Roster, EnrichError> {
        let mut people = People::default();
        let mut visited = HashSet::new();
        for search in [None, Some(r#"status eq "DEPROVISIONED""#)] {
            let mut next = Some(self.users_url(search));
            while let Some(url) = next.take() {
                if !visited.insert(url.clone()) {
                    return Err(unexpected(read.connection, "the next-page link leads back to a page already read"));
                }
                let request = read
                    .http
                    .http()
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .header(reqwest::header::AUTHORIZATION, self.authorization.clone());
                let answer = roster_page(read, request, sent).await?;
                let Some(users) = answer.body.as_array() else {
                    return Err(unexpected(read.connection, "a users page is not an array"));
                };
                for user in users {
                    let Some(id) = text_at(user, "/id") else {
                        return Err(unexpected(read.connection, "a users page lists a user without an id"));
                    };
                    people.push(id, attributes(user));
                }
                next = self.next_page(read.connection, &answer.headers, &url)?;
            }
        }
        Ok(Roster::from_present_fields(people))
    }

    fn users_url(&self, search: Option<&str>) -> url::Url {
        let mut url = join_url(&self.base, &["api", "v1", "users"]);
        url.query_pairs_mut().append_pair("limit", "200");
        if let Some(search) = search {
            url.query_pairs_mut().append_pair("search", search);
        }
        url
    }

    /// The `next` link of a page, when it is on the org URL's origin; a link elsewhere is
    /// refused (the API token would go with it).
    fn next_page(
        &self,
        connection: &str,
        headers: &HeaderMap,
        page: &url::Url,
    ) -> Result<Option<url::Url>, EnrichError> {
        let Some(target) = next_link(headers) else { return Ok(None) };
        let next = page.join(&target).map_err(|_| unexpected(connection, "the next-page link is not a URL"))?;
        if next.origin() != self.base.origin() {
            return Err(unexpected(
                connection,
                format!(
                    "the next-page link leads to {} rather than the org URL's origin; refused",
                    next.origin().ascii_serialization()
                ),
            ));
        }
        Ok(Some(next))
    }
}

/// The target of the `rel="next"` link among every `Link` header (RFC 8288): each value is
/// `<target>; param=value; …`, comma separated, and a target is enclosed in angle brackets,
/// so a comma inside one does not split it.
pub(super) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers.get_all(LINK).iter().filter_map(|value| value.to_str().ok()).find_map(|value| {
        link_values(value).into_iter().find_map(|(target, rels)| {
            rels.split_ascii_whitespace().any(|rel| rel.eq_ignore_ascii_case("next")).then_some(target)
        })
    })
}

/// `(target, rel)` of each link in one `Link` header value.
fn link_values(value: &str) -> Vec<(String, String)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let target = after[..close].trim().to_owned();
        let tail = &after[close + 1..];
        let end = tail.find('<').unwrap_or(tail.len());
        let rel = tail[..end]
            .split(';')
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("rel"))
            .map(|(_, value)| value.trim().trim_end_matches(',').trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        links.push((target, rel));
        rest = &tail[end..];
    }
    links
}

pub(super) fn attributes(user: &Value) -> Attributes {
    Attributes {
        work_email: first_text(user, &["/profile/email", "/profile/login"]),
        given_name: text_at(user, "/profile/firstName"),
        family_name: text_at(user, "/profile/lastName"),
        display_name: text_at(user, "/profile/displayName"),
        department: text_at(user, "/profile/department"),
        title: text_at(user, "/profile/title"),
        location: first_text(user, &["/profile/city", "/profile/countryCode"]),
        manager: first_text(user, &["/profile/managerId", "/profile/manager"]),
        employment_status: status(user),
        employment_type: text_at(user, "/profile/employeeType"),
        start_date: None,
        termination_date: None,
    }
}

/// Okta can answer a read while it is still deactivating or suspending the user: `status`
/// is then the state being left, and the worker must act on the one being entered.
fn status(user: &Value) -> Option<String> {
    match text_at(user, "/transitioningToStatus") {
        Some(target) if ["DEPROVISIONED", "SUSPENDED"].iter().any(|s| target.eq_ignore_ascii_case(s)) => Some(target),
        _ => text_at(user, "/status"),
    }
}
