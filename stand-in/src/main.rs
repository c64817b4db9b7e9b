//! Runs the Telegram Bot API stand-in on loopback until the process is
//! stopped (Ctrl-C or SIGTERM).
//!
//! Usage: telegram-stand-in [--listen 127.0.0.1:8081] [--token TOKEN] [--bot-username NAME]

use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;
use telegram_stand_in::{Options, StandIn, DEFAULT_BOT_USERNAME, DEFAULT_TOKEN};

const CONTROLS: &str = "\
Controls, beside the Bot API's /bot<token>/<method> paths:
  GET  /_stand-in/calls     every Bot API call received, with its status
  GET  /_stand-in/sent      the sendMessage parameters carried out
  GET  /_stand-in/commands  the commands set for the default scope and language
  POST /_stand-in/observe   an update whose chat becomes known
  POST /_stand-in/updates   an update to queue (for getUpdates or the webhook)
  POST /_stand-in/faults    {\"method\": ..., \"fault\": ...} for the next call
  POST /_stand-in/reset     forget calls and faults
  POST /_stand-in/messages  {\"text\": ...} from a user; answers the bot's replies
  POST /_stand-in/press     {\"data\"|\"text\"|\"index\": ...} presses an inline button;
                            with \"wait\": true, answers what the bot did about it";

/// A local stand-in for the Telegram Bot API.
#[derive(Debug, Parser)]
#[command(name = "telegram-stand-in", version, after_help = CONTROLS)]
struct Args {
    /// The loopback address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The bot token the stand-in accepts.
    #[arg(long, default_value = DEFAULT_TOKEN)]
    token: String,
    /// The username getMe answers.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_BOT_USERNAME)]
    bot_username: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "telegram-stand-in: refusing to listen on {}: loopback addresses only",
            args.listen
        );
        return ExitCode::from(2);
    }
    let options = Options {
        token: args.token,
        bot_username: args.bot_username,
        ..Options::default()
    };
    let stand_in = match StandIn::start_on(args.listen, options).await {
        Ok(stand_in) => stand_in,
        Err(error) => {
            eprintln!(
                "telegram-stand-in: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    println!("telegram-stand-in listening on {}", stand_in.base_url());
    // Serve until stopped. Nothing waits for a signal: SIGINT's and SIGTERM's
    // default action ends the process, and a stand-in has nothing to flush
    // or clean up. Listening for them would need tokio's `signal` feature,
    // which the Lambda function's package must not get through its
    // dev-dependency on this one.
    std::future::pending::<()>().await;
    drop(stand_in);
    ExitCode::SUCCESS
}
