//! Runs the Telegram Bot API stand-in on loopback until Ctrl-C or SIGTERM.
//!
//! Usage: telegram-stand-in [--listen 127.0.0.1:8081] [--token TOKEN] [--bot-username NAME]

use std::net::SocketAddr;
use std::process::ExitCode;
use telegram_stand_in::{Options, StandIn};

#[tokio::main]
async fn main() -> ExitCode {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8081));
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let parsed = match arg.as_str() {
            "--listen" => value("--listen")
                .and_then(|v| v.parse().map_err(|e| format!("--listen {v}: {e}")))
                .map(|addr| listen = addr),
            "--token" => value("--token").map(|v| options.token = v),
            "--bot-username" => value("--bot-username").map(|v| options.bot_username = v),
            "-h" | "--help" => {
                println!("Usage: telegram-stand-in [--listen ADDR] [--token TOKEN] [--bot-username NAME]\n\nA local stand-in for the Telegram Bot API. Defaults: --listen 127.0.0.1:8081,\n--token {}, --bot-username {}.\nControls: GET /_stand-in/calls, GET /_stand-in/sent, POST /_stand-in/observe,\nPOST /_stand-in/updates (queue for getUpdates), POST /_stand-in/faults, POST /_stand-in/reset.", telegram_stand_in::DEFAULT_TOKEN, telegram_stand_in::DEFAULT_BOT_USERNAME);
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other}; see --help")),
        };
        if let Err(message) = parsed {
            eprintln!("telegram-stand-in: {message}");
            return ExitCode::from(2);
        }
    }
    if !listen.ip().is_loopback() {
        eprintln!("telegram-stand-in: refusing to listen on {listen}: loopback addresses only");
        return ExitCode::from(2);
    }
    let stand_in = match StandIn::start_on(listen, options).await {
        Ok(stand_in) => stand_in,
        Err(error) => {
            eprintln!("telegram-stand-in: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("telegram-stand-in listening on {}", stand_in.base_url());
    wait_for_stop().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
