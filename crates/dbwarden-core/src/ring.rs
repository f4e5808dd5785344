//! A fixed-capacity ring of recent events: the newest replace the oldest, so
//! memory stays the same however many events are pushed.

use std::collections::VecDeque;

/// A bounded first-in-first-out buffer that drops its oldest item when full.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> Ring<T> {
    /// An empty ring holding at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Ring { items: VecDeque::with_capacity(capacity.min(4096)), capacity, dropped: 0 }
    }

    /// Appends `item`, dropping the oldest one when the ring is full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    /// The items, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    /// The newest item.
    pub fn last(&self) -> Option<&T> {
        self.items.back()
    }

    /// The number of items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the ring holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The most items the ring holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many items were dropped to make room since creation or [`Ring::clear`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.items.clear();
        self.dropped = 0;
    }

    /// Changes the capacity, dropping the oldest items that no longer fit.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.items.len() > self.capacity {
            self.items.pop_front();
            self.dropped += 1;
        }
    }
}

impl<T: Clone> Ring<T> {
    /// Up to `limit` items, newest first.
    pub fn newest(&self, limit: usize) -> Vec<T> {
        self.items.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_items() {
        let mut ring = Ring::new(3);
        for i in 0..10 {
            ring.push(i);
        }
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(ring.newest(2), vec![9, 8]);
        assert_eq!(ring.dropped(), 7);
        ring.set_capacity(1);
        assert_eq!(ring.newest(5), vec![9]);
    }

    #[test]
    fn zero_capacity_holds_one() {
        let mut ring = Ring::new(0);
        ring.push("a");
        ring.push("b");
        assert_eq!(ring.newest(5), vec!["b"]);
    }
}
