//! `bot chat`, driven the way a script drives it: lines on stdin, replies on
//! stdout. With `--watch` (under cargo lambda watch) it runs in
//! scripts/e2e-watch.py, where cargo-lambda is installed; in a terminal, in
//! terminal.rs.

use crate::helpers::{build_function, rust_only_path, workspace_root};
use std::process::{Output, Stdio};
use std::time::Duration;
use testkit::{stderr, stdout};
use tokio::io::AsyncWriteExt;

/// `bot chat` with `args`, fed `input`, with only the Rust toolchain on PATH.
async fn chat(args: &[&str], input: &[u8]) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"))
        .arg("chat")
        .args(args)
        .current_dir(workspace_root())
        .env("PATH", rust_only_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the chat ends at the end of input")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatting_with_the_function_answers_and_says_when_nothing_was_answered() {
    tokio::task::spawn_blocking(build_function).await.unwrap();
    let output = chat(&["--name", "Ali"], b"/start\nHi!\n/start@OtherBot\n").await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "Hello, Ali! I echo what you write. Send /help to see what I can do.\nYou said: Hi!\n"
    );
    let said = stderr(&output);
    assert!(
        said.contains("the function, run as Lambda runs it"),
        "{said}"
    );
    assert_eq!(
        said.matches("(the bot answered nothing)").count(),
        1,
        "{said}"
    );
}

#[tokio::test]
async fn watching_without_cargo_lambda_says_how_to_install_it_and_installs_nothing() {
    let output = chat(&["--watch"], b"").await;
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(said.contains("cargo-lambda is not installed"), "{said}");
    assert!(said.contains("pip install cargo-lambda"), "{said}");
    assert!(stdout(&output).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatting_by_polling_answers_start_and_echoes() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"))
        .args(["chat", "--polling", "--name", "Ali"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/start\nHi!\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the chat ends at the end of input")
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "Hello, Ali! I echo what you write. Send /help to see what I can do.\nYou said: Hi!\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_ends_where_telegram_marks_it_so_help_with_a_comma_is_help() {
    // The stand-in marks commands with a bot_command entity, as Telegram
    // does, and the bot reads the command from it.
    let output = chat(&["--polling"], b"/help, please\n/start@OtherBot!\n").await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "I repeat any text you send me.\n\nCommands:\n/start - say hello\n/help - list the commands\n\
         /count - how many messages this chat sent since /start\n/counter - a count you change with buttons\n"
    );
    assert_eq!(
        stderr(&output)
            .matches("(the bot answered nothing)")
            .count(),
        1
    );
}

/// What `/counter` and three presses show: the count and its buttons, then
/// each edit in place.
const COUNTER_SESSION: &[u8] = b"/counter\n[2]\n[+1]\n[-1]\n";
const COUNTER_SHOWN: &str = "Count: 0\n[1] \u{2212}1  [2] +1\n\
     (edited) Count: 1\n[1] \u{2212}1  [2] +1\n\
     (edited) Count: 2\n[1] \u{2212}1  [2] +1\n\
     (edited) Count: 1\n[1] \u{2212}1  [2] +1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_press_in_the_chat_edits_the_count_through_the_function() {
    tokio::task::spawn_blocking(build_function).await.unwrap();
    let output = chat(&[], COUNTER_SESSION).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), COUNTER_SHOWN, "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_press_in_the_chat_edits_the_count_by_polling() {
    let output = chat(&["--polling"], COUNTER_SESSION).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), COUNTER_SHOWN, "{}", stderr(&output));
}

/// The fake model's answer to `question` (stand-in/src/model.rs).
fn fake_answer(question: &str) -> String {
    format!(
        "You asked: {question}\n\nThis answer comes from the stand-in's fake model, a few words \
         at a time, as a real model streams one."
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_assistant_streams_drafts_then_answers_once_through_the_function() {
    tokio::task::spawn_blocking(build_function).await.unwrap();
    let output = chat(&["--assistant", "fake"], b"What is a webhook?\n/help\n").await;
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stdout(&output);
    let lines: Vec<&str> = said.lines().collect();
    // Drafts first, growing, then the answer as one message.
    let drafts: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("(draft) "))
        .collect();
    // First Telegram's placeholder, then the answer as it is written.
    assert_eq!(drafts.first(), Some(&"Thinking..."), "{said}");
    let drafts = &drafts[1..];
    assert!(drafts.len() >= 2, "{said}");
    let answer = fake_answer("What is a webhook?");
    // A draft shows the answer so far, on one line.
    let one_line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(drafts.iter().all(|d| one_line.starts_with(d)), "{said}");
    assert_eq!(said.matches(answer.as_str()).count(), 1, "{said}");
    assert!(
        said.contains("/ask - ask the assistant a question"),
        "{said}"
    );
    assert!(
        said.contains("I answer questions with a language model"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_assistant_answers_by_polling_too() {
    let output = chat(&["--polling", "--assistant", "fake"], b"/ask Why?\n").await;
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stdout(&output);
    assert!(said.contains("(draft) You asked: Why?"), "{said}");
    assert_eq!(
        said.matches(fake_answer("Why?").as_str()).count(),
        1,
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assistant_env_without_a_model_says_what_it_needs() {
    let output = chat(&["--polling", "--assistant", "env"], b"").await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ASSISTANT_MODEL"),
        "{}",
        stderr(&output)
    );
}
