//! The command-line tool reads the AWS profiles the aws CLI reads: IAM
//! Identity Center (sso), `credential_process` and `aws login`. The
//! providers live behind aws-config features, which the CLI's package turns
//! on and the function's must not: the function runs on its execution role,
//! and its package is built alone (`sam build`, `cargo lambda build`), so
//! nothing of the CLI's features reaches it there.

use crate::helpers::workspace_root;
use std::process::Command;
use telegram_stand_in::{Options, StandIn, DEFAULT_TOKEN};
use testkit::{stderr, Moto};

/// The aws-config features behind the profile providers, and a crate each
/// brings.
const PROVIDERS: &[(&str, Option<&str>)] = &[
    ("sso", Some("aws-sdk-sso")),
    ("credentials-process", None),
    ("credentials-login", Some("aws-sdk-signin")),
];

/// What `package` builds on its own, as `cargo tree` lists it: one line
/// per crate (`aws-sdk-sso v1.119.0`) and per feature on
/// (`aws-config feature "sso"`). Normal and build dependencies only, for
/// the host: what `cargo build -p package` compiles. `--frozen`: the test
/// neither touches the network nor rewrites Cargo.lock.
fn tree(package: &str) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--frozen",
            "--prefix",
            "none",
            "-e",
            "normal,build,features",
            "-p",
        ])
        .arg(package)
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.trim_end_matches(" (*)").to_owned())
        .collect()
}

fn has_feature(tree: &[String], feature: &str) -> bool {
    tree.iter()
        .any(|line| *line == format!("aws-config feature \"{feature}\""))
}

fn has_crate(tree: &[String], name: &str) -> bool {
    tree.iter()
        .any(|line| line.starts_with(&format!("{name} v")))
}

#[test]
fn only_the_cli_builds_the_sso_process_and_login_credential_providers() {
    let cli = tree("bot-cli");
    let function = tree("telegram-lambda-bot");
    assert!(has_crate(&function, "aws-config"), "{function:#?}");
    for (feature, brings) in PROVIDERS {
        assert!(
            has_feature(&cli, feature),
            "bot-cli lacks aws-config's {feature}"
        );
        assert!(
            !has_feature(&function, feature),
            "the function's package, built alone, gets aws-config's {feature}"
        );
        if let Some(name) = brings {
            assert!(has_crate(&cli, name), "bot-cli lacks {name}");
            assert!(
                !has_crate(&function, name),
                "the function's package builds {name}"
            );
        }
    }
    // tokio's process support is there (the workspace's feature alignment,
    // Cargo.toml), but with no provider to spawn a command through it.
}

/// A profile whose credentials come from a command, as `aws configure
/// export-credentials`, a password manager or a corporate helper give them:
/// with no key in the environment, the token's parameter is read with what
/// the command prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_credentials_from_a_credential_process_profile() {
    let dir = std::env::temp_dir().join(format!("bot-credential-process-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let calls = dir.join("calls");
    let command = dir.join("credentials.sh");
    std::fs::write(
        &command,
        format!(
            "#!/bin/sh\necho called >> '{}'\n\
             printf '{{\"Version\": 1, \"AccessKeyId\": \"from-the-process\", \"SecretAccessKey\": \"testing\"}}'\n",
            calls.display()
        ),
    )
    .unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile bot]\nregion = us-east-1\ncredential_process = sh '{}'\n",
            command.display()
        ),
    )
    .unwrap();

    let moto = Moto::start().await;
    moto.put_secure_string("/echo-bot/token", DEFAULT_TOKEN)
        .await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"))
        .env_clear()
        .envs(moto.env().into_iter().filter(|(name, _)| {
            !name.starts_with("AWS_ACCESS_KEY") && !name.starts_with("AWS_SECRET")
        }))
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_PROFILE", "bot")
        .env("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token")
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .args(["webhook", "info"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let called = std::fs::read_to_string(&calls).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        called.contains("called"),
        "the credential process never ran"
    );
    assert_eq!(stand_in.calls_to("getWebhookInfo").len(), 1);
}
