//! What this container last wrote or read of each connection: the state the next write starts from,
//! so the common webhooks need one DynamoDB round trip instead of a read and a write.
//!
//! It is only a guess: every write is still conditioned on the stored `version`, and a guess that
//! turns out stale costs one failed put, which hands back the real item.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::connection::Connection;
use crate::nango::ConnectionId;

/// Enough for the connections one container sees in its life; bounded, so memory stays flat.
const CAPACITY: usize = 256;

#[derive(Debug, Clone, Default)]
pub(super) struct Memory(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    states: HashMap<ConnectionId, Connection>,
    /// Oldest first, for eviction.
    order: VecDeque<ConnectionId>,
}

impl Memory {
    pub(super) fn recall(&self, id: &ConnectionId) -> Option<Connection> {
        self.lock().states.get(id).cloned()
    }

    pub(super) fn remember(&self, connection: &Connection) {
        let mut inner = self.lock();
        if inner
            .states
            .insert(connection.id.clone(), connection.clone())
            .is_none()
        {
            inner.order.push_back(connection.id.clone());
            if inner.order.len() > CAPACITY
                && let Some(oldest) = inner.order.pop_front()
            {
                inner.states.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{Owner, Status};
    use crate::nango::{IntegrationId, Tags};

    fn connection(id: &str, version: u64) -> Connection {
        Connection {
            id: ConnectionId::parse(id).unwrap(),
            integration_id: IntegrationId::parse("github").unwrap(),
            provider: None,
            auth_mode: None,
            environment: None,
            owner: Owner::default(),
            tags: Tags::new(),
            status: Status::Active,
            error: None,
            created_at: "2026-11-26T10:00:00.000Z".into(),
            updated_at: "2026-11-26T10:00:00.000Z".into(),
            deleted_at: None,
            reconnected_at: None,
            version,
        }
    }

    #[test]
    fn remembers_the_latest_state_and_forgets_the_oldest_beyond_its_capacity() {
        let memory = Memory::default();
        memory.remember(&connection("c0", 1));
        memory.remember(&connection("c0", 2));
        assert_eq!(
            memory.recall(&connection("c0", 0).id).map(|c| c.version),
            Some(2)
        );
        for i in 1..=CAPACITY {
            memory.remember(&connection(&format!("c{i}"), 1));
        }
        assert_eq!(
            memory.recall(&connection("c0", 0).id),
            None,
            "the oldest is forgotten"
        );
        assert!(
            memory
                .recall(&connection(&format!("c{CAPACITY}"), 0).id)
                .is_some()
        );
        assert_eq!(memory.lock().states.len(), CAPACITY);
    }
}
