//! The store in a DynamoDB table, for the Lambda function: one item per
//! chat, partition key `pk`. Every call is a single-item request (no
//! transaction, which would cost twice): reads are strongly consistent, and
//! a write that loses a race gets the winning item back
//! (`ReturnValuesOnConditionCheckFailure`), so losing costs no extra read.
//!
//! Attributes: `v` version, `s` state (JSON), `p` a map from update id to
//! its outbox (`a` actions, `n` sent, `l` lease, `e` expiry), `d` a map
//! from done update id to when it was done, `expires_at` the item's TTL
//! (Unix seconds).

use super::{ChatRecord, Commit, Pending, Store, StoreError, StoreFuture};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

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

    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<ChatRecord>> {
        Box::pin(async move {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .map_err(classify)?;
            output.item.as_ref().map(record_of).transpose()
        })
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
            if let Some(expires_at) = commit.record_expires_at {
                set.push("expires_at = :ttl".to_owned());
                request = request.expression_attribute_values(":ttl", number(expires_at));
            }
            let update = commit.update.to_string();
            // The update goes into the outbox map, or, with nothing to send,
            // straight into the done map.
            let (entry_map, entry) = match &commit.pending {
                Some(pending) => ("p", pending_value(pending)),
                None => ("d", number(commit.at)),
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
                for (index, id) in commit
                    .forget_pending
                    .iter()
                    .filter(|id| commit.pending.is_none() || **id != commit.update)
                    .enumerate()
                {
                    remove.push(format!("p.#f{index}"));
                    request =
                        request.expression_attribute_names(format!("#f{index}"), id.to_string());
                }
                for (index, id) in commit
                    .forget_done
                    .iter()
                    .filter(|id| **id != commit.update)
                    .enumerate()
                {
                    remove.push(format!("d.#g{index}"));
                    request =
                        request.expression_attribute_names(format!("#g{index}"), id.to_string());
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
        })
    }

    fn take_over<'a>(
        &'a self,
        key: &'a str,
        update: i64,
        seen_lease: i64,
        lease_until: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.update(key)
                .update_expression("SET p.#u.l = :lease")
                .condition_expression("p.#u.l = :seen")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":lease", number(lease_until))
                .expression_attribute_values(":seen", number(seen_lease))
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
        lease_until: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self
                .update(key)
                .update_expression("SET p.#u.n = :n, p.#u.l = :lease")
                .condition_expression("attribute_exists(p.#u)")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":n", number(sent))
                .expression_attribute_values(":lease", number(lease_until))
                .send()
                .await;
            match result.map_err(conflict_or_classify) {
                // The outbox is gone: finished by another run.
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    fn finish<'a>(&'a self, key: &'a str, update: i64, at: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = self
                .update(key)
                .update_expression("REMOVE p.#u SET d.#u = :at")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#u", update.to_string())
                .expression_attribute_values(":at", number(at))
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
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn pending_value(pending: &Pending) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("a".to_owned(), AttributeValue::S(pending.actions.clone())),
        ("n".to_owned(), number(pending.sent)),
        ("l".to_owned(), number(pending.lease_until)),
        ("e".to_owned(), number(pending.expires)),
    ]))
}

fn record_of(item: &Item) -> Result<ChatRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("{what} in the chat's item"));
    let int = |value: Option<&AttributeValue>, what: &str| -> Result<i64, StoreError> {
        value
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt(what))
    };
    let version = int(item.get("v"), "no version")?;
    let state = match item.get("s") {
        None => None,
        Some(AttributeValue::S(state)) => Some(state.clone()),
        Some(_) => return Err(corrupt("a state that is not a string")),
    };
    let mut record = ChatRecord {
        version: u64::try_from(version).map_err(|_| corrupt("a negative version"))?,
        state,
        ..ChatRecord::default()
    };
    if let Some(AttributeValue::M(pending)) = item.get("p") {
        for (id, entry) in pending {
            let id: i64 = id.parse().map_err(|_| corrupt("an outbox key"))?;
            let AttributeValue::M(entry) = entry else {
                return Err(corrupt("an outbox that is not a map"));
            };
            let actions = match entry.get("a") {
                Some(AttributeValue::S(actions)) => actions.clone(),
                _ => return Err(corrupt("an outbox without actions")),
            };
            record.pending.insert(
                id,
                Pending {
                    actions,
                    sent: u32::try_from(int(entry.get("n"), "an outbox count")?)
                        .map_err(|_| corrupt("an outbox count"))?,
                    lease_until: int(entry.get("l"), "an outbox lease")?,
                    expires: int(entry.get("e"), "an outbox expiry")?,
                },
            );
        }
    }
    if let Some(AttributeValue::M(done)) = item.get("d") {
        for (id, at) in done {
            let id = id.parse().map_err(|_| corrupt("a done id"))?;
            record.done.insert(id, int(Some(at), "a done time")?);
        }
    }
    Ok(record)
}

/// A failed condition becomes [`StoreError::Conflict`] with the item as it
/// is now; anything else is classified.
fn conflict_or_classify<E>(
    error: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static + ConditionFailure,
{
    if let Some(failure) = error.as_service_error() {
        if let Some(item) = failure.condition_failure() {
            return StoreError::Conflict(item.and_then(|item| record_of(item).ok()).map(Box::new));
        }
    }
    classify(error)
}

/// The operation errors that can say a condition failed.
trait ConditionFailure {
    /// `Some` when the condition failed, with the item when returned.
    fn condition_failure(&self) -> Option<Option<&Item>>;
}

impl ConditionFailure for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failure(&self) -> Option<Option<&Item>> {
        match self {
            Self::ConditionalCheckFailedException(e) => Some(e.item()),
            _ => None,
        }
    }
}

/// Sorts an SDK failure by what fixes it.
fn classify<E>(error: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::TimeoutError(_) => return StoreError::Timeout,
        SdkError::DispatchFailure(_) => {
            return StoreError::Unavailable(crate::error::chain(&error));
        }
        _ => {}
    }
    let code = error.code().unwrap_or_default().to_owned();
    match code.as_str() {
        "ThrottlingException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "TransactionConflictException" => StoreError::Throttled(code),
        "AccessDeniedException" | "ResourceNotFoundException" | "UnrecognizedClientException" => {
            StoreError::Refused(match error.message() {
                Some(message) => format!("{code}: {message}"),
                None => code,
            })
        }
        // A record this request cannot apply to (over 400 KB, say): no
        // retry and no change of the deployment fixes it.
        "ValidationException" => StoreError::Corrupt(match error.message() {
            Some(message) => format!("{code}: {message}"),
            None => code,
        }),
        _ => StoreError::Unavailable(crate::error::chain(&error)),
    }
}
