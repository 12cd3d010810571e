//! Whole-roster reads over real HTTP against wiremock, answering with the documented response
//! shapes (each fixture says where its shape comes from; the values are made up), and the
//! in-memory twin.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::NaiveDate;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const BAMBOO_KEY: &str = "bamboo-key-7c1d9e0f2a3b4c5d";
const BOB_USER: &str = "SERVICE-USER-4411";
const BOB_TOKEN: &str = "bob-token-Zq81mXr2Lw";
const OKTA_TOKEN: &str = "00okta-token-Hs83nV-Qp";

const REPORT: &str = "/api/v1/reports/custom";
const SEARCH: &str = "/v1/people/search";
const USERS: &str = "/api/v1/users";
const DEPROVISIONED: &str = r#"status eq "DEPROVISIONED""#;

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The three connections against `server`, HiBob paced at `hibob_per_minute`.
fn apis_paced(server: &MockServer, hibob_per_minute: u32) -> SourceApis {
    let configs: SourceApiConfigs = serde_json::from_value(json!({
        "bamboohr-main": {
            "kind": "bamboohr",
            "company_domain": "acme",
            "api_key": BAMBOO_KEY,
            "base_url": format!("{}/api/v1", server.uri()),
        },
        "hibob-eu": {
            "kind": "hibob",
            "service_user_id": BOB_USER,
            "service_user_token": BOB_TOKEN,
            "base_url": format!("{}/v1", server.uri()),
            "requests_per_minute": hibob_per_minute,
        },
        "okta-main": { "kind": "okta", "org_url": server.uri(), "api_token": OKTA_TOKEN },
    }))
    .expect("test configuration parses");
    SourceApis::new(&configs, true).expect("source APIs build")
}

/// Unpaced, so tests do not wait on HiBob's 50 a minute.
fn apis(server: &MockServer) -> SourceApis {
    apis_paced(server, 0)
}

fn date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
}

fn names(fields: &[&'static str]) -> BTreeSet<&'static str> {
    fields.iter().copied().collect()
}

fn all_fields() -> BTreeSet<&'static str> {
    ATTRIBUTE_FIELDS.into_iter().collect()
}

fn within(seconds: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(seconds))
}

// ---------------------------------------------------------------- BambooHR

/// BambooHR "Request Custom Report" JSON answer: the report's `fields` (id, type, name) and
/// one flat object per employee keyed by the requested field ids, `id` as a string. Shape from
/// https://documentation.bamboohr.com/reference/request-custom-report; field aliases from
/// https://documentation.bamboohr.com/docs/list-of-field-names.
fn bamboo_report() -> Value {
    json!({
        "title": "Report",
        "fields": [
            { "id": "firstName", "type": "text", "name": "First Name" },
            { "id": "lastName", "type": "text", "name": "Last Name" },
            { "id": "preferredName", "type": "text", "name": "Preferred Name" },
            { "id": "displayName", "type": "text", "name": "Display Name" },
            { "id": "workEmail", "type": "email", "name": "Work Email" },
            { "id": "department", "type": "list", "name": "Department" },
            { "id": "division", "type": "list", "name": "Division" },
            { "id": "jobTitle", "type": "list", "name": "Job Title" },
            { "id": "location", "type": "list", "name": "Location" },
            { "id": "supervisorEid", "type": "text", "name": "Supervisor EID" },
            { "id": "supervisorEmail", "type": "email", "name": "Supervisor Email" },
            { "id": "status", "type": "status", "name": "Status" },
            { "id": "employmentHistoryStatus", "type": "list", "name": "Employment Status" },
            { "id": "hireDate", "type": "date", "name": "Hire Date" },
            { "id": "terminationDate", "type": "date", "name": "Termination Date" }
        ],
        "employees": [
            {
                "id": "1187", "firstName": "Dana", "lastName": "Kim", "preferredName": null,
                "displayName": "Dana Kim", "workEmail": "dana.kim@example.com", "department": "Finance",
                "division": "EMEA", "jobTitle": "Controller", "location": "Berlin", "supervisorEid": "1002",
                "supervisorEmail": "lee.park@example.com", "status": "Active",
                "employmentHistoryStatus": "Full-Time", "hireDate": "2019-04-01", "terminationDate": "0000-00-00"
            },
            {
                "id": "1203", "firstName": "Ola", "lastName": "Berg", "preferredName": null,
                "displayName": "Ola Berg", "workEmail": "ola.berg@example.com", "department": "Sales",
                "division": "EMEA", "jobTitle": "Account Manager", "location": "Oslo", "supervisorEid": "1187",
                "supervisorEmail": "dana.kim@example.com", "status": "Inactive",
                "employmentHistoryStatus": "Terminated", "hireDate": "2021-09-01", "terminationDate": "2026-03-31"
            }
        ]
    })
}

