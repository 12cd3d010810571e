//! BambooHR: `GET {base}/employees/{id}?fields=…` with HTTP Basic auth (the API key as user
//! name, `x` as password), JSON on `Accept: application/json`. The answer is a flat object of
//! the requested field aliases; fields the key may not see are silently left out.
//! Source: https://documentation.bamboohr.com/reference/get-employee and
//! https://documentation.bamboohr.com/docs/list-of-field-names.

use serde_json::Value;

use super::{EnrichError, first_text, join_url, parse_base_url, send_json, text_at};
use crate::event::Attributes;
use crate::http_retry::HttpClient;
use crate::secrets::SecretString;

/// The field aliases we read. `status` is the account status (`Active`/`Inactive`);
/// `employmentHistoryStatus` is the "Employment Status" table's current value
/// (`Full-Time`, `Contractor`, `Terminated`, …).
pub(super) const FIELDS: &str = "firstName,lastName,preferredName,displayName,workEmail,\
department,division,jobTitle,location,supervisorEid,supervisorEmail,status,employmentHistoryStatus";

pub(super) struct BambooHr {
    connection: String,
    base: url::Url,
    api_key: SecretString,
}

impl BambooHr {
    pub(super) fn new(
        connection: &str,
        company_domain: &str,
        api_key: &SecretString,
        base_url: Option<&str>,
    ) -> Result<Self, EnrichError> {
        let company_domain = company_domain.trim();
        if company_domain.is_empty() || !company_domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(EnrichError::Misconfigured {
                connection: connection.to_owned(),
                reason: format!("company_domain must be the part before .bamboohr.com (got {company_domain:?})"),
            });
        }
        let default_base = format!("https://{company_domain}.bamboohr.com/api/v1");
        let base = parse_base_url(connection, base_url.unwrap_or(&default_base))?;
        Ok(BambooHr { connection: connection.to_owned(), base, api_key: api_key.clone() })
    }

    pub(super) async fn fetch(&self, http: &HttpClient, employee_id: &str) -> Result<Option<Attributes>, EnrichError> {
        let mut url = join_url(&self.base, &["employees", employee_id]);
        url.query_pairs_mut().append_pair("fields", FIELDS).append_pair("onlyCurrent", "true");
        let request = http
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .basic_auth(self.api_key.expose(), Some("x"));
        Ok(send_json(http, &self.connection, request).await?.map(|body| attributes(&body)))
    }
}

pub(super) fn attributes(employee: &Value) -> Attributes {
    let status = text_at(employee, "/status");
    let employment = text_at(employee, "/employmentHistoryStatus");
    Attributes {
        work_email: text_at(employee, "/workEmail"),
        given_name: text_at(employee, "/firstName"),
        family_name: text_at(employee, "/lastName"),
        display_name: text_at(employee, "/displayName"),
        department: text_at(employee, "/department"),
        title: text_at(employee, "/jobTitle"),
        location: text_at(employee, "/location"),
        manager: first_text(employee, &["/supervisorEmail", "/supervisorEid"]),
        // The account status is authoritative for active/inactive; when the key cannot
        // see it, "Terminated" in the employment status still tells a leaver.
        employment_status: status.or_else(|| employment.clone()),
        employment_type: employment,
        start_date: None,
        termination_date: None,
    }
}
