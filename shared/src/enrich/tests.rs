//! The source APIs over real HTTP against wiremock, answering with the documented response
//! shapes (the fixtures below say where each shape comes from).

use std::time::{Duration, Instant};

use base64::Engine;
use chrono::NaiveDate;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const BAMBOO_KEY: &str = "bamboo-key-7c1d9e0f2a3b4c5d";
const BOB_USER: &str = "SERVICE-USER-4411";
const BOB_TOKEN: &str = "bob-token-Zq81mXr2Lw";
const OKTA_TOKEN: &str = "00okta-token-Hs83nV-Qp";

/// BambooHR "Get Employee" answer for `?fields=…` (a flat object of the requested aliases,
/// `id` as a string). Shape from https://documentation.bamboohr.com/reference/get-employee;
/// field aliases from https://documentation.bamboohr.com/docs/list-of-field-names. Values
/// are made up.
const BAMBOO_EMPLOYEE: &str = r#"{
  "id": "1187",
  "firstName": "Dana",
  "lastName": "Kim",
  "preferredName": null,
  "displayName": "Dana Kim",
  "workEmail": "dana.kim@example.com",
  "department": "Finance",
  "division": "EMEA",
  "jobTitle": "Controller",
  "location": "Berlin",
  "supervisorEid": "1002",
  "supervisorEmail": "lee.park@example.com",
  "status": "Active",
  "employmentHistoryStatus": "Full-Time",
  "hireDate": "2019-04-01",
  "terminationDate": "0000-00-00"
}"#;

/// HiBob "Read company employee fields by employee ID" answer with
/// `humanReadable: REPLACE`: fields nested by category, list values as display names,
/// plus slash-notation keys. Shapes from https://apidocs.hibob.com/reference/post_people-identifier,
/// https://apidocs.hibob.com/docs/people-read-api-contract and the APPEND/REPLACE example in
/// https://apidocs.hibob.com/docs/how-to-work-with-lists-public-api. Values are made up.
const BOB_EMPLOYEE: &str = r#"{
  "id": "3332883854254932743",
  "email": "noa.levi@example.com",
  "firstName": "Noa",
  "surname": "Levi",
  "displayName": "Noa Levi",
  "work": {
    "title": "Account Executive",
    "department": "Sales",
    "site": "Tel Aviv",
    "startDate": "2021-06-13",
    "reportsTo": {
      "id": "3332883854254932001",
      "email": "avi.cohen@example.com",
      "displayName": "Avi Cohen",
      "firstName": "Avi",
      "surname": "Cohen"
    }
  },
  "internal": { "status": "Active", "lifecycleStatus": "Employed", "terminationDate": null },
  "payroll": { "employment": { "type": "Permanent" } },
  "/root/email": { "value": "noa.levi@example.com" },
  "/work/department": { "value": "Sales" }
}"#;

/// The same employee as HiBob's slash-notation keys alone (the contract page says the
/// nested category objects "may" accompany them, so they are not guaranteed).
const BOB_EMPLOYEE_SLASH_ONLY: &str = r#"{
  "/root/id": { "value": "3332883854254932743" },
  "/root/email": { "value": "noa.levi@example.com" },
  "/root/firstName": { "value": "Noa" },
  "/root/surname": { "value": "Levi" },
  "/work/department": { "value": "Sales" },
  "/internal/status": { "value": "Inactive" }
}"#;

/// Okta "Retrieve a User" answer: `status` and `profile` with Okta's base profile
/// attributes. Shape from https://developer.okta.com/docs/api/openapi/okta-management/management/tag/User/
/// (User object, base user profile). Values are made up.
const OKTA_USER: &str = r#"{
  "id": "00u1abcd2EFGH3ijk4x7",
  "status": "SUSPENDED",
  "created": "2025-01-09T15:36:04.000Z",
  "activated": "2025-01-09T15:36:05.000Z",
  "statusChanged": "2026-03-02T09:15:00.000Z",
  "lastLogin": null,
  "lastUpdated": "2026-03-02T09:15:00.000Z",
  "passwordChanged": null,
  "type": { "id": "oty1abcd2EFGH3ijk4x7" },
  "profile": {
    "login": "sam.rivera@example.com",
    "email": "sam.rivera@example.com",
    "firstName": "Sam",
    "lastName": "Rivera",
    "displayName": "Sam Rivera",
    "title": "Support Engineer",
    "department": "Support",
    "city": "Austin",
    "countryCode": "US",
    "managerId": "00u1manager0000000x7",
    "manager": "Jo Chen",
    "employeeType": "Contractor",
    "mobilePhone": null,
    "secondEmail": null
  },
  "_links": { "self": { "href": "https://acme.okta.com/api/v1/users/00u1abcd2EFGH3ijk4x7" } }
}"#;