fn bamboo_people() -> Vec<(String, Attributes)> {
    vec![
        (
            "1187".into(),
            Attributes {
                work_email: Some("dana.kim@example.com".into()),
                given_name: Some("Dana".into()),
                family_name: Some("Kim".into()),
                display_name: Some("Dana Kim".into()),
                department: Some("Finance".into()),
                title: Some("Controller".into()),
                location: Some("Berlin".into()),
                manager: Some("lee.park@example.com".into()),
                employment_status: Some("Active".into()),
                employment_type: Some("Full-Time".into()),
                start_date: date(2019, 4, 1),
                termination_date: None,
            },
        ),
        (
            "1203".into(),
            Attributes {
                work_email: Some("ola.berg@example.com".into()),
                given_name: Some("Ola".into()),
                family_name: Some("Berg".into()),
                display_name: Some("Ola Berg".into()),
                department: Some("Sales".into()),
                title: Some("Account Manager".into()),
                location: Some("Oslo".into()),
                manager: Some("dana.kim@example.com".into()),
                employment_status: Some("Inactive".into()),
                employment_type: Some("Terminated".into()),
                start_date: date(2021, 9, 1),
                termination_date: date(2026, 3, 31),
            },
        ),
    ]
}

#[tokio::test]
async fn bamboohr_roster_posts_one_custom_report_of_everyone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(REPORT))
        .and(query_param("format", "JSON"))
        .and(query_param("onlyCurrent", "false"))
        .and(header("authorization", basic(BAMBOO_KEY, "x").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(bamboo_report()))
        .expect(1)
        .mount(&server)
        .await;

    let roster = apis(&server).roster("bamboohr-main", within(10)).await.unwrap();
    assert_eq!(roster.people, bamboo_people(), "both employees, the leaver with the termination date");
    assert_eq!(roster.fields_returned, all_fields());
    assert_eq!(roster.requests, 1);

    let requests = server.received_requests().await.unwrap();
    let content_type = requests[0].headers.get("content-type").map(|value| value.as_bytes().to_vec());
    assert_eq!(content_type.as_deref(), Some(&b"application/json"[..]), "exactly, or BambooHR parses XML");
    let body: Value = requests[0].body_json().unwrap();
    assert_eq!(body.as_object().map(|body| body.len()), Some(1), "only `fields`: {body}");
    let requested: BTreeSet<&str> = body["fields"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let expected: BTreeSet<&str> = std::iter::once("id").chain(bamboohr::FIELDS.split(',')).collect();
    assert_eq!(requested, expected);
}

#[tokio::test]
async fn bamboohr_roster_fields_come_from_the_reports_field_list() {
    let server = MockServer::start().await;
    // The key may not read job titles: BambooHR drops the field from the list and the rows,
    // still answering 200.
    let mut report = bamboo_report();
    report["fields"].as_array_mut().unwrap().retain(|field| field["id"] != "jobTitle");
    for employee in report["employees"].as_array_mut().unwrap() {
        employee.as_object_mut().unwrap().remove("jobTitle");
    }
    // A declared field empty for everyone was still returned.
    for employee in report["employees"].as_array_mut().unwrap() {
        employee["terminationDate"] = json!("0000-00-00");
    }
    Mock::given(path(REPORT)).respond_with(ResponseTemplate::new(200).set_body_json(report)).mount(&server).await;

    let roster = apis(&server).roster("bamboohr-main", None).await.unwrap();
    assert!(!roster.fields_returned.contains("title"), "{:?}", roster.fields_returned);
    assert!(roster.fields_returned.contains("termination_date"), "declared, so returned");
    assert_eq!(roster.fields_returned.len(), ATTRIBUTE_FIELDS.len() - 1);
    assert!(roster.people.iter().all(|(_, attributes)| attributes.title.is_none()));
}

#[tokio::test]
async fn bamboohr_roster_waits_out_429_and_503_with_retry_after() {
    for status in [429, 503] {
        let server = MockServer::start().await;
        Mock::given(path(REPORT))
            .respond_with(ResponseTemplate::new(status).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(path(REPORT))
            .respond_with(ResponseTemplate::new(200).set_body_json(bamboo_report()))
            .mount(&server)
            .await;

        let started = Instant::now();
        let roster = apis(&server).roster("bamboohr-main", within(10)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1), "{status}: waited {:?}", started.elapsed());
        assert_eq!(roster.people.len(), 2, "{status}");
        assert_eq!(roster.requests, 2, "{status}: the throttled request counts");
    }
}

#[tokio::test]
async fn bamboohr_roster_503_without_retry_after_is_an_outage() {
    let server = MockServer::start().await;
    Mock::given(path(REPORT)).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let error = apis(&server).roster("bamboohr-main", within(10)).await.unwrap_err();
    assert!(matches!(error, EnrichError::Unavailable { .. }) && !error.is_throttled(), "{error:?}");
    assert!(error.to_string().contains("503"), "{error}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "not retried");
}

#[test]
fn bamboohr_field_names_are_the_fields_attributes_reads() {
    for id in bamboohr::FIELDS.split(',') {
        let value = if id.ends_with("Date") { "2024-05-06" } else { "value" };
        let employee = Value::Object([(id.to_owned(), json!(value))].into_iter().collect());
        let read: BTreeSet<&str> = roster::present_fields(&bamboohr::attributes(&employee)).collect();
        let named: BTreeSet<&str> = bamboohr::attribute_names(id).iter().copied().collect();
        assert_eq!(read, named, "{id}");
    }
}

// ---------------------------------------------------------------- HiBob

/// HiBob "Search for employees" answer with `humanReadable: REPLACE`: `employees`, each in the
/// single-person shape (nested categories and/or slash-notation keys). Shape from
/// https://apidocs.hibob.com/reference/post_people-search and
/// https://apidocs.hibob.com/docs/people-read-api-contract. Nobody carries
/// `payroll.employment.type` (the service user may not view payroll).
fn bob_search() -> Value {
    json!({ "employees": [
        {
            "id": "3332883854254932743", "email": "noa.levi@example.com", "firstName": "Noa",
            "surname": "Levi", "displayName": "Noa Levi",
            "work": { "title": "Account Executive", "department": "Sales", "site": "Tel Aviv",
                "startDate": "2021-06-13", "reportsTo": { "id": "3332883854254932001", "email": "avi.cohen@example.com" } },
            "internal": { "status": "Active", "lifecycleStatus": "Employed", "terminationDate": null }
        },
        {
            "id": "3332883854254932811", "email": "tal.mor@example.com", "firstName": "Tal",
            "surname": "Mor", "displayName": "Tal Mor",
            "work": { "title": "Support Lead", "department": "Support", "site": "Haifa", "startDate": "2018-02-01" },
            "internal": { "status": "Inactive", "lifecycleStatus": "Terminated", "terminationDate": "2026-02-28" }
        },
        {
            "/root/id": { "value": "3332883854254933100" },
            "/root/email": { "value": "eli.bar@example.com" },
            "/root/firstName": { "value": "Eli" },
            "/root/surname": { "value": "Bar" },
            "/work/startDate": { "value": "2030-01-06" },
            "/internal/status": { "value": "Inactive" },
            "/internal/lifecycleStatus": { "value": "Hired" }
        }
    ] })
}

#[tokio::test]
async fn hibob_roster_searches_everyone_leavers_and_future_hires_included() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SEARCH))
        .and(header("authorization", basic(BOB_USER, BOB_TOKEN).as_str()))
        // Exactly this body: `showInactive`, and no `filters` key.
        .and(body_json(json!({ "fields": hibob::FIELDS, "showInactive": true, "humanReadable": "REPLACE" })))
        .respond_with(ResponseTemplate::new(200).set_body_json(bob_search()))
        .expect(1)
        .mount(&server)
        .await;

    let roster = apis(&server).roster("hibob-eu", within(10)).await.unwrap();
    let ids: Vec<&str> = roster.people.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["3332883854254932743", "3332883854254932811", "3332883854254933100"]);
    let [employed, leaver, future] = [0, 1, 2].map(|at| &roster.people[at].1);
    assert_eq!(employed.employment_status.as_deref(), Some("Employed"));
    assert_eq!(employed.manager.as_deref(), Some("avi.cohen@example.com"));
    assert_eq!(leaver.employment_status.as_deref(), Some("Terminated"));
    assert_eq!(leaver.termination_date, date(2026, 2, 28));
    assert_eq!(future.employment_status.as_deref(), Some("Hired"));
    assert_eq!(future.start_date, date(2030, 1, 6));
    assert_eq!(future.work_email.as_deref(), Some("eli.bar@example.com"));

    let mut expected = all_fields();
    expected.remove("employment_type");
    assert_eq!(roster.fields_returned, expected, "a field nobody carries was not returned");
    assert_eq!(roster.requests, 1);
}

