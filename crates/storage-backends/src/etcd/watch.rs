//! Watch streams that survive a broken connection to etcd (an etcd restart): the etcd watch
//! is re-created from the revision after the last event delivered, so no event is lost or
//! delivered twice, until etcd has been unreachable for too long.

use super::config::MAX_ANSWER_BYTES;
use super::errors::{CallError, Rpc};
use super::keyspace::KeySpace;
use super::lease::LeaseTtls;
use crate::error::{Result, StoreError};
use crate::kv::{Event, EventKind, Revision};
use crate::store::WatchStream;
use etcd_client::{Client, EventType, WatchOptions, WatchResponse};
use futures::StreamExt;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a watch keeps trying to reach etcd again before it fails with `Unavailable`.
const RESUME_WINDOW: Duration = Duration::from_secs(30);
/// The first pause between attempts to re-create a watch; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long one attempt to create a watch may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a watch watches: an etcd key range, read through one store's key space.
pub(crate) struct WatchTarget {
    pub(crate) client: Client,
    pub(crate) rpc: Rpc,
    pub(crate) keys: KeySpace,
    pub(crate) ttls: LeaseTtls,
    /// The etcd range `[from, end)`.
    pub(crate) from: Vec<u8>,
    pub(crate) end: Vec<u8>,
}

impl WatchTarget {
    /// Creates the etcd watch for every change after revision `after` (one attempt).
    pub(crate) async fn open(
        &self,
        after: Revision,
        timeout: Duration,
    ) -> Result<etcd_client::WatchStream, CallError> {
        let options = WatchOptions::new()
            .with_range(self.end.clone())
            .with_start_revision(after.saturating_add(1))
            .with_prev_key();
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        self.rpc
            .call_within(
                timeout,
                &format!("watch after revision {after}"),
                client.watch(self.from.clone(), Some(options)),
            )
            .await
    }
}

/// The store's watch stream over an etcd watch already opened after revision `after`.
/// Dropping the stream drops the etcd watch, which cancels it in etcd.
pub(crate) fn resuming(
    target: WatchTarget,
    after: Revision,
    opened: etcd_client::WatchStream,
) -> WatchStream {
    let state = ResumingWatch {
        target,
        delivered: after,
        pending: VecDeque::new(),
        stream: Some(opened),
        outage: None,
        finished: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .boxed()
}

struct ResumingWatch {
    target: WatchTarget,
    /// The revision of the last event handed out (at first, the revision watched after).
    delivered: Revision,
    /// Events received from etcd and not handed out yet.
    pending: VecDeque<Event>,
    /// The etcd watch; `None` after it broke, until it is re-created.
    stream: Option<etcd_client::WatchStream>,
    /// Since when etcd has been unreachable, and the pause before the next attempt.
    outage: Option<Outage>,
    /// Set after the stream's final error.
    finished: bool,
}

struct Outage {
    since: Instant,
    backoff: Duration,
    /// Why the watch broke, then why the latest attempt to re-create it failed.
    cause: String,
}

impl Outage {
    fn new(cause: String) -> Self {
        Outage {
            since: Instant::now(),
            backoff: FIRST_BACKOFF,
            cause,
        }
    }
}

impl ResumingWatch {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.delivered = event.revision();
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if self.stream.is_none() {
                match self.reopen().await {
                    Ok(stream) => self.stream = Some(stream),
                    Err(error) => return self.fail(error),
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match stream.message().await {
                Ok(Some(response)) => {
                    if let Err(error) = self.receive(response) {
                        return self.fail(error);
                    }
                }
                Ok(None) => self.broke("etcd closed the watch stream"),
                Err(error) => self.broke(error),
            }
        }
    }

    /// Queues a response's events, or says why the watch cannot go on.
    fn receive(&mut self, response: WatchResponse) -> Result<()> {
        if response.compact_revision() != 0 {
            return Err(StoreError::Compacted {
                requested: self.delivered,
                compacted: response.compact_revision(),
            });
        }
        if response.canceled() {
            return Err(self.target.rpc.unavailable(
                format_args!("watch after revision {}", self.delivered),
                format_args!("etcd cancelled the watch: {}", response.cancel_reason()),
            ));
        }
        // Any answer (the creation, events, progress) means etcd is reachable again.
        self.outage = None;
        let events: Vec<Event> = response
            .events()
            .iter()
            .filter_map(|event| self.event(event))
            .collect();
        for event in events {
            // A re-created watch starts after `delivered`; this only guards against a
            // server that would replay anyway.
            if event.revision() > self.delivered {
                self.pending.push_back(event);
            }
        }
        Ok(())
    }

    /// The kflex event for an etcd event; `None` for an event without a key-value, which
    /// etcd never sends.
    fn event(&self, event: &etcd_client::Event) -> Option<Event> {
        let keys = &self.target.keys;
        let ttls = &self.target.ttls;
        let kv = event.kv()?;
        let prev = event
            .prev_kv()
            .map(|prev| keys.key_value(prev.clone(), ttls));
        Some(match event.event_type() {
            EventType::Put => Event {
                kind: EventKind::Put,
                kv: keys.key_value(kv.clone(), ttls),
                prev,
            },
            EventType::Delete => Event {
                kind: EventKind::Delete,
                kv: keys.tombstone(kv.key().to_vec(), kv.mod_revision(), prev.as_ref()),
                prev,
            },
        })
    }

    /// Forgets a broken etcd watch; the next poll re-creates it.
    fn broke(&mut self, cause: impl std::fmt::Display) {
        tracing::debug!(
            endpoints = self.target.rpc.endpoints(),
            after = self.delivered,
            %cause,
            "etcd watch broke; re-creating it"
        );
        self.stream = None;
        let cause = cause.to_string();
        match &mut self.outage {
            Some(outage) => outage.cause = cause,
            None => self.outage = Some(Outage::new(cause)),
        }
    }

    /// Re-creates the etcd watch after the last delivered revision, retrying with backoff
    /// until etcd answers or `RESUME_WINDOW` has passed.
    async fn reopen(&mut self) -> Result<etcd_client::WatchStream> {
        loop {
            let outage = self
                .outage
                .get_or_insert_with(|| Outage::new("the watch broke".to_owned()));
            let backoff = outage.backoff;
            outage.backoff = (backoff * 2).min(MAX_BACKOFF);
            let remaining = RESUME_WINDOW.saturating_sub(outage.since.elapsed());
            if remaining.is_zero() {
                return Err(self.target.rpc.unavailable(
                    format_args!("watch after revision {}", self.delivered),
                    format_args!(
                        "etcd unreachable for {RESUME_WINDOW:?}; last error: {}",
                        outage.cause
                    ),
                ));
            }
            tokio::time::sleep(backoff.min(remaining)).await;
            match self.target.open(self.delivered, ATTEMPT_TIMEOUT).await {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    let error = self.target.rpc.settle(error);
                    tracing::debug!(after = self.delivered, %error, "re-creating etcd watch failed; retrying");
                    if let Some(outage) = self.outage.as_mut() {
                        outage.cause = error.to_string();
                    }
                }
            }
        }
    }

    fn fail(&mut self, error: StoreError) -> Option<Result<Event>> {
        self.finished = true;
        self.stream = None;
        Some(Err(error))
    }
}