/// Okta's error body for an unknown user (errorCode E0000007).
const OKTA_NOT_FOUND: &str = r#"{"errorCode":"E0000007","errorSummary":"Not found: Resource not found: 00u0000000000000000 (User)","errorLink":"E0000007","errorId":"oaeXyz","errorCauses":[]}"#;

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn configs(server: &MockServer) -> SourceApiConfigs {
    serde_json::from_value(json!({
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
        },
        "okta-main": { "kind": "okta", "org_url": server.uri(), "api_token": OKTA_TOKEN },
    }))
    .expect("test configuration parses")
}

fn apis(server: &MockServer) -> SourceApis {
    SourceApis::new(&configs(server), true).expect("source APIs build")
}

fn json_response(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json")
}

/// Where each source's person lives, for the table-driven error tests.
fn people() -> Vec<(PersonKey, &'static str)> {
    vec![
        (PersonKey::new("bamboohr-main", "1187"), "/api/v1/employees/1187"),
        (PersonKey::new("hibob-eu", "3332883854254932743"), "/v1/people/3332883854254932743"),
        (PersonKey::new("okta-main", "00u1abcd2EFGH3ijk4x7"), "/api/v1/users/00u1abcd2EFGH3ijk4x7"),
    ]
}

#[tokio::test]
async fn bamboohr_reads_the_employee_with_basic_auth_key_and_x() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/employees/1187"))
        .and(query_param("fields", bamboohr::FIELDS))
        .and(header("authorization", basic(BAMBOO_KEY, "x").as_str()))
        .and(header("accept", "application/json"))
        .respond_with(json_response(BAMBOO_EMPLOYEE))
        .expect(1)
        .mount(&server)
        .await;

    let attributes = apis(&server).fetch(&PersonKey::new("bamboohr-main", "1187"), None).await.unwrap();
    assert_eq!(
        attributes,
        Some(Attributes {
            start_date: NaiveDate::from_ymd_opt(2019, 4, 1),
            termination_date: None,
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
        })
    );
}

#[test]
fn bamboohr_without_account_status_still_reports_terminated() {
    let employee = json!({ "id": "7", "employmentHistoryStatus": "Terminated", "supervisorEid": "3" });
    let attributes = bamboohr::attributes(&employee);
    assert_eq!(attributes.employment_status.as_deref(), Some("Terminated"));
    assert_eq!(attributes.manager.as_deref(), Some("3"));
    assert_eq!(attributes.work_email, None);
}

#[tokio::test]
async fn hibob_posts_the_field_list_with_service_user_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/people/3332883854254932743"))
        .and(header("authorization", basic(BOB_USER, BOB_TOKEN).as_str()))
        .and(body_partial_json(json!({ "humanReadable": "REPLACE", "fields": hibob::FIELDS })))
        .respond_with(json_response(BOB_EMPLOYEE))
        .expect(1)
        .mount(&server)
        .await;

    let attributes = apis(&server).fetch(&PersonKey::new("hibob-eu", "3332883854254932743"), None).await.unwrap();
    assert_eq!(
        attributes,
        Some(Attributes {
            start_date: NaiveDate::from_ymd_opt(2021, 6, 13),
            termination_date: None,
            work_email: Some("noa.levi@example.com".into()),
            given_name: Some("Noa".into()),
            family_name: Some("Levi".into()),
            display_name: Some("Noa Levi".into()),
            department: Some("Sales".into()),
            title: Some("Account Executive".into()),
            location: Some("Tel Aviv".into()),
            manager: Some("avi.cohen@example.com".into()),
            employment_status: Some("Employed".into()),
            employment_type: Some("Permanent".into()),
        })
    );
}

