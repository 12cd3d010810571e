//! The retry loop on tokio's paused clock: waits are measured in virtual time, so the
//! tests are exact and take no real time.

use super::*;
use std::sync::Mutex;

#[derive(Debug, PartialEq, Eq)]
enum TestError {
    GaveUp(GaveUp),
    Fatal(&'static str),
}

impl From<GaveUp> for TestError {
    fn from(gave_up: GaveUp) -> Self {
        TestError::GaveUp(gave_up)
    }
}

fn policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
    }
}

/// Plays `script` (one verdict per attempt) and records each attempt with the virtual time
/// it started at, relative to the start.
async fn play(
    policy: &RetryPolicy,
    deadline_in: Option<Duration>,
    script: Vec<Verdict<&'static str, TestError>>,
) -> (Result<&'static str, TestError>, Vec<(Attempt, Duration)>) {
    let start = Instant::now();
    let deadline = deadline_in.map(|d| (start + d).into_std());
    let script = Mutex::new(script.into_iter());
    let seen = Mutex::new(Vec::new());
    let result = retry(policy, "test", deadline, |attempt| {
        seen.lock().unwrap().push((attempt, start.elapsed()));
        let next = script.lock().unwrap().next().expect("script long enough");
        async move { next }
    })
    .await;
    (result, seen.into_inner().unwrap())
}

