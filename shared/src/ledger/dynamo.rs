//! The ledger in one DynamoDB table (the `LedgerTable` of template.yaml):
//!
//! | item               | pk                   | sk               | extra                                   |
//! |--------------------|----------------------|------------------|-----------------------------------------|
//! | person state       | `PERSON#<source:id>` | `STATE`          | `gsi2pk`=`DUE`, `gsi2sk`=`<due_at>#<source:id>` only while a due action is set |
//! | invitation         | `PERSON#<source:id>` | `INVITE`         | `gsi1pk`=`PENDING`, `gsi1sk`=`<last_sent_at>#<source:id>` only while pending |
//! | lease              | `PERSON#<source:id>` | `LEASE`          | `holder`, `lease_until` (worker and invite-retry never act on one person at once) |
//! | account owner      | `ACCOUNT#<user id>`  | `OWNER`          | the person the 1Password account is linked to (the reverse link) |
//! | Events API cursor  | `CURSOR`             | `signinattempts` |                                         |
//! | brake counter      | `BRAKE`              | window id        | `expires_at` (TTL, a day after first use) |
//! | ever signed in     | `SIGNEDIN#<user id>` | `USER`           | `first_signed_in_at`; the id lower-cased in `pk`, no TTL |
//!
//! `pending-invitations` is a sparse GSI over `gsi1pk`/`gsi1sk`: an invitation leaves it the
//! moment its status stops being pending (the index attributes are REMOVEd), so invite-retry
//! queries exactly what it may act on, oldest first, without a scan. `due-actions` is the
//! same over `gsi2pk`/`gsi2sk`: a person is in it exactly while they have a due action, so
//! the sweep reads what is due, earliest first, without a scan.
//!
//! The person's folded state and recent event ids are stored as JSON strings (`known`,
//! `recent_events`): only the worker reads them, whole.
//!
//! Timestamps are stored as fixed-width RFC 3339 strings with nanoseconds
//! (`2026-03-02T09:00:00.123456789Z`), so string order is time order — which both the
//! conditional `<=` on `last_effective_at` and the index's sort key rely on. The person key
//! is stored in its own attributes (`person_source`, `person_id`), never parsed back out of
//! `pk`, so ids containing `#` or `:` are safe.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use chrono::{DateTime, SecondsFormat, Utc};

use super::{Due, DueAction, Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord};
use crate::event::{PersonKey, SourceKind};
use crate::scim::ScimUserId;

pub const PENDING_INDEX: &str = "pending-invitations";
const PENDING_PARTITION: &str = "PENDING";
pub const DUE_INDEX: &str = "due-actions";
const DUE_PARTITION: &str = "DUE";
const STATE_SK: &str = "STATE";
const INVITE_SK: &str = "INVITE";
const OWNER_SK: &str = "OWNER";
const LEASE_SK: &str = "LEASE";
const CURSOR_PK: &str = "CURSOR";
const CURSOR_SK: &str = "signinattempts";
const BRAKE_PK: &str = "BRAKE";
/// Brake counters outlive any sensible window; DynamoDB's TTL sweeps them afterwards.
const BRAKE_TTL_SECONDS: i64 = 24 * 60 * 60;
const SIGNED_IN_SK: &str = "USER";

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    /// Upper bound on items per Query request; DynamoDB's own 1 MB page limit still applies.
    query_page_size: i32,
}