#[test]
fn hibob_slash_notation_alone_is_understood() {
    let employee: serde_json::Value = serde_json::from_str(BOB_EMPLOYEE_SLASH_ONLY).unwrap();
    let attributes = hibob::attributes(&employee);
    assert_eq!(attributes.work_email.as_deref(), Some("noa.levi@example.com"));
    assert_eq!(attributes.given_name.as_deref(), Some("Noa"));
    assert_eq!(attributes.family_name.as_deref(), Some("Levi"));
    assert_eq!(attributes.department.as_deref(), Some("Sales"));
    assert_eq!(attributes.employment_status.as_deref(), Some("Inactive"));
    assert_eq!(attributes.title, None);
}

#[tokio::test]
async fn okta_reads_the_user_with_ssws_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/00u1abcd2EFGH3ijk4x7"))
        .and(header("authorization", format!("SSWS {OKTA_TOKEN}").as_str()))
        .and(header("accept", "application/json"))
        .respond_with(json_response(OKTA_USER))
        .expect(1)
        .mount(&server)
        .await;

    let attributes = apis(&server).fetch(&PersonKey::new("okta-main", "00u1abcd2EFGH3ijk4x7"), None).await.unwrap();
    assert_eq!(
        attributes,
        Some(Attributes {
            start_date: None,
            termination_date: None,
            work_email: Some("sam.rivera@example.com".into()),
            given_name: Some("Sam".into()),
            family_name: Some("Rivera".into()),
            display_name: Some("Sam Rivera".into()),
            department: Some("Support".into()),
            title: Some("Support Engineer".into()),
            location: Some("Austin".into()),
            manager: Some("00u1manager0000000x7".into()),
            employment_status: Some("SUSPENDED".into()),
            employment_type: Some("Contractor".into()),
        })
    );
}

#[tokio::test]
async fn not_found_means_the_person_does_not_exist() {
    let server = MockServer::start().await;
    for (_, at) in people() {
        Mock::given(path(at))
            .respond_with(ResponseTemplate::new(404).set_body_raw(OKTA_NOT_FOUND, "application/json"))
            .mount(&server)
            .await;
    }
    let apis = apis(&server);
    for (person, _) in people() {
        assert_eq!(apis.fetch(&person, None).await.unwrap(), None, "{person}");
    }
}

#[tokio::test]
async fn rejected_credentials_are_permanent_and_never_echo_the_secret() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any()).respond_with(ResponseTemplate::new(status)).mount(&server).await;
        let apis = apis(&server);
        for (person, _) in people() {
            let error = apis.fetch(&person, None).await.unwrap_err();
            assert!(matches!(error, EnrichError::Unauthorized { .. }), "{person}: {error:?}");
            assert!(!error.is_retryable(), "{person}: {error}");
            let rendered = format!("{error} {error:?}");
            assert!(rendered.contains(&person.source), "names the connection: {rendered}");
            for secret in [BAMBOO_KEY, BOB_TOKEN, OKTA_TOKEN] {
                assert!(!rendered.contains(secret), "{person} error leaks a credential: {rendered}");
            }
        }
    }
}

