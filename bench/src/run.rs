//! One bench run from start to end: sets the stage (the stand-in, its CA,
//! Lambda's environment, the Runtime API's settings), has `measure` take the
//! figures in a fixed order, and writes the report.

use crate::event::EventTemplate;
use crate::measure::{Bench, Function, WARM_BLOCK, WARM_UP_INVOCATIONS};
use crate::report::{self, FunctionResults, StoreRun, WEBHOOK_STORE};
use crate::store::{self, StoreProxy};
use crate::{size, Args, BenchError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use telegram_stand_in::{Options, StandIn};

/// The bot's settings, as in the README's local run.
const WEBHOOK_SECRET: &str = "local-dev-secret";
const BOT_USERNAME: &str = "EchoLambdaBot";
/// Lambda's memory setting and timeout in the SAM template.
const MEMORY_MB: u32 = 128;
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(25);
/// Where the function believes it runs; the Runtime API's ARN agrees.
const FUNCTION_NAME: &str = "telegram-bot-bench";
const REGION: &str = "eu-west-1";

pub async fn run(args: Args) -> Result<(), BenchError> {
    if args.assistant {
        return run_assistant(args).await;
    }
    // Other work on the machine skews every figure; it is recorded with them.
    let load_at_start = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok());
    let template = EventTemplate::load(&args.event)?;
    let mut functions = vec![
        Function {
            name: "webhook",
            binary: args.webhook.clone(),
            sends_reply: true,
            env: Vec::new(),
            uses_store: false,
        },
        Function {
            name: "baseline",
            binary: args.baseline.clone(),
            sends_reply: false,
            env: Vec::new(),
            uses_store: false,
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
    // Never a reason to stop: without moto, the run goes on without it.
    let store = if args.no_store {
        Err("--no-store".to_owned())
    } else if template.press {
        // With a store the press edits a message the stand-in never saw
        // the bot send: a permanent failure, not a figure.
        Err("the event is a button press".to_owned())
    } else {
        start_store(Duration::from_millis(args.store_latency_ms)).await
    };
    let (store, store_run) = match store {
        Ok(store) => {
            functions.insert(
                1,
                Function {
                    name: WEBHOOK_STORE,
                    binary: args.webhook.clone(),
                    sends_reply: true,
                    env: store.env(),
                    uses_store: true,
                },
            );
            let moto_server = store.moto_binary().to_owned();
            let latency = Duration::from_millis(args.store_latency_ms);
            (
                Some(store),
                StoreRun::Measured {
                    moto_server,
                    latency,
                },
            )
        }
        Err(why) => {
            eprintln!("lambda-bench: {WEBHOOK_STORE} left out: {why}");
            (None, StoreRun::Skipped(why))
        }
    };
    let scratch = Scratch::new()?;
    let (stand_in, ca_file) = start_stand_in(&scratch).await?;
    let mut env = lambda_env(&stand_in, &ca_file, args.rust_log.as_deref());
    if args.metrics {
        // The baseline ignores it; the webhook (and webhook+store) writes
        // its per-update line with the embedded metric format.
        env.push(("METRICS_NAMESPACE".to_owned(), "TelegramBot".to_owned()));
        eprintln!("lambda-bench: metrics on (METRICS_NAMESPACE=TelegramBot)");
    }
    let api = lambda_runtime_api::Options {
        function_timeout: FUNCTION_TIMEOUT,
        function_arn: format!("arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION_NAME}"),
    };
    let bench = Bench {
        stand_in: &stand_in,
        template: &template,
        env: &env,
        api: &api,
        store: store.as_ref(),
    };

    let mut results: Vec<FunctionResults> = Vec::new();
    for (index, function) in functions.iter().enumerate() {
        // webhook+store runs the webhook's binary: measured once.
        let earlier = functions[..index]
            .iter()
            .position(|f| f.binary == function.binary);
        let sizes = match earlier.and_then(|earlier| results.get(earlier)) {
            Some(same) => same.sizes.clone(),
            None => {
                eprintln!("lambda-bench: {}: size", function.name);
                size::measure(&function.binary, &scratch.path.join(function.name))?
            }
        };
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
        // Rotating the order keeps drift on the machine from favouring one.
        for index in rotation(functions.len(), round) {
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
        store: store_run,
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
    if let Some(store) = store {
        store.stop().await;
    }
    Ok(())
}

/// `--assistant`: the webhook and the fake model only.
async fn run_assistant(args: Args) -> Result<(), BenchError> {
    let template = EventTemplate::load(&args.event)?;
    if !args.webhook.is_file() {
        return Err(BenchError::Usage(format!(
            "webhook: {} not found; build it with `cargo build --release` (scripts/bench does)",
            args.webhook.display()
        )));
    }
    let scratch = Scratch::new()?;
    let (stand_in, ca_file) = start_stand_in(&scratch).await?;
    let (_model, model_env) = crate::assistant::start_model().await?;
    let env: Vec<(String, String)> = lambda_env(&stand_in, &ca_file, args.rust_log.as_deref())
        .into_iter()
        .chain(model_env)
        .collect();
    let api = lambda_runtime_api::Options {
        function_timeout: FUNCTION_TIMEOUT,
        function_arn: format!("arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION_NAME}"),
    };
    let warm = args.warm_invocations.min(crate::assistant::MAX_WARM);
    eprintln!(
        "lambda-bench: /ask, {} cold starts and {warm} warm questions, 2 s each",
        args.cold_runs
    );
    let spawn = async || {
        crate::process::Process::spawn("webhook+assistant", &args.webhook, &env, &api).await
    };
    let figures =
        crate::assistant::measure(spawn, &stand_in, &template, args.cold_runs, warm).await?;
    if let Some(parent) = args.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::io(format!("creating {}", parent.display()), e))?;
    }
    let json = serde_json::to_string_pretty(&figures)
        .map_err(|e| BenchError::Other(format!("encoding the results: {e}")))?;
    std::fs::write(&args.json, json + "\n")
        .map_err(|e| BenchError::io(format!("writing {}", args.json.display()), e))?;
    println!("results written to {}", args.json.display());
    Ok(())
}

/// The HTTPS stand-in, and its CA in a file for `SSL_CERT_FILE`.
async fn start_stand_in(scratch: &Scratch) -> Result<(StandIn, PathBuf), BenchError> {
    let (stand_in, ca_pem) = StandIn::start_tls(Options::default())
        .await
        .map_err(|e| BenchError::io("starting the Telegram stand-in", e))?;
    let ca_file = scratch.path.join("stand-in-ca.pem");
    std::fs::write(&ca_file, &ca_pem)
        .map_err(|e| BenchError::io(format!("writing {}", ca_file.display()), e))?;
    Ok((stand_in, ca_file))
}

/// moto with the table, or why not.
async fn start_store(latency: Duration) -> Result<StoreProxy, String> {
    let moto = store::find_moto()?;
    eprintln!(
        "lambda-bench: {WEBHOOK_STORE}: starting {}, {} ms emulated latency",
        moto.display(),
        latency.as_millis()
    );
    // The stand-in started next knows this token.
    let token = Options::default().token;
    StoreProxy::start(moto, REGION, latency, &token, WEBHOOK_SECRET).await
}

/// The order of `count` functions in round `round`: each starts a round in
/// turn (with two, they alternate).
fn rotation(count: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |index| (index + round) % count.max(1))
}

/// The environment Lambda gives a function, plus the bot's own variables.
fn lambda_env(stand_in: &StandIn, ca_file: &Path, rust_log: Option<&str>) -> Vec<(String, String)> {
    let lambda = lambda_runtime_api::lambda_env(FUNCTION_NAME, MEMORY_MB, REGION);
    let pairs = [
        ("TELEGRAM_BOT_TOKEN", stand_in.token().to_owned()),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME.to_owned()),
        ("TELEGRAM_API_BASE_URL", stand_in.base_url()),
        ("SSL_CERT_FILE", ca_file.display().to_string()),
    ];
    let rust_log = rust_log.map(|filter| ("RUST_LOG", filter.to_owned()));
    lambda
        .into_iter()
        .chain(pairs)
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

#[cfg(test)]
mod tests {
    use super::rotation;

    #[test]
    fn each_function_leads_a_round_in_turn() {
        let rounds = |count| {
            (0..count)
                .map(|round| rotation(count, round).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(rounds(2), [[0, 1], [1, 0]]);
        assert_eq!(rounds(3), [[0, 1, 2], [1, 2, 0], [2, 0, 1]]);
        assert_eq!(rotation(0, 5).count(), 0);
    }
}
