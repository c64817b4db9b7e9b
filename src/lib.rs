//! A Telegram bot that runs as an AWS Lambda function behind API Gateway, and
//! as a long-polling process on any machine, with one bot logic.
//!
//! The bot:
//! - [`bot`]: what the bot answers (the file to edit);
//! - [`handler`]: what a bot is (a look-up and an answer), the context its
//!   outside calls get, and how they fail;
//! - [`action`]: what it can do in answer (send, edit, answer a button);
//! - [`telegram`]: the Bot API types;
//! - [`assistant`]: answers from a language model, streamed.
//!
//! Around it:
//! - [`handling`]: the one way an update is answered, shared by both shells;
//! - [`retry`]: when a failed Bot API call is tried again;
//! - [`client`]: the Bot API client and its typed errors;
//! - [`webhook`]: the Lambda shell;
//! - [`poll`]: the long-polling shell;
//! - [`memory`]: the chat's state and exactly-once answers, on a [`store`];
//! - [`store`]: chat records in DynamoDB, a file, or the process;
//! - [`config`]: configuration from the environment, and start-up errors;
//! - [`ssm`]: the token from Parameter Store;
//! - [`logging`]: structured logs, JSON in Lambda;
//! - [`metrics`]: CloudWatch metrics carried by log lines;
//! - [`health`]: the scheduled health check of the webhook at Telegram;
//! - [`error`]: showing an error with its causes.

pub mod action;
pub mod alerts;
pub mod assistant;
pub mod aws;
pub mod bot;
pub mod client;
pub mod config;
pub mod error;
pub mod handler;
pub mod handling;
pub mod health;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod poll;
pub mod queue;
pub mod retry;
pub mod ssm;
pub mod store;
pub mod telegram;
pub mod webhook;
pub mod worker;
