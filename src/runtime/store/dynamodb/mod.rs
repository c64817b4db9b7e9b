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
//! DynamoDB's limits shape the requests: an expression is at most 4 KB (so
//! a write drops a bounded number of old entries, see [`crate::memory`]),
//! an item at most 400 KB (a write past it is [`StoreError::TooLarge`]).

use super::{
    aside_key, ChatRecord, Commit, Done, Lease, Pending, Queued, Store, StoreError, StoreFuture,
    KEEP_ASIDE_SECS,
};
mod error;
mod item;

use error::{classify, conflict_or_classify};
pub use item::item_size;
use item::{done_value, number, pending_value, record_of, QUEUED_ENQUEUED};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// The key the start-up read asks for: never a chat's or user's.
const WARM_UP_KEY: &str = "warm-up";

/// A DynamoDB item, as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// Chat records in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    /// Builds the client; makes no request.
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        DynamoDbStore {
            client: Client::new(config),
            table: table.into(),
        }
    }

    /// The item under `key` as stored, read strongly consistently.
    async fn item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(output.item)
    }

    fn update(
        &self,
        key: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
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
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn delete_note<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_owned()))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
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
            let mut request = self.update(key).expression_attribute_values(
                ":v",
                number(commit.expected_version.saturating_add(1)),
            );
            request = if new {
                request.condition_expression("attribute_not_exists(pk)")
            } else {
                request
                    .condition_expression("v = :expected")
                    .expression_attribute_values(":expected", number(commit.expected_version))
            };
            if let Some(state) = &commit.state {
                set.push("s = :s".to_owned());
                request =
                    request.expression_attribute_values(":s", AttributeValue::S(state.clone()));
            }
            match commit.record_expires_at {
                Some(expires_at) => {
                    set.push("expires_at = :ttl".to_owned());
                    request = request.expression_attribute_values(":ttl", number(expires_at));
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
                request = request
                    .expression_attribute_values(":p", AttributeValue::M(p))
                    .expression_attribute_values(":d", AttributeValue::M(d));
            } else {
                set.push(format!("{entry_map}.#u = :entry"));
                request = request
                    .expression_attribute_names("#u", update)
                    .expression_attribute_values(":entry", entry);
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
                    request =
                        request.expression_attribute_names(format!("#f{index}"), id.to_string());
                }
            }
            let mut expression = format!("SET {}", set.join(", "));
            if !remove.is_empty() {
                expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
            }
            request
                .update_expression(expression)
                .send()
                .await
                .map(drop)
                .map_err(conflict_or_classify)
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
            self.update(key)
                .update_expression("SET p.#u.l = :lease, p.#u.o = :owner")
                .condition_expression("p.#u.l = :seen")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":lease", number(lease.until))
                .expression_attribute_values(":owner", number(lease.owner))
                .expression_attribute_values(":seen", number(seen_until))
                .send()
                .await
                .map(drop)
                .map_err(conflict_or_classify)
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
            let result = self
                .update(key)
                .update_expression("SET p.#u.n = :n, p.#u.l = :lease")
                .condition_expression("p.#u.o = :owner")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":n", number(sent))
                .expression_attribute_values(":lease", number(lease.until))
                .expression_attribute_values(":owner", number(lease.owner))
                .send()
                .await;
            match result.map_err(conflict_or_classify) {
                // The outbox is gone (finished by another run), or another
                // run took it over: its lease is not this run's to change.
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    fn finish<'a>(&'a self, key: &'a str, update: i64, done: Done) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self
                .update(key)
                .update_expression("REMOVE p.#u SET d.#u = :done")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":done", done_value(done))
                .send()
                .await;
            match result.map_err(conflict_or_classify) {
                // The record is gone (deleted by hand, or by TTL): nothing
                // to finish.
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    fn enqueued<'a>(&'a self, key: &'a str, update: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self
                .update(key)
                .update_expression("SET p.#u.q = :enqueued")
                .condition_expression("attribute_exists(p.#u)")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":enqueued", number(QUEUED_ENQUEUED))
                .send()
                .await;
            match result.map_err(conflict_or_classify) {
                // Finished by the worker already: nothing to mark.
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    /// A read of a key no chat has (half a read unit), for the connection
    /// it leaves in the pool.
    fn warm_up(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(WARM_UP_KEY.to_owned()))
                .send()
                .await
                .map(drop)
                .map_err(classify)
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
            let kept = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(classify);
            match kept {
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
            let delete = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_owned()));
            let delete = match version {
                Some(version) => delete
                    .condition_expression("v = :v")
                    .expression_attribute_values(":v", version),
                None => delete.condition_expression("attribute_not_exists(v)"),
            };
            match delete.send().await {
                Ok(_) => Ok(aside),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(aside)
                }
                Err(error) => Err(classify(error)),
            }
        })
    }
}
