//! Telegram Bot API types: ids, the updates Telegram sends ([`update`]) and
//! the requests this bot makes ([`methods`]).

mod command;
mod methods;
mod update;

pub use command::Command;
pub use methods::*;
pub use update::*;

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_newtype! {
    /// An update's sequence number; Telegram may deliver the same one twice.
    UpdateId,
    /// A chat's id; above 32 bits for supergroups and channels.
    ChatId,
    /// A user's id; above 32 bits for some users.
    UserId,
    /// A message's id, unique within its chat.
    MessageId,
    /// A forum topic's id (`message_thread_id`).
    ThreadId,
}
