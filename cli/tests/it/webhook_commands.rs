//! The `bot webhook` commands against the stand-in: the exact requests they
//! make, and output a person can read.

use serde_json::json;
use std::process::Output;
use telegram_stand_in::{Options, StandIn};
use testkit::{stderr, stdout};

async fn bot(stand_in: &StandIn, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"));
    command
        .env_clear()
        .env("TELEGRAM_BOT_TOKEN", stand_in.token())
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .args(args)
        .kill_on_drop(true);
    for (k, v) in envs {
        command.env(k, v);
    }
    tokio::time::timeout(std::time::Duration::from_secs(20), command.output())
        .await
        .expect("bot finishes within 20 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_set_sends_exactly_what_the_bot_needs() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = bot(
        &stand_in,
        &[
            "webhook",
            "set",
            "--url",
            "https://abc.execute-api.eu-west-1.amazonaws.com/webhook",
        ],
        &[("TELEGRAM_WEBHOOK_SECRET", "s3cret_value-1")],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "Webhook set: https://abc.execute-api.eu-west-1.amazonaws.com/webhook\n"
    );
    assert_eq!(
        stand_in.calls_to("setWebhook"),
        [json!({
            "url": "https://abc.execute-api.eu-west-1.amazonaws.com/webhook",
            "secret_token": "s3cret_value-1",
            "allowed_updates": ["message", "callback_query"],
            "max_connections": 40,
            "drop_pending_updates": false
        })]
    );
    assert!(!stderr(&output).contains("s3cret_value-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_set_takes_its_options() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = bot(
        &stand_in,
        &[
            "webhook",
            "set",
            "--url",
            "https://example.com/hook",
            "--secret-token",
            "abc",
            "--allowed-updates",
            "message,callback_query",
            "--max-connections",
            "5",
            "--drop-pending-updates",
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let call = &stand_in.calls_to("setWebhook")[0];
    assert_eq!(
        call["allowed_updates"],
        json!(["message", "callback_query"])
    );
    assert_eq!(call["max_connections"], 5);
    assert_eq!(call["drop_pending_updates"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_set_refuses_what_telegram_would_refuse_before_calling() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    for (args, message) in [
        (
            vec!["--url", "http://example.com/hook", "--secret-token", "abc"],
            "bot: --url must be an https:// URL",
        ),
        (
            vec![
                "--url",
                "https://example.com/hook",
                "--secret-token",
                "not allowed!",
            ],
            "bot: TELEGRAM_WEBHOOK_SECRET is invalid",
        ),
    ] {
        let mut all = vec!["webhook", "set"];
        all.extend(args);
        let output = bot(&stand_in, &all, &[]).await;
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).starts_with(message), "{}", stderr(&output));
    }
    assert!(stand_in.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_info_is_readable_and_shows_the_last_errors_age() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let set = bot(
        &stand_in,
        &[
            "webhook",
            "set",
            "--url",
            "https://example.com/webhook",
            "--secret-token",
            "abc",
        ],
        &[],
    )
    .await;
    assert!(set.status.success());
    stand_in.record_delivery_error("Wrong response from the webhook: 502 Bad Gateway", 300);
    let output = bot(&stand_in, &["webhook", "info"], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "URL:             https://example.com/webhook\n\
         Pending updates: 0\n\
         Max connections: 40\n\
         Allowed updates: message, callback_query\n\
         IP address:      127.0.0.1\n\
         Last error:      5 min ago: Wrong response from the webhook: 502 Bad Gateway\n"
    );
    let check = bot(
        &stand_in,
        &["webhook", "info", "--fail-on-error-within", "600"],
        &[],
    )
    .await;
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains("delivery error 5 min ago"),
        "{}",
        stderr(&check)
    );
    let old_enough = bot(
        &stand_in,
        &["webhook", "info", "--fail-on-error-within", "60"],
        &[],
    )
    .await;
    assert!(old_enough.status.success());
    let wrong_url = bot(
        &stand_in,
        &["webhook", "info", "--expect-url", "https://other/"],
        &[],
    )
    .await;
    assert_eq!(wrong_url.status.code(), Some(1));
    let json_output = bot(&stand_in, &["webhook", "info", "--json"], &[]).await;
    let info: serde_json::Value = serde_json::from_slice(&json_output.stdout).unwrap();
    assert_eq!(info["url"], "https://example.com/webhook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_info_without_a_webhook_says_so() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = bot(&stand_in, &["webhook", "info"], &[]).await;
    assert!(output.status.success());
    assert!(stdout(&output).starts_with("URL:             (none: updates wait for getUpdates)\n"));
    assert!(stdout(&output).ends_with("Last error:      none\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delete_sends_delete_webhook() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = bot(
        &stand_in,
        &["webhook", "delete", "--drop-pending-updates"],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stand_in.calls_to("deleteWebhook"),
        [json!({"drop_pending_updates": true})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_show_compares_the_menu_and_set_makes_it_match() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = bot(&stand_in, &["commands", "show"], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "Telegram's menu:  (empty)\nThe bot's commands: /start /help /count /counter\n"
    );
    assert!(stderr(&output).contains("differs from the bot's commands (run `bot commands set`)"));

    let output = bot(&stand_in, &["commands", "set"], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "Command menu set: /start /help /count /counter\n"
    );
    let set = stand_in.calls_to("setMyCommands");
    assert_eq!(set.len(), 1);
    assert_eq!(
        set[0]["commands"][3],
        json!({"command": "counter", "description": "a count you change with buttons"})
    );
    let output = bot(&stand_in, &["commands", "show"], &[]).await;
    assert!(output.status.success(), "{}", stdout(&output));

    // Without a store, /count and /counter leave the menu, as /help.
    let output = bot(&stand_in, &["commands", "show", "--no-memory"], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let output = bot(&stand_in, &["commands", "set", "--no-memory"], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let menu: Vec<String> = stand_in
        .commands()
        .iter()
        .map(|c| c.command.clone())
        .collect();
    assert_eq!(menu, ["start", "help"]);
}
