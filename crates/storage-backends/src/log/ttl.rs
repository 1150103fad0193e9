//! Key expiry: deletes a key written with a time-to-live once it has gone unwritten that
//! long. Timers live in memory (seeded from the table at start), so expiry costs nothing
//! while no key is due; the delete compares the revision, so a rewrite postpones it.

use super::writer::{Command, WriteOp};
use crate::kv::Revision;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Registers keys for expiry.
pub(crate) struct TtlHandle {
    due: mpsc::UnboundedSender<Due>,
}

impl TtlHandle {
    /// Deletes `key` `seconds` from now if it still has modification revision `revision`.
    pub fn expire(&self, key: Vec<u8>, revision: Revision, seconds: i64) {
        let at = Instant::now() + Duration::from_secs(seconds.max(0) as u64);
        let _ = self.due.send(Due { at, key, revision });
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    key: Vec<u8>,
    revision: Revision,
}

/// Starts the expiry task. It ends when the store (every `TtlHandle`) is dropped.
pub(crate) fn spawn(
    writes: mpsc::WeakSender<Command>,
    seed: Vec<(Vec<u8>, Revision, i64)>,
) -> TtlHandle {
    let (due, mut incoming) = mpsc::unbounded_channel();
    let handle = TtlHandle { due };
    for (key, revision, seconds) in seed {
        handle.expire(key, revision, seconds);
    }
    tokio::spawn(async move {
        let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
        loop {
            let next = queue.peek().map(|Reverse(due)| due.at);
            tokio::select! {
                received = incoming.recv() => match received {
                    Some(due) => queue.push(Reverse(due)),
                    None => return,
                },
                _ = sleep_until(next), if next.is_some() => {
                    let now = Instant::now();
                    while queue.peek().is_some_and(|Reverse(due)| due.at <= now) {
                        let Some(Reverse(due)) = queue.pop() else { break };
                        let Some(writes) = writes.upgrade() else { return };
                        let (reply, _ignored) = oneshot::channel();
                        let op = WriteOp::Delete { key: due.key, expected: Some(due.revision) };
                        if writes.send(Command::Write(op, reply)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    handle
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
