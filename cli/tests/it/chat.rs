//! `bot chat`, driven the way a script drives it: lines on stdin, replies on
//! stdout. The webhook mode (under cargo lambda watch) runs in
//! scripts/e2e-watch.py, where cargo-lambda is installed.

use std::process::Stdio;
use std::time::Duration;
use testkit::{stderr, stdout};
use tokio::io::AsyncWriteExt;

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
