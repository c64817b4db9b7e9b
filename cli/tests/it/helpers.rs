//! What the command-line tool's tests share.

use std::path::{Path, PathBuf};

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

/// Builds the function as `bot chat` does (in `target/function`), with the
/// full PATH (it may need a linker), so that the chat's own `cargo build`
/// finds it fresh.
pub fn build_function() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("function");
    let built = std::process::Command::new(cargo())
        .args([
            "build",
            "--quiet",
            "-p",
            "telegram-lambda-bot",
            "--bin",
            "webhook",
        ])
        .arg("--target-dir")
        .arg(target)
        .current_dir(workspace_root())
        .status()
        .unwrap();
    assert!(built.success());
}
