//! The single writer of a log store: evaluates compare-and-swap writes against the newest
//! rows and commits them in batches (group commit), so concurrent writers share one
//! transaction, one fsync and one notification.

use super::ttl::{self, TtlHandle};
use super::{rows_to_events, LogDriver, LogOptions, LogTx, Row, WatchHub};
use crate::error::{Result, StoreError};
use crate::kv::{ttl_seconds, KeyValue, Revision};
use bytes::Bytes;
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
            while compaction.is_none() && batch.len() < self.options.max_batch {
                match inbox.try_recv() {
                    Ok(Command::Write(op, reply)) => batch.push((op, reply)),
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

    /// Applies a batch in one transaction and answers every write. Returns the newest
    /// revision written, if the batch committed any row.
    async fn commit(
        &mut self,
        batch: &mut Vec<(WriteOp, oneshot::Sender<WriteResult>)>,
    ) -> Option<Revision> {
        let mut results = Vec::with_capacity(batch.len());
        let mut rows = Vec::new();
        let outcome = async {
            let mut tx = self.driver.begin().await?;
            let mut revision = tx.current();
            for (op, _) in batch.iter() {
                match evaluate(tx.as_mut(), op, revision + 1).await? {
                    Ok((row, removed)) => {
                        tx.insert(&row).await?;
                        revision = row.id;
                        results.push(Ok((revision, removed)));
                        rows.push(row);
                    }
                    Err(refused) => results.push(Err(refused)),
                }
            }
            if !rows.is_empty() {
                tx.commit(revision).await?;
            }
            Ok::<_, StoreError>(revision)
        }
        .await;
        match outcome {
            Ok(newest) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
                if rows.is_empty() {
                    return None;
                }
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

    async fn compact(&mut self, revision: Revision) -> Result<()> {
        if revision <= self.compacted {
            return Ok(());
        }
        self.driver.compact(revision).await?;
        self.compacted = revision;
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

/// Decides one write against the key's newest row. The outer error is a backend failure
/// (the batch is abandoned); the inner one a refusal of this write alone.
async fn evaluate(
    tx: &mut dyn LogTx,
    op: &WriteOp,
    revision: Revision,
) -> Result<Result<(Row, Option<KeyValue>)>> {
    let key = match op {
        WriteOp::Create { key, .. } | WriteOp::Update { key, .. } | WriteOp::Delete { key, .. } => {
            key
        }
    };
    let latest = tx.latest(key).await?;
    let live = latest.as_ref().filter(|row| !row.deleted);
    let lease = |ttl: &Option<Duration>| ttl.map_or(0, ttl_seconds);
    Ok(match op {
        WriteOp::Create { value, ttl, .. } => match live {
            Some(row) => Err(StoreError::AlreadyExists {
                current: Box::new(row.clone().into_kv()),
            }),
            None => Ok((
                Row {
                    id: revision,
                    name: key.clone(),
                    created: true,
                    deleted: false,
                    create_revision: revision,
                    prev_revision: latest.as_ref().map_or(0, |row| row.id),
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
                    name: key.clone(),
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
            (None, None) => Err(StoreError::NotFound { key: key.clone() }),
            (_, Some(expected)) => Err(conflict(key, *expected, live)),
        },
    })
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
