//! What Lambda stores and loads: the stripped binary, and the zip it is
//! deployed in (named `bootstrap`, as for every custom runtime).

use crate::BenchError;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct Sizes {
    /// The binary after `strip --strip-all`, or as built if `strip` is missing.
    pub binary_bytes: u64,
    /// As built; equal to `binary_bytes` when the profile already stripped it.
    pub built_bytes: u64,
    pub zip_bytes: u64,
    /// Which tool made the zip: `zip` or Python's zipfile, both deflate level 6.
    pub zip_tool: &'static str,
}

/// Copies `binary` into `dir` as `bootstrap`, strips and zips the copy.
pub fn measure(binary: &Path, dir: &Path) -> Result<Sizes, BenchError> {
    let io = |what: &str, e| BenchError::io(format!("{what} {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    let bootstrap = dir.join("bootstrap");
    std::fs::copy(binary, &bootstrap).map_err(|e| io("copying the binary into", e))?;
    let built_bytes = file_size(binary)?;
    // A missing `strip` leaves the size as built, which the release profile
    // has already stripped of symbols.
    let _ = quiet(Command::new("strip").arg("--strip-all").arg(&bootstrap));
    let binary_bytes = file_size(&bootstrap)?;

    let zip = dir.join("function.zip");
    let zip_tool = if quiet(
        Command::new("zip")
            .args(["-q", "-X", "-6"])
            .arg(&zip)
            .arg("bootstrap")
            .current_dir(dir),
    ) {
        "zip"
    } else if quiet(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=6) as z:\n\
                 \x20   z.write(sys.argv[2], 'bootstrap')",
            )
            .arg(&zip)
            .arg(&bootstrap),
    ) {
        "python3 zipfile"
    } else {
        return Err(BenchError::Other(
            "cannot zip the function: neither `zip` nor `python3` works".to_owned(),
        ));
    };
    Ok(Sizes {
        binary_bytes,
        built_bytes,
        zip_bytes: file_size(&zip)?,
        zip_tool,
    })
}

/// Runs a local tool, reporting only whether it succeeded.
fn quiet(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn file_size(path: &Path) -> Result<u64, BenchError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| BenchError::io(format!("reading the size of {}", path.display()), e))
}
