//! One end-to-end test per source, over real HTTP through cargo-lambda's Function URL
//! emulation: the ingest binary reads its connections from moto's Secrets Manager and
//! queues to moto's SQS FIFO. Each also checks the function's logs for leaks.

use crate::support::ingest::*;
use provisioning::{EventKind, PersonKey, SourceKind};

#[tokio::test]
async fn bamboohr_event_based_and_field_based_webhooks_are_queued() {
    let aws = Aws::start().await;
    let ingest = aws.start_ingest(&[]);
    let ts = now_seconds();
    let thin = fixture("bamboohr/event-based-updated.json");
    let (headers, thin_signature) = bamboohr_headers(&ts, &thin);
    assert_eq!(
        post(&ingest, "/webhooks/bamboohr-main", &headers, &thin).await,
        (202, serde_json::json!({"accepted": 1, "ignored": 0}))
    );
    let fat = fixture("bamboohr/field-based-termination.json");
    let (headers, fat_signature) = bamboohr_headers(&ts, &fat);
    assert_eq!(post(&ingest, "/webhooks/bamboohr-main", &headers, &fat).await.0, 202);
    let (forged, _) = bamboohr_headers("1000000000", &fat);
    assert_eq!(
        post(&ingest, "/webhooks/bamboohr-main", &forged, &fat).await,
        (401, serde_json::json!({"error": "unauthorized"}))
    );

    let messages = aws.drain().await;
    let kinds: Vec<_> = messages.iter().map(|(g, _, e)| (g.as_str(), e.kind, e.source_kind)).collect();
    assert_eq!(
        kinds,
        [
            ("bamboohr-main:1187", EventKind::Mover, SourceKind::Bamboohr),
            ("bamboohr-main:1187", EventKind::Leaver, SourceKind::Bamboohr)
        ]
    );
    assert_eq!(messages[1].2.attributes.work_email.as_deref(), Some("dana.kim@example.com"));
    assert_logs_exclude(&ingest, &[BAMBOO_KEY, &thin_signature, &fat_signature, "dana.kim@example.com"]);
}

#[tokio::test]
async fn hibob_ping_is_answered_and_a_leaver_is_queued() {
    let aws = Aws::start().await;
    let ingest = aws.start_ingest(&[]);
    let ping = post(&ingest, "/webhooks/hibob-main", &[("Content-Type", "text/plain".into())], b"Ping test").await;
    assert_eq!(ping, (200, serde_json::json!({"handshake": "ok"})));
    let body = fixture("hibob/employee-left.json");
    let (headers, signature) = hibob_headers(&body);
    assert_eq!(
        post(&ingest, "/webhooks/hibob-main", &headers, &body).await,
        (202, serde_json::json!({"accepted": 1, "ignored": 0}))
    );

    let messages = aws.drain().await;
    assert_eq!(messages.len(), 1, "the ping queued nothing");
    let (group, _, event) = &messages[0];
    assert_eq!(group, "hibob-main:3332883854254932743");
    assert_eq!(event.kind, EventKind::Leaver);
    assert_eq!(event.source_event_id, "employee.left:3332883854254932743:2026-03-31T00:00:04.118732");
    assert_logs_exclude(&ingest, &[BOB_SECRET, &signature]);
}

#[tokio::test]
async fn okta_verification_and_a_batch_delivery() {
    let aws = Aws::start().await;
    let ingest = aws.start_ingest(&[]);
    let verification = client()
        .get(ingest.function_url("/webhooks/okta-main"))
        .header("Authorization", OKTA_AUTH)
        .header("X-Okta-Verification-Challenge", "3xq8WnZ0c0Jd-PkLr2tY9uVbHs")
        .send()
        .await
        .unwrap();
    assert_eq!(verification.status(), 200);
    assert_eq!(
        verification.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"verification": "3xq8WnZ0c0Jd-PkLr2tY9uVbHs"})
    );
    let unauthenticated = client()
        .get(ingest.function_url("/webhooks/okta-main"))
        .header("X-Okta-Verification-Challenge", "3xq8WnZ0c0Jd-PkLr2tY9uVbHs")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let body = fixture("okta/delivery.json");
    let headers = [("Authorization", OKTA_AUTH.to_owned()), ("Content-Type", "application/json".to_owned())];
    assert_eq!(
        post(&ingest, "/webhooks/okta-main", &headers, &body).await,
        (202, serde_json::json!({"accepted": 2, "ignored": 0}))
    );

    let messages = aws.drain().await;
    let summary: Vec<_> = messages.iter().map(|(g, _, e)| (g.as_str(), e.kind, e.source_event_id.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("okta-main:00u1dana0000000042", EventKind::Leaver, "0d5c8d4e-1a7b-11f1-9e2c-8f1c2d3e4f50"),
            ("okta-main:00u1lee00000000077", EventKind::Mover, "0f11a7c2-1a7b-11f1-9e2c-8f1c2d3e4f51"),
        ]
    );
    assert_logs_exclude(&ingest, &["okta-hook-secret-7d1c2e", "dana.kim@example.com"]);
}

#[tokio::test]
async fn generic_standard_webhooks_events_are_queued() {
    let aws = Aws::start().await;
    let ingest = aws.start_ingest(&[]);
    let body = fixture("generic/two-events.json");
    let (headers, signature) = generic_headers("msg_generic_e2e", &now_seconds(), &body);
    assert_eq!(
        post(&ingest, "/webhooks/hr-generic", &headers, &body).await,
        (202, serde_json::json!({"accepted": 2, "ignored": 0}))
    );
    let (status, answer) = post(&ingest, "/webhooks/hr-generic", &headers, b"{\"kind\":\"joiner\"}").await;
    assert_eq!(status, 401, "the signature covers the body: {answer}");

    let messages = aws.drain().await;
    let people: Vec<_> = messages.iter().map(|(_, _, e)| e.person.clone()).collect();
    assert_eq!(people, [PersonKey::new("hr-generic", "E-1042"), PersonKey::new("hr-generic", "E-7731")]);
    assert_logs_exclude(&ingest, &["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &signature, "sam.lee@example.com"]);
}
