//! Slow work off the webhook: an SQS FIFO queue between the webhook, which
//! defers an update the bot says is slow, and the worker, the same binary
//! deployed as a second function that the queue triggers.
//!
//! The protocol, on the chat's record ([`crate::memory`]):
//! 1. The webhook writes the update into the chat's record as accepted
//!    (the outbox's conditional write), then sends it to the queue
//!    (MessageGroupId: the chat's record, so a chat's updates go to the
//!    worker one at a time and in order; MessageDeduplicationId: the
//!    update's key, so a repeat within 5 minutes is dropped by SQS), then
//!    marks it enqueued, and answers 200.
//! 2. A delivery that finds it accepted sends it again; one that finds it
//!    enqueued is only acknowledged. An SQS failure after the record's
//!    write loses nothing.
//! 3. While the chat has an update deferred and not finished, its later
//!    messages are deferred behind it. Button presses never are.
//! 4. The worker answers it on the one answering path, with the same
//!    leases; its writes keep the update marked deferred until it is done.

use crate::aws::{AwsJson, CallError, SQS};
use crate::config::ConfigError;
use crate::telegram::Update;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the queue is, from the environment the template sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// `BOT_QUEUE_URL`: the FIFO queue slow updates go to.
    pub url: String,
    /// `BOT_DEAD_LETTER_QUEUE_URL`: where the worker keeps what it gave up.
    pub dead_letters: Option<String>,
    /// `BOT_QUEUE_MAX_RECEIVES`: the queue's maxReceiveCount, so that the
    /// worker knows its last try (default [`MAX_RECEIVES`]).
    pub max_receives: u32,
}

/// The queue's maxReceiveCount in the template: AWS advises at least 5
/// for a Lambda trigger, so that throttled invocations do not send
/// messages to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;

impl QueueConfig {
    /// `None` without `BOT_QUEUE_URL`.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<QueueConfig>, ConfigError> {
        let Some(url) = get("BOT_QUEUE_URL").map(|u| u.trim().to_owned()) else {
            return Ok(None);
        };
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(ConfigError::Invalid {
                var: "BOT_QUEUE_URL",
                reason: "expected the queue's URL (https://sqs.<region>.amazonaws.com/...)".into(),
            });
        }
        let max_receives = match get("BOT_QUEUE_MAX_RECEIVES") {
            None => MAX_RECEIVES,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    var: "BOT_QUEUE_MAX_RECEIVES",
                    reason: format!("expected the queue's maxReceiveCount (1-1000), got {v:?}"),
                })?,
        };
        Ok(Some(QueueConfig {
            url,
            dead_letters: get("BOT_DEAD_LETTER_QUEUE_URL").map(|u| u.trim().to_owned()),
            max_receives,
        }))
    }
}

/// The queue the webhook defers slow updates to.
#[derive(Debug, Clone)]
pub struct Queue {
    sqs: AwsJson,
    url: String,
    dead_letters: Option<String>,
}

/// Why an update could not be put on a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("could not send the update to the queue: {0}")]
    Send(#[from] CallError),
    #[error("could not encode the update for the queue: {0}")]
    Encode(String),
    #[error("the queue did not answer in time")]
    Timeout,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendMessage<'a> {
    queue_url: &'a str,
    message_body: &'a str,
    message_group_id: &'a str,
    message_deduplication_id: &'a str,
}

impl Queue {
    /// The queue at `url` (`BOT_QUEUE_URL`), its dead-letter queue at
    /// `dead_letters` (`BOT_DEAD_LETTER_QUEUE_URL`), with `config`'s
    /// credentials, at `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL` or the
    /// region's endpoint. Makes no request.
    pub fn new(
        config: &aws_config::SdkConfig,
        url: impl Into<String>,
        dead_letters: Option<String>,
    ) -> Self {
        Queue {
            sqs: AwsJson::new(config, SQS),
            url: url.into(),
            dead_letters,
        }
    }

    /// Sends `update` to the queue, in the group `group` (its chat's
    /// record), under `key` (unique per update: SQS drops a repeat sent
    /// within 5 minutes).
    pub async fn send(&self, update: &Update, group: &str, key: &str) -> Result<(), QueueError> {
        let body = serde_json::to_string(&update.to_value())
            .map_err(|e| QueueError::Encode(e.to_string()))?;
        self.send_to(&self.url, &body, group, key).await
    }

    /// Puts a message the worker gave up on into the dead-letter queue, for
    /// inspection; without one configured, does nothing.
    pub async fn keep_dead_letter(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let Some(url) = &self.dead_letters else {
            return Ok(());
        };
        let group = message.group().unwrap_or("none");
        self.send_to(url, &message.body, group, &message.message_id)
            .await
    }

