//! The store in a DynamoDB table, for the Lambda function: one item per
//! chat, partition key `pk`. Every call is a single-item request (no
//! transaction, which would cost twice): reads are strongly consistent, and
//! a write that loses a race gets the winning item back
//! (`ReturnValuesOnConditionCheckFailure`), so losing costs no extra read.
//!
//! Attributes: `v` version, `s` state (JSON), `p` a map from update id to
//! its outbox (`a` actions, `n` sent, `l` lease end, `o` lease owner, `e`
//! expiry, `q` 1 or 2 for an update deferred to the queue, accepted or
//! enqueued), `d` a map from done update id to when it was done (a number
//! from 0 up) or, negated, until when it is kept (short-lived updates:
//! one map for both, so that records written before the second kind
//! existed take it without a change of shape), `expires_at` the item's TTL
//! (Unix seconds).
//!
//! The requests are DynamoDB's JSON protocol, signed and sent by
//! [`crate::aws::AwsJson`] (GetItem, UpdateItem, PutItem, DeleteItem):
//! the SDK's DynamoDB crate was the longest of a first build, for four
//! operations.
//!
//! DynamoDB's limits shape the requests: an expression is at most 4 KB (so
//! a write drops a bounded number of old entries, see [`crate::memory`]),
//! an item at most 400 KB (a write past it is [`StoreError::TooLarge`]).

use super::{
    aside_key, ChatRecord, Commit, Done, Lease, Pending, Queued, Store, StoreError, StoreFuture,
    KEEP_ASIDE_SECS,
};
mod error;
mod item;

use crate::aws::{AwsJson, DYNAMODB};
use error::classify;
use item::{done_value, number, pending_value, record_of, QUEUED_ENQUEUED};
pub use item::{item_size, AttributeValue, Item};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The key the start-up read asks for: never a chat's or user's.
const WARM_UP_KEY: &str = "warm-up";

/// Chat records in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    api: AwsJson,
    table: String,
}

/// An UpdateItem or a conditional DeleteItem's expressions: the names and
/// values they refer to, kept beside them.
#[derive(Default)]
struct Expressions {
    names: Map<String, Value>,
    values: Map<String, Value>,
}

impl Expressions {
    fn name(mut self, placeholder: impl Into<String>, name: impl Into<String>) -> Self {
        self.names
            .insert(placeholder.into(), Value::String(name.into()));
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        // An attribute value always serialises.
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// Adds them to `request`, leaving out what is empty (DynamoDB refuses
    /// an empty map).
    fn into_request(self, mut request: Value) -> Value {
        if !self.names.is_empty() {
            request["ExpressionAttributeNames"] = Value::Object(self.names);
        }
        if !self.values.is_empty() {
            request["ExpressionAttributeValues"] = Value::Object(self.values);
        }
        request
    }
}

impl DynamoDbStore {
    /// Builds the client; makes no request.
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        DynamoDbStore {
            api: AwsJson::new(config, DYNAMODB),
            table: table.into(),
        }
    }

    fn key(key: &str) -> Value {
        json!({"pk": {"S": key}})
    }

    /// Calls `operation`: its answer, or its failure sorted.
    async fn call(&self, operation: &str, request: &Value) -> Result<Value, StoreError> {
        let body = serde_json::to_vec(request).map_err(|e| StoreError::Encode(e.to_string()))?;
        let answer = self
            .api
            .call_keeping(operation, &body)
            .await
            .map_err(|(error, answer)| classify(error, &answer))?;
        serde_json::from_slice(&answer).map_err(|e| {
            StoreError::Unavailable(format!("{operation}'s answer does not parse: {e}"))
        })
    }

