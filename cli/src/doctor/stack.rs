//! The stack scripts/deploy created: its outputs say what the other checks
//! check (the webhook URL, the table, the alarms, the bot's parameters), so
//! a stack that cannot be read stops the doctor early.

use serde_json::Value;

use super::aws::{aws, AwsError};
use super::{Finding, Mark};

/// What the deployed stack says about the bot (its Outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub webhook_url: String,
    pub function_name: Option<String>,
    pub memory: bool,
    /// The bot's DynamoDB table, with memory on.
    pub memory_table: Option<String>,
    pub bot_username: Option<String>,
    pub token_parameter: Option<String>,
    pub secret_parameter: Option<String>,
    /// Deployed with `Monitoring=On`: it has alarms.
    pub monitoring: bool,
    /// When the stack was last deployed (Unix seconds, CloudFormation's
    /// clock, which CloudWatch's alarms share).
    pub deployed_at: Option<i64>,
}

/// Why the stack's description is not usable.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("aws answered something other than the stack's JSON")]
    Json(#[from] serde_json::Error),
    #[error("no such stack in the answer")]
    NoStack,
    #[error("the stack has no {0} output (is it deployed by scripts/deploy, and finished?)")]
    NoOutput(&'static str),
}

/// Reads `aws cloudformation describe-stacks --output json`. Empty outputs
/// count as absent: BotUsername is empty when the deploy was not told it.
pub fn parse_stack(json: &[u8]) -> Result<Stack, StackError> {
    let answer: Value = serde_json::from_slice(json)?;
    let stack = answer
        .get("Stacks")
        .and_then(|s| s.get(0))
        .ok_or(StackError::NoStack)?;
    let empty = Vec::new();
    let outputs = stack
        .get("Outputs")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let output = |key: &str| {
        outputs
            .iter()
            .find(|o| o.get("OutputKey").and_then(Value::as_str) == Some(key))
            .and_then(|o| o.get("OutputValue").and_then(Value::as_str))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(Stack {
        webhook_url: output("WebhookUrl").ok_or(StackError::NoOutput("WebhookUrl"))?,
        function_name: output("FunctionName"),
        memory: output("MemoryTableName").is_some(),
        memory_table: output("MemoryTableName"),
        bot_username: output("BotUsername").map(|u| u.trim_start_matches('@').to_owned()),
        token_parameter: output("BotTokenParameter"),
        secret_parameter: output("WebhookSecretParameter"),
        monitoring: output("DashboardUrl").is_some(),
        deployed_at: ["LastUpdatedTime", "CreationTime"]
            .iter()
            .find_map(|key| stack.get(*key).and_then(Value::as_str))
            .and_then(super::unix_seconds),
    })
}

pub(super) fn stack_finding(name: &str, stack: &Stack) -> Finding {
    let mut detail = name.to_owned();
    if let Some(function) = &stack.function_name {
        detail.push_str(&format!(", function {function}"));
    }
    detail.push_str(if stack.memory {
        ", memory on"
    } else {
        ", memory off"
    });
    Finding::new(Mark::Ok, "stack", detail)
}

/// Why the stack could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadStackError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Stack(#[from] StackError),
}

pub(super) async fn read_stack(name: &str, region: Option<&str>) -> Result<Stack, ReadStackError> {
    let json = aws(
        "cloudformation describe-stacks",
        &[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            name,
            "--output",
            "json",
        ],
        region,
    )
    .await?;
    Ok(parse_stack(&json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_outputs_are_read_and_empty_ones_are_absent() {
        let json = br#"{"Stacks":[{"StackName":"telegram-bot",
            "CreationTime":"2026-12-01T10:00:00.000000+00:00",
            "LastUpdatedTime":"2026-12-07T04:39:51.123000+00:00","Outputs":[
            {"OutputKey":"WebhookUrl","OutputValue":"https://abc.example/webhook"},
            {"OutputKey":"FunctionName","OutputValue":"telegram-bot-Webhook-1"},
            {"OutputKey":"BotUsername","OutputValue":""},
            {"OutputKey":"BotTokenParameter","OutputValue":"/telegram-bot/bot-token"},
            {"OutputKey":"WebhookSecretParameter","OutputValue":"/telegram-bot/webhook-secret"}
        ]}]}"#;
        assert_eq!(
            parse_stack(json).unwrap(),
            Stack {
                webhook_url: "https://abc.example/webhook".to_owned(),
                function_name: Some("telegram-bot-Webhook-1".to_owned()),
                memory: false,
                memory_table: None,
                bot_username: None,
                token_parameter: Some("/telegram-bot/bot-token".to_owned()),
                secret_parameter: Some("/telegram-bot/webhook-secret".to_owned()),
                monitoring: false,
                deployed_at: Some(1_796_618_391),
            }
        );
        let with_memory = br#"{"Stacks":[{"Outputs":[
            {"OutputKey":"WebhookUrl","OutputValue":"https://abc.example/webhook"},
            {"OutputKey":"MemoryTableName","OutputValue":"telegram-bot-MemoryTable-1"},
            {"OutputKey":"BotUsername","OutputValue":"@EchoBot"}]}]}"#;
        let stack = parse_stack(with_memory).unwrap();
        assert!(stack.memory);
        assert_eq!(stack.bot_username.as_deref(), Some("EchoBot"));
    }

    #[test]
    fn a_stack_without_its_webhook_url_is_an_error_that_names_it() {
        let error = parse_stack(br#"{"Stacks":[{"StackStatus":"CREATE_IN_PROGRESS"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no WebhookUrl output"), "{error}");
        assert!(matches!(
            parse_stack(br#"{"Stacks":[]}"#),
            Err(StackError::NoStack)
        ));
        assert!(matches!(parse_stack(b"<html>"), Err(StackError::Json(_))));
    }
}
