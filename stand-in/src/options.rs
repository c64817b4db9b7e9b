//! How a stand-in presents itself: its token, its bot's username, and how
//! fast Telegram time runs.

/// A token of the right shape, for tests and local runs only.
pub const DEFAULT_TOKEN: &str = "123456789:AAStandIn-token_for-local-tests-only";
pub const DEFAULT_BOT_USERNAME: &str = "EchoLambdaBot";

/// How the stand-in presents itself.
#[derive(Debug, Clone)]
pub struct Options {
    pub token: String,
    pub bot_username: String,
    /// Real seconds per Telegram second: in webhook delivery (timeouts,
    /// backoff, lifetimes, connections), in getUpdates (long-poll timeouts,
    /// the rules for repeated calls and conflicts) and in setWebhook's limit
    /// of one a second. 0.01 makes a 64 s backoff take 0.64 s.
    pub time_scale: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: DEFAULT_TOKEN.to_owned(),
            bot_username: DEFAULT_BOT_USERNAME.to_owned(),
            time_scale: 1.0,
        }
    }
}
