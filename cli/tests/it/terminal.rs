//! `bot chat` in a pseudo-terminal, as a person runs it: with nothing but
//! the Rust toolchain on PATH (no cargo-lambda, no Python), typing
//! messages, then pressing Ctrl-C, which the terminal turns into SIGINT for
//! the whole foreground process group.

use crate::helpers::{build_function, rust_only_path, workspace_root, Terminal};
use portable_pty::CommandBuilder;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// The process ids below `root`, with their names, from /proc.
fn descendants(root: u32) -> HashMap<u32, String> {
    let mut parents = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (name) state ppid ...": the name may hold spaces and brackets.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let ppid = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, (ppid, name));
        }
    }
    let mut found = HashMap::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, (ppid, name)) in &parents {
            if *ppid == parent && !found.contains_key(pid) {
                found.insert(*pid, name.clone());
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Gone, or a zombie waiting for a parent that is itself gone.
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rfind(')')
                .and_then(|close| stat[close + 2..].chars().next())
                == Some('Z')
        }
    }
}

#[test]
fn chatting_in_a_terminal_with_only_rust_then_ctrl_c_quits_leaving_nothing() {
    build_function();
    let path = rust_only_path();

    let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_bot"));
    command.args(["chat", "--name", "Ali"]);
    command.cwd(workspace_root());
    command.env("PATH", &path);
    let Terminal {
        mut child,
        screen,
        mut keyboard,
    } = Terminal::run(command, 120);

    screen.wait_for("you> ", 120);
    keyboard.write_all(b"/start\r").unwrap();
    screen.wait_for("Hello, Ali! I echo what you write.", 30);
    keyboard.write_all(b"Hi!\r").unwrap();
    screen.wait_for("You said: Hi!", 30);

    let bot = child.process_id().unwrap();
    let children = descendants(bot);
    assert!(
        children.values().any(|name| name == "webhook"),
        "the function runs as a child process: {children:?}"
    );
    keyboard.write_all(b"\x03").unwrap();
    let pressed = Instant::now();
    let mut pids: Vec<u32> = children.into_keys().collect();
    pids.push(bot);
    // A bound against a hang, not a timing: on a loaded machine the exit
    // may take a while, and how fast it is is not this test's business.
    while !pids.iter().all(|pid| is_gone(*pid)) {
        assert!(
            pressed.elapsed() < Duration::from_secs(10),
            "still running 10 s after Ctrl-C: {:?}; the screen:\n{}",
            pids.iter().filter(|p| !is_gone(**p)).collect::<Vec<_>>(),
            screen.text()
        );
        // Reaps the bot once it exits, so it does not linger as a zombie.
        let _ = child.try_wait();
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", screen.text());
}
