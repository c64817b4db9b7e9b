//! A stand-in for the Telegram Bot API on loopback, for tests and local runs.
//!
//! It answers the methods this project uses with Telegram's JSON shapes and
//! refuses what Telegram refuses, with Telegram's status codes and error
//! descriptions: a wrong token, an unknown method, a chat it has not seen, an
//! empty or over-long text, a reply to a message that does not exist. It
//! records every call and injects failures on demand.
//!
//! Chats become known the way they do for a real bot: when an update from
//! them passes through ([`Handle::observe_update`]).
//!
//! The modules, from the outside in: `server` runs a [`StandIn`]; `routes`
//! sends each request to a control endpoint (`control`) or a Bot API method
//! (`messages`, `callbacks`, `commands`, `updates`, reading parameters with
//! `params` and keyboards with `keyboards`); `answers` shapes what goes
//! back; `kinds` holds what Telegram decides per update kind; `webhook`
//! delivers queued updates. All of them share `shared` and `state`;
//! [`Handle`] is what tests and controls use. Beside it, `model` serves a
//! fake language model ([`FakeModel`]) for the assistant.
//! This file only declares and re-exports: no module imports from it.

mod answers;
mod callbacks;
mod clock;
mod commands;
mod control;
mod handle;
mod keyboards;
mod kinds;
mod messages;
mod model;
mod options;
mod params;
mod routes;
mod server;
mod shared;
mod state;
mod tls;
mod updates;
mod webhook;

pub use callbacks::PressError;
pub use handle::Handle;
pub use model::{FakeModel, ModelFault, ModelOptions, FAKE_MODEL_KEY};
pub use options::{Options, DEFAULT_BOT_USERNAME, DEFAULT_TOKEN};
pub use server::StandIn;
pub use state::{BotCommand, Call, CallbackAnswer, CommandScope, Draft, Fault};
