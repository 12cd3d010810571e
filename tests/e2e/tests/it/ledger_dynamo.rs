//! The ledger conformance suite against `DynamoLedger` on moto's DynamoDB server, over the
//! real DynamoDB JSON protocol: the same cases the in-memory twin passes. Each case gets a
//! fresh table, created with the keys, sparse GSI and TTL of template.yaml. Small Query
//! pages make the pending-index cases page through `LastEvaluatedKey`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use provisioning::ledger::{DynamoLedger, Ledger, conformance};
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn dynamo_ledger_passes_the_conformance_suite_on_moto() {
    let moto = e2e::Moto::start().expect("moto_server starts (run scripts/setup)");
    let client = Client::new(&moto.sdk_config().await);
    let tables = AtomicUsize::new(0);

    let failures = conformance::run_all(|| {
        let client = client.clone();
        let name = format!("ledger-{}", tables.fetch_add(1, Ordering::Relaxed));
        async move {
            DynamoLedger::create_table_for_tests(&client, &name).await.expect("create table");
            Box::new(DynamoLedger::new(client, name).with_query_page_size(2)) as Box<dyn Ledger>
        }
    })
    .await;
    assert_eq!(tables.load(Ordering::Relaxed), conformance::CASES.len());
    assert!(failures.is_empty(), "conformance failures on DynamoDB (moto):\n{}", failures.join("\n"));
}

/// The index is sparse for real: a settled invitation carries no index attributes, and
/// the table holds the exact layout other tools (and humans in the console) rely on.
#[tokio::test]
async fn settled_invitations_drop_their_index_attributes() {
    use chrono::{TimeZone, Utc};
    use provisioning::PersonKey;
    use provisioning::ledger::{Invitation, InvitationStatus};

    let moto = e2e::Moto::start().expect("moto_server starts");
    let client = Client::new(&moto.sdk_config().await);
    DynamoLedger::create_table_for_tests(&client, "layout").await.unwrap();
    let ledger = DynamoLedger::new(client.clone(), "layout");
    let person = PersonKey::new("okta-main", "00u1");
    let sent = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let invitation = Invitation {
        counts_from: None,
        person: person.clone(),
        user_id: "op-1".into(),
        email: "a@example.com".into(),
        invited_at: sent,
        last_sent_at: sent,
        reissues: 0,
        status: InvitationStatus::Pending,
    };
    assert!(ledger.start_invitation_unless_pending(&invitation).await.unwrap());

    let raw = |client: Client| async move {
        client
            .get_item()
            .table_name("layout")
            .key("pk", AttributeValue::S("PERSON#okta-main:00u1".into()))
            .key("sk", AttributeValue::S("INVITE".into()))
            .send()
            .await
            .unwrap()
            .item
            .expect("invitation item at PERSON#<key>/INVITE")
    };
    let item = raw(client.clone()).await;
    assert_eq!(item.get("gsi1pk"), Some(&AttributeValue::S("PENDING".into())));
    assert_eq!(item.get("gsi1sk"), Some(&AttributeValue::S("2026-03-02T09:00:00.000000000Z#okta-main:00u1".into())));

    ledger.overwrite_invitation_status(&person, InvitationStatus::Accepted).await.unwrap();
    let item = raw(client.clone()).await;
    assert_eq!(item.get("status"), Some(&AttributeValue::S("accepted".into())));
    assert!(!item.contains_key("gsi1pk") && !item.contains_key("gsi1sk"), "{item:?}");

    // The index itself is empty now (queried directly, not through the ledger).
    let in_index = client
        .query()
        .table_name("layout")
        .index_name("pending-invitations")
        .key_condition_expression("gsi1pk = :p")
        .expression_attribute_values(":p", AttributeValue::S("PENDING".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(in_index.count(), 0);

    assert!(ledger.reserve_suspension("w-1", 5).await.unwrap());
    let brake = client
        .get_item()
        .table_name("layout")
        .key("pk", AttributeValue::S("BRAKE".into()))
        .key("sk", AttributeValue::S("w-1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("brake counter");
    let expires_at: i64 = match brake.get("expires_at") {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("expires_at should be a number, got {other:?}"),
    };
    let in_a_day = Utc::now().timestamp() + 86_400;
    assert!((in_a_day - 60..=in_a_day + 60).contains(&expires_at), "{expires_at} vs {in_a_day}");
}
