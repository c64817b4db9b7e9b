//! Integration tests of the command-line tool, one binary: `bot` run as a
//! person or a script runs it, against the Telegram stand-in on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod chat;
mod credential_providers;
mod deploy;
mod doctor;
mod helpers;
mod parameter_store;
mod poll_command;
mod terminal;
mod test_script;
mod webhook_commands;
