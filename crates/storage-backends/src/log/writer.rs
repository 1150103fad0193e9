//! The single writer of a log store: evaluates compare-and-swap writes against the newest
//! rows and commits them in batches (group commit), so concurrent writers share two
//! statements, one fsync and one notification.

use super::ttl::{self, TtlHandle};
use super::{rows_to_events, Appended, LogDriver, LogOptions, Row, WatchHub};
use crate::error::{Result, StoreError};
use crate::kv::{ttl_seconds, KeyValue, Revision};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A write, as submitted to the writer.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Create {
        key: Vec<u8>,
        value: Bytes,
        ttl: Option<Duration>,
    },
    Update {
        key: Vec<u8>,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    },
    Delete {
        key: Vec<u8>,
        expected: Option<Revision>,
    },
}

impl WriteOp {
    fn key(&self) -> &[u8] {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }

    /// The bytes the write adds to a batch.
    fn size(&self) -> usize {
        match self {
            WriteOp::Create { key, value, .. } | WriteOp::Update { key, value, .. } => {
                key.len() + value.len()
            }
            WriteOp::Delete { key, .. } => key.len(),
        }
    }
}

/// A batch stops growing past this many bytes of keys and values.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// Revisions compacted per delete statement, so compaction never holds the writer long.
const COMPACT_STEP: i64 = 1000;
/// How often a batch is re-evaluated after losing a race to another process's writer.
const MAX_RACES: usize = 1000;

/// What a write returns: its revision, and the version a delete removed.
type WriteResult = Result<(Revision, Option<KeyValue>)>;

/// A request to the writer task.
pub(crate) enum Command {
    Write(WriteOp, oneshot::Sender<WriteResult>),
    Compact(Revision, oneshot::Sender<Result<()>>),
}

/// Submits writes to a store's writer task.
pub(crate) struct WriteHandle {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
    backend: &'static str,
}

impl WriteHandle {
    /// Stops accepting writes and waits until the writer has answered every queued one.
    pub async fn finish(self) {
        drop(self.commands);
        let _ = self.task.await;
    }

    pub async fn submit(&self, op: WriteOp) -> WriteResult {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Write(op, reply))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    pub async fn compact(&self, revision: Revision) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Compact(revision, reply))
            .await
            .map_err(|_| self.stopped())?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> StoreError {
        StoreError::unavailable(self.backend, "write", "the store's writer has stopped")
    }
}

/// Starts the writer task (and the expiry task it feeds) for a store.
pub(crate) async fn spawn<D: LogDriver>(
    driver: Arc<D>,
    hub: Arc<WatchHub>,
    options: LogOptions,
    local_events: bool,
) -> Result<WriteHandle> {
    let revisions = driver.revisions().await?;
    let (commands, inbox) = mpsc::channel(4096);
    let ttl = ttl::spawn(commands.downgrade(), driver.expiring().await?);
    let writer = Writer {
        driver,
        hub,
        options,
        local_events,
        ttl,
        compacted: revisions.compacted,
    };
    let task = tokio::spawn(writer.run(inbox));
    Ok(WriteHandle {
        commands,
        task,
        backend: D::BACKEND,
    })
}

struct Writer<D: LogDriver> {
    driver: Arc<D>,
    hub: Arc<WatchHub>,
    options: LogOptions,
    local_events: bool,
    ttl: TtlHandle,
    /// The newest compaction this writer knows of.
    compacted: Revision,
}

impl<D: LogDriver> Writer<D> {
    async fn run(mut self, mut inbox: mpsc::Receiver<Command>) {
        let mut batch = Vec::new();
        while let Some(command) = inbox.recv().await {
            let mut compaction = None;
            match command {
                Command::Write(op, reply) => batch.push((op, reply)),
                Command::Compact(revision, reply) => compaction = Some((revision, reply)),
            }
            let mut bytes = batch
                .iter()
                .map(|(op, _): &(WriteOp, _)| op.size())
                .sum::<usize>();
            while compaction.is_none()
                && batch.len() < self.options.max_batch
                && bytes < MAX_BATCH_BYTES
            {
                match inbox.try_recv() {
                    Ok(Command::Write(op, reply)) => {
                        bytes += op.size();
                        batch.push((op, reply));
                    }
                    Ok(Command::Compact(revision, reply)) => compaction = Some((revision, reply)),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                if let Some(newest) = self.commit(&mut batch).await {
                    self.compact_window(newest).await;
                }
            }
            if let Some((revision, reply)) = compaction {
                let _ = reply.send(self.compact(revision).await);
            }
        }
    }

    /// Applies a batch and answers every write. Returns the newest revision written, if
    /// the batch wrote any row.
    async fn commit(
        &mut self,
        batch: &mut Vec<(WriteOp, oneshot::Sender<WriteResult>)>,
    ) -> Option<Revision> {
        match self.append(batch).await {
            Ok((results, rows)) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
                let newest = rows.last()?.id;
                for row in rows.iter().filter(|r| r.lease > 0 && !r.deleted) {
                    self.ttl.expire(row.name.clone(), row.id, row.lease);
                }
                if self.local_events {
                    self.hub.publish(rows_to_events(rows));
                }
                Some(newest)
            }
            Err(err) => {
                tracing::warn!(backend = D::BACKEND, error = %err, writes = batch.len(), "write batch failed");
                let message = err.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::Unavailable {
                        backend: D::BACKEND,
                        message: message.clone(),
                    }));
                }
                None
            }
        }
    }

    /// Evaluates the batch against the store's state and appends the rows it writes,
    /// again from the start whenever another process's writer got there first.
    async fn append(
        &self,
        batch: &[(WriteOp, oneshot::Sender<WriteResult>)],
    ) -> Result<(Vec<WriteResult>, Vec<Row>)> {
        let mut keys: Vec<&[u8]> = batch.iter().map(|(op, _)| op.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        for _ in 0..MAX_RACES {
            let (base, newest) = self.driver.prepare(&keys).await?;
            let (results, rows) = evaluate(batch.iter().map(|(op, _)| op), base, newest);
            if rows.is_empty() || self.driver.append(&rows).await? == Appended::Committed {
                return Ok((results, rows));
            }
        }
        Err(StoreError::unavailable(
            D::BACKEND,
            "write",
            format!("lost {MAX_RACES} races in a row to other writers of the store"),
        ))
    }

    async fn compact(&mut self, revision: Revision) -> Result<()> {
        if revision <= self.compacted {
            return Ok(());
        }
        let mut low = self.driver.record_compaction(revision).await?;
        self.compacted = revision;
        while low < revision {
            let high = (low + COMPACT_STEP).min(revision);
            self.driver.delete_superseded(low, high).await?;
            low = high;
        }
        Ok(())
    }

    /// Keeps `compaction_window` revisions: compacts once the history has grown half a
    /// window past it, so compaction runs in small steps and never on an idle store.
    async fn compact_window(&mut self, newest: Revision) {
        let window = self.options.compaction_window.max(1);
        if newest - self.compacted < window + (window + 1) / 2 {
            return;
        }
        if let Err(err) = self.compact(newest - window).await {
            tracing::warn!(backend = D::BACKEND, error = %err, "automatic compaction failed");
        }
    }
}