#[tokio::test]
async fn server_errors_and_throttling_are_retryable() {
    let server = MockServer::start().await;
    let [bamboo, bob, okta] = <[_; 3]>::try_from(people()).unwrap();
    Mock::given(path(bamboo.1)).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    Mock::given(path(bob.1)).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    Mock::given(path(okta.1))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let apis = apis(&server);

    let error = apis.fetch(&bamboo.0, None).await.unwrap_err();
    assert!(matches!(error, EnrichError::Unavailable { .. }) && error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("503"), "{error}");
    let error = apis.fetch(&bob.0, None).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    // A Retry-After longer than the time left is handed back at once, with the advice.
    let deadline = Instant::now() + Duration::from_secs(3);
    let error = apis.fetch(&okta.0, Some(deadline)).await.unwrap_err();
    assert!(error.is_throttled() && error.is_retryable(), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_slow_source_times_out_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json_response(OKTA_USER).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let apis = SourceApis::with_timeout(&configs(&server), Duration::from_millis(200), true).unwrap();
    let error = apis.fetch(&PersonKey::new("okta-main", "00u1"), None).await.unwrap_err();
    assert!(matches!(error, EnrichError::Unavailable { .. }) && error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
}

#[tokio::test]
async fn other_client_errors_and_garbage_are_permanent() {
    let server = MockServer::start().await;
    let [bamboo, _, okta] = <[_; 3]>::try_from(people()).unwrap();
    Mock::given(path(bamboo.1)).respond_with(ResponseTemplate::new(400)).mount(&server).await;
    Mock::given(path(okta.1))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>login</html>", "text/html"))
        .mount(&server)
        .await;
    let apis = apis(&server);
    for person in [bamboo.0, okta.0] {
        let error = apis.fetch(&person, None).await.unwrap_err();
        assert!(matches!(error, EnrichError::UnexpectedResponse { .. }), "{error:?}");
        assert!(!error.is_retryable(), "{error}");
    }
}

#[tokio::test]
async fn unknown_connection_is_a_permanent_error_naming_it() {
    let server = MockServer::start().await;
    let error = apis(&server).fetch(&PersonKey::new("workday-x", "1"), None).await.unwrap_err();
    assert!(matches!(error, EnrichError::UnknownConnection { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("workday-x"), "{error}");
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn ids_cannot_escape_their_path_segment() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(404)).mount(&server).await;
    let found = apis(&server).fetch(&PersonKey::new("okta-main", "../../groups?q=x"), None).await.unwrap();
    assert_eq!(found, None);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].url.path(), "/api/v1/users/..%2F..%2Fgroups%3Fq=x");
    assert_eq!(requests[0].url.query(), None);
}

#[test]
fn the_documented_secret_shape_parses_and_debug_redacts_credentials() {
    let secret = json!({
        "bamboohr-main": { "kind": "bamboohr", "company_domain": "acme", "api_key": BAMBOO_KEY },
        "hibob-eu": { "kind": "hibob", "service_user_id": BOB_USER, "service_user_token": BOB_TOKEN },
        "okta-main": { "kind": "okta", "org_url": "https://acme.okta.com", "api_token": OKTA_TOKEN },
    });
    let configs: SourceApiConfigs = serde_json::from_value(secret).unwrap();
    assert_eq!(configs.0.len(), 3);
    assert!(matches!(
        &configs.0["bamboohr-main"],
        SourceApiConfig::Bamboohr { company_domain, base_url: None, .. } if company_domain == "acme"
    ));
    let apis = SourceApis::new(&configs, true).unwrap();
    let rendered = format!("{configs:?} {apis:?}");
    for secret in [BAMBOO_KEY, BOB_TOKEN, OKTA_TOKEN] {
        assert!(!rendered.contains(secret), "Debug leaks a credential: {rendered}");
    }
    assert!(rendered.contains("okta-main") && rendered.contains("api_token: ***"), "{rendered}");
}

#[test]
fn a_misspelt_or_incomplete_source_is_rejected_with_the_reason() {
    let misspelt = json!({ "okta-main": { "kind": "okta", "org_url": "https://a.okta.com", "apitoken": "t" } });
    let error = serde_json::from_value::<SourceApiConfigs>(misspelt).unwrap_err().to_string();
    assert!(error.contains("apitoken") || error.contains("api_token"), "{error}");
    let unknown_kind = json!({ "x": { "kind": "workday" } });
    assert!(serde_json::from_value::<SourceApiConfigs>(unknown_kind).is_err());

    let bad_domain: SourceApiConfigs = serde_json::from_value(json!({
        "bamboohr-main": { "kind": "bamboohr", "company_domain": "acme.bamboohr.com/evil", "api_key": "k" }
    }))
    .unwrap();
    let error = SourceApis::new(&bad_domain, true).unwrap_err();
    assert!(
        matches!(error, EnrichError::Misconfigured { .. }) && error.to_string().contains("bamboohr-main"),
        "{error}"
    );
    let creds_in_url: SourceApiConfigs = serde_json::from_value(json!({
        "okta-main": { "kind": "okta", "org_url": "https://user:pw@acme.okta.com", "api_token": "t" }
    }))
    .unwrap();
    assert!(matches!(SourceApis::new(&creds_in_url, true), Err(EnrichError::Misconfigured { .. })));
}

#[tokio::test]
async fn in_memory_enricher_answers_from_its_map() {
    let known = PersonKey::new("bamboohr-main", "1");
    let attributes = Attributes { work_email: Some("a@example.com".into()), ..Default::default() };
    let enricher: InMemoryEnricher = [(known.clone(), attributes.clone())].into_iter().collect();
    assert_eq!(enricher.fetch(&known, None).await.unwrap(), Some(attributes));
    assert_eq!(enricher.fetch(&PersonKey::new("bamboohr-main", "2"), None).await.unwrap(), None);
    enricher.remove(&known);
    assert_eq!(enricher.fetch(&known, None).await.unwrap(), None);
}

// ---------------------------------------------------------------- HR dates and status

fn date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
}