#[tokio::test]
async fn hibob_roster_reads_keep_to_the_connections_pace() {
    let server = MockServer::start().await;
    Mock::given(path(SEARCH)).respond_with(ResponseTemplate::new(200).set_body_json(bob_search())).mount(&server).await;

    // 600 a minute: one start every 100 ms.
    let apis = apis_paced(&server, 600);
    let started = Instant::now();
    for _ in 0..4 {
        apis.roster("hibob-eu", None).await.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(5), "{elapsed:?}");

    // 6 a minute: the next slot is 10 s away, past the deadline, so the read is refused at
    // once and nothing is sent.
    server.reset().await;
    Mock::given(path(SEARCH)).respond_with(ResponseTemplate::new(200).set_body_json(bob_search())).mount(&server).await;
    let apis = apis_paced(&server, 6);
    apis.roster("hibob-eu", None).await.unwrap();
    let started = Instant::now();
    let error = apis.roster("hibob-eu", within(2)).await.unwrap_err();
    assert!(error.is_throttled(), "{error:?}");
    assert!(error.retry_after().is_some_and(|wait| wait > Duration::from_secs(8)), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------- Okta

/// An Okta User as "List all Users" returns it (the User object: `id`, `status`, `profile`).
/// Shape from https://developer.okta.com/docs/api/openapi/okta-management/management/tag/User/.
fn okta_user(id: &str, status: &str, first_name: &str) -> Value {
    let login = format!("{}@example.com", first_name.to_lowercase());
    json!({
        "id": id,
        "status": status,
        "created": "2025-01-09T15:36:04.000Z",
        "profile": { "login": login, "email": login, "firstName": first_name, "lastName": "Example",
            "department": "Engineering" },
        "_links": { "self": { "href": format!("https://acme.okta.com/api/v1/users/{id}") } }
    })
}

fn users_page(users: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(users)
}

/// `GET /api/v1/users` answers: the plain listing in three pages (the first two carrying
/// `rel="next"` links, as separate `Link` headers and as one list), then the deprovisioned
/// users in one page.
async fn mount_okta_listing(server: &MockServer) {
    let uri = server.uri();
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("limit", "200"))
        .and(query_param_is_missing("after"))
        .and(query_param_is_missing("search"))
        .respond_with(
            users_page(json!([okta_user("00u1", "ACTIVE", "Ann"), okta_user("00u2", "STAGED", "Ben")]))
                .append_header("link", format!("<{uri}/api/v1/users?limit=200>; rel=\"self\"").as_str())
                .append_header("link", format!("<{uri}/api/v1/users?after=00u2&limit=200>; rel=\"next\"").as_str()),
        )
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("after", "00u2"))
        .respond_with(
            users_page(json!([okta_user("00u3", "SUSPENDED", "Cy"), okta_user("00u4", "PROVISIONED", "Di")]))
                .insert_header(
                    "link",
                    format!(
                        "<{uri}/api/v1/users?after=00u2&limit=200>; rel=\"self\", \
                         <{uri}/api/v1/users?after=00u4&limit=200>; rel=\"next\""
                    )
                    .as_str(),
                ),
        )
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("after", "00u4"))
        .respond_with(
            users_page(json!([okta_user("00u5", "LOCKED_OUT", "Eve")]))
                .insert_header("link", format!("<{uri}/api/v1/users?after=00u4&limit=200>; rel=\"self\"").as_str()),
        )
        .expect(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(USERS))
        .and(query_param("limit", "200"))
        .and(query_param("search", DEPROVISIONED))
        .respond_with(users_page(json!([okta_user("00u9", "DEPROVISIONED", "Flo")])))
        .expect(1)
        .mount(server)
        .await;
}