fn transient(problem: &str) -> Verdict<&'static str, TestError> {
    Verdict::Retry { problem: problem.to_owned(), retry_after: None }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_until_done() {
    let (result, attempts) =
        play(&policy(5), None, vec![transient("503"), transient("503"), Verdict::Done("ok")]).await;
    assert_eq!(result, Ok("ok"));
    assert_eq!(attempts.iter().map(|(a, _)| a.retries).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_final_answer_is_not_retried() {
    let (result, attempts) = play(&policy(5), None, vec![Verdict::Fail(TestError::Fatal("400"))]).await;
    assert_eq!(result, Err(TestError::Fatal("400")));
    assert_eq!(attempts.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_policy_limit_with_the_last_problem() {
    let script = vec![transient("first"), transient("second"), transient("third")];
    let (result, attempts) = play(&policy(2), None, script).await;
    assert_eq!(result, Err(TestError::GaveUp(GaveUp::RetriesExhausted { attempts: 3, last: "third".into() })));
    assert_eq!(attempts.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_full_jitter_under_a_doubling_cap() {
    let policy = policy(8);
    for retry in 0..8u32 {
        let cap = Duration::from_millis(100 * (1 << retry)).min(Duration::from_secs(1));
        for _ in 0..200 {
            assert!(policy.backoff(retry) <= cap, "retry {retry}");
        }
    }
    // Jitter really spreads: 200 draws under a 1 s cap are not all the same.
    let draws: std::collections::BTreeSet<Duration> = (0..200).map(|_| policy.backoff(7)).collect();
    assert!(draws.len() > 20, "{draws:?}");
    let script = (0..8).map(|_| transient("503")).chain([Verdict::Done("ok")]).collect();
    let (_, attempts) = play(&policy, None, script).await;
    for pair in attempts.windows(2) {
        let waited = pair[1].1 - pair[0].1;
        assert!(waited <= Duration::from_secs(1), "waited {waited:?} before retry {}", pair[1].0.retries);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_capped() {
    let script = vec![
        Verdict::Retry { problem: "429".into(), retry_after: Some(Duration::from_secs(7)) },
        Verdict::Retry { problem: "429".into(), retry_after: Some(Duration::from_secs(3600)) },
        Verdict::Done("ok"),
    ];
    let (result, attempts) = play(&policy(5), None, script).await;
    assert_eq!(result, Ok("ok"));
    assert_eq!(attempts[1].1 - attempts[0].1, Duration::from_secs(7));
    assert_eq!(attempts[2].1 - attempts[1].1, Duration::from_secs(30), "capped at max_retry_after");
}

#[tokio::test(start_paused = true)]
async fn no_wait_runs_past_the_deadline() {
    let script = vec![Verdict::Retry { problem: "429".into(), retry_after: Some(Duration::from_secs(20)) }];
    let (result, attempts) = play(&policy(5), Some(Duration::from_secs(10)), script).await;
    assert_eq!(result, Err(TestError::GaveUp(GaveUp::Deadline { last: "429".into() })));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].1, Duration::ZERO, "gave up at once instead of sleeping into the deadline");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_cut_to_the_time_left_and_none_starts_inside_the_margin() {
    let (result, attempts) = play(&policy(5), Some(Duration::from_secs(3)), vec![Verdict::Done("ok")]).await;
    assert_eq!(result, Ok("ok"));
    assert_eq!(attempts[0].0.timeout, Duration::from_secs(3) - DEADLINE_MARGIN);

    let (result, attempts) = play(&policy(5), Some(DEADLINE_MARGIN), vec![]).await;
    assert_eq!(result, Err(TestError::GaveUp(GaveUp::Deadline { last: "no time left".into() })));
    assert!(attempts.is_empty());
}

#[tokio::test(start_paused = true)]
async fn credentials_are_refreshed_once_at_once_then_refusal_counts_as_a_failure() {
    let refused = || Verdict::RefreshAndRetry { problem: "401".into() };
    let (result, attempts) = play(&policy(5), None, vec![refused(), Verdict::Done("ok")]).await;
    assert_eq!(result, Ok("ok"));
    assert_eq!(attempts[1].1, Duration::ZERO, "no backoff before the refreshed attempt");
    assert!(!attempts[0].0.refresh_credentials && attempts[1].0.refresh_credentials && attempts[1].0.refreshed);
    assert_eq!(attempts[1].0.retries, 0, "a refresh is not a retry");

    let (result, attempts) = play(&policy(0), None, vec![refused(), refused()]).await;
    assert_eq!(result, Err(TestError::GaveUp(GaveUp::RetriesExhausted { attempts: 1, last: "401".into() })));
    assert_eq!(attempts.len(), 2);
}

fn headers(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, value.parse().unwrap());
    headers
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let now = DateTime::parse_from_rfc3339("2026-12-01T08:49:30Z").unwrap().with_timezone(&Utc);
    assert_eq!(retry_after(&headers("120"), now), Some(Duration::from_secs(120)));
    assert_eq!(retry_after(&headers(" 5 "), now), Some(Duration::from_secs(5)));
    assert_eq!(retry_after(&headers("Tue, 01 Dec 2026 08:49:37 GMT"), now), Some(Duration::from_secs(7)));
    assert_eq!(retry_after(&headers("Tue, 01 Dec 2026 08:00:00 GMT"), now), Some(Duration::ZERO), "past: now");
    assert_eq!(retry_after(&headers("soon"), now), None);
    assert_eq!(retry_after(&headers("-3"), now), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn urls_join_encoded_segments_under_any_base() {
    for base in ["https://h/scim", "https://h/scim/", "https://h/scim/v2/"] {
        let base = parse_base_url(base, false).unwrap();
        let url = join_url(&base, &["Users", "a/b?c#d"]);
        assert!(url.as_str().ends_with("/Users/a%2Fb%3Fc%23d"), "{url}");
        assert!(!url.path().contains("//"), "{url}");
    }
    assert_eq!(join_url(&parse_base_url("https://h", false).unwrap(), &["x"]).as_str(), "https://h/x");
}

#[test]
fn base_urls_must_be_https_unless_allowed_and_carry_no_credentials() {
    assert_eq!(parse_base_url("http://h/scim", false), Err(BaseUrlError::Insecure));
    assert!(parse_base_url("http://h/scim", true).is_ok());
    assert_eq!(parse_base_url("ftp://h", true), Err(BaseUrlError::Insecure));
    assert_eq!(parse_base_url("https://user:pw@h/scim", false), Err(BaseUrlError::EmbeddedCredentials));
    assert!(matches!(parse_base_url("not a url", false), Err(BaseUrlError::Invalid(_))));
}

#[tokio::test]
async fn transport_failures_are_described_without_the_url() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    crate::lambda::install_crypto_provider();
    let error = reqwest::get(format!("http://{closed}/people/secret-id")).await.unwrap_err();
    assert_eq!(describe_transport(&error), "connection failed");
}

#[tokio::test]
async fn the_client_retries_transport_failures_and_classifies_answers() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&server).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_string("fine")).mount(&server).await;
    let client = HttpClient::new("test", RetryPolicy { base_backoff: Duration::from_millis(1), ..policy(2) }).unwrap();
    let url = Url::parse(&server.uri()).unwrap();
    let body: Result<String, TestError> = client
        .send(
            "GET /",
            None,
            |_| {
                let request = client.http().get(url.clone());
                async move { Ok(request) }
            },
            |reply, _| match reply.status {
                StatusCode::OK => Verdict::Done(String::from_utf8_lossy(&reply.body).into_owned()),
                status if is_transient(status) => Verdict::Retry { problem: status.to_string(), retry_after: None },
                _ => Verdict::Fail(TestError::Fatal("unexpected")),
            },
        )
        .await;
    assert_eq!(body, Ok("fine".to_owned()));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
