//! A Telegram bot that runs as an AWS Lambda function behind API Gateway, and
//! as a long-polling process on any machine, with one bot logic.
//!
//! The bot, what a bot's author reads and edits:
//! - [`bot`]: what the bot answers (the file to edit);
//! - [`handler`]: what a bot is (a look-up and an answer), the context its
//!   outside calls get, and how they fail;
//! - [`action`]: what it can do in answer (send, edit, answer a button);
//! - [`telegram`]: the Bot API types;
//! - [`assistant`]: answers from a language model, streamed.
//!
//! The entry points, thin shells around one answering path:
//! - [`webhook`]: the Lambda function behind API Gateway;
//! - [`worker`]: the same function, answering the updates put on the queue;
//! - [`poll`]: the long-polling loop;
//! - [`config`]: their configuration from the environment, and start-up
//!   errors.
//!
//! Everything else is [`runtime`]: the machinery the shells share.

pub mod action;
pub mod assistant;
pub mod bot;
pub mod config;
pub mod handler;
pub mod poll;
pub mod runtime;
pub mod telegram;
pub mod webhook;
pub mod worker;

// The crate's own paths to the machinery stay short.
use runtime::{
    alerts, aws, client, error, handling, health, logging, memory, metrics, queue, retry, ssm,
    store,
};
