//! `bot secrets`: the JSON object of the bot's own secrets (the names its
//! handler declares in `Handler::SECRETS`), as one Parameter Store
//! SecureString holds it. `scripts/deploy --secret NAME` builds it here, in
//! a file only this user can read; a value comes in on stdin, so it is never
//! on a command line, and no message ever shows one.

use clap::Subcommand;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Parameter Store's limit for a standard parameter's value, in bytes: all
/// the secrets together, as the JSON stored.
pub const MAX_JSON_BYTES: usize = 4096;

/// The longest name `bot secrets set` takes.
const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Set one secret in a JSON file of names to values, read from stdin
    /// (one trailing newline dropped): the file's other names are kept, and
    /// it is rewritten readable by this user only.
    Set(SetArgs),
    /// Print the names a JSON file of secrets holds, one a line (never a
    /// value).
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The secret's name: A-Z, 0-9 and _, starting with a letter, at most
    /// 64 characters (as the handler declares it).
    name: String,
    /// The JSON file to merge it into; absent or empty means none yet.
    #[arg(long, value_name = "FILE")]
    into: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// The JSON file of secrets; absent or empty means none.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
}

/// Why `bot secrets` failed. No variant holds a value, or text that could
/// quote one (serde's messages can).
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{name:?} is not a secret's name: use A-Z, 0-9 and _, starting with a letter, at most 64 characters")]
    InvalidName { name: String },
    #[error("stdin is a terminal, where the value would show: pipe it in (printf '%s' \"$NAME\" | bot secrets set NAME --into FILE)")]
    Terminal,
    #[error("cannot read the value of {name} from stdin")]
    ReadValue {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the value of {name} is not UTF-8 text")]
    NotText { name: String },
    #[error("the value of {name} is empty")]
    EmptyValue { name: String },
    #[error("cannot read {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a JSON object of names to strings (line {line}, column {column})", path.display())]
    NotJson {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{} is not a JSON object of names to strings", path.display())]
    NotAnObject { path: PathBuf },
    #[error("{} holds a value for {name} that is not a string", path.display())]
    NotAString { path: PathBuf, name: String },
    #[error("with {name}, the secrets would take {size} bytes of JSON, more than the {limit} a standard Parameter Store parameter holds; {} is unchanged", path.display())]
    TooLarge {
        name: String,
        path: PathBuf,
        size: usize,
        limit: usize,
    },
    #[error("cannot write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs a `bot secrets` command; what it prints names secrets, never shows
/// a value.
pub fn run(command: SecretsCommand) -> Result<(), SecretsError> {
    match command {
        SecretsCommand::Set(args) => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(SecretsError::Terminal);
            }
            let value = read_value(&args.name, stdin.lock())?;
            let names = set(&args.name, &value, &args.into)?;
            println!(
                "Set {} in {}, which holds: {}",
                args.name,
                args.into.display(),
                names.join(", ")
            );
            Ok(())
        }
        SecretsCommand::List(args) => {
            for name in read(&args.from)?.keys() {
                println!("{name}");
            }
            Ok(())
        }
    }
}

/// `^[A-Z][A-Z0-9_]{0,63}$`: a name that is also an environment variable's
/// (where a local run reads it).
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_NAME_CHARS
}

