//! Integration tests, one binary: the webhook function and the Bot API client
//! against the Telegram stand-in on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod chat;
mod cli;
mod client;
mod delivery;
mod deploy;
mod faults;
mod helpers;
mod poll;
mod secrets;
mod ssm;
mod webhook;
