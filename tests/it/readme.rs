//! Every Rust snippet in the README is code the build compiles: its lines
//! appear, in order and next to each other, in a source file of the
//! workspace (clippy and the tests build every one). A recipe that drifts
//! from the code fails here rather than in a reader's fork.

use std::path::{Path, PathBuf};

/// A snippet's or a file's lines, trimmed, blank ones dropped: indentation
/// differs between a recipe and the code it is taken from.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The README's ```rust blocks, with the line each starts on.
fn snippets(readme: &str) -> Vec<(usize, String)> {
    let mut snippets = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some((number + 1, String::new())),
            (Some(_), "```") => snippets.extend(current.take()),
            (Some((_, text)), line) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    snippets
}

#[test]
fn every_rust_snippet_in_the_readme_is_compiled_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut files = Vec::new();
    for dir in [
        "src",
        "tests",
        "cli/src",
        "cli/tests",
        "stand-in/src",
        "testkit/src",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    let sources: Vec<String> = files
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    let snippets = snippets(&readme);
    assert!(
        snippets.len() >= 5,
        "the README's recipes: {}",
        snippets.len()
    );
    let missing: Vec<String> = snippets
        .iter()
        .filter(|(_, snippet)| {
            let wanted = lines(snippet);
            !sources.iter().any(|source| {
                lines(source)
                    .windows(wanted.len())
                    .any(|window| window == wanted.as_slice())
            })
        })
        .map(|(line, snippet)| format!("README.md:{line}: {}", lines(snippet)[0]))
        .collect();
    assert!(
        missing.is_empty(),
        "snippets not found in the code (copy them from the code they show):\n{}",
        missing.join("\n")
    );
}
