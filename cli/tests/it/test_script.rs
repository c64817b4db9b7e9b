//! scripts/test's first step on the Pythons newcomers have: one that cannot
//! make a virtualenv and is externally managed (PEP 668: Debian 12, Ubuntu
//! 23.04+, Homebrew) stops at once naming what to install; one that may
//! install for the user falls back to that. A fake `python3` on PATH stands
//! in for each, failing the way the real one does.

use crate::helpers::workspace_root;
use std::path::PathBuf;
use std::process::Output;
use testkit::stderr;

/// A `python3` whose venv module is missing (Debian without python3-venv
/// says "ensurepip is not available"), externally managed or not, whose pip
/// fails; it logs every call.
const FAKE_PYTHON: &str = r#"#!/usr/bin/env bash
echo "python3 $*" >> "$FAKE_LOG"
case "$1 $2" in
  "-m venv") echo "The virtual environment was not created successfully because ensurepip is not available." >&2; exit 1 ;;
  "-m pip") echo "pip failed on purpose" >&2; exit 1 ;;
esac
if [[ "$1" == -c && "$2" == *EXTERNALLY-MANAGED* ]]; then
  [[ -n "${FAKE_MANAGED:-}" ]]; exit $?
fi
exit 3
"#;

struct Fake {
    dir: PathBuf,
}

impl Fake {
    fn new() -> Fake {
        let dir = std::env::temp_dir().join(format!(
            "test-script-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let python = dir.join("bin/python3");
        std::fs::write(&python, FAKE_PYTHON).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("calls.log"), "").unwrap();
        Fake { dir }
    }

    fn run(&self, managed: bool) -> Output {
        let mut command = std::process::Command::new("bash");
        command
            .arg(workspace_root().join("scripts/test"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .env("HOME", &self.dir)
            .env("TOOLS_DIR", self.dir.join("tools"))
            .env("FAKE_LOG", self.dir.join("calls.log"));
        if managed {
            command.env("FAKE_MANAGED", "1");
        }
        command.output().unwrap()
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_externally_managed_python_without_venv_stops_at_once_naming_python3_venv() {
    let fake = Fake::new();
    let output = fake.run(true);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let last = stderr(&output)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        last,
        "scripts/test: python3 cannot make a virtualenv; install python3-venv (Debian, Ubuntu: sudo apt install python3-venv)"
    );
    assert!(!fake.calls().contains("-m pip"), "{}", fake.calls());
    assert!(
        !fake.dir.join("tools").exists(),
        "no half-made virtualenv left"
    );
}

#[test]
fn a_python_without_venv_that_may_install_for_the_user_falls_back_to_that() {
    let fake = Fake::new();
    let output = fake.run(false);
    assert!(!output.status.success());
    assert!(
        fake.calls()
            .contains("python3 -m pip install --quiet --user --disable-pip-version-check"),
        "{}",
        fake.calls()
    );
}