#[tokio::test]
async fn bamboohr_reads_a_leavers_dates_and_account_status() {
    let server = MockServer::start().await;
    let leaver = json!({ "id": "1187", "status": "Inactive", "employmentHistoryStatus": "Full-Time",
        "hireDate": "2019-04-01", "terminationDate": "2026-03-31" });
    Mock::given(method("GET"))
        .and(path("/api/v1/employees/1187"))
        .respond_with(ResponseTemplate::new(200).set_body_json(leaver))
        .mount(&server)
        .await;
    let attributes = apis(&server).fetch(&PersonKey::new("bamboohr-main", "1187"), None).await.unwrap().unwrap();
    assert_eq!(attributes.employment_status.as_deref(), Some("Inactive"), "the account status wins");
    assert_eq!(attributes.start_date, date(2019, 4, 1));
    assert_eq!(attributes.termination_date, date(2026, 3, 31));
}

#[test]
fn bamboohr_no_date_forms_and_malformed_dates_read_as_none() {
    for (hire, termination) in [("0000-00-00", ""), ("", "0000-00-00"), ("01/04/2019", "soon")] {
        let employee = json!({ "id": "7", "hireDate": hire, "terminationDate": termination });
        let attributes = bamboohr::attributes(&employee);
        assert_eq!((attributes.start_date, attributes.termination_date), (None, None), "{hire:?} {termination:?}");
    }
    let absent = bamboohr::attributes(&json!({ "id": "7", "hireDate": null }));
    assert_eq!((absent.start_date, absent.termination_date), (None, None));
}

#[tokio::test]
async fn hibob_reads_dates_in_iso_or_human_readable_form() {
    let server = MockServer::start().await;
    let human_readable = json!({ "id": "42", "work": { "startDate": "13/06/2021" },
        "internal": { "lifecycleStatus": "Terminated", "status": "Inactive", "terminationDate": "31/03/2026" } });
    Mock::given(method("POST"))
        .and(path("/v1/people/42"))
        .and(body_partial_json(json!({ "fields": hibob::FIELDS })))
        .respond_with(ResponseTemplate::new(200).set_body_json(human_readable))
        .mount(&server)
        .await;
    let attributes = apis(&server).fetch(&PersonKey::new("hibob-eu", "42"), None).await.unwrap().unwrap();
    assert_eq!(attributes.employment_status.as_deref(), Some("Terminated"), "lifecycle status first");
    assert_eq!(attributes.start_date, date(2021, 6, 13));
    assert_eq!(attributes.termination_date, date(2026, 3, 31));
}

