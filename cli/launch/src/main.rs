//! `cargo bot ...` (the alias in .cargo/config.toml): builds the bot's
//! command-line tool, then runs it with the same arguments.
//!
//! The alias could run the tool directly, but a first build of it takes
//! minutes and `cargo run --quiet` shows nothing meanwhile, while without
//! `--quiet` every run starts with cargo's lines. This program compiles in
//! a second, says what is being built when a build is due, shows cargo's
//! own progress then, and stays quiet when the tool is up to date.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;

/// What a first build costs, measured on a 2-core machine with the crates
/// already downloaded (the README's table: the tool, then `bot chat`'s
/// build of the function, which reuses the tool's).
const FIRST_BUILD: &str = "a first build compiles about 280 crates: about 2.5 minutes on 2 cores";

fn main() -> ExitCode {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    // With a build target named (CARGO_BUILD_TARGET, as scripts/test sets
    // to share one build with `sam build`), cargo puts it under the triple.
    let target = match std::env::var_os("CARGO_BUILD_TARGET") {
        Some(triple) if !triple.is_empty() => target.join(triple),
        _ => target,
    };
    let tool = target
        .join("debug")
        .join(format!("bot{}", std::env::consts::EXE_SUFFIX));
    let built = modified(&tool);
    let up_to_date = built.is_some() && built >= modified(&workspace.join("Cargo.lock"));
    if built.is_none() {
        eprintln!("Building the bot's command-line tool (cargo build -p bot-cli): {FIRST_BUILD}; later runs start in a second.");
    }
    // `cargo run` sets CARGO to the cargo that runs it.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "bot-cli", "--bin", "bot"])
        .current_dir(&workspace);
    // Up to date, or an edit away: a few seconds at most, said by nothing.
    if up_to_date {
        build.arg("--quiet");
    }
    match build.status() {
        Ok(status) if status.success() => {}
        Ok(_) => return ExitCode::FAILURE,
        Err(error) => {
            eprintln!("cargo bot: cannot run cargo: {error}");
            return ExitCode::FAILURE;
        }
    }
    run(&tool)
}

/// When `path` was last written, if it exists.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Becomes the tool, so that Ctrl-C and the exit status are its own.
#[cfg(unix)]
fn run(tool: &Path) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let error = Command::new(tool).args(std::env::args_os().skip(1)).exec();
    eprintln!("cargo bot: cannot run {}: {error}", tool.display());
    ExitCode::FAILURE
}

#[cfg(not(unix))]
fn run(tool: &Path) -> ExitCode {
    match Command::new(tool)
        .args(std::env::args_os().skip(1))
        .status()
    {
        Ok(status) => ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1)),
        Err(error) => {
            eprintln!("cargo bot: cannot run {}: {error}", tool.display());
            ExitCode::FAILURE
        }
    }
}