impl std::fmt::Debug for DynamoLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoLedger").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DynamoLedger {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        DynamoLedger { client, table: table_name.into(), query_page_size: 500 }
    }

    /// Smaller Query pages (tests use this to exercise paging with a handful of items).
    pub fn with_query_page_size(mut self, page_size: i32) -> Self {
        self.query_page_size = page_size.max(1);
        self
    }

    /// An UpdateItem on the person's invitation item.
    fn update_invitation(&self, person: &PersonKey) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key("pk", s(person_pk(person))).key("sk", s(INVITE_SK))
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the table exactly as template.yaml declares it (keys, the sparse
    /// `pending-invitations` GSI, TTL on `expires_at`). For tests and the local stack
    /// against moto; real deployments get the table from CloudFormation.
    pub async fn create_table_for_tests(client: &Client, name: &str) -> Result<(), LedgerError> {
        let string_attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(build_err)
        };
        let index = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(build_err)
        };
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attr("pk")?)
            .attribute_definitions(string_attr("sk")?)
            .attribute_definitions(string_attr("gsi1pk")?)
            .attribute_definitions(string_attr("gsi1sk")?)
            .attribute_definitions(string_attr("gsi2pk")?)
            .attribute_definitions(string_attr("gsi2sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(index(PENDING_INDEX, "gsi1pk", "gsi1sk")?)
            .global_secondary_indexes(index(DUE_INDEX, "gsi2pk", "gsi2sk")?)
            .send()
            .await
            .map_err(unavailable)?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(build_err)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item)
    }

    /// Queries the pending index, oldest first, following `LastEvaluatedKey` until `limit`
    /// items are collected or the index is exhausted.
    async fn query_pending_invitations(
        &self,
        sent_before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<Invitation>, LedgerError> {
        let mut found = Vec::new();
        let mut start_key: Option<Item> = None;
        while found.len() < limit {
            let remaining = i32::try_from(limit - found.len()).unwrap_or(i32::MAX);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .expression_attribute_values(":pending", s(PENDING_PARTITION))
                .limit(remaining.min(self.query_page_size))
                .set_exclusive_start_key(start_key.take());
            query = match sent_before {
                // `<ts>#<key>` sorts after `<ts>`, so an invitation sent exactly at the
                // cutoff is excluded: "before" is strict.
                Some(cutoff) => query
                    .key_condition_expression("gsi1pk = :pending AND gsi1sk < :cutoff")
                    .expression_attribute_values(":cutoff", s(timestamp(cutoff))),
                None => query.key_condition_expression("gsi1pk = :pending"),
            };
            let output = query.send().await.map_err(unavailable)?;
            for item in output.items() {
                found.push(invitation_from_item(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start_key = Some(key),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// One page of the due index: due at or before `due_by`, after `after`.
    async fn query_due(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<(Vec<DueAction>, bool), LedgerError> {
        let start_key = after.map(|action| {
            HashMap::from([
                ("pk".to_owned(), s(person_pk(&action.person))),
                ("sk".to_owned(), s(STATE_SK)),
                ("gsi2pk".to_owned(), s(DUE_PARTITION)),
                ("gsi2sk".to_owned(), s(due_sort_key(action.due.at, &action.person))),
            ])
        });
        // `<ts>#<key>` sorts below `<ts>$`: everything due at or before `due_by`.
        let cutoff = format!("{}$", timestamp(due_by));
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("gsi2pk = :due AND gsi2sk < :cutoff")
            .expression_attribute_values(":due", s(DUE_PARTITION))
            .expression_attribute_values(":cutoff", s(cutoff))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX).clamp(1, self.query_page_size))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(unavailable)?;
        let actions = output.items().iter().map(due_action_from_item).collect::<Result<Vec<_>, _>>()?;
        let more = output.last_evaluated_key.is_some_and(|key| !key.is_empty());
        Ok((actions, more))
    }
}

type Item = HashMap<String, AttributeValue>;

fn due_sort_key(due_at: DateTime<Utc>, person: &PersonKey) -> String {
    format!("{}#{person}", timestamp(due_at))
}

fn json_text<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).unwrap_or_default())
}

fn account_pk(user_id: &ScimUserId) -> String {
    format!("ACCOUNT#{user_id}")
}

fn person_pk(person: &PersonKey) -> String {
    format!("PERSON#{person}")
}

/// Lower-cased: the Events API and the bridge may spell the same id differently.
fn signed_in_pk(user_id: &ScimUserId) -> String {
    format!("SIGNEDIN#{}", user_id.as_str().to_lowercase())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Fixed-width, so lexicographic order is chronological order.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn pending_sort_key(last_sent_at: DateTime<Utc>, person: &PersonKey) -> String {
    format!("{}#{person}", timestamp(last_sent_at))
}

fn status_word(status: InvitationStatus) -> &'static str {
    status.into()
}

fn unavailable<E, R>(error: SdkError<E, R>) -> LedgerError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    LedgerError::Unavailable(DisplayErrorContext(error).to_string())
}

fn build_err(error: aws_sdk_dynamodb::error::BuildError) -> LedgerError {
    LedgerError::Unavailable(format!("building a DynamoDB request: {error}"))
}

/// `Ok(false)` for a failed condition, the error otherwise.
fn condition_outcome<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, LedgerError>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException") => {
            Ok(false)
        }
        Err(error) => Err(unavailable(error)),
    }
}

struct Reader<'a> {
    item: &'a Item,
    key: String,
}

