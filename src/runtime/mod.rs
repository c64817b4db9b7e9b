//! The machinery under the bot: what answers an update exactly once,
//! whichever shell delivered it. A bot's author edits none of it; the
//! shells (`webhook`, `poll`, `worker`), the command-line tool and the
//! tests use it.
//!
//! - [`handling`]: the one way an update is answered, shared by the shells;
//! - [`memory`]: the chat's state and exactly-once answers, on a [`store`];
//! - [`store`]: chat records in DynamoDB, a file, or the process;
//! - [`client`]: the Bot API client and its typed errors;
//! - [`retry`]: when a failed call is tried again;
//! - [`queue`]: slow updates sent to the worker through SQS;
//! - [`aws`]: the signed requests to Parameter Store and SQS;
//! - [`ssm`]: the token and secrets from Parameter Store;
//! - [`logging`]: structured logs, JSON in Lambda;
//! - [`metrics`]: CloudWatch metrics carried by log lines;
//! - [`health`]: the scheduled health check of the webhook at Telegram;
//! - [`alerts`]: alarm notifications posted to a chat;
//! - [`error`]: showing an error with its causes.

pub mod alerts;
pub mod aws;
pub mod client;
pub mod error;
pub mod handling;
pub mod health;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod queue;
pub mod retry;
pub mod ssm;
pub mod store;
