//! HiBob: `POST {base}/people/{id}` ("Read company employee fields by employee ID") with
//! HTTP Basic auth (service user id : service user token) and a body naming the fields and
//! `"humanReadable": "REPLACE"`, so list fields (department, site, title, lifecycle status,
//! employment type) come back as their display names rather than list-item ids. The answer
//! nests fields by category (`work.department` is `{"work": {"department": …}}`) and may
//! also carry slash-notation keys (`"/work/department": {"value": …}`); both are read.
//! Fields the service user may not view are silently omitted (200, no warning). Dates
//! (`work.startDate`, `internal.terminationDate`) are `YYYY-MM-DD`; rendered for humans they
//! follow the calling user's date settings (the documented example is `dd/MM/yyyy`). People
//! reads are rate limited (50 a minute is the documented figure), answering 429 beyond it.
//!
//! The roster (reconcile) is `POST {base}/people/search` with the same `fields` and
//! `humanReadable`, `"showInactive": true` (the default lists Active employees only) and no
//! `filters` key (an empty one can be refused). The answer `{"employees": [...]}` holds every
//! employee the service user may see, in the single-person shape; there is no paging. Fields
//! without permission are left out of each employee, so what came back is what at least one
//! employee carries. The search is one of the people reads the per-minute limit counts.
//! Sources: https://apidocs.hibob.com/reference/post_people-identifier,
//! https://apidocs.hibob.com/reference/post_people-search,
//! https://apidocs.hibob.com/docs/people-read-api-contract,
//! https://apidocs.hibob.com/docs/how-to-work-with-lists-public-api,
//! https://apidocs.hibob.com/docs/fields-metadata (field types, date values),
//! https://apidocs.hibob.com/reference/rate-limiting.

use std::sync::atomic::AtomicUsize;

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::roster::{People, Roster, roster_page, unexpected};
use super::{EnrichError, Read, join_url, parse_base_url, parse_date, send_json};
use crate::event::Attributes;
use crate::secrets::SecretString;

pub(super) const DEFAULT_BASE_URL: &str = "https://api.hibob.com/v1";

/// Field ids from Bob's fields metadata.
pub(super) const FIELDS: &[&str] = &[
    "root.id",
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
    "work.title",
    "work.department",
    "work.site",
    "work.reportsTo",
    "internal.status",
    "internal.lifecycleStatus",
    "payroll.employment.type",
    "work.startDate",
    "internal.terminationDate",
];

pub(super) struct HiBob {
    base: url::Url,
    service_user_id: String,
    service_user_token: SecretString,
}

impl HiBob {
    pub(super) fn new(
        connection: &str,
        service_user_id: &str,
        service_user_token: &SecretString,
        base_url: Option<&str>,
    ) -> Result<Self, EnrichError> {
        if service_user_id.trim().is_empty() {
            return Err(EnrichError::Misconfigured {
                connection: connection.to_owned(),
                reason: "service_user_id is empty".into(),
            });
        }
        let base = parse_base_url(connection, base_url.unwrap_or(DEFAULT_BASE_URL))?;
        Ok(HiBob {
            base,
            service_user_id: service_user_id.trim().to_owned(),
            service_user_token: service_user_token.clone(),
        })
    }

    pub(super) async fn fetch(&self, read: Read<'_>, employee_id: &str) -> Result<Option<Attributes>, EnrichError> {
        let url = join_url(&self.base, &["people", employee_id]);
        let request = read
            .http
            .http()
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .basic_auth(&self.service_user_id, Some(self.service_user_token.expose()))
            .json(&json!({ "fields": FIELDS, "humanReadable": "REPLACE" }));
        Ok(send_json(read, request).await?.map(|body| attributes(&body)))
    }

    /// Every employee, leavers and future hires included, from one search.
    pub(super) async fn roster(&self, read: Read<'_>, sent: &AtomicUsize) -> Result<Roster, EnrichError> {
        let url = join_url(&self.base, &["people", "search"]);
        let request = read
            .http
            .http()
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .basic_auth(&self.service_user_id, Some(self.service_user_token.expose()))
            .json(&json!({ "fields": FIELDS, "showInactive": true, "humanReadable": "REPLACE" }));
        let answer = roster_page(read, request, sent).await?;
        search_answer(read.connection, &answer.body)
    }
}

/// Reads a search answer; `fields_returned` is what at least one employee carries.
pub(super) fn search_answer(connection: &str, body: &Value) -> Result<Roster, EnrichError> {
    let Some(employees) = body.get("employees").and_then(Value::as_array) else {
        return Err(unexpected(connection, "the search answer has no `employees` list"));
    };
    let mut people = People::default();
    for employee in employees {
        let Some(id) = root_field(employee, "id") else {
            return Err(unexpected(connection, "the search answer lists an employee without an id"));
        };
        people.push(id, attributes(employee));
    }
    Ok(Roster::from_present_fields(people))
}

/// A field's values by its category path: the nested form first, then the slash-notation
/// form.
fn field_values(employee: &Value, path: &[&str]) -> Vec<String> {
    let nested = format!("/{}", path.join("/"));
    let slashed = format!("/{}/value", format!("/{}", path.join("/")).replace('/', "~1"));
    [nested, slashed]
        .iter()
        .filter_map(|pointer| match employee.pointer(pointer)? {
            Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

fn field(employee: &Value, path: &[&str]) -> Option<String> {
    field_values(employee, path).into_iter().next()
}

/// An ISO date from either form wins over a human-readable one: `01/02/2026` is only
/// unambiguous when the service user's date setting is known to be day first.
fn date_field(employee: &Value, path: &[&str], name: &'static str) -> Option<NaiveDate> {
    let values = field_values(employee, path);
    let iso = values.iter().find_map(|value| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok());
    iso.or_else(|| parse_date(values.first()?, &["%d/%m/%Y"], name))
}

fn root_field(employee: &Value, name: &str) -> Option<String> {
    // Root fields are top-level in the nested form and `/root/<name>` in slash notation.
    field(employee, &[name]).or_else(|| field(employee, &["root", name]))
}

fn manager(employee: &Value) -> Option<String> {
    // `reportsTo` is an object (`id`, `email`, `displayName`, …) in the default form; a
    // human-readable rendering may flatten it to a name.
    match employee.pointer("/work/reportsTo") {
        Some(Value::Object(_)) => {
            field(employee, &["work", "reportsTo", "email"]).or_else(|| field(employee, &["work", "reportsTo", "id"]))
        }
        _ => field(employee, &["work", "reportsTo"]),
    }
}

pub(super) fn attributes(employee: &Value) -> Attributes {
    Attributes {
        work_email: root_field(employee, "email"),
        given_name: root_field(employee, "firstName"),
        family_name: root_field(employee, "surname"),
        display_name: root_field(employee, "displayName"),
        department: field(employee, &["work", "department"]),
        title: field(employee, &["work", "title"]),
        location: field(employee, &["work", "site"]),
        manager: manager(employee),
        // The lifecycle status (Hired, Employed, Terminated, …) says more than the binary
        // internal status (Active/Inactive); fall back to the latter when not visible.
        employment_status: field(employee, &["internal", "lifecycleStatus"])
            .or_else(|| field(employee, &["internal", "status"])),
        employment_type: field(employee, &["payroll", "employment", "type"]),
        start_date: date_field(employee, &["work", "startDate"], "work.startDate"),
        termination_date: date_field(employee, &["internal", "terminationDate"], "internal.terminationDate"),
    }
}
