//! A Telegram bot that runs as an AWS Lambda function behind API Gateway, and
//! as a long-polling process on any machine, with one bot logic.
//!
//! - [`bot`]: what the bot answers (the file to edit);
//! - [`telegram`]: the Bot API types;
//! - [`client`]: the Bot API client and its typed errors;
//! - [`webhook`]: the Lambda shell;
//! - [`config`]: configuration from the environment;
//! - [`logging`]: structured logs, JSON in Lambda.

pub mod bot;
pub mod client;
pub mod config;
pub mod delivery;
pub mod logging;
pub mod poll;
pub mod recent;
pub mod ssm;
pub mod telegram;
pub mod webhook;
