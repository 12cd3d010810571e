//! ingest against moto's real SQS FIFO: exact messages, group and deduplication ids,
//! duplicates dropped, batches above SQS's limit of ten, and an outage answered with 503
//! whose retry queues everything once.

use crate::support::ingest::*;
use provisioning::queue::deduplication_id;
use provisioning::{EventKind, PersonKey};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[tokio::test]
async fn a_signed_request_lands_exactly_the_expected_messages_and_a_duplicate_is_dropped() {
    let aws = Aws::start().await;
    let ingest = aws.start_ingest(&[]);
    let body = fixture("generic/two-events.json");
    let (headers, _) = generic_headers("msg_e2e_1", &now_seconds(), &body);
    for _ in 0..2 {
        let (status, answer) = post(&ingest, "/webhooks/hr-generic", &headers, &body).await;
        assert_eq!((status, answer), (202, serde_json::json!({"accepted": 2, "ignored": 0})));
    }

    let messages = aws.drain().await;
    let summary: Vec<_> = messages
        .iter()
        .map(|(group, dedup, event)| (group.as_str(), dedup.as_str(), event.kind, event.person.clone()))
        .collect();
    let dedup_1042 = deduplication_id("hr-generic", "evt-1042-hired");
    let dedup_7731 = deduplication_id("hr-generic", "evt-7731-terminated");
    assert_eq!(
        summary,
        [
            ("hr-generic:E-1042", dedup_1042.as_str(), EventKind::Joiner, PersonKey::new("hr-generic", "E-1042")),
            ("hr-generic:E-7731", dedup_7731.as_str(), EventKind::Leaver, PersonKey::new("hr-generic", "E-7731")),
        ]
    );
    let joiner = &messages[0].2;
    assert_eq!(joiner.source_event_id, "evt-1042-hired");
    assert_eq!(joiner.attributes.work_email.as_deref(), Some("dana.kim@example.com"));
    assert_eq!(joiner.attributes.department.as_deref(), Some("Finance"));
}

#[tokio::test]
async fn a_bamboohr_batch_larger_than_ten_lands_every_employee_once() {
    let aws = Aws::start().await;
    let ingest = aws.start_ingest(&[]);
    let employees: Vec<_> = (1..=23)
        .map(|id| {
            serde_json::json!({
                "id": id.to_string(), "action": "Updated", "timestamp": "2026-03-02T09:15:00+0000",
                "changedFields": ["Department"], "fields": {"Department": {"value": format!("Team {id}")}}
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "employees": employees })).unwrap();
    let (headers, _) = bamboohr_headers(&now_seconds(), &body);
    let (status, answer) = post(&ingest, "/webhooks/bamboohr-main", &headers, &body).await;
    assert_eq!((status, answer), (202, serde_json::json!({"accepted": 23, "ignored": 0})));

    let mut ids: Vec<u32> = aws.drain().await.iter().map(|(_, _, e)| e.person.id.parse().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=23).collect::<Vec<_>>());
}

/// A TCP forwarder to moto that can be switched off: while off, it accepts and drops
/// every connection, as an unreachable or failing endpoint would.
async fn switchable_proxy(target: String) -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let up = Arc::new(AtomicBool::new(true));
    let switch = Arc::clone(&up);
    let target = target.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !switch.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (address, up)
}

#[tokio::test]
async fn with_the_queue_unreachable_the_answer_is_503_and_a_later_retry_queues_everything_once() {
    let aws = Aws::start().await;
    let (proxy, up) = switchable_proxy(aws.moto.endpoint.clone()).await;
    // Secrets Manager stays reachable; only SQS goes through the switchable proxy.
    let ingest = aws.start_ingest(&[("AWS_ENDPOINT_URL_SQS", proxy.as_str())]);
    let body = fixture("generic/two-events.json");
    let (headers, _) = generic_headers("msg_e2e_outage", &now_seconds(), &body);

    up.store(false, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let (status, answer) = post(&ingest, "/webhooks/hr-generic", &headers, &body).await;
    assert_eq!(status, 503, "{answer}");
    // Okta's 3-second limit applies to the 503 as well; this is a correctness bound, not a
    // speed target (the emulator adds its own overhead).
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(aws.drain().await.is_empty());

    up.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let (status, _) = post(&ingest, "/webhooks/hr-generic", &headers, &body).await;
        assert_eq!(status, 202);
    }
    let ids: Vec<_> = aws.drain().await.into_iter().map(|(_, _, e)| e.source_event_id).collect();
    assert_eq!(ids, ["evt-1042-hired", "evt-7731-terminated"]);
    assert!(ingest.logs().contains("queue_unavailable"));
}
