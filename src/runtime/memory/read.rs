//! Reading a chat's record for an update: what the record says of it (done,
//! in progress, deferred, new), records that cannot be read set aside, and
//! the holds a run takes before it calls out (a claim, a deferral).

use super::*;

impl Memory {
    /// The chat record `update` belongs to, as [`Memory::decide_from`]
    /// takes it.
    pub async fn read(&self, update: &Update) -> Result<Read, StoreError> {
        let ticket = Ticket::of(update, now_millis());
        let record = self.load(&ticket.key).await?;
        Ok(Read { ticket, record })
    }

    /// The record under `key` (the default when there is none); one that
    /// cannot be read is set aside.
    pub(super) async fn load(&self, key: &str) -> Result<ChatRecord, StoreError> {
        match self.store.load(key).await {
            Ok(record) => Ok(record.unwrap_or_default()),
            Err(error @ StoreError::Unreadable(_)) => Err(self.set_aside(key, error).await),
            Err(error) => Err(error),
        }
    }

    /// Moves a chat's record that cannot be used out of the way, with an
    /// ERROR line and a metric, and returns the error the update ends with:
    /// a retryable one, so that the next delivery answers it afresh.
    pub(super) async fn set_aside(&self, key: &str, why: StoreError) -> StoreError {
        let why = crate::error::Chain(&why).to_string();
        match self.store.set_aside(key, now_millis()).await {
            Ok(aside_key) => {
                metrics::emit(
                    &Line::new(tracing::Level::ERROR, SET_ASIDE)
                        .field("aside_key", aside_key.clone())
                        .field("error", why.clone())
                        .by_function(metrics::RECORDS_SET_ASIDE, vec![1.0]),
                );
                StoreError::SetAside { aside_key, why }
            }
            Err(error) => error,
        }
    }

    /// What the record already says about the update: done, being
    /// answered by a live run, or an outbox to carry on (taken over). `None`
    /// when the update is this run's to decide: new, claimed by this run,
    /// or claimed by a run that is gone.
    pub async fn recognise(
        &self,
        read: &mut Read,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<Decision>, StoreError> {
        for _ in 0..MAX_RUNS {
            match self.recognise_once(read, lease_until, now).await? {
                Recognised::Decided(decision) => return Ok(Some(decision)),
                Recognised::New => return Ok(None),
                Recognised::Changed(now_stored) => {
                    read.record = self.fresh(&read.ticket.key, now_stored).await?;
                }
            }
        }
        Err(StoreError::Contended(MAX_RUNS))
    }

    pub(super) async fn recognise_once(
        &self,
        read: &Read,
        lease_until: i64,
        now: i64,
    ) -> Result<Recognised, StoreError> {
        let Read { ticket, record } = read;
        if is_done(record, ticket.update) {
            return Ok(Recognised::Decided(Decision::Duplicate));
        }
        let Some(pending) = record
            .pending
            .get(&ticket.update)
            .filter(|p| p.expires > now)
        else {
            return Ok(Recognised::New);
        };
        if ticket.route == Route::Deferring && !pending.queued.is_no() {
            let enqueued = pending.queued == Queued::Enqueued;
            return Ok(Recognised::Decided(Decision::Deferred { enqueued }));
        }
        let live = self.leases == Leases::Shared && pending.lease_until > now;
        if pending.owner != ticket.owner && live {
            let left =
                Duration::from_millis(u64::try_from(pending.lease_until - now).unwrap_or(u64::MAX));
            let retry_after = left.clamp(Duration::from_secs(1), MAX_IN_PROGRESS_WAIT);
            return Ok(Recognised::Decided(Decision::InProgress { retry_after }));
        }
        if pending.is_claim() {
            // This run's, or a run's that is gone: either way the update is
            // decided afresh, and the decision's write replaces the claim.
            return Ok(Recognised::New);
        }
        let Ok(actions) = serde_json::from_str::<Vec<Action>>(&pending.actions) else {
            let error = StoreError::Unreadable("an outbox's actions".to_owned());
            return Err(self.set_aside(&ticket.key, error).await);
        };
        let from = usize::try_from(pending.sent).unwrap_or(usize::MAX);
        if pending.owner == ticket.owner {
            // This run's own write, applied although the store's answer
            // said otherwise (a resend after a lost answer).
            return Ok(Recognised::Decided(Decision::Send { actions, from }));
        }
        match self
            .store
            .take_over(
                &ticket.key,
                ticket.update,
                pending.lease_until,
                ticket.lease(lease_until),
            )
            .await
        {
            Ok(()) => Ok(Recognised::Decided(Decision::Send { actions, from })),
            Err(StoreError::Conflict(now_stored)) => Ok(Recognised::Changed(now_stored)),
            Err(error) => Err(error),
        }
    }

    /// Claims the update for this run while its handler waits on an
    /// outside call: an outbox with no actions yet, under this run's lease,
    /// so that a delivery meanwhile is told to wait (or finds it decided)
    /// rather than running the handler beside it. `None` once claimed;
    /// otherwise what another run made of the update meanwhile.
    pub async fn claim(
        &self,
        read: &mut Read,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<Decision>, StoreError> {
        self.hold(read, lease_until, now, |ticket| Pending {
            actions: String::new(),
            sent: 0,
            lease_until,
            owner: ticket.owner,
            expires: ticket.outbox_expires(now),
            queued: ticket.queued(),
        })
        .await
    }

    /// Writes `entry` (a claim, or a deferred update's mark) as the
    /// update's entry in the chat's record, unless the record says the
    /// update is decided: `None` once written, else the decision.
    pub(super) async fn hold(
        &self,
        read: &mut Read,
        lease_until: i64,
        now: i64,
        entry: impl Fn(&Ticket) -> Pending,
    ) -> Result<Option<Decision>, StoreError> {
        for _ in 0..MAX_RUNS {
            if let Some(decision) = self.recognise(read, lease_until, now).await? {
                return Ok(Some(decision));
            }
            let held = entry(&read.ticket);
            let (mut forget_pending, forget_done, forget_done_until) = to_forget(&read.record, now);
            // One write may not both set and remove the same entry.
            forget_pending.retain(|id| *id != read.ticket.update);
            let commit = Commit {
                expected_version: read.record.version,
                state: None,
                update: read.ticket.update,
                pending: Some(held.clone()),
                done: read.ticket.done(now),
                forget_pending,
                forget_done,
                forget_done_until,
                record_expires_at: self.record_expires_at(now),
            };
            if self.write(read, &commit).await? {
                read.record.version += 1;
                read.record.pending.insert(read.ticket.update, held);
                return Ok(None);
            }
        }
        Err(StoreError::Contended(MAX_RUNS))
    }

    /// Defers the update to the queue: records it in the chat's record as
    /// accepted (the outbox's conditional write, holding no lease: the
    /// worker takes it when it comes), before it is sent to the queue, so
    /// that a failure to send loses nothing (a redelivery finds it and
    /// sends it). `None` once recorded; otherwise what another run made of
    /// the update meanwhile.
    pub async fn defer(&self, read: &mut Read, now: i64) -> Result<Option<Decision>, StoreError> {
        self.hold(read, 0, now, |ticket| Pending {
            actions: String::new(),
            sent: 0,
            lease_until: 0,
            owner: ticket.owner,
            expires: ticket.outbox_expires(now),
            queued: Queued::Accepted,
        })
        .await
    }

    /// Marks a deferred update as on the queue: a later delivery of it is
    /// only acknowledged.
    pub async fn enqueued(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.store.enqueued(&ticket.key, ticket.update).await
    }
}
