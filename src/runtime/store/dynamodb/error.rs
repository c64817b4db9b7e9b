//! DynamoDB's failures sorted by what fixes them: a lost race (with the
//! item as it is now), a refusal, an item past its limit, an outage.

use super::*;
use crate::aws::CallError;

/// What DynamoDB's refusal of a failed condition carries: the item as it
/// is now (`ReturnValuesOnConditionCheckFailure` ALL_OLD), if there is one.
#[derive(serde::Deserialize)]
struct ConditionFailed {
    #[serde(rename = "Item")]
    item: Option<Item>,
}

/// A failed condition becomes [`StoreError::Conflict`] with the record as
/// it is now; anything else is sorted by what fixes it.
pub(super) fn classify(error: CallError, answer: &[u8]) -> StoreError {
    let (code, message) = match &error {
        CallError::Refused { code, message, .. } => (code.as_str(), message.as_str()),
        // No answer after the retries (the network, a timeout), or no way
        // to ask (no region, no credentials).
        CallError::Failed(why) => return StoreError::Unavailable(why.clone()),
    };
    match code {
        "ConditionalCheckFailedException" => {
            let now = serde_json::from_slice::<ConditionFailed>(answer)
                .ok()
                .and_then(|failed| failed.item)
                .and_then(|item| record_of(&item).ok());
            StoreError::Conflict(now.map(Box::new))
        }
        "ThrottlingException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "TransactionConflictException" => StoreError::Throttled(code.to_owned()),
        // One chat's record at DynamoDB's 400 KB item limit: that chat's
        // problem, set aside by the memory.
        "ValidationException" if is_item_size_limit(message) => {
            StoreError::TooLarge(described(code, message))
        }
        // Any other refusal is the same for every chat: a table whose key
        // is not `pk`, no such table, no permission. A deployment fault:
        // never acknowledged as if the update were answered.
        "AccessDeniedException"
        | "ResourceNotFoundException"
        | "UnrecognizedClientException"
        | "ValidationException" => StoreError::Refused(described(code, message)),
        _ => StoreError::Unavailable(error.to_string()),
    }
}

pub(super) fn described(code: &str, message: &str) -> String {
    match message {
        "" => code.to_owned(),
        message => format!("{code}: {message}"),
    }
}

/// DynamoDB's words for an item past 400 KB: "Item size has exceeded the
/// maximum allowed size" (PutItem), "Item size to update has exceeded the
/// maximum allowed size" (UpdateItem).
pub(super) fn is_item_size_limit(message: &str) -> bool {
    message.starts_with("Item size") && message.contains("exceeded the maximum allowed size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dynamodbs_item_size_refusals_count_as_one_chats_problem() {
        assert!(is_item_size_limit(
            "Item size has exceeded the maximum allowed size"
        ));
        assert!(is_item_size_limit(
            "Item size to update has exceeded the maximum allowed size"
        ));
        for other in [
            "The provided key element does not match the schema",
            "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size; expression size: 4110",
            "One or more parameter values were invalid: Missing the key pk in the item",
        ] {
            assert!(!is_item_size_limit(other), "{other}");
        }
    }

    fn refused(code: &str, message: &str) -> CallError {
        CallError::Refused {
            status: 400,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn failures_are_sorted_by_what_fixes_them() {
        let item = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed","Item":{"pk":{"S":"chat#1"},"v":{"N":"7"}}}"#;
        let StoreError::Conflict(Some(now)) =
            classify(refused("ConditionalCheckFailedException", ""), item)
        else {
            panic!("a conflict with the record as it is now");
        };
        assert_eq!(now.version, 7);
        assert!(matches!(
            classify(refused("ConditionalCheckFailedException", ""), b"{}"),
            StoreError::Conflict(None)
        ));
        assert!(matches!(
            classify(refused("ProvisionedThroughputExceededException", "x"), b""),
            StoreError::Throttled(_)
        ));
        assert!(matches!(
            classify(
                refused(
                    "ValidationException",
                    "Item size has exceeded the maximum allowed size"
                ),
                b""
            ),
            StoreError::TooLarge(_)
        ));
        assert_eq!(
            classify(refused("AccessDeniedException", "no"), b"").to_string(),
            StoreError::Refused("AccessDeniedException: no".into()).to_string()
        );
        assert!(matches!(
            classify(CallError::Failed("timed out".into()), b""),
            StoreError::Unavailable(_)
        ));
    }
}