    /// The item under `key` as stored, read strongly consistently.
    async fn item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let request = json!({
            "TableName": self.table,
            "Key": Self::key(key),
            "ConsistentRead": true,
        });
        let mut answer = self.call("GetItem", &request).await?;
        match answer.get_mut("Item").map(Value::take) {
            None | Some(Value::Null) => Ok(None),
            Some(item) => serde_json::from_value(item)
                .map(Some)
                .map_err(|e| StoreError::Unreadable(format!("{key}: {e}"))),
        }
    }

    /// An UpdateItem of `key` on `condition`; a failed condition is a
    /// [`StoreError::Conflict`] with the record as it is now.
    async fn update(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        expressions: Expressions,
    ) -> Result<(), StoreError> {
        let request = expressions.into_request(json!({
            "TableName": self.table,
            "Key": Self::key(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }));
        self.call("UpdateItem", &request).await.map(drop)
    }

    /// [`DynamoDbStore::update`] of what may be gone: a failed condition
    /// means there is nothing left for this run to change, not an error.
    async fn update_if_there(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        expressions: Expressions,
    ) -> Result<(), StoreError> {
        match self.update(key, update, condition, expressions).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn put(&self, item: &Item) -> Result<(), StoreError> {
        let request = json!({"TableName": self.table, "Item": item});
        self.call("PutItem", &request).await.map(drop)
    }
}

impl Store for DynamoDbStore {
    fn kind(&self) -> &'static str {
        "dynamodb"
    }

    /// A note is an item of its own, `{pk, n, expires_at}`: its writes are
    /// billed on its size alone, never on the chat record's.
    fn load_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let Some(item) = self.item(key).await? else {
                return Ok(None);
            };
            match item.get("n") {
                Some(AttributeValue::S(note)) => Ok(Some(note.clone())),
                _ => Err(StoreError::Unreadable(format!(
                    "{key}: a note without its text"
                ))),
            }
        })
    }

    fn save_note<'a>(
        &'a self,
        key: &'a str,
        note: &'a str,
        expires_at: Option<i64>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut item = HashMap::from([
                ("pk".to_owned(), AttributeValue::S(key.to_owned())),
                ("n".to_owned(), AttributeValue::S(note.to_owned())),
            ]);
            if let Some(expires_at) = expires_at {
                item.insert("expires_at".to_owned(), number(expires_at));
            }
            self.put(&item).await
        })
    }

    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let request = json!({"TableName": self.table, "Key": Self::key(key)});
            self.call("DeleteItem", &request).await.map(drop)
        })
    }

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
        Box::pin(async move { self.item(key).await?.as_ref().map(record_of).transpose() })
    }

    fn commit<'a>(&'a self, key: &'a str, commit: &'a Commit) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let new = commit.expected_version == 0;
            let mut set = vec!["v = :v".to_owned()];
            let mut remove = Vec::new();
            let mut expressions = Expressions::default()
                .value(":v", number(commit.expected_version.saturating_add(1)));
            let condition = if new {
                "attribute_not_exists(pk)"
            } else {
                expressions = expressions.value(":expected", number(commit.expected_version));
                "v = :expected"
            };
            if let Some(state) = &commit.state {
                set.push("s = :s".to_owned());
                expressions = expressions.value(":s", AttributeValue::S(state.clone()));
            }
            match commit.record_expires_at {
                Some(expires_at) => {
                    set.push("expires_at = :ttl".to_owned());
                    expressions = expressions.value(":ttl", number(expires_at));
                }
                // Retention turned off: an expiry set before must not
                // delete the record later.
                None if !new => remove.push("expires_at".to_owned()),
                None => {}
            }
            let update = commit.update.to_string();
            // The update goes into the outbox map, or, with nothing to send,
            // straight into the done map.
            let (entry_map, entry) = match &commit.pending {
                Some(pending) => ("p", pending_value(pending)),
                None => ("d", done_value(commit.done)),
            };
            if new {
                // A new item has no maps to set entries of yet.
                let mut p = HashMap::new();
                let mut d = HashMap::new();
                match entry_map {
                    "p" => p.insert(update, entry),
                    _ => d.insert(update, entry),
                };
                set.push("p = :p, d = :d".to_owned());
                expressions = expressions
                    .value(":p", AttributeValue::M(p))
                    .value(":d", AttributeValue::M(d));
            } else {
                set.push(format!("{entry_map}.#u = :entry"));
                expressions = expressions.name("#u", update).value(":entry", entry);
                let forget_pending = commit
                    .forget_pending
                    .iter()
                    .filter(|id| commit.pending.is_none() || **id != commit.update)
                    .map(|id| ("p", id));
                let forget_done = commit
                    .forget_done
                    .iter()
                    .chain(&commit.forget_done_until)
                    .filter(|id| commit.pending.is_some() || **id != commit.update)
                    .map(|id| ("d", id));
                for (index, (map, id)) in forget_pending.chain(forget_done).enumerate() {
                    remove.push(format!("{map}.#f{index}"));
                    expressions = expressions.name(format!("#f{index}"), id.to_string());
                }
            }
            let mut expression = format!("SET {}", set.join(", "));
            if !remove.is_empty() {
                expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
            }
            self.update(key, &expression, condition, expressions)
                .await
                .map_err(|error| match error {
                    // Nothing else is in a new item: this update's own
                    // state and replies are too large.
                    StoreError::TooLarge(why) if new => StoreError::UpdateTooLarge(why),
                    error => error,
                })
        })
    }

    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_until: i64,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let expressions = Expressions::default()
                .name("#u", update.to_string())
                .value(":lease", number(lease.until))
                .value(":owner", number(lease.owner))
                .value(":seen", number(seen_until));
            self.update(
                key,
                "SET p.#u.l = :lease, p.#u.o = :owner",
                "p.#u.l = :seen",
                expressions,
            )
            .await
        })
    }

    fn progress<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        sent: u32,
        lease: Lease,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let expressions = Expressions::default()
                .name("#u", update.to_string())
                .value(":n", number(sent))
                .value(":lease", number(lease.until))
                .value(":owner", number(lease.owner));
            // The outbox may be gone (finished by another run), or another
            // run took it over: its lease is not this run's to change.
            self.update_if_there(
                key,
                "SET p.#u.n = :n, p.#u.l = :lease",
                "p.#u.o = :owner",
                expressions,
            )
            .await
        })
    }

    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let expressions = Expressions::default()
                .name("#u", update.to_string())
                .value(":done", done_value(done));
            // The record may be gone (deleted by hand, or by TTL): nothing
            // to finish then.
            self.update_if_there(
                key,
                "REMOVE p.#u SET d.#u = :done",
                "attribute_exists(pk)",
                expressions,
            )
            .await
        })
    }

    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let expressions = Expressions::default()
                .name("#u", update.to_string())
                .value(":enqueued", number(QUEUED_ENQUEUED));
            // Finished by the worker already: nothing to mark then.
            self.update_if_there(
                key,
                "SET p.#u.q = :enqueued",
                "attribute_exists(p.#u)",
                expressions,
            )
            .await
        })
    }

    /// A read of a key no chat has (half a read unit), for the connection
    /// it leaves in the pool.
    fn warm_up(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let request = json!({"TableName": self.table, "Key": Self::key(WARM_UP_KEY)});
            self.call("GetItem", &request).await.map(drop)
        })
    }

    fn set_aside<'a>(&'a self, key: &'a str, at: i64) -> StoreFuture<'a, String> {
        Box::pin(async move {
            let aside = aside_key(key, at);
            let Some(mut item) = self.item(key).await? else {
                return Ok(aside);
            };
            let version = item.get("v").cloned();
            item.insert("pk".to_owned(), AttributeValue::S(aside.clone()));
            item.insert(
                "expires_at".to_owned(),
                number((at / 1000).saturating_add(KEEP_ASIDE_SECS)),
            );
            match self.put(&item).await {
                Ok(_) => {}
                // A record at the limit has no room for the new key: the
                // chat must not stay jammed for want of a copy.
                Err(StoreError::TooLarge(_)) => tracing::error!(
                    aside_key = aside,
                    "the record is too large to keep a copy of; deleting it without one"
                ),
                Err(error) => return Err(error),
            }
            // Only the record that was copied: one changed meanwhile is
            // read again by the next delivery.
            let (condition, expressions) = match version {
                Some(version) => ("v = :v", Expressions::default().value(":v", version)),
                None => ("attribute_not_exists(v)", Expressions::default()),
            };
            let request = expressions.into_request(json!({
                "TableName": self.table,
                "Key": Self::key(key),
                "ConditionExpression": condition,
            }));
            match self.call("DeleteItem", &request).await {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(aside),
                Err(error) => Err(error),
            }
        })
    }
}
