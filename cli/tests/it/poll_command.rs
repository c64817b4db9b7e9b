//! `bot poll` as a person runs it: the exit code and the one line it says
//! on failure, and a clean stop on SIGTERM that confirms what it answered.

use std::time::Duration;
use telegram_stand_in::{Fault, Options, StandIn};
use testkit::{stderr, texts, until};

const USER: i64 = 1_000_001;

/// A store file of the test's own, removed when dropped.
struct StoreFile(std::path::PathBuf);

impl StoreFile {
    fn new() -> Self {
        StoreFile(std::env::temp_dir().join(format!(
            "bot-poll-test-{}-{}.redb",
            std::process::id(),
            fastrand::u64(..)
        )))
    }
}

impl Drop for StoreFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `bot` binary, configured for `stand_in` through the environment, with
/// `store` as its memory.
fn bot_command(stand_in: &StandIn, store: &StoreFile) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"));
    command
        .env_clear()
        .env("TELEGRAM_BOT_TOKEN", stand_in.token())
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .env("BOT_STORE_FILE", &store.0)
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_command_says_another_poller_runs_and_exits_non_zero() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    stand_in.inject("getUpdates", Fault::other_poller());
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        bot_command(&stand_in, &StoreFile::new())
            .args(["poll", "--timeout", "1"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("bot: ")).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(
        ours[0].starts_with("bot: another instance is polling with this bot token"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_command_stops_cleanly_on_sigterm_and_confirms() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    stand_in.enqueue_text(USER, "from the command");
    let store = StoreFile::new();
    let mut child = bot_command(&stand_in, &store)
        .args(["poll", "--timeout", "5"])
        .spawn()
        .unwrap();
    until("the reply", 10, || stand_in.sent_messages().len() == 1).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        stand_in.pending_updates().is_empty(),
        "confirmed before exit"
    );
    assert_eq!(
        texts(&stand_in.sent_messages()),
        ["You said: from the command"]
    );
}

#[tokio::test]
async fn the_poll_command_names_a_missing_variable() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"))
        .env_clear()
        .arg("poll")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "bot: TELEGRAM_BOT_TOKEN (or TELEGRAM_BOT_TOKEN_PARAMETER) is not set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_killed_in_the_middle_of_a_batch_answers_each_update_once_after_restart() {
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let texts_sent: Vec<String> = (1..=15).map(|i| format!("message {i}")).collect();
    for text in &texts_sent {
        stand_in.enqueue_text(USER, text);
    }
    // Five replies go through; the sixth hangs at Telegram's end, so the
    // process is killed at a known point: five answered and recorded, the
    // sixth decided (its outbox stored, so confirmed to Telegram) and not
    // sent, nine not begun.
    for _ in 0..5 {
        stand_in.inject("sendMessage", Fault::slow(0));
    }
    stand_in.inject("sendMessage", Fault::slow(120_000));
    let store = StoreFile::new();
    let mut first = bot_command(&stand_in, &store)
        .args(["poll", "--timeout", "1"])
        .spawn()
        .unwrap();
    until("the sixth reply is under way", 20, || {
        stand_in.calls_to("sendMessage").len() == 6
    })
    .await;
    until("the first six confirmed", 20, || {
        stand_in.pending_updates().len() == 9
    })
    .await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    // Telegram no longer has the sixth: only the store can finish it.
    let mut second = bot_command(&stand_in, &store)
        .args(["poll", "--timeout", "1"])
        .spawn()
        .unwrap();
    until("every update answered and confirmed", 30, || {
        stand_in.pending_updates().is_empty() && stand_in.sent_messages().len() >= 15
    })
    .await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let mut replies = texts(&stand_in.sent_messages());
    replies.sort();
    let mut expected: Vec<String> = texts_sent
        .iter()
        .map(|t| format!("You said: {t}"))
        .collect();
    expected.sort();
    assert_eq!(replies, expected, "each update answered once, none lost");
}
