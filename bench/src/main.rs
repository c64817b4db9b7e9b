//! lambda-bench: runs the release-built webhook function the way Lambda
//! does, next to the smallest possible `lambda_runtime` function, and reports
//! what the webhook costs on top of it.
//!
//! Each function runs as a fresh process polling a Runtime API on loopback
//! (`runtime_api`), with Lambda's environment. The webhook's replies go to
//! the Telegram stand-in over HTTPS, with a throw-away CA the function trusts
//! through `SSL_CERT_FILE`; verification stays on, so the cold figures
//! include a real TLS handshake. Every answer is checked, so a failing
//! function cannot produce figures.
//!
//! Usage: lambda-bench [--cold-runs N] [--warm-invocations N] [--json PATH]
//!                     [--webhook PATH] [--baseline PATH] [--event PATH]
//!                     [--rust-log FILTER]

mod process;
mod report;
mod runtime_api;
mod size;

use bytes::Bytes;
use process::Process;
use report::{ColdRun, FunctionResults, Warm};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use telegram_stand_in::{Options, StandIn};

/// Invocations before the warm measurement starts, not counted: the first
/// one is a cold start, the next few settle allocator and connection pool.
const WARM_UP_INVOCATIONS: usize = 20;
/// Warm invocations in a row for one function before the other's turn.
const WARM_BLOCK: usize = 50;
/// Upper bounds on the counts, so a typo cannot start a day-long run.
const MAX_COLD_RUNS: usize = 1_000;
const MAX_WARM_INVOCATIONS: usize = 200_000;
/// The bot's settings, as in the README's local run.
const WEBHOOK_SECRET: &str = "local-dev-secret";
const BOT_USERNAME: &str = "EchoLambdaBot";
/// Lambda's memory setting in the SAM template.
const MEMORY_MB: u32 = 128;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{name}: {problem}{}", if output.is_empty() { String::new() } else { format!("\n  its last output:{output}") })]
    Function {
        name: &'static str,
        problem: String,
        output: String,
    },
    #[error("{0}")]
    Other(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}

#[derive(Debug)]
struct Args {
    cold_runs: usize,
    warm_invocations: usize,
    json: PathBuf,
    webhook: PathBuf,
    baseline: PathBuf,
    event: PathBuf,
    rust_log: Option<String>,
}

const USAGE: &str = "\
Usage: lambda-bench [options]

Runs the release-built webhook function and an empty lambda_runtime function
the way Lambda does, and reports cold start, warm latency, CPU, memory and
size for both. Build the functions first (scripts/bench does both steps).

Options:
  --cold-runs N          fresh processes per function (default 20)
  --warm-invocations N   measured invocations of one process (default 2000)
  --json PATH            where to write the results (default target/bench/results.json)
  --webhook PATH         the webhook binary (default <target>/release/webhook)
  --baseline PATH        the empty function (default <target>/release/empty-function)
  --event PATH           an HTTP API event with a Telegram text message (default events/text.json)
  --rust-log FILTER      RUST_LOG for both functions (default: unset, so the bot logs at info)";

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, BenchError> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"));
        let mut parsed = Args {
            cold_runs: 20,
            warm_invocations: 2_000,
            json: PathBuf::from("target/bench/results.json"),
            webhook: target.join("release/webhook"),
            baseline: target.join("release/empty-function"),
            event: Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/text.json"),
            rust_log: None,
        };
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            if name == "-h" || name == "--help" {
                return Ok(None);
            }
            const OPTIONS: [&str; 7] = [
                "--cold-runs",
                "--warm-invocations",
                "--json",
                "--webhook",
                "--baseline",
                "--event",
                "--rust-log",
            ];
            if !OPTIONS.contains(&name.as_str()) {
                return Err(BenchError::Usage(format!("unknown option {name}")));
            }
            let value = inline
                .or_else(|| args.next())
                .ok_or_else(|| BenchError::Usage(format!("{name} needs a value")))?;
            match name.as_str() {
                "--cold-runs" => parsed.cold_runs = count(&name, &value, MAX_COLD_RUNS)?,
                "--warm-invocations" => {
                    parsed.warm_invocations = count(&name, &value, MAX_WARM_INVOCATIONS)?;
                }
                "--json" => parsed.json = PathBuf::from(value),
                "--webhook" => parsed.webhook = PathBuf::from(value),
                "--baseline" => parsed.baseline = PathBuf::from(value),
                "--event" => parsed.event = PathBuf::from(value),
                "--rust-log" => parsed.rust_log = Some(value),
                _ => return Err(BenchError::Usage(format!("unknown option {name}"))),
            }
        }
        Ok(Some(parsed))
    }
}

