//! Running the `aws` command, through which the doctor reads the stack,
//! the table, the alarms and the webhook secret: one call with a timeout,
//! its failure told by the first line of the CLI's error output.

use std::time::Duration;

/// One `aws` call; the CLI retries throttling itself within this.
const AWS_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an `aws` call gave nothing usable. Holds the first line of the
/// CLI's error output (it names the AWS error), never its standard output.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("cannot run `aws` (is the AWS CLI installed?)")]
    Spawn(#[source] std::io::Error),
    #[error("aws {call}: no answer within {secs} s", secs = AWS_TIMEOUT.as_secs())]
    Timeout { call: &'static str },
    #[error("aws {call} failed: {reason}")]
    Failed { call: &'static str, reason: String },
}

/// The first line of an `aws` error output, cut short, or the exit status
/// when it wrote nothing.
pub fn first_line(stderr: &[u8], status: std::process::ExitStatus) -> String {
    let text = String::from_utf8_lossy(stderr);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => line.chars().take(300).collect(),
        None => format!("{status}"),
    }
}

pub(super) async fn aws(
    call: &'static str,
    args: &[&str],
    region: Option<&str>,
) -> Result<Vec<u8>, AwsError> {
    let mut command = tokio::process::Command::new("aws");
    command
        .args(args)
        // The aws CLI needs neither secret; a plugin of it must not see them.
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("TELEGRAM_WEBHOOK_SECRET")
        .env("AWS_PAGER", "")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(region) = region {
        command.args(["--region", region]);
    }
    let output = tokio::time::timeout(AWS_TIMEOUT, command.output())
        .await
        .map_err(|_| AwsError::Timeout { call })?
        .map_err(AwsError::Spawn)?;
    if !output.status.success() {
        return Err(AwsError::Failed {
            call,
            reason: first_line(&output.stderr, output.status),
        });
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_error_shown_is_its_first_line() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(254 << 8);
        let stderr = b"\nAn error occurred (AccessDeniedException) when calling the DescribeStacks operation: User: x is not authorized\nmore\n";
        assert_eq!(
            first_line(stderr, status),
            "An error occurred (AccessDeniedException) when calling the DescribeStacks operation: User: x is not authorized"
        );
        assert_eq!(first_line(b"", status), "exit status: 254");
        assert_eq!(first_line(&[b'x'; 1000], status).len(), 300);
    }
}