    async fn send_to(
        &self,
        url: &str,
        body: &str,
        group: &str,
        key: &str,
    ) -> Result<(), QueueError> {
        let request = serde_json::to_vec(&SendMessage {
            queue_url: url,
            message_body: body,
            message_group_id: &sqs_id(group),
            message_deduplication_id: &sqs_id(key),
        })
        .map_err(|e| QueueError::Encode(e.to_string()))?;
        self.sqs.call("SendMessage", &request).await?;
        Ok(())
    }
}

impl QueueError {
    /// Whether the deployment, not time, must fix it: the queue refused
    /// the request for a reason a retry does not change (access denied,
    /// no such queue), as opposed to throttling, a 5xx or the network.
    pub fn is_configuration(&self) -> bool {
        match self {
            QueueError::Send(CallError::Refused { status, code, .. }) => {
                (400..500).contains(status) && *status != 429 && !code.contains("Throttl")
            }
            QueueError::Send(_) | QueueError::Timeout => false,
            QueueError::Encode(_) => true,
        }
    }
}

/// `id` as SQS takes a group or deduplication id: at most 128 characters
/// of letters, digits and punctuation. The ids made here are already so;
/// anything else is replaced rather than refused.
fn sqs_id(id: &str) -> String {
    id.chars()
        .map(|c| match c.is_ascii_graphic() {
            true => c,
            false => '_',
        })
        .take(128)
        .collect()
}

/// The event SQS's trigger (an event source mapping) invokes the worker
/// with: a batch of messages.
#[derive(Debug, Deserialize)]
pub struct QueueEvent {
    #[serde(rename = "Records")]
    pub records: Vec<QueueMessage>,
}

/// One message of the batch, as Lambda passes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueMessage {
    pub message_id: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub attributes: Attributes,
}

/// The message's system attributes the worker reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attributes {
    /// How many times the message was received, this time included: a
    /// string, as Lambda passes it.
    #[serde(default)]
    pub approximate_receive_count: Option<String>,
    #[serde(default)]
    pub message_group_id: Option<String>,
}

impl QueueEvent {
    /// The event, when `event` is one from SQS: told apart by its shape, as
    /// the health check's and the alarms' are.
    pub fn of_event(event: &Value) -> Option<QueueEvent> {
        let records = event.get("Records")?.as_array()?;
        let from_sqs = records
            .iter()
            .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
        if records.is_empty() || !from_sqs {
            return None;
        }
        serde_json::from_value(event.clone()).ok()
    }
}

impl QueueMessage {
    /// This receive's number, from 1.
    pub fn receive_count(&self) -> u32 {
        self.attributes
            .approximate_receive_count
            .as_deref()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    pub fn group(&self) -> Option<&str> {
        self.attributes.message_group_id.as_deref()
    }
}

/// The worker's answer with partial batch failure reporting
/// (`FunctionResponseTypes: [ReportBatchItemFailures]`): the messages to
/// receive again; the rest are deleted.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_sqs_event_is_told_apart_by_its_shape() {
        let event = json!({"Records": [{
            "messageId": "m-1", "receiptHandle": "r", "body": "{\"update_id\":1}",
            "attributes": {"ApproximateReceiveCount": "3", "MessageGroupId": "chat#7",
                "SentTimestamp": "1", "SequenceNumber": "1", "MessageDeduplicationId": "k"},
            "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:1:q.fifo", "awsRegion": "us-east-1"
        }]});
        let parsed = QueueEvent::of_event(&event).unwrap();
        assert_eq!(parsed.records[0].receive_count(), 3);
        assert_eq!(parsed.records[0].group(), Some("chat#7"));
        // SNS's alarm events have Records too.
        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]});
        assert!(QueueEvent::of_event(&sns).is_none());
        assert!(QueueEvent::of_event(&json!({"Records": []})).is_none());
    }

    #[test]
    fn a_refusal_is_the_deployments_to_fix_and_throttling_is_not() {
        let refused = |status, code: &str| {
            QueueError::Send(CallError::Refused {
                status,
                code: code.into(),
                message: String::new(),
            })
        };
        assert!(refused(400, "AccessDeniedException").is_configuration());
        assert!(refused(400, "QueueDoesNotExist").is_configuration());
        assert!(!refused(400, "ThrottlingException").is_configuration());
        assert!(!refused(500, "InternalError").is_configuration());
        assert!(!QueueError::Timeout.is_configuration());
    }

    #[test]
    fn ids_are_made_fit_for_sqs() {
        assert_eq!(sqs_id("chat#-100123"), "chat#-100123");
        assert_eq!(sqs_id("a b\u{e9}"), "a_b_");
        assert_eq!(sqs_id(&"x".repeat(200)).len(), 128);
    }

    #[test]
    fn failures_are_reported_as_lambda_reads_them() {
        let response = BatchResponse {
            batch_item_failures: vec![ItemFailure {
                item_identifier: "m-1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]})
        );
    }
}
