//! Which devices changed: the store marks a device after every committed write that can move
//! its model, firmware, criticality, group, region or state; in-memory views (the exposure
//! index) drain the marks and re-read those devices. Bounded: past [`MAX_MARKED`] distinct ids
//! the hub only remembers that everything must be re-read.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Distinct ids remembered before falling back to "re-read everything".
pub const MAX_MARKED: usize = 100_000;

/// What changed since the last drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Devices(Vec<String>),
    /// Too many to list: re-read the whole fleet.
    All,
}

#[derive(Debug, Default)]
struct Marks {
    ids: HashSet<String>,
    overflow: bool,
}

/// The hub. One consumer drains it (a second would steal the first one's marks).
#[derive(Debug, Default)]
pub struct DeviceChanges {
    marks: Mutex<Marks>,
    notify: Notify,
}

impl DeviceChanges {
    /// Records that these devices changed and wakes the consumer.
    pub fn mark<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut marks) = self.marks.lock() {
            for id in ids {
                if marks.overflow {
                    break;
                }
                if marks.ids.len() >= MAX_MARKED {
                    marks.ids.clear();
                    marks.overflow = true;
                } else {
                    marks.ids.insert(id.to_owned());
                }
            }
        }
        self.notify.notify_one();
    }

    /// Asks the consumer to re-read every device (after it failed to apply a change).
    pub fn mark_all(&self) {
        if let Ok(mut marks) = self.marks.lock() {
            marks.ids.clear();
            marks.overflow = true;
        }
        self.notify.notify_one();
    }

    /// Takes what changed, if anything did.
    pub fn drain(&self) -> Option<Changed> {
        let mut marks = self.marks.lock().ok()?;
        if marks.overflow {
            marks.overflow = false;
            marks.ids.clear();
            return Some(Changed::All);
        }
        if marks.ids.is_empty() {
            return None;
        }
        Some(Changed::Devices(marks.ids.drain().collect()))
    }

    /// Waits until something is marked, then takes it.
    pub async fn next(&self) -> Changed {
        loop {
            if let Some(changed) = self.drain() {
                return changed;
            }
            self.notify.notified().await;
        }
    }

    /// Waits until something is marked, without taking it (for a consumer that drains under a
    /// lock of its own).
    pub async fn wait(&self) {
        loop {
            if self.marks.lock().is_ok_and(|m| m.overflow || !m.ids.is_empty()) {
                return;
            }
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_drained_once_and_overflow_asks_for_everything() {
        let hub = DeviceChanges::default();
        assert_eq!(hub.drain(), None);
        hub.mark(["a", "b", "a"]);
        let Some(Changed::Devices(mut ids)) = hub.drain() else { panic!("expected devices") };
        ids.sort();
        assert_eq!(ids, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(hub.drain(), None);
        let many: Vec<String> = (0..=MAX_MARKED).map(|i| format!("d{i}")).collect();
        hub.mark(many.iter().map(String::as_str));
        assert_eq!(hub.drain(), Some(Changed::All));
        assert_eq!(hub.drain(), None);
    }

    #[tokio::test]
    async fn next_wakes_on_a_mark() {
        let hub = std::sync::Arc::new(DeviceChanges::default());
        let waiter = tokio::spawn({
            let hub = hub.clone();
            async move { hub.next().await }
        });
        hub.mark(["x"]);
        assert_eq!(waiter.await.ok(), Some(Changed::Devices(vec!["x".to_owned()])));
    }
}