fn count(name: &str, value: &str, max: usize) -> Result<usize, BenchError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| BenchError::Usage(format!("{name}: expected 1 to {max}, got {value:?}")))
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("lambda-bench: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // One thread for the Runtime API, the stand-in and the bookkeeping, so
    // the bench takes one core at most and leaves the other to the function.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lambda-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A function under test.
struct Function {
    name: &'static str,
    binary: PathBuf,
    /// The webhook must have sent its reply to the stand-in; the baseline
    /// only answers.
    sends_reply: bool,
}

async fn run(args: Args) -> Result<(), BenchError> {
    // Other work on the machine skews every figure; it is recorded with them.
    let load_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok());
    let template = EventTemplate::load(&args.event)?;
    let functions = [
        Function {
            name: "webhook",
            binary: args.webhook.clone(),
            sends_reply: true,
        },
        Function {
            name: "baseline",
            binary: args.baseline.clone(),
            sends_reply: false,
        },
    ];
    for function in &functions {
        if !function.binary.is_file() {
            return Err(BenchError::Usage(format!(
                "{}: {} not found; build it with `cargo build --release` (scripts/bench does)",
                function.name,
                function.binary.display()
            )));
        }
    }
    let (stand_in, ca_pem) = StandIn::start_tls(Options::default())
        .await
        .map_err(|e| BenchError::io("starting the Telegram stand-in", e))?;
    let scratch = Scratch::new()?;
    let ca_file = scratch.path.join("stand-in-ca.pem");
    std::fs::write(&ca_file, &ca_pem)
        .map_err(|e| BenchError::io(format!("writing {}", ca_file.display()), e))?;
    let env = lambda_env(&stand_in, &ca_file, args.rust_log.as_deref());
    let bench = Bench {
        stand_in: &stand_in,
        template: &template,
        env: &env,
    };

    let mut results = Vec::new();
    for function in &functions {
        eprintln!("lambda-bench: {}: size", function.name);
        let sizes = size::measure(&function.binary, &scratch.path.join(function.name))?;
        results.push(FunctionResults::new(function.name, sizes));
    }

    // One unrecorded run each, so every recorded run finds the binary in the
    // page cache, as the first one would not.
    for function in &functions {
        bench.cold_run(function, 0).await?;
    }
    eprintln!(
        "lambda-bench: {} cold starts of each, interleaved",
        args.cold_runs
    );
    for round in 0..args.cold_runs {
        // Alternating the order keeps drift on the machine from favouring one.
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let run = bench.cold_run(&functions[index], round + 1).await?;
            results[index].cold.push(run);
        }
    }
    eprintln!(
        "lambda-bench: {} warm invocations of each, interleaved in blocks of {WARM_BLOCK}",
        args.warm_invocations
    );
    let warm = bench.warm_runs(&functions, args.warm_invocations).await?;
    for (result, (warm, peak_rss_kib)) in results.iter_mut().zip(warm) {
        result.warm = Some(warm);
        result.peak_rss_kib = peak_rss_kib;
    }

    let settings = report::Settings {
        cold_runs: args.cold_runs,
        warm_invocations: args.warm_invocations,
        warm_up: WARM_UP_INVOCATIONS,
        memory_mb: MEMORY_MB,
        rust_log: args.rust_log.clone(),
        load_at_start,
    };
    let report = report::Report::new(settings, results)?;
    println!("{}", report.table());
    if let Some(parent) = args.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
    }
    let json = serde_json::to_string_pretty(&report.json())
        .map_err(|e| BenchError::Other(format!("encoding the results: {e}")))?;
    std::fs::write(&args.json, json + "\n")
        .map_err(|e| BenchError::io(format!("writing {}", args.json.display()), e))?;
    println!("results written to {}", args.json.display());
    Ok(())
}

