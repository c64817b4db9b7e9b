//! The bot's DynamoDB table, with memory on: it must have the key the code
//! uses and TTL on `expires_at`, since a table made another way refuses
//! every request and one without TTL keeps records for ever.

use serde_json::Value;

use super::aws::{aws, AwsError};
use super::{Finding, Mark};

/// The table is the one the code needs: partition key `pk` (a string) and
/// no sort key, and TTL on `expires_at`. `described` is `aws dynamodb
/// describe-table`'s JSON, `ttl` `describe-time-to-live`'s. A table made
/// another way refuses every request (a 500 for every update), and one
/// without TTL keeps quiet chats' records for ever.
pub fn check_table(
    name: &str,
    described: &Result<Vec<u8>, AwsError>,
    ttl: &Result<Vec<u8>, AwsError>,
) -> Finding {
    let fail = |detail: String| Finding::new(Mark::Fail, "table", format!("{name}: {detail}"));
    let (described, ttl) = match (described, ttl) {
        (Err(error), _) | (_, Err(error)) => return fail(error.to_string()),
        (Ok(described), Ok(ttl)) => (described, ttl),
    };
    let (Ok(described), Ok(ttl)) = (
        serde_json::from_slice::<Value>(described),
        serde_json::from_slice::<Value>(ttl),
    ) else {
        return fail("aws answered something other than the table's JSON".to_owned());
    };
    let table = &described["Table"];
    let keys: Vec<(String, String)> = table["KeySchema"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    let field = |name: &str| k[name].as_str().unwrap_or_default().to_owned();
                    (field("AttributeName"), field("KeyType"))
                })
                .collect()
        })
        .unwrap_or_default();
    let type_of = |attribute: &str| {
        table["AttributeDefinitions"]
            .as_array()
            .and_then(|definitions| {
                definitions
                    .iter()
                    .find(|d| d["AttributeName"] == attribute)
                    .and_then(|d| d["AttributeType"].as_str())
            })
            .unwrap_or_default()
    };
    if keys != [("pk".to_owned(), "HASH".to_owned())] || type_of("pk") != "S" {
        let shown: Vec<String> = keys
            .iter()
            .map(|(name, kind)| format!("{name} ({kind}, {})", type_of(name)))
            .collect();
        return fail(format!(
            "its key is {}; the function needs a partition key pk of type S and no sort key, as template.yaml creates it",
            if shown.is_empty() { "unknown".to_owned() } else { shown.join(", ") }
        ));
    }
    let description = &ttl["TimeToLiveDescription"];
    let status = description["TimeToLiveStatus"]
        .as_str()
        .unwrap_or("DISABLED");
    let attribute = description["AttributeName"].as_str().unwrap_or_default();
    if !matches!(status, "ENABLED" | "ENABLING") || attribute != "expires_at" {
        return fail(format!(
            "TTL is {} (on {}); it must be on expires_at, or quiet chats' records and records set aside are never deleted",
            status.to_lowercase(),
            if attribute.is_empty() { "no attribute" } else { attribute }
        ));
    }
    Finding::new(
        Mark::Ok,
        "table",
        format!("{name}: key pk, TTL on expires_at"),
    )
}

pub(super) async fn read_table(
    name: &str,
    region: Option<&str>,
) -> (Result<Vec<u8>, AwsError>, Result<Vec<u8>, AwsError>) {
    let described = describe_table("dynamodb describe-table", name, region).await;
    let ttl = describe_table("dynamodb describe-time-to-live", name, region).await;
    (described, ttl)
}

/// `aws dynamodb <verb> --table-name <name>`, for `call` "dynamodb <verb>".
async fn describe_table(
    call: &'static str,
    name: &str,
    region: Option<&str>,
) -> Result<Vec<u8>, AwsError> {
    let verb = call.trim_start_matches("dynamodb ");
    let args = ["dynamodb", verb, "--table-name", name, "--output", "json"];
    aws(call, &args, region).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table_json(keys: Value, types: Value) -> Result<Vec<u8>, AwsError> {
        Ok(
            json!({"Table": {"TableName": "t", "KeySchema": keys, "AttributeDefinitions": types}})
                .to_string()
                .into_bytes(),
        )
    }

    fn ttl_json(status: &str, attribute: &str) -> Result<Vec<u8>, AwsError> {
        Ok(json!({"TimeToLiveDescription": {"TimeToLiveStatus": status, "AttributeName": attribute}})
            .to_string()
            .into_bytes())
    }

    #[test]
    fn the_table_must_have_the_codes_key_and_ttl() {
        let pk = || {
            table_json(
                json!([{"AttributeName": "pk", "KeyType": "HASH"}]),
                json!([{"AttributeName": "pk", "AttributeType": "S"}]),
            )
        };
        let good = check_table("t", &pk(), &ttl_json("ENABLED", "expires_at"));
        assert_eq!(
            good.to_string(),
            "ok    table: t: key pk, TTL on expires_at"
        );
        let other_key = table_json(
            json!([{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}]),
            json!([{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "at", "AttributeType": "N"}]),
        );
        let wrong = check_table("t", &other_key, &ttl_json("ENABLED", "expires_at"));
        assert_eq!(wrong.mark, Mark::Fail);
        assert!(
            wrong
                .detail
                .contains("its key is id (HASH, S), at (RANGE, N)"),
            "{wrong}"
        );
        let number_key = table_json(
            json!([{"AttributeName": "pk", "KeyType": "HASH"}]),
            json!([{"AttributeName": "pk", "AttributeType": "N"}]),
        );
        assert_eq!(
            check_table("t", &number_key, &ttl_json("ENABLED", "expires_at")).mark,
            Mark::Fail
        );
        let off = check_table("t", &pk(), &ttl_json("DISABLED", ""));
        assert_eq!(off.mark, Mark::Fail);
        assert!(
            off.detail.contains("TTL is disabled (on no attribute)"),
            "{off}"
        );
        let elsewhere = check_table("t", &pk(), &ttl_json("ENABLED", "ttl"));
        assert_eq!(elsewhere.mark, Mark::Fail);
        let missing = Err(AwsError::Failed {
            call: "dynamodb describe-table",
            reason: "An error occurred (ResourceNotFoundException) when calling the DescribeTable operation: Requested resource not found".to_owned(),
        });
        let gone = check_table("t", &missing, &ttl_json("ENABLED", "expires_at"));
        assert_eq!(gone.mark, Mark::Fail);
        assert!(gone.detail.contains("ResourceNotFoundException"), "{gone}");
    }
}
