//! The stand-in's fidelity to Telegram, one test binary: it is driven as
//! any client drives it, over plain HTTP (or HTTPS), and its answers are
//! compared with Telegram's. Nothing here uses the bot's own code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod buttons;
mod chat_actions;
mod commands;
mod controls;
mod delivery;
mod helpers;
mod methods;
mod model;
mod tls;
mod updates;
mod webhooks;
