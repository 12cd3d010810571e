//! BambooHR: `GET {base}/employees/{id}?fields=…` with HTTP Basic auth (the API key as user
//! name, `x` as password), JSON on `Accept: application/json`. The answer is a flat object of
//! the requested field aliases; fields the key may not see are silently left out. Dates
//! (`hireDate`, `terminationDate`) are `YYYY-MM-DD`, with `0000-00-00` or an empty value for
//! "none". Throttling is a 503 (from 16 Sep 2026 a 429) with `Retry-After`.
//! Sources: https://documentation.bamboohr.com/reference/get-employee,
//! https://documentation.bamboohr.com/docs/list-of-field-names,
//! https://documentation.bamboohr.com/docs/api-details (503 when throttled) and
//! https://documentation.bamboohr.com/docs/planned-changes-to-the-api (429 from Sep 2026).

use chrono::NaiveDate;
use serde_json::Value;

use super::{EnrichError, Read, first_text, join_url, parse_base_url, parse_date, send_json, text_at};
use crate::event::Attributes;
use crate::secrets::SecretString;

/// The field aliases we read. `status` is the account status (`Active`/`Inactive`);
/// `employmentHistoryStatus` is the "Employment Status" table's current value
/// (`Full-Time`, `Contractor`, `Terminated`, …); `hireDate` and `terminationDate` bound
/// the employment.
pub(super) const FIELDS: &str = "firstName,lastName,preferredName,displayName,workEmail,\
department,division,jobTitle,location,supervisorEid,supervisorEmail,status,employmentHistoryStatus,\
hireDate,terminationDate";

pub(super) struct BambooHr {
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
        Ok(BambooHr { base, api_key: api_key.clone() })
    }

    pub(super) async fn fetch(&self, read: Read<'_>, employee_id: &str) -> Result<Option<Attributes>, EnrichError> {
        let mut url = join_url(&self.base, &["employees", employee_id]);
        url.query_pairs_mut().append_pair("fields", FIELDS).append_pair("onlyCurrent", "true");
        let request = read
            .http
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .basic_auth(self.api_key.expose(), Some("x"));
        Ok(send_json(read, request).await?.map(|body| attributes(&body)))
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
        start_date: date(employee, "/hireDate", "hireDate"),
        termination_date: date(employee, "/terminationDate", "terminationDate"),
    }
}

/// BambooHR writes "no date" as `0000-00-00` (or leaves the value empty).
fn date(employee: &Value, pointer: &str, field: &'static str) -> Option<NaiveDate> {
    let text = text_at(employee, pointer).filter(|text| text != "0000-00-00")?;
    parse_date(&text, &["%Y-%m-%d"], field)
}