impl<'a> Reader<'a> {
    fn new(item: &'a Item) -> Self {
        let key = match (item.get("pk"), item.get("sk")) {
            (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => format!("{pk}/{sk}"),
            _ => "<item without keys>".to_owned(),
        };
        Reader { item, key }
    }

    fn corrupt(&self, reason: impl Into<String>) -> LedgerError {
        LedgerError::Corrupt { key: self.key.clone(), reason: reason.into() }
    }

    fn optional_string(&self, name: &str) -> Result<Option<String>, LedgerError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
            Some(_) => Err(self.corrupt(format!("{name} is not a string"))),
        }
    }

    fn string(&self, name: &str) -> Result<String, LedgerError> {
        self.optional_string(name)?.ok_or_else(|| self.corrupt(format!("{name} is missing")))
    }

    fn time(&self, name: &str) -> Result<DateTime<Utc>, LedgerError> {
        let raw = self.string(name)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.corrupt(format!("{name} is not an RFC 3339 time ({e}): {raw:?}")))
    }

    fn number_u32(&self, name: &str) -> Result<u32, LedgerError> {
        match self.item.get(name) {
            Some(AttributeValue::N(raw)) => {
                raw.parse().map_err(|e| self.corrupt(format!("{name} is not a count ({e}): {raw:?}")))
            }
            Some(_) => Err(self.corrupt(format!("{name} is not a number"))),
            None => Err(self.corrupt(format!("{name} is missing"))),
        }
    }

    fn optional_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, LedgerError> {
        if self.optional_string(name)?.is_none() {
            return Ok(None);
        }
        self.time(name).map(Some)
    }

    fn person(&self) -> Result<PersonKey, LedgerError> {
        Ok(PersonKey::new(self.string("person_source")?, self.string("person_id")?))
    }

    fn json<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T, LedgerError> {
        match self.optional_string(name)? {
            None => Ok(T::default()),
            Some(raw) => serde_json::from_str(&raw).map_err(|e| self.corrupt(format!("{name} is not valid JSON: {e}"))),
        }
    }

    fn source_kind(&self) -> Result<SourceKind, LedgerError> {
        let word = self.string("source_kind")?;
        serde_json::from_value(serde_json::Value::String(word.clone()))
            .map_err(|_| self.corrupt(format!("unknown source kind {word:?}")))
    }

    fn due(&self) -> Result<Option<Due>, LedgerError> {
        let Some(at) = self.optional_time("due_at")? else { return Ok(None) };
        Ok(Some(Due { at, intent: self.optional_string("due_intent")?.unwrap_or_default() }))
    }
}

fn person_from_item(item: &Item) -> Result<PersonRecord, LedgerError> {
    let r = Reader::new(item);
    Ok(PersonRecord {
        person: r.person()?,
        source_kind: r.source_kind()?,
        user_id: r.optional_string("user_id")?.map(ScimUserId::new),
        known: r.json("known")?,
        recent_events: r.json("recent_events")?,
        due: r.due()?,
        updated_at: r.time("updated_at")?,
    })
}

fn due_action_from_item(item: &Item) -> Result<DueAction, LedgerError> {
    let r = Reader::new(item);
    let due = r.due()?.ok_or_else(|| r.corrupt("in the due index without due_at"))?;
    Ok(DueAction { person: r.person()?, source_kind: r.source_kind()?, due })
}

