//! `bot chat` in a pseudo-terminal, as a person runs it: with nothing but
//! the Rust toolchain on PATH (no cargo-lambda, no Python), typing
//! messages, then pressing Ctrl-C, which the terminal turns into SIGINT for
//! the whole foreground process group.

use crate::helpers::{build_function, rust_only_path, workspace_root};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the terminal showed so far.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<String>>);

impl Screen {
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, seconds: u64) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while !self.text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "{what:?} not shown within {seconds} s; the screen:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

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
fn chatting_in_a_terminal_with_only_rust_then_ctrl_c_quits_at_once_leaving_nothing() {
    build_function();
    let path = rust_only_path();

    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_bot"));
    command.args(["chat", "--name", "Ali"]);
    command.cwd(workspace_root());
    command.env("PATH", &path);
    let mut child = pty.slave.spawn_command(command).unwrap();
    drop(pty.slave);
    let screen = Screen::default();
    let mut reader = pty.master.try_clone_reader().unwrap();
    let shown = screen.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            shown
                .0
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    let mut keyboard = pty.master.take_writer().unwrap();

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
    while !pids.iter().all(|pid| is_gone(*pid)) {
        assert!(
            pressed.elapsed() < Duration::from_secs(1),
            "still running 1 s after Ctrl-C: {:?}; the screen:\n{}",
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