#[test]
fn hibob_prefers_an_iso_date_and_reads_no_date_forms_as_none() {
    let both = json!({ "work": { "startDate": "06/01/2021" }, "/work/startDate": { "value": "2021-01-06" } });
    assert_eq!(hibob::attributes(&both).start_date, date(2021, 1, 6));
    let slash_only = json!({ "/internal/terminationDate": { "value": "2026-03-31" } });
    assert_eq!(hibob::attributes(&slash_only).termination_date, date(2026, 3, 31));
    for none in [json!({}), json!({ "work": { "startDate": null } }), json!({ "work": { "startDate": "" } })] {
        assert_eq!(hibob::attributes(&none).start_date, None, "{none}");
    }
    let malformed = json!({ "work": { "startDate": "June 2021" }, "internal": { "terminationDate": "2026-31-03" } });
    let attributes = hibob::attributes(&malformed);
    assert_eq!((attributes.start_date, attributes.termination_date), (None, None));
}

#[tokio::test]
async fn okta_reports_the_status_a_deactivation_is_moving_to() {
    let server = MockServer::start().await;
    for (id, status, transitioning) in
        [("u1", "ACTIVE", "DEPROVISIONED"), ("u2", "ACTIVE", "SUSPENDED"), ("u3", "PROVISIONED", "ACTIVE")]
    {
        let user = json!({ "id": id, "status": status, "transitioningToStatus": transitioning,
            "profile": { "login": "sam.rivera@example.com" } });
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/users/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(user))
            .mount(&server)
            .await;
    }
    let apis = apis(&server);
    let status = async |id: &str| apis.fetch(&PersonKey::new("okta-main", id), None).await.unwrap().unwrap();
    assert_eq!(status("u1").await.employment_status.as_deref(), Some("DEPROVISIONED"));
    assert_eq!(status("u2").await.employment_status.as_deref(), Some("SUSPENDED"));
    // Activation in progress: the user is not active yet, so the current status stands.
    let activating = status("u3").await;
    assert_eq!(activating.employment_status.as_deref(), Some("PROVISIONED"));
    assert_eq!((activating.start_date, activating.termination_date), (None, None), "Okta has no HR dates");
}

// ---------------------------------------------------------------- rate limits

const BOB_PERSON: &str = "/v1/people/3332883854254932743";

fn bob_person() -> PersonKey {
    PersonKey::new("hibob-eu", "3332883854254932743")
}

/// `times` answers of 429 with `Retry-After: 1`, then the employee.
async fn throttling_then_ok(server: &MockServer, times: u64) {
    Mock::given(path(BOB_PERSON))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(times)
        .mount(server)
        .await;
    Mock::given(path(BOB_PERSON)).respond_with(json_response(BOB_EMPLOYEE)).mount(server).await;
}

