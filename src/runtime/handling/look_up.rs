//! The bot's look-up: run with the time it has, claimed while it waits,
//! and what follows when it fails (retry later, within its limits, or give
//! up and tell the user).

use super::*;

/// A bot's look-up that ran past the time it had.
#[derive(Debug, thiserror::Error)]
#[error("the bot's look-up ran past the time it had")]
pub struct OutOfTime;

/// How a look-up ended.
pub(super) enum Gathered<T> {
    Found(T),
    /// Another run decided the update meanwhile.
    Decided(Decision),
    Store(StoreError),
    Failed(Failed),
}

/// Until when a look-up may run: the answer's deadline less
/// [`ANSWER_RESERVE`], and at most [`MAX_GATHER`] from now where the chat
/// waits on it (`capped`). The worker's deadline is its timeout (2-3
/// minutes), all of it the look-up's but the reserve.
fn gather_deadline(deadline: Option<Instant>, capped: bool) -> Instant {
    let longest = Instant::now() + MAX_GATHER;
    match deadline {
        Some(deadline) => {
            let until = deadline.checked_sub(ANSWER_RESERVE).unwrap_or(deadline);
            match capped {
                true => longest.min(until),
                false => until,
            }
        }
        None => longest,
    }
}

/// Whether a retry-later failure may still ask for the update again:
/// within [`RETRY_LATER_LIMIT`] of its date (`now` in Unix ms). An update
/// without one (a press, an inline query) is asked for again while its own
/// lifetime at Telegram is that short; any other is given up.
fn within_retry_limit(update: &Update, now: i64) -> bool {
    match update.date() {
        Some(date) => now / 1000 < date.saturating_add(millis(RETRY_LATER_LIMIT) / 1000),
        None => update
            .lifetime_from_receipt()
            .is_some_and(|lifetime| lifetime <= RETRY_LATER_LIMIT),
    }
}

