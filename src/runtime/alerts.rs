//! Alarms told in Telegram: with `AdminChatId` set (and monitoring on), the
//! alarms' SNS topic invokes the function, and each change of an alarm's
//! state becomes one message in the admin chat: when the bot turns
//! unhealthy and when it recovers. CloudWatch notifies on changes only, so
//! a lasting problem is told once.
//!
//! Told apart from a webhook request by the event's shape (an SNS record;
//! API Gateway and Function URL events always have `requestContext`), so a
//! request from the internet can never pass for an alarm.

use crate::client::BotApi;
use crate::error::Chain;
use crate::retry::{retry, GaveUp, RetryPolicy, Stop};
use crate::telegram::{ChatId, SendMessage};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

/// One alarm's change of state, as CloudWatch publishes it to SNS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlarmChange {
    pub alarm_name: String,
    pub new_state_value: String,
    #[serde(default)]
    pub old_state_value: Option<String>,
    #[serde(default)]
    pub new_state_reason: Option<String>,
}

/// The most of CloudWatch's reason a message carries: it can be long, and
/// the state and the alarm's name are what matter at a glance.
const MAX_REASON_CHARS: usize = 600;

impl AlarmChange {
    /// The alarm changes an SNS event carries; `None` for any other event.
    /// A record that is not a CloudWatch alarm is left out.
    pub fn of_event(event: &Value) -> Option<Vec<AlarmChange>> {
        if event.get("requestContext").is_some() {
            return None;
        }
        let records = event.get("Records")?.as_array()?;
        let sns: Vec<&Value> = records
            .iter()
            .filter(|r| r.get("EventSource").and_then(Value::as_str) == Some("aws:sns"))
            .collect();
        if sns.is_empty() {
            return None;
        }
        Some(
            sns.iter()
                .filter_map(|r| r.pointer("/Sns/Message")?.as_str())
                .filter_map(|message| serde_json::from_str(message).ok())
                .collect(),
        )
    }

    /// The admin chat's message: what changed, and CloudWatch's reason when
    /// the bot turned unhealthy.
    pub fn text(&self) -> String {
        match self.new_state_value.as_str() {
            "OK" => format!("✅ {} is OK again.", self.alarm_name),
            "ALARM" => {
                let mut text = format!(
                    "🔴 {} is in ALARM (README, Operate, says what to do).",
                    self.alarm_name
                );
                if let Some(reason) = &self.new_state_reason {
                    text.push_str("\n\n");
                    text.extend(reason.chars().take(MAX_REASON_CHARS));
                }
                text
            }
            other => format!("⚪ {} is {other}.", self.alarm_name),
        }
    }
}

/// Tells `chat` of each change, within `deadline`. Never fails the
/// invocation: a failed message is logged, and not retried by Lambda, since
/// a failing function would itself raise the errors alarm and tell again.
pub async fn tell(api: &BotApi, chat: Option<ChatId>, changes: &[AlarmChange], deadline: Instant) {
    for change in changes {
        let Some(chat) = chat else {
            tracing::warn!(
                alarm = change.alarm_name,
                state = change.new_state_value,
                outcome = "not_told",
                "an alarm changed, and BOT_ADMIN_CHAT_ID names no chat to tell"
            );
            continue;
        };
        let message = SendMessage::to_chat(chat, change.text());
        let sent = retry(
            &RetryPolicy::webhook(deadline),
            &mut Stop::never(),
            "sendMessage",
            || api.send_message(&message, Some(deadline)),
        )
        .await;
        match sent {
            Ok(_) => tracing::info!(
                alarm = change.alarm_name,
                state = change.new_state_value,
                outcome = "told",
                "alarm told in the admin chat"
            ),
            Err(GaveUp::Failed(error) | GaveUp::Stopped(error)) => tracing::error!(
                alarm = change.alarm_name,
                state = change.new_state_value,
                outcome = "not_told",
                error = %Chain(&error),
                "could not tell the admin chat of an alarm"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sns_event(message: &Value) -> Value {
        json!({"Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:telegram-bot-alarms:1a2b",
            "Sns": {
                "Type": "Notification",
                "TopicArn": "arn:aws:sns:eu-west-1:123456789012:telegram-bot-alarms",
                "Subject": "ALARM: \"telegram-bot-errors\" in EU (Ireland)",
                "Message": message.to_string(),
                "Timestamp": "2026-12-02T12:00:00.000Z"
            }
        }]})
    }

    #[test]
    fn a_cloudwatch_alarm_through_sns_is_read_and_worded() {
        let event = sns_event(&json!({
            "AlarmName": "telegram-bot-errors",
            "AlarmDescription": "The function failed or is misconfigured (README, Operate).",
            "NewStateValue": "ALARM",
            "OldStateValue": "OK",
            "NewStateReason": "Threshold Crossed: 1 datapoint [2.0] was greater than or equal to the threshold (1.0).",
            "StateChangeTime": "2026-12-02T12:00:00.000+0000",
            "Region": "EU (Ireland)"
        }));
        let changes = AlarmChange::of_event(&event).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].text(),
            "🔴 telegram-bot-errors is in ALARM (README, Operate, says what to do).\n\n\
             Threshold Crossed: 1 datapoint [2.0] was greater than or equal to the threshold (1.0)."
        );
        let recovered = AlarmChange {
            new_state_value: "OK".into(),
            ..changes[0].clone()
        };
        assert_eq!(recovered.text(), "✅ telegram-bot-errors is OK again.");
    }

    #[test]
    fn webhook_requests_and_other_events_are_not_alarms() {
        let mut request = sns_event(&json!({"AlarmName": "x", "NewStateValue": "ALARM"}));
        request["requestContext"] = json!({"http": {"method": "POST"}});
        assert_eq!(AlarmChange::of_event(&request), None);
        assert_eq!(AlarmChange::of_event(&json!({"health_check": {}})), None);
        assert_eq!(
            AlarmChange::of_event(&json!({"Records": [{"EventSource": "aws:s3"}]})),
            None
        );
        // An SNS message that is not an alarm is left out, not an error.
        let other = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "hello"}}]});
        assert_eq!(AlarmChange::of_event(&other), Some(Vec::new()));
    }

    #[test]
    fn a_long_reason_is_cut() {
        let change = AlarmChange {
            alarm_name: "a".into(),
            new_state_value: "ALARM".into(),
            old_state_value: None,
            new_state_reason: Some("x".repeat(5000)),
        };
        assert!(change.text().chars().count() < 700);
    }
}