/// The value `input` holds, without one trailing newline (`echo`'s, or a
/// terminal's `\r\n`).
pub fn read_value(name: &str, mut input: impl Read) -> Result<String, SecretsError> {
    if !is_name(name) {
        return Err(SecretsError::InvalidName {
            name: name.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|source| SecretsError::ReadValue {
            name: name.to_owned(),
            source,
        })?;
    let mut value = String::from_utf8(bytes).map_err(|_| SecretsError::NotText {
        name: name.to_owned(),
    })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    // The function takes a blank value for a missing one.
    if value.trim().is_empty() {
        return Err(SecretsError::EmptyValue {
            name: name.to_owned(),
        });
    }
    Ok(value)
}

/// The secrets `path` holds: absent or blank is none.
pub fn read(path: &Path) -> Result<Map<String, Value>, SecretsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(SecretsError::ReadFile {
                path: path.to_owned(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    // Where, never what: serde's message can quote the text.
    let parsed: Value = serde_json::from_str(&text).map_err(|error| SecretsError::NotJson {
        path: path.to_owned(),
        line: error.line(),
        column: error.column(),
    })?;
    let Value::Object(secrets) = parsed else {
        return Err(SecretsError::NotAnObject {
            path: path.to_owned(),
        });
    };
    if let Some((name, _)) = secrets.iter().find(|(_, value)| !value.is_string()) {
        return Err(SecretsError::NotAString {
            path: path.to_owned(),
            name: name.clone(),
        });
    }
    Ok(secrets)
}

/// Sets `name` to `value` in the JSON object `path` holds, and rewrites it
/// at once (a new file, then renamed over the old), readable by this user
/// only. Returns the names it then holds.
pub fn set(name: &str, value: &str, path: &Path) -> Result<Vec<String>, SecretsError> {
    if !is_name(name) {
        return Err(SecretsError::InvalidName {
            name: name.to_owned(),
        });
    }
    let mut secrets = read(path)?;
    secrets.insert(name.to_owned(), Value::String(value.to_owned()));
    // One line, as Parameter Store gives it back in text output.
    let json = Value::Object(secrets.clone()).to_string();
    if json.len() > MAX_JSON_BYTES {
        return Err(SecretsError::TooLarge {
            name: name.to_owned(),
            path: path.to_owned(),
            size: json.len(),
            limit: MAX_JSON_BYTES,
        });
    }
    write_private(path, json.as_bytes()).map_err(|source| SecretsError::WriteFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(secrets.keys().cloned().collect())
}

/// Writes `bytes` to a new file beside `path`, created readable by this
/// user only, then renames it over `path`: a reader sees the old file or
/// the new one, never half of one, and never a moment of wider access.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let temp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        fastrand::u64(..)
    ));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        // The umask may narrow the mode it was created with: exactly 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegram_lambda_bot::runtime::error::Chain;

    /// A directory of its own under the system's temporary one, removed
    /// when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "bot-secrets-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn stored(path: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn names_are_what_an_environment_variable_may_be_called() {
        for good in [
            "A",
            "WEATHER_API_KEY",
            "K2",
            "X_",
            &format!("A{}", "B".repeat(63)),
        ] {
            assert!(is_name(good), "{good}");
        }
        for bad in [
            "",
            "weather_api_key",
            "_KEY",
            "2KEY",
            "KEY-1",
            "KEY NAME",
            "KÉY",
            "KEY=1",
            &format!("A{}", "B".repeat(64)),
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_first_secret_makes_the_file_readable_by_this_user_only() {
        let dir = TempDir::new();
        let path = dir.file("secrets.json");
        let names = set("WEATHER_API_KEY", "k-123 \"quoted\"", &path).unwrap();
        assert_eq!(names, ["WEATHER_API_KEY"]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"WEATHER_API_KEY":"k-123 \"quoted\""}"#,
            "one line of JSON"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(dir.entries(), ["secrets.json"], "no temporary file left");
    }

    #[test]
    fn a_secret_is_merged_with_those_kept_and_replaces_its_own() {
        let dir = TempDir::new();
        let path = dir.file("secrets.json");
        std::fs::write(
            &path,
            "{\n  \"OTHER\": \"o\",\n  \"WEATHER_API_KEY\": \"old\"\n}\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let names = set("WEATHER_API_KEY", "new", &path).unwrap();
        assert_eq!(names, ["OTHER", "WEATHER_API_KEY"]);
        assert_eq!(
            stored(&path),
            serde_json::json!({"OTHER": "o", "WEATHER_API_KEY": "new"})
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "a wider file is replaced by a private one"
            );
        }
        assert_eq!(read(&path).unwrap().len(), 2);
    }

    #[test]
    fn an_absent_or_empty_file_holds_no_secrets() {
        let dir = TempDir::new();
        assert!(read(&dir.file("absent.json")).unwrap().is_empty());
        let empty = dir.file("empty.json");
        std::fs::write(&empty, " \n").unwrap();
        assert!(read(&empty).unwrap().is_empty());
        set("A", "1", &empty).unwrap();
        assert_eq!(stored(&empty), serde_json::json!({"A": "1"}));
    }

    #[test]
    fn one_trailing_newline_is_dropped_and_a_blank_value_refused() {
        let value = |input: &str| read_value("KEY", input.as_bytes());
        assert_eq!(value("abc\n").unwrap(), "abc");
        assert_eq!(value("abc\r\n").unwrap(), "abc");
        assert_eq!(value("abc\n\n").unwrap(), "abc\n");
        assert_eq!(value(" a b ").unwrap(), " a b ");
        for blank in ["", "\n", "  \n", "\t"] {
            assert!(
                matches!(value(blank), Err(SecretsError::EmptyValue { ref name }) if name == "KEY"),
                "{blank:?}"
            );
        }
        assert!(matches!(
            read_value("KEY", &[0xff, 0xfe][..]),
            Err(SecretsError::NotText { .. })
        ));
        assert!(matches!(
            read_value("lower", "v".as_bytes()),
            Err(SecretsError::InvalidName { .. })
        ));
    }

    #[test]
    fn errors_name_the_file_and_the_name_but_never_show_a_value() {
        let dir = TempDir::new();
        let path = dir.file("secrets.json");
        let secret = "s3cr3t-value-9c1f";
        let cases: Vec<(&str, &str)> = vec![
            // serde would quote the text it could not read.
            (r#"{"A": "s3cr3t-value-9c1f"#, "(line 1, column"),
            (r#"{"A": s3cr3t-value-9c1f}"#, "(line 1, column"),
            (
                r#"["s3cr3t-value-9c1f"]"#,
                "is not a JSON object of names to strings",
            ),
            (
                r#"{"A": {"v": "s3cr3t-value-9c1f"}}"#,
                "holds a value for A that is not a string",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let error = set("B", secret, &path).unwrap_err();
            let shown = Chain(&error).to_string();
            assert!(shown.contains(expected), "{text}: {shown}");
            assert!(shown.contains("secrets.json"), "{shown}");
            assert!(!shown.contains(secret), "{text}: {shown}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "unchanged");
        }
        let error = set("b", secret, &path).unwrap_err();
        assert!(matches!(error, SecretsError::InvalidName { .. }));
        assert!(!Chain(&error).to_string().contains(secret));
        let error = read_value("EMPTY", &b"\n"[..]).unwrap_err();
        assert_eq!(error.to_string(), "the value of EMPTY is empty");
        let error = set("A", secret, &dir.file("no/such/dir/secrets.json")).unwrap_err();
        assert!(matches!(error, SecretsError::WriteFile { .. }), "{error:?}");
        assert!(!Chain(&error).to_string().contains(secret));
    }

    #[test]
    fn the_json_must_fit_a_standard_parameter() {
        let dir = TempDir::new();
        let path = dir.file("secrets.json");
        // {"A":"..."} is 8 bytes besides the value.
        set("A", &"a".repeat(MAX_JSON_BYTES - 8), &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        let before = std::fs::read_to_string(&path).unwrap();
        let error = set("B", "b", &path).unwrap_err();
        assert!(
            matches!(
                error,
                SecretsError::TooLarge {
                    size: 4104,
                    limit: 4096,
                    ..
                }
            ),
            "{error:?}"
        );
        let shown = error.to_string();
        assert!(
            shown.contains("with B, the secrets would take 4104 bytes of JSON, more than the 4096 a standard Parameter Store parameter holds"),
            "{shown}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "unchanged");
        assert_eq!(dir.entries(), ["secrets.json"]);
        // Bytes, not characters: escapes and UTF-8 count as stored.
        let path = dir.file("wide.json");
        let error = set("A", &"é".repeat(2045), &path).unwrap_err();
        assert!(
            matches!(error, SecretsError::TooLarge { size: 4098, .. }),
            "{error:?}"
        );
        assert!(!path.exists(), "nothing written");
        let error = set("A", &"\"".repeat(2045), &path).unwrap_err();
        assert!(
            matches!(error, SecretsError::TooLarge { size: 4098, .. }),
            "{error:?}"
        );
    }
}