/// The environment Lambda gives a function, plus the bot's own variables.
fn lambda_env(stand_in: &StandIn, ca_file: &Path, rust_log: Option<&str>) -> Vec<(String, String)> {
    let pairs = [
        ("AWS_LAMBDA_FUNCTION_NAME", "telegram-bot-bench".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef".to_owned(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/telegram-bot-bench".to_owned(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME.to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        ("SSL_CERT_FILE", ca_file.display().to_string()),
    ];
    let rust_log = rust_log.map(|filter| ("RUST_LOG", filter.to_owned()));
    pairs
        .into_iter()
        .chain(rust_log)
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// A directory for the CA file and the zips, removed at the end.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, BenchError> {
        let path = std::env::temp_dir().join(format!("lambda-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::io(format!("creating {}", path.display()), e))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The sample event, re-rendered with a new `update_id` per invocation: the
/// function drops an update it has already answered, so repeating one would
/// measure the duplicate path instead of a reply.
struct EventTemplate {
    event: Value,
    update: Value,
    first_update_id: i64,
    chat_id: i64,
}

impl EventTemplate {
    fn load(path: &Path) -> Result<EventTemplate, BenchError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))?;
        let bad = |why: &str| BenchError::Usage(format!("{}: {why}", path.display()));
        let event: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        if event.get("isBase64Encoded") == Some(&Value::Bool(true)) {
            return Err(bad("needs a plain (not base64) body"));
        }
        let body = event
            .get("body")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no body"))?;
        let update: Value =
            serde_json::from_str(body).map_err(|e| bad(&format!("body is not JSON: {e}")))?;
        let first_update_id = update
            .get("update_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("the update has no update_id"))?;
        let chat_id = update
            .pointer("/message/chat/id")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("the update is not a message with a chat"))?;
        Ok(EventTemplate {
            event,
            update,
            first_update_id,
            chat_id,
        })
    }

    /// The event carrying update `offset` after the sample's, and the update.
    fn render(&self, offset: usize) -> Result<(Bytes, Value), BenchError> {
        let mut update = self.update.clone();
        update["update_id"] = Value::from(self.first_update_id.saturating_add(offset as i64));
        let body = update.to_string();
        let mut event = self.event.clone();
        if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut) {
            headers.insert(
                "content-length".to_owned(),
                Value::from(body.len().to_string()),
            );
        }
        event["body"] = Value::from(body);
        let bytes = serde_json::to_vec(&event)
            .map_err(|e| BenchError::Other(format!("encoding the event: {e}")))?;
        Ok((Bytes::from(bytes), update))
    }
}

struct Bench<'a> {
    stand_in: &'a StandIn,
    template: &'a EventTemplate,
    env: &'a [(String, String)],
}

