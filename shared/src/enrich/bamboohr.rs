//! BambooHR: `GET {base}/employees/{id}?fields=…` with HTTP Basic auth (the API key as user
//! name, `x` as password), JSON on `Accept: application/json`. The answer is a flat object of
//! the requested field aliases; fields the key may not see are silently left out. Dates
//! (`hireDate`, `terminationDate`) are `YYYY-MM-DD`, with `0000-00-00` or an empty value for
//! "none". Throttling is a 503 (from 16 Sep 2026 a 429) with `Retry-After`.
//!
//! The roster (reconcile) is one custom report: `POST {base}/reports/custom?format=JSON&onlyCurrent=false`
//! with `{"fields": [...]}` and `Content-Type: application/json` exactly (any other value,
//! even with a charset, makes BambooHR parse the body as XML and answer 400). The report
//! covers every employee, Active and Inactive, in one unpaged answer
//! `{"fields": [{"id", "type", "name"}, …], "employees": [{"id", <field id>: …}, …]}`; field ids
//! that are unknown or that the key may not read are left out of both, still with 200, so the
//! answer's `fields` list says what came back. `onlyCurrent=false` lets future-dated records
//! (future hires) in; the reference describes it as not restricting historical fields to
//! their current values, so a table field may show a future-dated value.
//! Sources: https://documentation.bamboohr.com/reference/get-employee,
//! https://documentation.bamboohr.com/reference/request-custom-report,
//! https://documentation.bamboohr.com/docs/list-of-field-names,
//! https://documentation.bamboohr.com/docs/api-details (503 when throttled) and
//! https://documentation.bamboohr.com/docs/planned-changes-to-the-api (429 from Sep 2026).

use std::collections::BTreeSet;
use std::sync::atomic::AtomicUsize;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::roster::{People, Roster, roster_page, unexpected};
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

    /// Every employee, Active and Inactive, from one custom report.
    pub(super) async fn roster(&self, read: Read<'_>, sent: &AtomicUsize) -> Result<Roster, EnrichError> {
        let mut url = join_url(&self.base, &["reports", "custom"]);
        url.query_pairs_mut().append_pair("format", "JSON").append_pair("onlyCurrent", "false");
        let fields: Vec<&str> = std::iter::once("id").chain(FIELDS.split(',')).collect();
        let request = read
            .http
            .http()
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            // Exactly this value: with anything else BambooHR parses the body as XML.
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .basic_auth(self.api_key.expose(), Some("x"))
            .body(json!({ "fields": fields }).to_string());
        let answer = roster_page(read, request, sent).await?;
        report(read.connection, &answer.body)
    }
}

/// Reads a custom report: `fields_returned` from its `fields` list, the people from its
/// `employees`.
pub(super) fn report(connection: &str, body: &Value) -> Result<Roster, EnrichError> {
    let Some(fields) = body.get("fields").and_then(Value::as_array) else {
        return Err(unexpected(connection, "the report has no `fields` list"));
    };
    let fields_returned: BTreeSet<&'static str> =
        fields.iter().filter_map(|field| text_at(field, "/id")).flat_map(|id| attribute_names(&id)).copied().collect();
    let Some(employees) = body.get("employees").and_then(Value::as_array) else {
        return Err(unexpected(connection, "the report has no `employees` list"));
    };
    let mut people = People::default();
    for employee in employees {
        let Some(id) = text_at(employee, "/id") else {
            return Err(unexpected(connection, "the report lists an employee without an id"));
        };
        people.push(id, attributes(employee));
    }
    Ok(Roster { people: people.into_vec(), fields_returned, requests: 0 })
}

/// The [`Attributes`] fields (serde names) a BambooHR field feeds in [`attributes`].
pub(super) fn attribute_names(field_id: &str) -> &'static [&'static str] {
    match field_id {
        "workEmail" => &["work_email"],
        "firstName" => &["given_name"],
        "lastName" => &["family_name"],
        "displayName" => &["display_name"],
        "department" => &["department"],
        "jobTitle" => &["title"],
        "location" => &["location"],
        "supervisorEmail" | "supervisorEid" => &["manager"],
        "status" => &["employment_status"],
        // The status falls back to it when `status` is not readable.
        "employmentHistoryStatus" => &["employment_status", "employment_type"],
        "hireDate" => &["start_date"],
        "terminationDate" => &["termination_date"],
        _ => &[],
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
