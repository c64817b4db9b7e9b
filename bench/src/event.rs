//! The events the functions get: the sample event from `events/`,
//! re-rendered with a new `update_id` per invocation. The function drops an
//! update it has already answered, so repeating one would measure the
//! duplicate path instead of a reply.

use crate::BenchError;
use bytes::Bytes;
use serde_json::Value;
use std::path::Path;

pub struct EventTemplate {
    event: Value,
    update: Value,
    first_update_id: i64,
    /// The chat the webhook must reply to.
    pub chat_id: i64,
    /// A button press (a callback query) rather than a message: the webhook
    /// answers it (answerCallbackQuery) instead of sending a reply.
    pub press: bool,
}

impl EventTemplate {
    pub fn load(path: &Path) -> Result<EventTemplate, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
        EventTemplate::parse(&text)
            .map_err(|why| BenchError::Usage(format!("{}: {why}", path.display())))
    }

    /// The template in an HTTP API event's text, or why it cannot be one.
    fn parse(text: &str) -> Result<EventTemplate, String> {
        let event: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if event.get("isBase64Encoded") == Some(&Value::Bool(true)) {
            return Err("needs a plain (not base64) body".to_owned());
        }
        let body = event.get("body").and_then(Value::as_str).ok_or("no body")?;
        let update: Value =
            serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let first_update_id = update
            .get("update_id")
            .and_then(Value::as_i64)
            .ok_or("the update has no update_id")?;
        let press = update.get("callback_query").is_some();
        let chat_id = update
            .pointer("/message/chat/id")
            .or_else(|| update.pointer("/callback_query/message/chat/id"))
            .and_then(Value::as_i64)
            .ok_or("the update is not a message or a button press in a chat")?;
        Ok(EventTemplate {
            event,
            update,
            first_update_id,
            chat_id,
            press,
        })
    }

    /// The event carrying update `offset` after the sample's, and the update.
    pub fn render(&self, offset: usize) -> Result<(Bytes, Value), BenchError> {
        let mut update = self.update.clone();
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        update["update_id"] = Value::from(self.first_update_id.saturating_add(offset));
        if self.press {
            // Each press is a new query.
            update["callback_query"]["id"] = Value::from(format!("bench-{offset}"));
        }
        let body = update.to_string();
        let mut event = self.event.clone();
        // Kept true to the new body, as API Gateway would send it.
        if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut) {
            headers.insert(
                "content-length".to_owned(),
                Value::from(body.len().to_string()),
            );
        }
        event["body"] = Value::from(body);
        let bytes = serde_json::to_vec(&event)
            .map_err(|e| BenchError::Other(format!("encoding the event: {e}")))?;
        Ok((Bytes::from(bytes), update))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> String {
        let update = json!({"update_id": 100, "message": {"chat": {"id": 7}, "text": "hi"}});
        json!({
            "headers": {"content-length": "1"},
            "isBase64Encoded": false,
            "body": update.to_string(),
        })
        .to_string()
    }

    #[test]
    fn each_rendering_carries_a_new_update_id_and_its_length() {
        let template = EventTemplate::parse(&sample()).unwrap();
        assert_eq!(template.chat_id, 7);
        let (bytes, update) = template.render(5).unwrap();
        assert_eq!(update["update_id"], 105);
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        let body = event["body"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), update);
        assert_eq!(event["headers"]["content-length"], body.len().to_string());
    }

    #[test]
    fn an_event_without_a_message_update_is_refused() {
        let base64 = json!({"isBase64Encoded": true, "body": "e30="}).to_string();
        assert!(EventTemplate::parse(&base64).is_err());
        assert!(EventTemplate::parse(r#"{"body": "{\"update_id\": 1}"}"#).is_err());
        assert!(EventTemplate::parse("{}").is_err());
        assert!(EventTemplate::parse("not json").is_err());
    }
}

#[cfg(test)]
mod press_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_press_gets_a_new_query_id_per_invocation() {
        let update = json!({"update_id": 10, "callback_query": {
            "id": "q", "data": "counter:+1",
            "message": {"message_id": 3, "chat": {"id": 9}}}});
        let text = json!({"body": update.to_string()}).to_string();
        let template = EventTemplate::parse(&text).unwrap();
        assert!(template.press);
        assert_eq!(template.chat_id, 9);
        let (_, rendered) = template.render(4).unwrap();
        assert_eq!(rendered["update_id"], 14);
        assert_eq!(rendered["callback_query"]["id"], "bench-4");
    }
}