impl<H: Handler> Responder<'_, H> {
    /// Runs the bot's look-up with the time it has. One that is done at its
    /// first poll waited on nothing and costs nothing more; one that waits
    /// claims the update in the chat's record meanwhile (one write, beside
    /// the outside call), so that a delivery arriving during it is told to
    /// wait instead of running it a second time.
    pub(super) async fn gather(
        &self,
        update: &Update,
        read: &mut Read,
        lease_until: i64,
        now: i64,
        policy: &RetryPolicy,
    ) -> Gathered<H::Gathered> {
        let state: H::State = read.state();
        let worker = matches!(self.deferral, Deferral::Worker { .. });
        let until = gather_deadline(policy.deadline, !worker);
        let cx = Context::new(self.api, update, until, self.memory);
        let look_up = tokio::time::timeout_at(until, self.bot.gather(update, &state, &cx));
        let mut look_up = std::pin::pin!(look_up);
        let first = std::future::poll_fn(|cx| Poll::Ready(look_up.as_mut().poll(cx))).await;
        let looked_up = match first {
            Poll::Ready(looked_up) => looked_up,
            Poll::Pending => {
                let claim = before(policy.deadline, self.memory.claim(read, lease_until, now));
                let mut claim = std::pin::pin!(claim);
                let mut early = None;
                let claimed = tokio::select! {
                    claimed = &mut claim => claimed,
                    looked_up = &mut look_up => {
                        early = Some(looked_up);
                        claim.await
                    }
                };
                match claimed {
                    Err(error) => return Gathered::Store(error),
                    // Decided by another run meanwhile: the look-up is
                    // dropped unfinished.
                    Ok(Some(decision)) => return Gathered::Decided(decision),
                    Ok(None) => {}
                }
                match early {
                    Some(looked_up) => looked_up,
                    None => look_up.await,
                }
            }
        };
        match looked_up {
            Ok(Ok(found)) => Gathered::Found(found),
            Ok(Err(failed)) => Gathered::Failed(failed),
            Err(_) => Gathered::Failed(Failed::retry_later(OutOfTime)),
        }
    }

    /// What follows a failed look-up. Retry later, within
    /// [`RETRY_LATER_LIMIT`] of the message's date: nothing is sent, the
    /// claim is let go, and the update asked for again. Otherwise the
    /// update is given up: the user is told (through the outbox, exactly
    /// once), and it counts as a permanent failure.
    #[allow(clippy::too_many_arguments)] // one call site, all needed
    pub(super) async fn fail(
        &self,
        update: &Update,
        read: Read,
        failed: Failed,
        lease_until: i64,
        now: i64,
        policy: &RetryPolicy,
        stop: &mut Stop,
        recorded: &(dyn Fn() + Send + Sync),
    ) -> Handled {
        let last_try = matches!(self.deferral, Deferral::Worker { last_try: true });
        let retry =
            matches!(failed, Failed::RetryLater(_)) && within_retry_limit(update, now) && !last_try;
        if retry {
            // Only a look-up that waited claimed the update; releasing
            // nothing would still cost a write.
            let released = match read.holds_lease() {
                true => before(policy.deadline, self.memory.release(read.ticket())).await,
                false => Ok(()),
            };
            if let Err(error) = released {
                tracing::warn!(update_id = update.id.0, error = %Chain(&error), "could not let the update's claim go; the next delivery waits for its lease");
            }
            return Handled {
                outcome: Outcome::RetryableFailure { retry_after: None },
                error: Some(HandlingError::Bot(failed)),
                done: 0,
            };
        }
        let actions = match failed.words() {
            Some(text) => crate::handler::telling(update, text),
            None => self.bot.gave_up(update),
        };
        let tell = move |_: Option<&str>| Ok((actions.clone(), None));
        let decided = before(
            policy.deadline,
            self.memory.decide_with(read, lease_until, now, tell),
        )
        .await;
        let mut handled = self
            .carry_out(decided, lease_until, policy, stop, recorded)
            .await;
        if matches!(handled.outcome, Outcome::Answered | Outcome::Ignored) {
            handled.outcome = match failed {
                Failed::Misconfigured { .. } => Outcome::ConfigurationFailure { told: true },
                _ => Outcome::PermanentFailure,
            };
            handled.error = Some(HandlingError::Bot(failed));
        }
        handled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_look_up_has_its_deadline_less_the_reserve_and_a_minute_at_most_unless_it_is_the_workers() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(150);
        let capped = gather_deadline(Some(deadline), true);
        assert!(capped <= Instant::now() + MAX_GATHER && capped > now + MAX_GATHER / 2);
        // The worker: its timeout, less what sending needs.
        assert_eq!(
            gather_deadline(Some(deadline), false),
            deadline - ANSWER_RESERVE
        );
        let webhook = now + Duration::from_secs(25);
        assert_eq!(
            gather_deadline(Some(webhook), true),
            webhook - ANSWER_RESERVE
        );
    }

    #[test]
    fn retry_later_is_bounded_by_the_date_or_a_short_lifetime() {
        let now = 1_700_000_000_000;
        let secs = now / 1000;
        let at = |kind: &str, payload: Value| {
            Update::from_value(json!({"update_id": 1, kind: payload})).unwrap()
        };
        let message = |date: i64| {
            at(
                "message",
                json!({"message_id": 1, "date": date, "chat": {"id": 1, "type": "private"}}),
            )
        };
        assert!(within_retry_limit(&message(secs - 60), now));
        assert!(!within_retry_limit(&message(secs - 11 * 60), now));
        // A member change lives a day at Telegram: its own date bounds it.
        let member = |date: i64| {
            at(
                "chat_member",
                json!({"date": date, "chat": {"id": -5, "type": "group"}}),
            )
        };
        assert!(within_retry_limit(&member(secs - 60), now));
        assert!(!within_retry_limit(&member(secs - 11 * 60), now));
        // Without a date: a press (150 s) may be asked for again, a kind
        // that lives a day may not.
        let press = at(
            "callback_query",
            json!({"id": "q", "chat_instance": "c",
            "from": {"id": 1, "is_bot": false, "first_name": "A"}}),
        );
        assert!(within_retry_limit(&press, now));
        assert!(!within_retry_limit(
            &at("purchased_paid_media", json!({})),
            now
        ));
    }
}