impl Bench<'_> {
    /// Starts a fresh process, gives it one event and stops it.
    async fn cold_run(&self, function: &Function, run: usize) -> Result<ColdRun, BenchError> {
        let mut process = Process::spawn(function.name, &function.binary, self.env).await?;
        let spawned = process.spawned;
        // Each process gets its own range of update ids; not needed (a new
        // process remembers nothing) but it keeps every update unique.
        let invoked = self.invoke(&mut process, function, run * 10).await;
        process.stop().await;
        let invoked = invoked?;
        let init_end = invoked.first_next.ok_or_else(|| BenchError::Function {
            name: function.name,
            problem: "answered without asking for an event".to_owned(),
            output: String::new(),
        })?;
        Ok(ColdRun {
            init: init_end.saturating_duration_since(spawned),
            total: invoked.responded.saturating_duration_since(spawned),
        })
    }

    /// One process per function, all alive at once: warm-up invocations,
    /// then `count` measured ones each, in alternating blocks so that a
    /// change in the machine's state during the run (other work, a host
    /// that slows an idle vCPU's wake-ups) reaches every function alike.
    /// Returns each function's figures and peak resident memory.
    async fn warm_runs(
        &self,
        functions: &[Function],
        count: usize,
    ) -> Result<Vec<(Warm, u64)>, BenchError> {
        let mut processes = Vec::with_capacity(functions.len());
        let mut spawned = Ok(());
        for function in functions {
            match Process::spawn(function.name, &function.binary, self.env).await {
                Ok(process) => processes.push(process),
                Err(error) => {
                    spawned = Err(error);
                    break;
                }
            }
        }
        let result = match spawned {
            Ok(()) => {
                self.warm_invocations(functions, &mut processes, count)
                    .await
            }
            Err(error) => Err(error),
        };
        for process in processes {
            process.stop().await;
        }
        result
    }

    async fn warm_invocations(
        &self,
        functions: &[Function],
        processes: &mut [Process],
        count: usize,
    ) -> Result<Vec<(Warm, u64)>, BenchError> {
        // Ids after all the cold runs' ranges.
        let first_offset = (MAX_COLD_RUNS + 1) * 10;
        for (function, process) in functions.iter().zip(processes.iter_mut()) {
            for index in 0..WARM_UP_INVOCATIONS {
                self.invoke(process, function, first_offset + index).await?;
            }
        }
        let handshakes_before = self.stand_in.tls_handshakes();
        let mut before = Vec::with_capacity(processes.len());
        for process in processes.iter() {
            before.push((process.cpu_ticks()?, process.anon_rss_kib()?));
        }
        let mut latencies: Vec<Vec<Duration>> = functions
            .iter()
            .map(|_| Vec::with_capacity(count))
            .collect();
        let mut done = 0;
        while done < count {
            let block = WARM_BLOCK.min(count - done);
            for ((function, process), latencies) in functions
                .iter()
                .zip(processes.iter_mut())
                .zip(latencies.iter_mut())
            {
                for index in done..done + block {
                    let offset = first_offset + WARM_UP_INVOCATIONS + index;
                    let invoked = self.invoke(process, function, offset).await?;
                    latencies.push(
                        invoked
                            .responded
                            .saturating_duration_since(invoked.handed_out),
                    );
                }
            }
            done += block;
        }
        // Only the webhook talks to the stand-in, so every new connection
        // during the run is one of its own.
        let handshakes = self.stand_in.tls_handshakes() - handshakes_before;
        let ticks_per_second = clock_ticks_per_second();
        let mut results = Vec::with_capacity(processes.len());
        for (((function, process), latencies), (cpu_before, anon_before)) in functions
            .iter()
            .zip(processes.iter())
            .zip(latencies)
            .zip(before)
        {
            let warm = Warm {
                latencies,
                cpu_ticks: process.cpu_ticks()?.saturating_sub(cpu_before),
                clock_ticks_per_second: ticks_per_second,
                tls_handshakes: if function.sends_reply { handshakes } else { 0 },
                anon_growth_kib: process.anon_rss_kib()?.saturating_sub(anon_before),
            };
            results.push((warm, process.peak_rss_kib()?));
        }
        Ok(results)
    }

    /// Gives the process the sample update with a fresh id, waits for the
    /// answer and checks it: status 200, and for the webhook, exactly one
    /// accepted sendMessage to the update's chat.
    async fn invoke(
        &self,
        process: &mut Process,
        function: &Function,
        offset: usize,
    ) -> Result<process::Invoked, BenchError> {
        let (event, update) = self.template.render(offset)?;
        // Telegram knows a chat before it delivers the chat's updates.
        self.stand_in.observe_update(&update);
        self.stand_in.reset();
        let request_id = format!("8f5e1c2a-0000-4000-8000-{offset:012x}");
        let invoked = process.invoke(request_id, event).await?;
        let failed = |problem: String| BenchError::Function {
            name: function.name,
            problem,
            output: String::new(),
        };
        let answer: Value = serde_json::from_slice(&invoked.body).unwrap_or(Value::Null);
        if answer.get("statusCode").and_then(Value::as_i64) != Some(200) {
            let body = String::from_utf8_lossy(&invoked.body);
            return Err(failed(format!("answered {body} instead of statusCode 200")));
        }
        if function.sends_reply {
            let calls = self.stand_in.calls();
            let replied = matches!(calls.as_slice(), [call]
                if call.method == "sendMessage"
                    && call.status == 200
                    && call.params.get("chat_id").and_then(Value::as_i64) == Some(self.template.chat_id));
            if !replied {
                let mut seen = format!("{calls:?}");
                seen.truncate(600);
                return Err(failed(format!(
                    "expected one accepted sendMessage to chat {}, the stand-in saw {seen}",
                    self.template.chat_id
                )));
            }
        }
        Ok(invoked)
    }
}

/// `USER_HZ`, the unit of /proc/<pid>/stat's CPU times: 100 on every
/// common Linux, asked of `getconf` rather than assumed.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}
