//! Recurring error patterns: errors grouped by class and failing statement,
//! so "the same deadlock on `UPDATE accounts` 40 times" reads as one line.

use std::collections::HashMap;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::error_class::ErrorClass;
use crate::events::ErrorEvent;
use crate::fingerprint::{Fingerprint, FingerprintId};

/// One group of errors of the same class on the same statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorPattern {
    /// The class.
    pub class: ErrorClass,
    /// The failing statement's fingerprint, if the error came from one.
    pub fingerprint: Option<FingerprintId>,
    /// The normalized statement.
    pub query: Option<String>,
    /// How many times it happened.
    pub count: u64,
    /// First occurrence.
    pub first_seen: Timestamp,
    /// Last occurrence.
    pub last_seen: Timestamp,
    /// The latest (redacted) message.
    pub last_message: String,
}

/// At most `capacity` patterns; when full, the least recently seen one goes.
#[derive(Debug)]
pub(crate) struct ErrorPatterns {
    patterns: HashMap<(ErrorClass, Option<FingerprintId>), ErrorPattern>,
    capacity: usize,
}

impl ErrorPatterns {
    pub(crate) fn new(capacity: usize) -> Self {
        ErrorPatterns { patterns: HashMap::new(), capacity: capacity.max(1) }
    }

    pub(crate) fn record(&mut self, event: &ErrorEvent, fingerprint: Option<&Fingerprint>) {
        let key = (event.class, event.fingerprint);
        if let Some(p) = self.patterns.get_mut(&key) {
            p.count += 1;
            p.last_seen = event.at;
            p.last_message.clone_from(&event.message);
            return;
        }
        if self.patterns.len() >= self.capacity
            && let Some(oldest) = self.patterns.values().min_by_key(|p| p.last_seen).map(|p| (p.class, p.fingerprint))
        {
            self.patterns.remove(&oldest);
        }
        self.patterns.insert(
            key,
            ErrorPattern {
                class: event.class,
                fingerprint: event.fingerprint,
                query: fingerprint.map(|f| f.text().to_owned()),
                count: 1,
                first_seen: event.at,
                last_seen: event.at,
                last_message: event.message.clone(),
            },
        );
    }

    /// Patterns seen at or after `since`, most frequent first.
    pub(crate) fn since(&self, since: Timestamp) -> Vec<ErrorPattern> {
        let mut out: Vec<_> = self.patterns.values().filter(|p| p.last_seen >= since).cloned().collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
        out
    }

    pub(crate) fn clear(&mut self) {
        self.patterns.clear();
    }
}
