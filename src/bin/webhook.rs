//! The Lambda function: builds everything once at cold start, then serves
//! invocations. No Bot API call is made here.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::time::Duration;
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::config::{Config, InitError};
use telegram_lambda_bot::handler::Handler;
use telegram_lambda_bot::runtime::aws;
use telegram_lambda_bot::runtime::error::Chain;
use telegram_lambda_bot::runtime::logging;
use telegram_lambda_bot::runtime::memory::Memory;
use telegram_lambda_bot::runtime::queue::Queue;
use telegram_lambda_bot::runtime::store::StoreConfig;
use telegram_lambda_bot::webhook::{function_handler, Webhook};

// One invocation at a time per process: a single-threaded runtime starts
// faster and spends half the CPU per update (measured with scripts/bench).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    // The token may come from Parameter Store (TELEGRAM_BOT_TOKEN_PARAMETER);
    // the store's connection is opened meanwhile.
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

/// Everything the function needs, built once. The token's read from
/// Parameter Store and the store's connection (its TLS handshake, with a
/// read) overlap, so the first update pays for neither and the cold start
/// for the longer. The Bot API's connection is left to the first reply:
/// opening it ahead needs a request, and waiting for that request's answer
/// costs a round trip to Telegram (tens of ms from most regions), more than
/// the handshake it would move.
async fn start() -> Result<Webhook, InitError> {
    let store = StoreConfig::from_lookup(&|name| std::env::var(name).ok())?;
    let memory = Memory::open(&store).await?;
    let (config, ()) = tokio::join!(
        Config::load_declaring(Bot::SECRETS),
        memory.warm_up(WARM_UP_BUDGET)
    );
    let config = config?;
    let memory = memory
        .keep_chats_for(config.keep_chats)
        .with_lease_margin(config.lease_margin);
    let webhook = Webhook::new(&config)?.with_memory(memory);
    Ok(match &config.queue {
        Some(queue) => {
            let sqs = Queue::new(
                &aws::sdk_config().await,
                &queue.url,
                queue.dead_letters.clone(),
            );
            webhook.with_queue(sqs, queue.clone())
        }
        None => webhook,
    })
}

/// The longest the store's warm-up may hold the cold start: a connection
/// not open by then is opened by the first update, as without it.
const WARM_UP_BUDGET: Duration = Duration::from_secs(2);
