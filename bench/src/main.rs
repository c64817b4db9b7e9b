//! lambda-bench: runs the release-built webhook function the way Lambda
//! does, next to the smallest possible `lambda_runtime` function, and reports
//! what the webhook costs on top of it.
//!
//! Each function runs as a fresh process polling a Runtime API on loopback
//! (the `lambda-runtime-api` crate), with Lambda's environment. The
//! webhook's replies go to the Telegram stand-in over HTTPS, with a
//! throw-away CA the function trusts through `SSL_CERT_FILE`; verification
//! stays on, so the cold figures include a real TLS handshake. Every answer
//! is checked, so a failing function cannot produce figures.
//!
//! The webhook runs a second time as `webhook+store`, with its DynamoDB
//! store on moto's server on loopback (`store`), behind a proxy that counts
//! the store requests of each update; without moto it is left out.
//!
//! This file is the command line; `run` sets the stage, `measure` drives
//! the functions, `report` turns the timings into figures.

mod assistant;
mod error;
mod event;
mod measure;
mod process;
mod report;
mod run;
mod size;
mod store;

use clap::builder::RangedU64ValueParser;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use error::BenchError;

/// Upper bounds on the counts, so a typo cannot start a day-long run.
const MAX_COLD_RUNS: usize = 1_000;
const MAX_WARM_INVOCATIONS: usize = 200_000;

/// Runs the release-built webhook function (without and with its store, on
/// moto) and an empty lambda_runtime function the way Lambda does, and
/// reports cold start, warm latency, CPU, memory and size for each, and the
/// store's requests per update. Build the functions first (scripts/bench
/// does both steps).
#[derive(Debug, Parser)]
#[command(name = "lambda-bench")]
struct Args {
    /// Fresh processes per function, 1 to 1000
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_COLD_RUNS as u64))]
    cold_runs: usize,
    /// Measured invocations of one process, 1 to 200000
    #[arg(long, value_name = "N", default_value_t = 2_000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_WARM_INVOCATIONS as u64))]
    warm_invocations: usize,
    /// Where to write the results
    #[arg(long, value_name = "PATH", default_value = "target/bench/results.json")]
    json: PathBuf,
    /// The webhook binary; the default follows $CARGO_TARGET_DIR
    #[arg(long, value_name = "PATH", default_value_os_t = built("webhook"))]
    webhook: PathBuf,
    /// The empty function; the default follows $CARGO_TARGET_DIR
    #[arg(long, value_name = "PATH", default_value_os_t = built("empty-function"))]
    baseline: PathBuf,
    /// An HTTP API event with a Telegram text message [default: events/text.json]
    #[arg(long, value_name = "PATH", default_value_os_t = sample_event(), hide_default_value = true)]
    event: PathBuf,
    /// RUST_LOG for the functions [default: unset, so the bot logs at info]
    #[arg(long, value_name = "FILTER")]
    rust_log: Option<String>,
    /// Leave out webhook+store (the webhook with its DynamoDB store, on
    /// moto's server found through $MOTO_SERVER, target/tools or the PATH)
    #[arg(long)]
    no_store: bool,
    /// Run the webhook with metrics on (METRICS_NAMESPACE, as the template
    /// sets it with Monitoring=On): each update's log line then carries
    /// CloudWatch's embedded metric format. Compare with a run without.
    #[arg(long)]
    metrics: bool,
    /// Emulated network latency of the store and Parameter Store, 0 to
    /// 1000 ms: each request waits this long, and each new connection
    /// twice that (TCP and TLS), as a round trip to AWS would
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = RangedU64ValueParser::<u64>::new().range(0..=1000))]
    store_latency_ms: u64,
    /// Measure `/ask` instead: the webhook answering from the stand-in's
    /// fake model, a 2 s stream (time to the first draft, to the answer,
    /// the billed duration; at most 30 warm questions)
    #[arg(long)]
    assistant: bool,
}

/// The repository's sample event, wherever the bench is run from.
fn sample_event() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/text.json")
}

/// Where `cargo build --release` puts `binary`.
fn built(binary: &str) -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("release").join(binary)
}

fn main() -> ExitCode {
    // Prints help and exits 0, or prints the usage error and exits 2.
    let args = Args::parse();
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
    match runtime.block_on(run::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("lambda-bench").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
        // The limits are spelt out in the help; they must be the real ones.
        let help = Args::command().render_help().to_string();
        assert!(help.contains(&format!("1 to {MAX_COLD_RUNS}")), "{help}");
        assert!(
            help.contains(&format!("1 to {MAX_WARM_INVOCATIONS}")),
            "{help}"
        );
    }

    #[test]
    fn the_defaults_are_a_full_run() {
        let args = parse(&[]).unwrap();
        assert_eq!((args.cold_runs, args.warm_invocations), (20, 2_000));
        assert_eq!(args.json, PathBuf::from("target/bench/results.json"));
        assert!(args.webhook.ends_with("release/webhook"));
        assert!(args.baseline.ends_with("release/empty-function"));
        assert!(args.event.ends_with("events/text.json"));
        assert_eq!(args.rust_log, None);
        assert!(!args.no_store);
        assert!(parse(&["--no-store"]).unwrap().no_store);
    }

    #[test]
    fn values_come_separate_or_after_an_equals_sign() {
        let args = parse(&[
            "--cold-runs",
            "3",
            "--warm-invocations=200",
            "--rust-log=debug",
        ])
        .unwrap();
        assert_eq!((args.cold_runs, args.warm_invocations), (3, 200));
        assert_eq!(args.rust_log.as_deref(), Some("debug"));
    }

    #[test]
    fn counts_are_bounded() {
        for (option, max) in [
            ("--cold-runs", MAX_COLD_RUNS),
            ("--warm-invocations", MAX_WARM_INVOCATIONS),
        ] {
            assert!(parse(&[option, "1"]).is_ok());
            assert!(parse(&[option, &max.to_string()]).is_ok());
            for bad in ["0", &(max + 1).to_string(), "-1", "ten"] {
                // With `=`, so that "-1" is not taken for an option.
                let error = parse(&[&format!("{option}={bad}")]).unwrap_err();
                assert_eq!(
                    error.kind(),
                    clap::error::ErrorKind::ValueValidation,
                    "{option}={bad}"
                );
            }
        }
    }

    #[test]
    fn unknown_options_are_refused() {
        let error = parse(&["--cold"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
