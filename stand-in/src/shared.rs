//! What every part of a running stand-in shares: its options, its state
//! behind one lock, and the signal that the update queue changed.

use crate::options::Options;
use crate::state::State;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) state: Mutex<State>,
    /// Wakes long polls, the delivery loop and `Handle::wait_settled` when
    /// updates are queued, delivered or a webhook is set.
    pub(crate) updates_arrived: tokio::sync::Notify,
}

impl Shared {
    pub(crate) fn new(options: Options) -> Self {
        let bot_id = options
            .token
            .split(':')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(1);
        Shared {
            state: Mutex::new(State::new(bot_id)),
            options,
            updates_arrived: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `secs` of Telegram time, as real time.
    pub(crate) fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.options.time_scale).max(0.0))
    }
}
