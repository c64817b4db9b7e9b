//! DynamoDB's failures sorted by what fixes them: a lost race (with the
//! item as it is now), a refusal, an item past its limit, an outage.

use super::*;

/// A failed condition becomes [`StoreError::Conflict`] with the item as it
/// is now; anything else is classified.
pub(super) fn conflict_or_classify<E>(
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
pub(super) trait ConditionFailure {
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
pub(super) fn classify<E>(
    error: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
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
        // One chat's record at DynamoDB's 400 KB item limit: that chat's
        // problem, set aside by the memory.
        "ValidationException" if error.message().is_some_and(is_item_size_limit) => {
            StoreError::TooLarge(described(&code, error.message()))
        }
        // Any other refusal is the same for every chat: a table whose key
        // is not `pk`, no such table, no permission. A deployment fault:
        // never acknowledged as if the update were answered.
        "AccessDeniedException"
        | "ResourceNotFoundException"
        | "UnrecognizedClientException"
        | "ValidationException" => StoreError::Refused(described(&code, error.message())),
        _ => StoreError::Unavailable(crate::error::chain(&error)),
    }
}

pub(super) fn described(code: &str, message: Option<&str>) -> String {
    match message {
        Some(message) => format!("{code}: {message}"),
        None => code.to_owned(),
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
}
