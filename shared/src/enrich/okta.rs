//! Okta: `GET {org_url}/api/v1/users/{id}` with `Authorization: SSWS <API token>`. The answer
//! is a User: `id`, `status` (`STAGED`, `PROVISIONED`, `ACTIVE`, `RECOVERY`, `LOCKED_OUT`,
//! `PASSWORD_EXPIRED`, `SUSPENDED`, `DEPROVISIONED`) and `profile` with Okta's base
//! attributes (`login`, `email`, `firstName`, `lastName`, `displayName`, `title`,
//! `department`, `city`, `countryCode`, `manager`, `managerId`, `employeeType`, …). While a
//! lifecycle operation runs asynchronously, `transitioningToStatus` names the state the user
//! is moving to. A user deleted from Okta answers 404 (`errorCode` `E0000007`). Every answer
//! carries `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (UTC epoch
//! seconds), which `send_json` reads to hold further reads when the quota is nearly spent.
//! Sources: https://developer.okta.com/docs/api/openapi/okta-management/management/tag/User/
//! (Retrieve a User; the User object), the Okta user-profile base attributes, and
//! https://developer.okta.com/docs/reference/rl-best-practices/ (rate-limit headers).

use serde_json::Value;

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
