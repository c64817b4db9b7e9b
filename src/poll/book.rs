//! The jobs in hand: one queue per chat, one job at a time per queue, and
//! the offset that confirms exactly the settled prefix.

use super::*;

/// Work for a queue: an update from getUpdates, or an outbox a run that
/// died left unfinished.
#[derive(Debug)]
pub(super) enum Job {
    Update(Box<Update>),
    Resume(Ticket),
}

impl Job {
    /// Its queue, and its update id when it came from getUpdates.
    pub(super) fn about(&self) -> (String, Option<UpdateId>) {
        match self {
            Job::Update(update) => (key_of(update), Some(update.id)),
            Job::Resume(ticket) => (ticket.key().to_owned(), None),
        }
    }
}

/// The jobs in hand: which queue each waits in, which queues are being
/// worked on, and which updates may be confirmed, so that the offset
/// confirms exactly the confirmable prefix.
#[derive(Debug, Default)]
pub(super) struct Book {
    /// Every update id at or above the offset that was received, and
    /// whether it may be confirmed.
    seen: BTreeMap<UpdateId, bool>,
    /// Everything below is confirmable.
    floor: Option<UpdateId>,
    waiting: HashMap<String, VecDeque<Job>>,
    busy: HashSet<String>,
    /// Queues with a waiting job and no worker, in the order they became
    /// ready.
    ready: VecDeque<String>,
}

impl Book {
    /// Takes an update from getUpdates; false for one already in hand or
    /// confirmed (getUpdates returns updates again until the offset passes
    /// them).
    pub(super) fn receive(&mut self, update: Update) -> bool {
        if self.floor.is_some_and(|floor| update.id < floor) || self.seen.contains_key(&update.id) {
            return false;
        }
        self.seen.insert(update.id, false);
        let key = key_of(&update);
        self.push(key, Job::Update(Box::new(update)));
        true
    }

    /// Telegram numbers updates afresh, below the offset: what was
    /// confirmed no longer says which ids are new.
    pub(super) fn restart(&mut self) {
        self.floor = None;
    }

    /// Queues an unfinished outbox, before any update of its chat.
    pub(super) fn resume(&mut self, ticket: Ticket) {
        let key = ticket.key().to_owned();
        self.push(key, Job::Resume(ticket));
    }

    pub(super) fn push(&mut self, key: String, job: Job) {
        let queue = self.waiting.entry(key.clone()).or_default();
        queue.push_back(job);
        if queue.len() == 1 && !self.busy.contains(&key) {
            self.ready.push_back(key);
        }
    }

    /// The next job whose queue is free; its queue is then busy.
    pub(super) fn next_ready(&mut self) -> Option<Job> {
        let key = self.ready.pop_front()?;
        let queue = self.waiting.get_mut(&key)?;
        let job = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&key);
        }
        self.busy.insert(key);
        Some(job)
    }

    /// The update `id` may be confirmed to Telegram; true when that moves
    /// the offset.
    pub(super) fn confirmable(&mut self, id: UpdateId) -> bool {
        if let Some(confirmable) = self.seen.get_mut(&id) {
            *confirmable = true;
        }
        let before = self.offset();
        while let Some((&first, &true)) = self.seen.first_key_value() {
            self.seen.remove(&first);
            self.floor = first.0.checked_add(1).map(UpdateId);
        }
        self.offset() != before
    }

    /// The queue's job settled: its next job may go.
    pub(super) fn free(&mut self, key: &str) {
        self.busy.remove(key);
        if self.waiting.contains_key(key) {
            self.ready.push_back(key.to_owned());
        }
    }

    /// Updates seen and not yet confirmable.
    pub(super) fn in_hand(&self) -> usize {
        self.seen.len()
    }

    /// The offset that confirms every confirmable update and no other.
    pub(super) fn offset(&self) -> Option<UpdateId> {
        match self.seen.first_key_value() {
            Some((&first, _)) => Some(first),
            None => self.floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(id: i64, chat: i64) -> Update {
        Update::from_value(json!({"update_id": id, "message": {
            "message_id": id, "date": 1, "text": "x",
            "chat": {"id": chat, "type": "private"}}}))
        .unwrap()
    }

    fn id_of(job: Option<Job>) -> Option<i64> {
        match job? {
            Job::Update(update) => Some(update.id.0),
            Job::Resume(ticket) => Some(-ticket.update()),
        }
    }

    #[test]
    fn one_update_at_a_time_per_chat_and_chats_side_by_side() {
        let mut book = Book::default();
        for (id, chat) in [(1, 10), (2, 10), (3, 20)] {
            assert!(book.receive(text(id, chat)));
        }
        assert!(!book.receive(text(1, 10)), "already in hand");
        assert_eq!(id_of(book.next_ready()), Some(1));
        assert_eq!(
            id_of(book.next_ready()),
            Some(3),
            "chat 20 does not wait for chat 10"
        );
        assert_eq!(id_of(book.next_ready()), None, "update 2 waits behind 1");
        book.confirmable(UpdateId(1));
        book.free("chat#10");
        assert_eq!(id_of(book.next_ready()), Some(2));
    }

    #[test]
    fn the_offset_confirms_exactly_the_confirmable_prefix() {
        let mut book = Book::default();
        for id in 1..=4 {
            book.receive(text(id, id));
        }
        assert_eq!(book.offset(), Some(UpdateId(1)));
        assert!(!book.confirmable(UpdateId(2)), "1 is still open");
        assert!(!book.confirmable(UpdateId(3)));
        assert_eq!((book.offset(), book.in_hand()), (Some(UpdateId(1)), 4));
        assert!(book.confirmable(UpdateId(1)));
        assert_eq!((book.offset(), book.in_hand()), (Some(UpdateId(4)), 1));
        book.confirmable(UpdateId(4));
        assert_eq!((book.offset(), book.in_hand()), (Some(UpdateId(5)), 0));
        assert!(!book.receive(text(3, 3)), "below the offset");
    }
}