fn statuses(roster: &Roster) -> Vec<(&str, &str)> {
    roster.people.iter().map(|(id, a)| (id.as_str(), a.employment_status.as_deref().unwrap_or("-"))).collect()
}

#[tokio::test]
async fn okta_roster_follows_next_links_then_lists_the_deprovisioned() {
    let server = MockServer::start().await;
    mount_okta_listing(&server).await;
    Mock::given(method("GET"))
        .and(header("authorization", format!("SSWS {OKTA_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .named("anything the listing does not answer")
        .mount(&server)
        .await;

    let roster = apis(&server).roster("okta-main", within(10)).await.unwrap();
    assert_eq!(
        statuses(&roster),
        [
            ("00u1", "ACTIVE"),
            ("00u2", "STAGED"),
            ("00u3", "SUSPENDED"),
            ("00u4", "PROVISIONED"),
            ("00u5", "LOCKED_OUT"),
            ("00u9", "DEPROVISIONED")
        ]
    );
    assert_eq!(roster.people[0].1.work_email.as_deref(), Some("ann@example.com"));
    assert_eq!(roster.requests, 4);
    assert_eq!(
        roster.fields_returned,
        names(&["work_email", "given_name", "family_name", "department", "employment_status"])
    );
    for request in server.received_requests().await.unwrap() {
        let authorization = request.headers.get("authorization").and_then(|value| value.to_str().ok());
        assert_eq!(authorization, Some(format!("SSWS {OKTA_TOKEN}").as_str()), "{}", request.url);
    }
}

#[tokio::test]
async fn okta_roster_refuses_a_next_link_to_another_origin() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(users_page(json!([]))).mount(&elsewhere).await;
    Mock::given(path(USERS))
        .respond_with(
            users_page(json!([okta_user("00u1", "ACTIVE", "Ann")]))
                .insert_header("link", format!("<{}/api/v1/users?after=00u1>; rel=\"next\"", elsewhere.uri()).as_str()),
        )
        .mount(&server)
        .await;

    let error = apis(&server).roster("okta-main", within(10)).await.unwrap_err();
    assert!(matches!(error, EnrichError::UnexpectedResponse { .. }), "{error:?}");
    assert!(!error.is_retryable());
    let rendered = error.to_string();
    assert!(rendered.contains("refused") && !rendered.contains(OKTA_TOKEN), "{rendered}");
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "the token never left the org");
}

#[tokio::test]
async fn okta_roster_waits_for_the_rate_limit_reset_then_continues() {
    let server = MockServer::start().await;
    let uri = server.uri();
    Mock::given(path(USERS))
        .and(query_param_is_missing("after"))
        .and(query_param_is_missing("search"))
        .respond_with(
            users_page(json!([okta_user("00u1", "ACTIVE", "Ann")]))
                .insert_header("link", format!("<{uri}/api/v1/users?after=00u1&limit=200>; rel=\"next\"").as_str()),
        )
        .mount(&server)
        .await;
    // Okta's 429: no Retry-After, the quota spent until X-Rate-Limit-Reset (epoch seconds).
    let reset = chrono::Utc::now().timestamp() + 1;
    Mock::given(path(USERS))
        .and(query_param("after", "00u1"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-Rate-Limit-Limit", "600")
                .insert_header("X-Rate-Limit-Remaining", "0")
                .insert_header("X-Rate-Limit-Reset", reset.to_string().as_str()),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path(USERS))
        .and(query_param("after", "00u1"))
        .respond_with(users_page(json!([okta_user("00u2", "ACTIVE", "Ben")])))
        .mount(&server)
        .await;
    Mock::given(path(USERS))
        .and(query_param("search", DEPROVISIONED))
        .respond_with(users_page(json!([okta_user("00u9", "DEPROVISIONED", "Flo")])))
        .mount(&server)
        .await;

    let roster = apis(&server).roster("okta-main", within(10)).await.unwrap();
    assert!(chrono::Utc::now().timestamp() >= reset, "the retry waited for the reset");
    assert_eq!(statuses(&roster), [("00u1", "ACTIVE"), ("00u2", "ACTIVE"), ("00u9", "DEPROVISIONED")]);
    assert_eq!(roster.requests, 4, "three pages and the throttled one");
}

#[tokio::test]
async fn okta_roster_that_cannot_finish_before_the_deadline_is_an_error_not_a_part() {
    let server = MockServer::start().await;
    let uri = server.uri();
    Mock::given(path(USERS))
        .and(query_param_is_missing("after"))
        .respond_with(
            users_page(json!([okta_user("00u1", "ACTIVE", "Ann")]))
                .insert_header("link", format!("<{uri}/api/v1/users?after=00u1&limit=200>; rel=\"next\"").as_str()),
        )
        .mount(&server)
        .await;
    let reset = chrono::Utc::now().timestamp() + 30;
    Mock::given(path(USERS))
        .and(query_param("after", "00u1"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-Rate-Limit-Limit", "600")
                .insert_header("X-Rate-Limit-Remaining", "0")
                .insert_header("X-Rate-Limit-Reset", reset.to_string().as_str()),
        )
        .mount(&server)
        .await;

    let started = Instant::now();
    let error = apis(&server).roster("okta-main", within(3)).await.unwrap_err();
    assert!(error.is_throttled(), "{error:?}");
    assert!(error.retry_after().is_some_and(|wait| wait > Duration::from_secs(20)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn okta_next_link_is_found_among_link_headers() {
    let headers = |values: &[&str]| {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("link", value.parse().unwrap());
        }
        headers
    };
    let self_and_next = headers(&[
        r#"<https://a.okta.com/api/v1/users?limit=200>; rel="self""#,
        r#"<https://a.okta.com/api/v1/users?after=x,y&limit=200>; rel="next""#,
    ]);
    assert_eq!(okta::next_link(&self_and_next).as_deref(), Some("https://a.okta.com/api/v1/users?after=x,y&limit=200"));
    let one_list = headers(&[r#"<https://a/1>; rel="self", <https://a/2>; type="x"; rel=next"#]);
    assert_eq!(okta::next_link(&one_list).as_deref(), Some("https://a/2"));
    let several_rels = headers(&[r#"<https://a/3>; rel="next last""#]);
    assert_eq!(okta::next_link(&several_rels).as_deref(), Some("https://a/3"));
    assert_eq!(okta::next_link(&headers(&[r#"<https://a/1>; rel="self""#])), None);
    assert_eq!(okta::next_link(&HeaderMap::new()), None);
}

// ---------------------------------------------------------------- both implementations

#[tokio::test]
async fn source_apis_list_their_configured_connections_and_refuse_others() {
    let server = MockServer::start().await;
    let apis = apis(&server);
    assert_eq!(apis.roster_connections(), ["bamboohr-main", "hibob-eu", "okta-main"]);
    let error = apis.roster("workday-x", None).await.unwrap_err();
    assert!(matches!(error, EnrichError::UnknownConnection { .. }), "{error:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[test]
fn attribute_field_names_are_the_serde_names() {
    let full = Attributes {
        work_email: Some("a".into()),
        given_name: Some("a".into()),
        family_name: Some("a".into()),
        display_name: Some("a".into()),
        department: Some("a".into()),
        title: Some("a".into()),
        location: Some("a".into()),
        manager: Some("a".into()),
        employment_status: Some("a".into()),
        employment_type: Some("a".into()),
        start_date: date(2024, 1, 1),
        termination_date: date(2024, 1, 2),
    };
    let serialized = serde_json::to_value(&full).unwrap();
    let serde_names: BTreeSet<&str> = serialized.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(serde_names, all_fields());
    assert_eq!(roster::present_fields(&full).collect::<Vec<_>>(), ATTRIBUTE_FIELDS);
    assert_eq!(roster::present_fields(&Attributes::default()).count(), 0);
}

fn twin() -> InMemoryEnricher {
    let person = |id: &str, email: &str, status: &str| {
        (
            PersonKey::new("hibob-eu", id),
            Attributes {
                work_email: Some(email.into()),
                given_name: Some(id.to_uppercase()),
                employment_status: Some(status.into()),
                title: Some("Engineer".into()),
                ..Default::default()
            },
        )
    };
    let twin: InMemoryEnricher = [
        person("b", "b@example.com", "Terminated"),
        person("a", "a@example.com", "Employed"),
        (PersonKey::new("okta-main", "00u1"), Attributes::default()),
    ]
    .into_iter()
    .collect();
    twin.serve("bamboohr-empty");
    twin
}

#[tokio::test]
async fn in_memory_roster_lists_the_people_of_a_served_connection() {
    let twin = twin();
    assert_eq!(twin.roster_connections(), ["bamboohr-empty", "hibob-eu", "okta-main"]);
    let roster = twin.roster("hibob-eu", None).await.unwrap();
    assert_eq!(statuses(&roster), [("a", "Employed"), ("b", "Terminated")]);
    assert_eq!(roster.fields_returned, all_fields(), "all fields by default");
    assert_eq!(roster.requests, 1);
    let empty = twin.roster("bamboohr-empty", None).await.unwrap();
    assert!(empty.people.is_empty());
}

#[tokio::test]
async fn in_memory_roster_can_fail_and_can_declare_its_fields() {
    let twin = twin();
    twin.fail_roster("hibob-eu");
    let error = twin.roster("hibob-eu", None).await.unwrap_err();
    assert!(matches!(error, EnrichError::Unavailable { .. }) && error.to_string().contains("hibob-eu"), "{error}");
    assert!(twin.roster("okta-main", None).await.is_ok(), "other connections still read");
    twin.heal_roster("hibob-eu");

    twin.roster_fields("hibob-eu", ["work_email", "employment_status"]);
    let roster = twin.roster("hibob-eu", None).await.unwrap();
    assert_eq!(roster.fields_returned, names(&["work_email", "employment_status"]));
    let (_, first) = &roster.people[0];
    assert_eq!(first.work_email.as_deref(), Some("a@example.com"));
    assert_eq!((first.title.as_deref(), first.given_name.as_deref()), (None, None), "undeclared fields are dropped");
    // Single-person reads are untouched.
    let fetched = twin.fetch(&PersonKey::new("hibob-eu", "a"), None).await.unwrap().unwrap();
    assert_eq!(fetched.title.as_deref(), Some("Engineer"));
}

#[test]
#[should_panic(expected = "not an Attributes field")]
fn in_memory_roster_fields_refuse_a_misspelt_name() {
    twin().roster_fields("hibob-eu", ["job_title"]);
}

#[tokio::test]
async fn in_memory_roster_of_an_unknown_connection_is_refused() {
    let error = twin().roster("workday-x", None).await.unwrap_err();
    assert!(
        matches!(error, EnrichError::UnknownConnection { ref connection } if connection == "workday-x"),
        "{error:?}"
    );
}
