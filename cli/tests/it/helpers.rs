//! What the command-line tool's tests share.

use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo running these tests.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// The toolchain's own directory (cargo, rustc, rustdoc...), and nothing
/// else: what "only Rust installed" means on PATH.
pub fn rust_only_path() -> PathBuf {
    let cargo = std::fs::canonicalize(cargo()).unwrap();
    let dir = cargo.parent().unwrap().to_owned();
    for absent in ["cargo-lambda", "python3", "python", "pip", "pip3"] {
        assert!(!dir.join(absent).exists(), "{absent} in {}", dir.display());
    }
    dir
}

/// Builds the function as `bot chat` does, with the full PATH (it may need
/// a linker), so that the chat's own `cargo build` finds it fresh.
pub fn build_function() {
    let built = std::process::Command::new(cargo())
        .args([
            "build",
            "--quiet",
            "-p",
            "telegram-lambda-bot",
            "--bin",
            "webhook",
        ])
        .current_dir(workspace_root())
        .status()
        .unwrap();
    assert!(built.success());
}

/// A command run in a pseudo-terminal, as a person runs it: what it shows
/// and a keyboard to type at it.
pub struct Terminal {
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    pub screen: Screen,
    pub keyboard: Box<dyn Write + Send>,
}

impl Terminal {
    /// Runs `command` in a terminal 40 rows high and `cols` wide; a thread
    /// copies what it shows onto the screen until it closes.
    pub fn run(command: CommandBuilder, cols: u16) -> Terminal {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let child = pty.slave.spawn_command(command).unwrap();
        // Held by the child alone, so that reading ends when it exits.
        drop(pty.slave);
        let screen = Screen::default();
        let mut reader = pty.master.try_clone_reader().unwrap();
        let keyboard = pty.master.take_writer().unwrap();
        let master = pty.master;
        let shown = screen.clone();
        std::thread::spawn(move || {
            // The terminal's own side stays open for as long as it is read.
            let _master = master;
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
        Terminal {
            child,
            screen,
            keyboard,
        }
    }
}

/// What a terminal showed so far.
#[derive(Clone, Default)]
pub struct Screen(Arc<Mutex<String>>);

impl Screen {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Blocks until `what` is shown (from async code: in `block_in_place`);
    /// fails the test after `seconds`.
    pub fn wait_for(&self, what: &str, seconds: u64) {
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