#[tokio::test]
async fn a_throttled_read_waits_for_retry_after_within_the_deadline() {
    let server = MockServer::start().await;
    throttling_then_ok(&server, 2).await;
    let started = Instant::now();
    let found = apis(&server).fetch(&bob_person(), Some(started + Duration::from_secs(10))).await.unwrap();
    assert!(found.is_some_and(|attributes| attributes.given_name.as_deref() == Some("Noa")));
    assert!(started.elapsed() >= Duration::from_secs(2), "waited twice: {:?}", started.elapsed());
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_throttled_read_that_cannot_wait_returns_the_advice_at_once() {
    let server = MockServer::start().await;
    throttling_then_ok(&server, 2).await;
    let started = Instant::now();
    // 1.5 s leaves room for one attempt (the margin is 0.5 s) but not for a 1 s wait.
    let error = apis(&server).fetch(&bob_person(), Some(started + Duration::from_millis(1500))).await.unwrap_err();
    assert!(error.is_throttled() && error.is_retryable(), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    assert!(started.elapsed() < Duration::from_millis(800), "did not wait: {:?}", started.elapsed());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn bamboohr_503_with_retry_after_is_throttling_and_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/employees/1187"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/employees/1187")).respond_with(json_response(BAMBOO_EMPLOYEE)).mount(&server).await;
    let person = PersonKey::new("bamboohr-main", "1187");
    let found = apis(&server).fetch(&person, Some(Instant::now() + Duration::from_secs(10))).await.unwrap();
    assert!(found.is_some());

    server.reset().await;
    Mock::given(path("/api/v1/employees/1187"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "30"))
        .mount(&server)
        .await;
    let error = apis(&server).fetch(&person, Some(Instant::now() + Duration::from_secs(5))).await.unwrap_err();
    assert!(error.is_throttled(), "{error:?}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn the_configured_pace_spaces_reads_of_one_connection() {
    let server = MockServer::start().await;
    Mock::given(path(BOB_PERSON)).respond_with(json_response(BOB_EMPLOYEE)).mount(&server).await;
    let configs: SourceApiConfigs = serde_json::from_value(json!({ "hibob-eu": {
        "kind": "hibob", "service_user_id": BOB_USER, "service_user_token": BOB_TOKEN,
        "base_url": format!("{}/v1", server.uri()), "requests_per_minute": 600,
    } }))
    .unwrap();
    let apis = SourceApis::new(&configs, true).unwrap();
    let started = Instant::now();
    for _ in 0..5 {
        apis.fetch(&bob_person(), None).await.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(390) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn okta_nearly_spent_quota_holds_further_reads_until_the_reset() {
    let server = MockServer::start().await;
    let reset = chrono::Utc::now().timestamp() + 3;
    Mock::given(method("GET"))
        .respond_with(
            json_response(OKTA_USER)
                .insert_header("X-Rate-Limit-Limit", "600")
                .insert_header("X-Rate-Limit-Remaining", "12")
                .insert_header("X-Rate-Limit-Reset", reset.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let apis = apis(&server);
    let person = PersonKey::new("okta-main", "00u1abcd2EFGH3ijk4x7");
    assert!(apis.fetch(&person, None).await.unwrap().is_some());
    let started = Instant::now();
    let error = apis.fetch(&person, Some(started + Duration::from_millis(1500))).await.unwrap_err();
    assert!(error.is_throttled(), "{error:?}");
    assert!(error.retry_after().is_some_and(|wait| wait > Duration::from_secs(1)), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "the held read was not sent");
}

#[test]
fn okta_quota_headers_hold_only_when_under_a_tenth_is_left() {
    let now = chrono::Utc::now();
    let headers = |remaining: &str, reset: i64| {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-rate-limit-limit", "600".to_owned()),
            ("x-rate-limit-remaining", remaining.to_owned()),
            ("x-rate-limit-reset", reset.to_string()),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    };
    let in_ten = now.timestamp() + 10;
    assert!(quota_reset(&headers("59", in_ten), now).is_some_and(|wait| wait <= Duration::from_secs(10)));
    assert_eq!(quota_reset(&headers("60", in_ten), now), None);
    assert_eq!(quota_reset(&headers("0", now.timestamp() - 5), now), None, "a past reset holds nothing");
    assert_eq!(quota_reset(&headers("0", 30), now), None, "a delta is not an epoch time");
    assert_eq!(quota_reset(&HeaderMap::new(), now), None);
}

#[test]
fn pace_defaults_per_source_and_is_configurable() {
    let configs: SourceApiConfigs = serde_json::from_value(json!({
        "bamboohr-main": { "kind": "bamboohr", "company_domain": "acme", "api_key": "k" },
        "hibob-eu": { "kind": "hibob", "service_user_id": "u", "service_user_token": "t" },
        "hibob-slow": { "kind": "hibob", "service_user_id": "u", "service_user_token": "t", "requests_per_minute": 10 },
        "okta-main": { "kind": "okta", "org_url": "https://acme.okta.com", "api_token": "t", "requests_per_minute": 0 },
    }))
    .unwrap();
    let pace = |name: &str| configs.0[name].requests_per_minute();
    assert_eq!([pace("bamboohr-main"), pace("hibob-eu"), pace("hibob-slow"), pace("okta-main")], [0, 50, 10, 0]);
}

#[test]
fn plain_http_source_urls_are_refused_unless_allowed() {
    let configs: SourceApiConfigs = serde_json::from_value(json!({
        "okta-main": { "kind": "okta", "org_url": "http://acme.okta.com", "api_token": OKTA_TOKEN },
    }))
    .unwrap();
    let error = SourceApis::new(&configs, false).unwrap_err().to_string();
    assert!(error.contains("okta-main") && error.contains("http://"), "{error}");
    assert!(SourceApis::new(&configs, true).is_ok());
}
