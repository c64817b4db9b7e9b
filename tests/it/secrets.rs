//! The token and the webhook secret appear nowhere: not in logs, answers,
//! errors or Debug output, on any path the webhook and the polling loop
//! can take.

use crate::faults::{output_of_every_case, Secrets};
use crate::helpers::{config, Logs};
use std::time::Duration;
use telegram_lambda_bot::bot::Bot;
use telegram_lambda_bot::config::Config;
use telegram_lambda_bot::poll::{self, PollOptions};
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::runtime::error::chain;
use telegram_lambda_bot::runtime::retry::{Backoff, Stop};
use telegram_stand_in::{Fault, Options, StandIn};
use tokio::sync::watch;

const SECRETS: Secrets = Secrets {
    token: "424242424:AAHsecret-TOKEN-never-log-ZZZZ0000000",
    webhook_secret: "webhook-SECRET-never-log-QQQ",
};

fn assert_clean(output: &str) {
    let token_secret = SECRETS.token.split(':').nth(1).unwrap();
    assert!(
        !output.contains(token_secret),
        "the token leaked:\n{output}"
    );
    assert!(
        !output.contains(SECRETS.webhook_secret),
        "the webhook secret leaked:\n{output}"
    );
    assert!(!output.contains("never-log"), "a secret leaked:\n{output}");
}

#[tokio::test]
async fn no_webhook_path_shows_a_secret() {
    let output = output_of_every_case(&SECRETS).await;
    assert!(output.contains("retryable_failure"), "the cases ran");
    assert_clean(&output);
}

fn api(base_url: &str, token: &str) -> (Config, BotApi) {
    let config = config(&[
        ("TELEGRAM_BOT_TOKEN", token),
        ("TELEGRAM_API_BASE_URL", base_url),
        ("TELEGRAM_WEBHOOK_SECRET", SECRETS.webhook_secret),
        ("TELEGRAM_HTTP_TIMEOUT_SECS", "1"),
    ]);
    let api = BotApi::new(&config).unwrap();
    (config, api)
}

/// Polls until one update is answered (or 10 s pass), through `faults`.
async fn poll_through(stand_in: &StandIn, api: &BotApi, faults: &[(&str, Fault)]) -> String {
    for (method, fault) in faults {
        stand_in.inject(method, fault.clone());
    }
    stand_in.enqueue_text(4242, "hello");
    let (stop, stop_rx) = watch::channel(false);
    let options = PollOptions {
        timeout_secs: 0,
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        ..PollOptions::default()
    };
    let bot = Bot::default();
    let run = poll::run(api, &bot, &options, Stop::on(stop_rx));
    let answered = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while stand_in.pending_updates().len() == 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::pin!(run);
    let result = tokio::select! {
        result = &mut run => result,
        () = answered => {
            let _ = stop.send(true);
            run.await
        }
    };
    match result {
        Ok(summary) => format!("{summary:?}"),
        Err(error) => format!("{error} {error:?} {}", chain(&error)),
    }
}

#[tokio::test]
async fn no_polling_path_shows_a_secret() {
    let (logs, _guard) =
        Logs::capture_with(telegram_lambda_bot::runtime::logging::filter(Some("trace")));
    let mut output = String::new();
    let stand_in = StandIn::start(Options {
        token: SECRETS.token.to_owned(),
        ..Options::default()
    })
    .await
    .unwrap();
    let (config, good) = api(&stand_in.base_url(), SECRETS.token);
    output.push_str(&format!("{config:?} {good:?}\n"));
    let failures = [
        ("getUpdates", Fault::internal_error()),
        ("getUpdates", Fault::bad_gateway()),
        ("getUpdates", Fault::Drop),
        ("getUpdates", Fault::Truncated),
        ("getUpdates", Fault::too_many_requests(1)),
        (
            "getUpdates",
            Fault::Raw {
                status: 200,
                body: "{not json".into(),
            },
        ),
        ("sendMessage", Fault::internal_error()),
        ("sendMessage", Fault::Drop),
        ("sendMessage", Fault::slow(1_500)),
        ("sendMessage", Fault::too_many_requests(1)),
        ("deleteWebhook", Fault::internal_error()),
    ];
    output.push_str(&poll_through(&stand_in, &good, &failures).await);
    output.push_str(
        &poll_through(
            &stand_in,
            &good,
            &[("sendMessage", Fault::blocked_by_user())],
        )
        .await,
    );
    // A token the Bot API does not know, and one nobody answers for.
    let (_, unknown) = api(&stand_in.base_url(), &SECRETS.token.replace("AAH", "AAX"));
    output.push_str(&poll_through(&stand_in, &unknown, &[]).await);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (_, refused) = api(&format!("http://127.0.0.1:{port}"), SECRETS.token);
    let error = refused.get_me().await.unwrap_err();
    output.push_str(&format!("{error} {error:?} {}\n", chain(&error)));
    output.push_str(&logs.text());
    assert!(
        output.contains("retrying"),
        "the failures were met:\n{output}"
    );
    assert_clean(&output);
}

/// Answers every name with `value`, as a parameter store would.
struct Stored(&'static str);

impl telegram_lambda_bot::runtime::ssm::ParameterStore for Stored {
    async fn get_secure_strings(
        &self,
        names: &[&str],
    ) -> Result<
        Vec<Result<secrecy::SecretString, telegram_lambda_bot::runtime::ssm::ParameterError>>,
        telegram_lambda_bot::runtime::ssm::ParameterError,
    > {
        Ok(names
            .iter()
            .map(|_| Ok(secrecy::SecretString::from(self.0)))
            .collect())
    }
}

#[tokio::test]
async fn secrets_read_from_parameter_store_show_nowhere() {
    // Both read from parameters: the configuration's Debug shows neither.
    let vars = [
        ("TELEGRAM_BOT_TOKEN_PARAMETER", "/bot/token"),
        ("TELEGRAM_WEBHOOK_SECRET_PARAMETER", "/bot/secret"),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let mut output = String::new();
    // The same value stands for both: a token is not a valid secret (':'),
    // so the secret's error is reached; neither message may quote it.
    let failed = Config::load_with(lookup, || async { Stored(SECRETS.token) }).await;
    match failed {
        Ok(config) => output.push_str(&format!("{config:?}")),
        Err(error) => output.push_str(&format!("{error} {error:?} {}", chain(&error))),
    }
    assert!(
        output.contains("TELEGRAM_WEBHOOK_SECRET_PARAMETER"),
        "{output}"
    );
    let secret_shaped = "webhook-SECRET-never-log-QQQ-and-long-enough";
    let failed = Config::load_with(lookup, || async { Stored(secret_shaped) }).await;
    match failed {
        Ok(config) => output.push_str(&format!("{config:?}")),
        Err(error) => output.push_str(&format!("{error} {error:?} {}", chain(&error))),
    }
    assert_clean(&output);
}
