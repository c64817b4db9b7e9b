//! The baseline for the bench: the smallest function on `lambda_runtime`
//! that answers an HTTP API event as the webhook does when all went well
//! (200, in API Gateway's response shape), without any I/O of its own.
//! Whatever the webhook measures above this is the bot's own cost.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

// The same multi-threaded runtime as the webhook's `#[tokio::main]`, so the
// difference between the two is the bot and not the executor.
#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<Value, Error>(json!({
            "statusCode": 200,
            "headers": {"content-type": "text/plain"},
            "body": "",
        }))
    }))
    .await
}
