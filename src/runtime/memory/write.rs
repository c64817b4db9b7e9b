//! Deciding and recording: the bot run on the state as read, one
//! conditional write of the new state with the outbox, then the progress
//! of its sending and its end; outboxes left by a run that died taken over;
//! the chat's notes.

use super::*;

impl Memory {
    /// Decides `update`: reads its chat's record, and either recognises it,
    /// or runs `bot`'s answer on `gathered` and commits the outcome.
    /// `lease_until` (Unix ms) is how long this run owns the update; `now`
    /// is the current Unix ms.
    pub async fn decide<H: Handler>(
        &self,
        bot: &H,
        gathered: &H::Gathered,
        update: &Update,
        lease_until: i64,
        now: i64,
    ) -> Result<(Decision, Ticket), StoreError> {
        let ticket = Ticket::of(update, now);
        let record = self.load(&ticket.key).await?;
        let read = Read { ticket, record };
        self.decide_with(read, lease_until, now, answer_step(bot, update, gathered))
            .await
    }

    /// Decides the update from a record read before: recognises it, or
    /// runs `answer` (the bot's pure step, from the stored state as JSON to
    /// the actions and the new state as JSON when it changed) and commits
    /// the outcome. A lost write runs `answer` again on what won, a few
    /// times at most; nothing outside is called again.
    pub async fn decide_with(
        &self,
        read: Read,
        lease_until: i64,
        now: i64,
        mut answer: impl FnMut(Option<&str>) -> Result<Answer, StoreError>,
    ) -> Result<(Decision, Ticket), StoreError> {
        let mut read = read;
        for run in 0..MAX_RUNS {
            if run > 1 {
                // Runs that lost together would collide again: spread them.
                let spread = 5 * u64::from(run);
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=spread))).await;
            }
            if let Some(decision) = self.recognise(&mut read, lease_until, now).await? {
                return Ok((decision, read.ticket));
            }
            let (actions, new_state) = answer(read.record.state.as_deref())?;
            // A claim of this update (this run's, or a dead run's) goes
            // with the decision.
            let claimed = read.record.pending.contains_key(&read.ticket.update);
            if actions.is_empty() && new_state.is_none() && !claimed {
                // Nothing to remember: a repeat decides the same again.
                return Ok((Decision::Nothing, read.ticket));
            }
            let Read { ticket, record } = &read;
            let commit = self.commit_for(record, ticket, &actions, new_state, lease_until, now)?;
            // Lost, the next turn recognises this run's own write, should
            // the conflict be with itself.
            if self.write(&mut read, &commit).await? {
                let decision = match actions.is_empty() {
                    true => Decision::Nothing,
                    false => Decision::Send { actions, from: 0 },
                };
                return Ok((decision, read.ticket));
            }
        }
        Err(StoreError::Contended(MAX_RUNS))
    }

    /// Writes `commit` to `read`'s chat: `true` once written, `false` when
    /// another write changed the record meanwhile (`read` then holds it as
    /// it is now). A record the write would take past the store's limit is
    /// set aside.
    pub(super) async fn write(&self, read: &mut Read, commit: &Commit) -> Result<bool, StoreError> {
        match self.store.commit(&read.ticket.key, commit).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(now_stored)) => {
                read.record = self.fresh(&read.ticket.key, now_stored).await?;
                Ok(false)
            }
            Err(error @ StoreError::TooLarge(_)) => {
                Err(self.set_aside(&read.ticket.key, error).await)
            }
            Err(error) => Err(error),
        }
    }

    /// Lets a claim or an outbox go at once (its lease ends now), for the
    /// next delivery to take over.
    pub async fn release(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.progress(ticket, 0, 0).await
    }

    /// Whether this memory can list the updates left unfinished by a run
    /// that died, so that the polling loop may confirm an update to
    /// Telegram as soon as its outbox is stored.
    pub async fn unfinished(&self) -> Result<Option<Vec<Ticket>>, StoreError> {
        Ok(self.store.unfinished().await?.map(|entries| {
            entries
                .into_iter()
                .map(|(key, update)| Ticket::new(key, update))
                .collect()
        }))
    }

    /// Takes over the outbox of an update that is no longer delivered (it
    /// was confirmed to Telegram once stored): the actions and how many are
    /// behind it, or `None` when it is finished or expired meanwhile.
    pub async fn resume(
        &self,
        ticket: &Ticket,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<(Vec<Action>, usize)>, StoreError> {
        let record = self.load(&ticket.key).await?;
        // A claim has nothing to send: its update was never confirmed to
        // Telegram (only a stored outbox confirms it), so it comes again.
        let Some(pending) = record
            .pending
            .get(&ticket.update)
            .filter(|p| p.expires > now && !p.is_claim())
        else {
            return Ok(None);
        };
        let Ok(actions) = serde_json::from_str::<Vec<Action>>(&pending.actions) else {
            let error = StoreError::Unreadable("an outbox's actions".to_owned());
            return Err(self.set_aside(&ticket.key, error).await);
        };
        self.store
            .take_over(
                &ticket.key,
                ticket.update,
                pending.lease_until,
                ticket.lease(lease_until),
            )
            .await?;
        let from = usize::try_from(pending.sent).unwrap_or(usize::MAX);
        Ok(Some((actions, from)))
    }

    /// Records that `sent` actions are behind the update, and sets its lease
    /// (0 lets the next delivery take over at once).
    pub async fn progress(
        &self,
        ticket: &Ticket,
        sent: usize,
        lease_until: i64,
    ) -> Result<(), StoreError> {
        let sent = u32::try_from(sent).unwrap_or(u32::MAX);
        self.store
            .progress(&ticket.key, ticket.update, sent, ticket.lease(lease_until))
            .await
    }

    /// Marks the update done: no delivery of it is answered again.
    pub async fn finish(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.store
            .finish(&ticket.key, ticket.update, ticket.done(now_millis()))
            .await
    }

    /// The record after a lost write: the one the store returned, or read
    /// again when it could not return one.
    pub(super) async fn fresh(
        &self,
        key: &str,
        returned: Option<Box<ChatRecord>>,
    ) -> Result<ChatRecord, StoreError> {
        match returned {
            Some(record) => Ok(*record),
            None => self.load(key).await,
        }
    }

    pub(super) fn commit_for(
        &self,
        record: &ChatRecord,
        ticket: &Ticket,
        actions: &[Action],
        state: Option<String>,
        lease_until: i64,
        now: i64,
    ) -> Result<Commit, StoreError> {
        let encode_error = |e: serde_json::Error| StoreError::Encode(e.to_string());
        let pending = if actions.is_empty() {
            None
        } else {
            Some(Pending {
                actions: serde_json::to_string(actions).map_err(encode_error)?,
                sent: 0,
                lease_until,
                owner: ticket.owner,
                expires: ticket.outbox_expires(now),
                queued: ticket.queued(),
            })
        };
        let (mut forget_pending, forget_done, forget_done_until) = to_forget(record, now);
        // One write may not both set and remove the same entry.
        forget_pending.retain(|id| *id != ticket.update);
        if pending.is_none() && record.pending.contains_key(&ticket.update) {
            // A claim of this update goes with the decision.
            forget_pending.push(ticket.update);
        }
        Ok(Commit {
            expected_version: record.version,
            state,
            update: ticket.update,
            pending,
            done: ticket.done(now),
            forget_pending,
            forget_done,
            forget_done_until,
            record_expires_at: self.record_expires_at(now),
        })
    }

    /// The note `name` of `update`'s chat: a document of the bot's own
    /// kept apart from the chat's record (so it weighs on no other write),
    /// for as long as the record is.
    pub async fn note(&self, name: &str, update: &Update) -> Result<Option<String>, StoreError> {
        self.store.load_note(&note_key(name, update)).await
    }

    /// Keeps `note` as the note `name` of `update`'s chat, whole.
    pub async fn keep_note(
        &self,
        name: &str,
        update: &Update,
        note: &str,
    ) -> Result<(), StoreError> {
        let expires_at = self.record_expires_at(now_millis());
        self.store
            .save_note(&note_key(name, update), note, expires_at)
            .await
    }

    /// Forgets the note `name` of `update`'s chat.
    pub async fn forget_note(&self, name: &str, update: &Update) -> Result<(), StoreError> {
        self.store.delete_note(&note_key(name, update)).await
    }

    /// When a chat's record written at `now` may be deleted, if ever.
    pub(super) fn record_expires_at(&self, now: i64) -> Option<i64> {
        let now_secs = now / 1000;
        self.keep_chats
            .map(|keep| now_secs.saturating_add(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX)))
    }
}
