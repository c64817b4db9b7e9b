//! Integration tests of the function's library, one binary: the webhook
//! handler, the health check, the polling loop and the Bot API client against the Telegram
//! stand-in on loopback, and Parameter Store against moto. The command-line
//! tool's tests are in cli/tests, the stand-in's own in stand-in/tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod alerts;
mod assistant;
mod buttons;
mod client;
mod delivery;
mod faults;
mod fuzz_seeds;
mod health;
mod helpers;
mod memory;
mod metric_lines;
mod outside;
mod poll;
mod processes;
mod queue;
mod readme;
mod secrets;
mod ssm;
mod store_limits;
mod webhook;
