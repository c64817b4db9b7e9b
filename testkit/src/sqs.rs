//! SQS FIFO queues on moto, and the queue's trigger as Lambda runs it: moto
//! has SQS but no event source mapping, so [`Trigger`] receives messages,
//! builds the event Lambda would build, hands it to the worker, and deletes
//! what the worker's answer does not report failed.

use crate::Moto;
use serde_json::{json, Value};
use std::time::Duration;

/// A FIFO queue and its dead-letter queue, as template.yaml declares them.
#[derive(Debug, Clone)]
pub struct FifoQueue {
    pub url: String,
    pub dead_letters: String,
    pub max_receives: u32,
}

/// moto's account, in the queues' ARNs.
const ACCOUNT: &str = "123456789012";

impl Moto {
    /// One SQS call in the JSON protocol, unsigned (moto does not check
    /// signatures; the bot's own client is what gets tested).
    pub async fn sqs(&self, operation: &str, body: Value) -> Value {
        sqs(&self.endpoint, operation, body).await
    }

    /// Creates `name`.fifo with its dead-letter queue: messages move there
    /// after `max_receives` receives, each invisible for `visibility` after
    /// it is received.
    pub async fn create_fifo_queue(
        &self,
        name: &str,
        visibility: Duration,
        max_receives: u32,
    ) -> FifoQueue {
        let dead = format!("{name}-dead-letters.fifo");
        let dead_letters = self
            .sqs(
                "CreateQueue",
                json!({"QueueName": dead, "Attributes": {"FifoQueue": "true"}}),
            )
            .await["QueueUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let redrive = json!({
            "deadLetterTargetArn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{dead}"),
            "maxReceiveCount": max_receives.to_string(),
        });
        let url = self
            .sqs(
                "CreateQueue",
                json!({"QueueName": format!("{name}.fifo"), "Attributes": {
                    "FifoQueue": "true",
                    "VisibilityTimeout": visibility.as_secs().max(1).to_string(),
                    "RedrivePolicy": redrive.to_string(),
                }}),
            )
            .await["QueueUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        FifoQueue {
            url,
            dead_letters,
            max_receives,
        }
    }

    /// The messages in `url`, visible or in flight, without receiving them.
    pub async fn queue_depth(&self, url: &str) -> u64 {
        let answer = self
            .sqs(
                "GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": [
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
            )
            .await;
        [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        .iter()
        .map(|name| {
            answer["Attributes"][name]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_default()
        })
        .sum()
    }

    /// The bodies of the messages in `url` that can be received now, each
    /// made visible again at once (`VisibilityTimeout` 0). A receive: it
    /// counts towards the redrive's maxReceiveCount.
    pub async fn peek(&self, url: &str) -> Vec<String> {
        let answer = self
            .sqs(
                "ReceiveMessage",
                json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0}),
            )
            .await;
        messages(&answer)
            .iter()
            .map(|m| m["Body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// One SQS call to moto at `endpoint`, unsigned.
async fn sqs(endpoint: &str, operation: &str, body: Value) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{endpoint}/"))
            .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("AmazonSQS.{operation}"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "{operation}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn messages(answer: &Value) -> Vec<Value> {
    answer["Messages"].as_array().cloned().unwrap_or_default()
}

/// What Lambda's event source mapping does for the worker function.
#[derive(Debug, Clone)]
pub struct Trigger {
    endpoint: String,
    queue: FifoQueue,
}

/// A batch handed to the worker: the event, and each message's receipt.
#[derive(Debug, Clone)]
pub struct Batch {
    pub event: Value,
    receipts: Vec<(String, String)>,
}

impl Batch {
    /// Each message as a batch of its own, as a trigger with BatchSize 1
    /// hands them to separate invocations.
    pub fn split(self) -> Vec<Batch> {
        let records = self.event["Records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        records
            .into_iter()
            .zip(self.receipts)
            .map(|(record, receipt)| Batch {
                event: json!({ "Records": [record] }),
                receipts: vec![receipt],
            })
            .collect()
    }
}

impl Trigger {
    pub fn new(moto: &Moto, queue: &FifoQueue) -> Self {
        Trigger {
            endpoint: moto.endpoint.clone(),
            queue: queue.clone(),
        }
    }

    /// The trigger, talking to moto without the proxy.
    pub fn direct(moto: &Moto, queue: &FifoQueue) -> Self {
        Trigger {
            endpoint: moto.direct.clone(),
            queue: queue.clone(),
        }
    }

    /// Receives up to `size` messages as Lambda's poller does, with every
    /// system attribute, as the event Lambda builds; `None` when none can
    /// be received now.
    pub async fn receive(&self, size: u32) -> Option<Batch> {
        let answer = sqs(
            &self.endpoint,
            "ReceiveMessage",
            json!({"QueueUrl": self.queue.url, "MaxNumberOfMessages": size,
                    "AttributeNames": ["All"], "MessageSystemAttributeNames": ["All"]}),
        )
        .await;
        let received = messages(&answer);
        if received.is_empty() {
            return None;
        }
        let name = self.queue.url.rsplit('/').next().unwrap_or_default();
        let records: Vec<Value> = received
            .iter()
            .map(|m| {
                json!({
                    "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"], "attributes": m["Attributes"],
                    "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"),
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let receipts = received
            .iter()
            .map(|m| {
                (
                    m["MessageId"].as_str().unwrap_or_default().to_owned(),
                    m["ReceiptHandle"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Some(Batch {
            event: json!({ "Records": records }),
            receipts,
        })
    }

    /// Deletes the batch's messages that `answer` (the worker's
    /// `batchItemFailures`) does not name; `None` (the worker died, or
    /// timed out) deletes nothing, as Lambda does.
    pub async fn settle(&self, batch: &Batch, answer: Option<&Value>) {
        let Some(answer) = answer else {
            return;
        };
        let failed: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|i| i["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for (id, receipt) in &batch.receipts {
            if !failed.contains(&id.as_str()) {
                sqs(
                    &self.endpoint,
                    "DeleteMessage",
                    json!({"QueueUrl": self.queue.url, "ReceiptHandle": receipt}),
                )
                .await;
            }
        }
    }
}