/// Decides a batch of writes in order, each against the newest row of its key (from the
/// store, or written earlier in the batch). Returns each write's result and the rows to
/// append, numbered from `base + 1`.
fn evaluate<'a>(
    ops: impl Iterator<Item = &'a WriteOp>,
    base: Revision,
    newest: Vec<Row>,
) -> (Vec<WriteResult>, Vec<Row>) {
    let stored: HashMap<Vec<u8>, Row> = newest
        .into_iter()
        .map(|row| (row.name.clone(), row))
        .collect();
    let mut written: HashMap<&[u8], usize> = HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut results = Vec::new();
    for op in ops {
        let latest = match written.get(op.key()) {
            Some(&i) => Some(&rows[i]),
            None => stored.get(op.key()),
        };
        match decide(op, latest, base + rows.len() as i64 + 1) {
            Ok((row, removed)) => {
                results.push(Ok((row.id, removed)));
                written.insert(op.key(), rows.len());
                rows.push(row);
            }
            Err(refused) => results.push(Err(refused)),
        }
    }
    (results, rows)
}

/// Decides one write against the key's newest row: the row to append and the version a
/// delete removes, or why the write is refused.
fn decide(
    op: &WriteOp,
    latest: Option<&Row>,
    revision: Revision,
) -> Result<(Row, Option<KeyValue>)> {
    let key = op.key();
    let live = latest.filter(|row| !row.deleted);
    let lease = |ttl: &Option<Duration>| ttl.map_or(0, ttl_seconds);
    match op {
        WriteOp::Create { value, ttl, .. } => match live {
            Some(row) => Err(StoreError::AlreadyExists {
                current: Box::new(row.clone().into_kv()),
            }),
            None => Ok((
                Row {
                    id: revision,
                    name: key.to_vec(),
                    created: true,
                    deleted: false,
                    create_revision: revision,
                    prev_revision: latest.map_or(0, |row| row.id),
                    lease: lease(ttl),
                    value: value.to_vec(),
                    old_value: Vec::new(),
                },
                None,
            )),
        },
        WriteOp::Update {
            value,
            expected,
            ttl,
            ..
        } => match live {
            Some(row) if row.id == *expected => Ok((
                Row {
                    id: revision,
                    name: key.to_vec(),
                    created: false,
                    deleted: false,
                    create_revision: row.create_revision,
                    prev_revision: row.id,
                    lease: lease(ttl),
                    value: value.to_vec(),
                    old_value: row.value.clone(),
                },
                None,
            )),
            _ => Err(conflict(key, *expected, live)),
        },
        WriteOp::Delete { expected, .. } => match (live, expected) {
            (Some(row), None) => Ok(tombstone(row, revision)),
            (Some(row), Some(expected)) if row.id == *expected => Ok(tombstone(row, revision)),
            (None, None) => Err(StoreError::NotFound { key: key.to_vec() }),
            (_, Some(expected)) => Err(conflict(key, *expected, live)),
        },
    }
}

fn tombstone(row: &Row, revision: Revision) -> (Row, Option<KeyValue>) {
    let tombstone = Row {
        id: revision,
        name: row.name.clone(),
        created: false,
        deleted: true,
        create_revision: row.create_revision,
        prev_revision: row.id,
        lease: 0,
        value: Vec::new(),
        old_value: row.value.clone(),
    };
    (tombstone, Some(row.clone().into_kv()))
}

fn conflict(key: &[u8], expected: Revision, live: Option<&Row>) -> StoreError {
    StoreError::Conflict {
        key: key.to_vec(),
        expected,
        current: live.map(|row| Box::new(row.clone().into_kv())),
    }
}
