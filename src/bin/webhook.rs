//! The Lambda function: builds everything once at cold start, then serves
//! invocations. No Bot API call is made here.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use telegram_lambda_bot::config::{Config, InitError};
use telegram_lambda_bot::error::Chain;
use telegram_lambda_bot::logging;
use telegram_lambda_bot::memory::Memory;
use telegram_lambda_bot::webhook::{function_handler, Webhook};

// One invocation at a time per process: a single-threaded runtime starts
// faster and spends half the CPU per update (measured with scripts/bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    // The token may come from Parameter Store: the only network call at cold
    // start, and only when TELEGRAM_BOT_TOKEN_PARAMETER is used.
    let webhook = match start().await {
        Ok(webhook) => webhook,
        Err(error) => {
            tracing::error!(error = %Chain(&error), "cannot start");
            return Err(error.into());
        }
    };
    let webhook = &webhook;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        function_handler(webhook, event).await
    }))
    .await
}

/// Everything the function needs, built once. The store is not called.
async fn start() -> Result<Webhook, InitError> {
    let config = Config::load().await?;
    let memory = Memory::from_config(&config).await?;
    Ok(Webhook::new(&config)?.with_memory(memory))
}
