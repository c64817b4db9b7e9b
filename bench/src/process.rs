//! One function process, started the way Lambda starts a custom runtime: a
//! fresh process with a clean environment holding Lambda's variables and the
//! function's own, and its own Runtime API to poll.

use crate::BenchError;
use bytes::Bytes;
use lambda_runtime_api::{Invocation, Options, Report, RuntimeApi};
use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The longest a function may take to ask for its first event, or to answer
/// one: far beyond anything healthy, short enough that a hung run ends.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this many reports per invocation (a `/next`, the hand-out, the
/// answer, and the next `/next`): more means the function misbehaves.
const MAX_REPORTS_PER_INVOCATION: usize = 8;
/// Output lines kept per process, shown when it fails.
const KEPT_LOG_LINES: usize = 20;
const MAX_LOG_LINE_CHARS: usize = 400;

/// How one invocation went, seen from the Runtime API.
#[derive(Debug)]
pub struct Invoked {
    /// The first `/next` seen while waiting, if any: for the first
    /// invocation of a process, the end of its init phase.
    pub first_next: Option<Instant>,
    pub handed_out: Instant,
    pub responded: Instant,
    pub body: Bytes,
}

/// The last lines a process wrote, on stdout or stderr.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<VecDeque<String>>>);

impl Output {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT_LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line.chars().take(MAX_LOG_LINE_CHARS).collect());
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().map(|l| format!("\n    {l}")).collect()
    }

    /// Reads `stream` line by line until the process closes it.
    fn drain(&self, stream: impl AsyncRead + Unpin + Send + 'static) {
        let output = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                output.push(line);
            }
        });
    }
}

pub struct Process {
    name: &'static str,
    child: Child,
    pid: u32,
    api: RuntimeApi,
    output: Output,
    /// Just before the process was created.
    pub spawned: Instant,
}

impl Process {
    /// Starts `binary` with exactly `env` plus `AWS_LAMBDA_RUNTIME_API`,
    /// pointing at a Runtime API of its own set up with `api`.
    pub async fn spawn(
        name: &'static str,
        binary: &Path,
        env: &[(String, String)],
        api: &Options,
    ) -> Result<Process, BenchError> {
        let api = RuntimeApi::start(api.clone()).await?;
        let mut command = Command::new(binary);
        // Nothing from the bench's own environment leaks in: no proxy
        // variables that could send the bot's requests elsewhere, no
        // TELEGRAM_BOT_TOKEN_PARAMETER that would make it call AWS.
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.addr().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", binary.display()), e))?;
        let pid = child.id().ok_or_else(|| BenchError::Function {
            name,
            problem: "exited before it could be measured".to_owned(),
            output: String::new(),
        })?;
        let output = Output::default();
        if let Some(stdout) = child.stdout.take() {
            output.drain(stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            output.drain(stderr);
        }
        Ok(Process {
            name,
            child,
            pid,
            api,
            output,
            spawned,
        })
    }

    fn failed(&self, problem: impl Into<String>) -> BenchError {
        BenchError::Function {
            name: self.name,
            problem: problem.into(),
            output: self.output.text(),
        }
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(
        &mut self,
        request_id: String,
        event: Bytes,
    ) -> Result<Invoked, BenchError> {
        let invocation = Invocation {
            request_id: request_id.clone(),
            event,
        };
        if let Err(error) = self.api.queue(invocation) {
            return Err(self.failed(error.to_string()));
        }
        let mut first_next = None;
        let mut handed_out = None;
        for _ in 0..MAX_REPORTS_PER_INVOCATION {
            match self.report().await? {
                Report::NextAsked { at } => {
                    first_next.get_or_insert(at);
                }
                Report::HandedOut { request_id: id, at } if id == request_id => {
                    handed_out = Some(at);
                }
                Report::Response {
                    request_id: id,
                    body,
                    at,
                } if id == request_id => {
                    let handed_out = handed_out
                        .ok_or_else(|| self.failed("answered an event it was never given"))?;
                    return Ok(Invoked {
                        first_next,
                        handed_out,
                        responded: at,
                        body,
                    });
                }
                Report::Error {
                    request_id: id,
                    error_type,
                    body,
                } => {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    return Err(self.failed(format!("failed event {id} with {error_type}: {body}")));
                }
                Report::InitError { error_type, body } => {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    return Err(self.failed(format!("could not start ({error_type}): {body}")));
                }
                Report::Unexpected { what } => {
                    return Err(self.failed(format!("sent {what}")));
                }
                other => return Err(self.failed(format!("out of turn: {other:?}"))),
            }
        }
        Err(self.failed("too many requests for one event"))
    }

    /// The next report, unless the process exits or nothing comes in time.
    async fn report(&mut self) -> Result<Report, BenchError> {
        tokio::select! {
            report = self.api.report() => {
                report.ok_or_else(|| self.failed("the Runtime API stopped"))
            }
            status = self.child.wait() => {
                // Let the output readers catch the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(self.failed(format!("exited ({status})")))
            }
            () = tokio::time::sleep(STEP_TIMEOUT) => {
                Err(self.failed(format!("did nothing for {STEP_TIMEOUT:?}")))
            }
        }
    }

    /// CPU time used so far by all its threads, in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        parse_cpu_ticks(&stat)
            .ok_or_else(|| BenchError::Other(format!("{path}: unexpected format")))
    }

    /// The most resident memory it ever had (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, BenchError> {
        self.status_kib("VmHWM")
    }

    /// Resident anonymous memory (heap, stacks) now, in KiB: what grows if
    /// the process keeps something per update.
    pub fn anon_rss_kib(&self) -> Result<u64, BenchError> {
        self.status_kib("RssAnon")
    }

    fn status_kib(&self, key: &str) -> Result<u64, BenchError> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::io(format!("reading {path}"), e))?;
        parse_status_kib(&status, key)
            .ok_or_else(|| BenchError::Other(format!("{path}: no {key} line")))
    }

    /// Kills the process and waits for it, as a bounded step.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.child.wait()).await;
    }
}

/// utime + stime from `/proc/<pid>/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_an_awkward_command_name() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 120 0 0 0 37 5 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn peak_rss_is_read_in_kib() {
        let status = "Name:\twebhook\nVmPeak:\t  20000 kB\nVmHWM:\t    5120 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(5120));
        assert_eq!(parse_status_kib(status, "VmRSS"), None);
    }
}
