//! The updates this warm process has recently dealt with.
//!
//! Telegram delivers at least once: a timeout on its side, or a gateway error
//! after the reply went out, brings the same update again. Remembering the
//! last few update ids per process catches those repeats cheaply; a repeat
//! that lands on another instance is answered again, which is the price of
//! keeping the function stateless.

use crate::telegram::UpdateId;
use std::collections::{HashMap, VecDeque};

/// How far an update got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many of its actions were carried out before a failure a retry
    /// can fix; a redelivery carries out only the rest.
    Sent(usize),
    /// Fully dealt with: answered, ignored, or failed permanently.
    Done,
}

/// A bounded map from update id to progress, oldest forgotten first.
#[derive(Debug)]
pub struct RecentUpdates {
    capacity: usize,
    order: VecDeque<UpdateId>,
    progress: HashMap<UpdateId, Progress>,
}

impl RecentUpdates {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RecentUpdates {
            capacity,
            order: VecDeque::with_capacity(capacity),
            progress: HashMap::with_capacity(capacity),
        }
    }

    pub fn get(&self, id: UpdateId) -> Option<Progress> {
        self.progress.get(&id).copied()
    }

    pub fn record(&mut self, id: UpdateId, progress: Progress) {
        if self.progress.insert(id, progress).is_none() {
            self.order.push_back(id);
            if self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.progress.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_progress_and_forgets_the_oldest_beyond_capacity() {
        let mut recent = RecentUpdates::new(2);
        recent.record(UpdateId(1), Progress::Sent(1));
        recent.record(UpdateId(1), Progress::Done);
        recent.record(UpdateId(2), Progress::Done);
        assert_eq!(recent.get(UpdateId(1)), Some(Progress::Done));
        recent.record(UpdateId(3), Progress::Done);
        assert_eq!(recent.get(UpdateId(1)), None);
        assert_eq!(recent.get(UpdateId(2)), Some(Progress::Done));
        assert_eq!(recent.get(UpdateId(3)), Some(Progress::Done));
        assert_eq!(recent.progress.len(), 2);
    }
}