fn invitation_from_item(item: &Item) -> Result<Invitation, LedgerError> {
    let r = Reader::new(item);
    let word = r.string("status")?;
    let status: InvitationStatus =
        word.parse().map_err(|_| r.corrupt(format!("unknown invitation status {word:?}")))?;
    Ok(Invitation {
        person: r.person()?,
        user_id: ScimUserId::new(r.string("user_id")?),
        email: r.string("email")?,
        invited_at: r.time("invited_at")?,
        last_sent_at: r.time("last_sent_at")?,
        counts_from: r.optional_time("counts_from")?,
        reissues: r.number_u32("reissues")?,
        status,
    })
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn person(&self, person: &PersonKey) -> Result<Option<PersonRecord>, LedgerError> {
        self.get(person_pk(person), STATE_SK).await?.as_ref().map(person_from_item).transpose()
    }

    async fn save_person(&self, record: &PersonRecord) -> Result<(), LedgerError> {
        let kind: &'static str = record.source_kind.into();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(person_pk(&record.person)))
            .item("sk", s(STATE_SK))
            .item("person_source", s(&record.person.source))
            .item("person_id", s(&record.person.id))
            .item("source_kind", s(kind))
            .item("known", json_text(&record.known))
            .item("recent_events", json_text(&record.recent_events))
            .item("updated_at", s(timestamp(record.updated_at)));
        if let Some(user_id) = &record.user_id {
            put = put.item("user_id", s(user_id.as_str()));
        }
        if let Some(due) = &record.due {
            put = put
                .item("due_at", s(timestamp(due.at)))
                .item("due_intent", s(&due.intent))
                .item("gsi2pk", s(DUE_PARTITION))
                .item("gsi2sk", s(due_sort_key(due.at, &record.person)));
        }
        put.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn due_actions(
        &self,
        due_by: DateTime<Utc>,
        after: Option<&DueAction>,
        limit: usize,
    ) -> Result<Vec<DueAction>, LedgerError> {
        let mut found: Vec<DueAction> = Vec::new();
        while found.len() < limit {
            let (page, more) = self.query_due(due_by, found.last().or(after), limit - found.len()).await?;
            found.extend(page);
            if !more {
                break;
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    async fn claim_account(&self, user_id: &ScimUserId, person: &PersonKey) -> Result<bool, LedgerError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(account_pk(user_id)))
            .item("sk", s(OWNER_SK))
            .item("person_source", s(&person.source))
            .item("person_id", s(&person.id))
            .condition_expression("attribute_not_exists(pk) OR (person_source = :source AND person_id = :id)")
            .expression_attribute_values(":source", s(&person.source))
            .expression_attribute_values(":id", s(&person.id));
        condition_outcome(put.send().await)
    }

    async fn try_lease(
        &self,
        person: &PersonKey,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(person_pk(person)))
            .item("sk", s(LEASE_SK))
            .item("holder", s(holder))
            .item("lease_until", s(timestamp(until)))
            // Swept by DynamoDB's TTL a day after it lapses.
            .item("expires_at", n(until.timestamp() + BRAKE_TTL_SECONDS))
            .condition_expression("attribute_not_exists(pk) OR lease_until <= :now OR holder = :holder")
            .expression_attribute_values(":now", s(timestamp(now)))
            .expression_attribute_values(":holder", s(holder));
        condition_outcome(put.send().await)
    }

    async fn release_lease(&self, person: &PersonKey, holder: &str) -> Result<(), LedgerError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(person_pk(person)))
            .key("sk", s(LEASE_SK))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder));
        condition_outcome(delete.send().await).map(|_| ())
    }

    async fn account_owner(&self, user_id: &ScimUserId) -> Result<Option<PersonKey>, LedgerError> {
        match self.get(account_pk(user_id), OWNER_SK).await? {
            None => Ok(None),
            Some(item) => Reader::new(&item).person().map(Some),
        }
    }

    async fn complete_due_action(&self, action: &DueAction) -> Result<bool, LedgerError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(person_pk(&action.person)))
            .key("sk", s(STATE_SK))
            .update_expression("REMOVE due_at, due_intent, gsi2pk, gsi2sk")
            .condition_expression("due_at = :at")
            .expression_attribute_values(":at", s(timestamp(action.due.at)))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn invitation(&self, person: &PersonKey) -> Result<Option<Invitation>, LedgerError> {
        self.get(person_pk(person), INVITE_SK).await?.as_ref().map(invitation_from_item).transpose()
    }

    async fn start_invitation_unless_pending(&self, invitation: &Invitation) -> Result<bool, LedgerError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(person_pk(&invitation.person)))
            .item("sk", s(INVITE_SK))
            .item("person_source", s(&invitation.person.source))
            .item("person_id", s(&invitation.person.id))
            .item("user_id", s(invitation.user_id.as_str()))
            .item("email", s(&invitation.email))
            .item("invited_at", s(timestamp(invitation.invited_at)))
            .item("last_sent_at", s(timestamp(invitation.last_sent_at)))
            .item("reissues", n(invitation.reissues))
            .item("status", s(status_word(invitation.status)))
            .condition_expression("attribute_not_exists(pk) OR #status <> :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(status_word(InvitationStatus::Pending)));
        if let Some(counts_from) = invitation.counts_from {
            put = put.item("counts_from", s(timestamp(counts_from)));
        }
        if invitation.status == InvitationStatus::Pending {
            put = put
                .item("gsi1pk", s(PENDING_PARTITION))
                .item("gsi1sk", s(pending_sort_key(invitation.last_sent_at, &invitation.person)));
        }
        condition_outcome(put.send().await)
    }

    async fn overwrite_invitation_status(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<(), LedgerError> {
        let update = self
            .update_invitation(person)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status_word(status)));
        let update = if status == InvitationStatus::Pending {
            // Back into the index: its sort key needs last_sent_at, which an update
            // expression cannot concatenate, so read it first and guard against a
            // concurrent re-issue moving it.
            let Some(current) = self.invitation(person).await? else {
                return Ok(());
            };
            update
                .update_expression("SET #status = :status, gsi1pk = :pending, gsi1sk = :sort")
                .condition_expression("attribute_exists(pk) AND last_sent_at = :sent")
                .expression_attribute_values(":pending", s(PENDING_PARTITION))
                .expression_attribute_values(":sort", s(pending_sort_key(current.last_sent_at, person)))
                .expression_attribute_values(":sent", s(timestamp(current.last_sent_at)))
        } else {
            update
                .update_expression("SET #status = :status REMOVE gsi1pk, gsi1sk")
                .condition_expression("attribute_exists(pk)")
        };
        // A failed condition means there is no invitation: documented as a no-op.
        condition_outcome(update.send().await).map(|_| ())
    }

    async fn settle_invitation_if_pending(
        &self,
        person: &PersonKey,
        status: InvitationStatus,
    ) -> Result<bool, LedgerError> {
        let update = self
            .update_invitation(person)
            .update_expression("SET #status = :status REMOVE gsi1pk, gsi1sk")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status_word(status)))
            .expression_attribute_values(":pending", s(status_word(InvitationStatus::Pending)));
        condition_outcome(update.send().await)
    }

    async fn record_reissue_if_unchanged(
        &self,
        person: &PersonKey,
        expected_reissues: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let result = self
            .update_invitation(person)
            .update_expression("SET last_sent_at = :at, gsi1sk = :sort, reissues = reissues + :one")
            .condition_expression("#status = :pending AND reissues = :expected")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":at", s(timestamp(at)))
            .expression_attribute_values(":sort", s(pending_sort_key(at, person)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":pending", s(status_word(InvitationStatus::Pending)))
            .expression_attribute_values(":expected", n(expected_reissues))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn pending_invitations(
        &self,
        sent_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Invitation>, LedgerError> {
        self.query_pending_invitations(Some(sent_before), limit).await
    }

    async fn all_pending_invitations(&self) -> Result<Vec<Invitation>, LedgerError> {
        self.query_pending_invitations(None, usize::MAX).await
    }

    async fn events_cursor(&self) -> Result<Option<String>, LedgerError> {
        match self.get(CURSOR_PK.to_owned(), CURSOR_SK).await? {
            None => Ok(None),
            Some(item) => Reader::new(&item).string("cursor").map(Some),
        }
    }

    async fn set_events_cursor(&self, cursor: &str) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(CURSOR_PK))
            .item("sk", s(CURSOR_SK))
            .item("cursor", s(cursor))
            .item("updated_at", s(timestamp(Utc::now())))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn record_sign_in(&self, user_id: &ScimUserId, at: DateTime<Utc>) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(signed_in_pk(user_id)))
            .key("sk", s(SIGNED_IN_SK))
            .update_expression(
                "SET user_id = if_not_exists(user_id, :id), \
                 first_signed_in_at = if_not_exists(first_signed_in_at, :at)",
            )
            .expression_attribute_values(":id", s(user_id.as_str()))
            .expression_attribute_values(":at", s(timestamp(at)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn first_sign_in(&self, user_id: &ScimUserId) -> Result<Option<DateTime<Utc>>, LedgerError> {
        match self.get(signed_in_pk(user_id), SIGNED_IN_SK).await? {
            None => Ok(None),
            Some(item) => Reader::new(&item).time("first_signed_in_at").map(Some),
        }
    }

    async fn reserve_suspension(&self, window_id: &str, limit: u32) -> Result<bool, LedgerError> {
        if limit == 0 {
            return Ok(false);
        }
        let expires_at = Utc::now().timestamp() + BRAKE_TTL_SECONDS;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(BRAKE_PK))
            .key("sk", s(window_id))
            .update_expression(
                "SET #count = if_not_exists(#count, :zero) + :one, \
                 expires_at = if_not_exists(expires_at, :expires)",
            )
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":expires", n(expires_at))
            .send()
            .await;
        condition_outcome(result)
    }
}
