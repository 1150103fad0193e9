//! `watch`: newline-delimited JSON events from a store watch, with kube-apiserver's
//! resourceVersion semantics, selector transitions, bookmarks and an in-stream 410.

use super::{decode, decode_bytes, read, Call};
use crate::http::{stream, Body};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use kflex_storage_backends::{Event, EventKind, RangeRequest, Store, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};

/// Watches end after this long unless the client asks for less (upstream: 30 to 60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Bookmarks are sent this often to clients that allow them (upstream: about a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
/// Events buffered for a slow client before the watch ends (the client then re-watches).
const BUFFER: usize = 1024;

struct Watch {
    store: Arc<dyn Store>,
    caches: Arc<crate::watch_cache::WatchCaches>,
    def: Arc<crate::registry::ResourceDef>,
    representation: crate::representation::Representation,
    prefix: String,
    label: LabelSelector,
    field: FieldSelector,
    kind: String,
    api_version: String,
    bookmarks: bool,
}

pub(super) async fn watch(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let query = &call.req.query;
    let (label, field) = read::selectors(&call)?;
    let initial_events = query.flag("sendInitialEvents");
    let rvm = query.get("resourceVersionMatch").unwrap_or("");
    let bookmarks = query.flag("allowWatchBookmarks");
    if initial_events && (rvm != "NotOlderThan" || !bookmarks) {
        return Err(super::forbidden_option("sendInitialEvents", "sendInitialEvents requires allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan"));
    }
    if !initial_events && !rvm.is_empty() {
        return Err(super::forbidden_option(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let timeout = query
        .number("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t as u64));
    let mut prefix = call.def.collection_prefix(call.namespace());
    if let Some(name) = &call.rr.name {
        // `watch` on a single object (`/namespaces/ns/pods/name?watch=1`), as upstream.
        prefix = call.def.key(call.namespace(), name);
    }
    let rv = query.get("resourceVersion").unwrap_or("");
    let store = call.cp.store().clone();
    let current = store
        .current_revision()
        .await
        .map_err(|e| call.store_error(e))?;
    // "" and "0" (and sendInitialEvents) start with the current state; "N" after N.
    let (initial, after) = match rv {
        "" | "0" => (true, current),
        n => {
            let n: i64 = n
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {n:?}")))?;
            if n > current {
                return Err(ApiError::too_large_resource_version(n, current));
            }
            (initial_events, if initial_events { current } else { n })
        }
    };
    let watch = Watch {
        store,
        caches: call.cp.watch_caches().clone(),
        def: call.def.clone(),
        representation: call.representation,
        prefix,
        label,
        field,
        kind: call.def.kind.clone(),
        api_version: call.def.api_version(),
        bookmarks,
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(BUFFER);
    tokio::spawn(async move {
        let _ =
            tokio::time::timeout(timeout, watch.run(sender, initial, initial_events, after)).await;
    });
    let mut response = Response::new(stream(ReceiverStream::new(receiver)));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The client went away.
struct Gone;

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl Watch {
    async fn run(
        self,
        out: mpsc::Sender<Bytes>,
        initial: bool,
        initial_events_end: bool,
        mut after: i64,
    ) {
        let mut first = true;
        let mut object_line = |kind: &str, object: Value| {
            let line = line(
                kind,
                &self.representation.watch_object(&self.def, object, first),
            );
            first = false;
            line
        };
        let send = |bytes: Bytes| {
            let out = out.clone();
            async move { out.send(bytes).await.map_err(|_| Gone) }
        };
        if initial {
            match self.initial_state(after).await {
                Ok(objects) => {
                    for object in objects {
                        if send(object_line("ADDED", object)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    let _ = send(line("ERROR", &error.to_json())).await;
                    return;
                }
            }
            if initial_events_end {
                let bookmark = self.bookmark(after, true);
                if send(line("BOOKMARK", &bookmark)).await.is_err() {
                    return;
                }
            }
        }
        let mut events = match self.events(after).await {
            Ok(events) => events,
            Err(error) => {
                let _ = send(line("ERROR", &self.error(error).to_json())).await;
                return;
            }
        };
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = out.closed() => return,
                _ = ticker.tick(), if self.bookmarks => {
                    if send(line("BOOKMARK", &self.bookmark(after, false))).await.is_err() {
                        return;
                    }
                }
                event = events.next() => {
                    let event = match event {
                        Some(Ok(event)) => event,
                        Some(Err(error)) => {
                            let _ = send(line("ERROR", &self.error(error).to_json())).await;
                            return;
                        }
                        None => return,
                    };
                    // The shared watch carries the whole resource, and its live
                    // stream may repeat what was replayed.
                    if event.revision() <= after || !event.kv.key.starts_with(self.prefix.as_bytes()) {
                        continue;
                    }
                    after = event.revision();
                    match self.translate(&event) {
                        Ok(Some((kind, object))) => {
                            if send(object_line(kind, object)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(error) => {
                            let _ = send(line("ERROR", &error.to_json())).await;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The changes after `after`: from the resource's shared watch when it reaches back
    /// that far, else from a store watch of this watcher's own.
    async fn events(
        &self,
        after: i64,
    ) -> Result<BoxStream<'static, Result<Arc<Event>, StoreError>>, StoreError> {
        let shared = self
            .caches
            .subscribe(
                &self.store,
                &self.def.storage_prefix,
                self.prefix.as_bytes(),
                after,
            )
            .await?;
        Ok(match shared {
            Some((cache, subscription)) => {
                let live = BroadcastStream::new(subscription.live).map(move |event| {
                    // The stream keeps the shared watch alive while this watcher lasts.
                    let _ = &cache;
                    event.map_err(|BroadcastStreamRecvError::Lagged(_)| {
                        StoreError::WatchLagged(after)
                    })
                });
                futures::stream::iter(subscription.replay.into_iter().map(Ok))
                    .chain(live)
                    .boxed()
            }
            None => self
                .store
                .watch(self.prefix.as_bytes(), after)
                .await?
                .map(|event| event.map(Arc::new))
                .boxed(),
        })
    }

    /// Every object that matches, at revision `at`.
    async fn initial_state(&self, at: i64) -> Result<Vec<Value>, ApiError> {
        let page = self
            .store
            .range(RangeRequest {
                prefix: self.prefix.as_bytes().to_vec(),
                revision: Some(at),
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(e))?;
        let mut objects = Vec::new();
        for kv in &page.kvs {
            let object = decode(kv)?;
            if self.matches(&object) {
                objects.push(object);
            }
        }
        Ok(objects)
    }

    fn matches(&self, object: &Value) -> bool {
        self.label.matches(object) && self.field.matches(object)
    }

    /// A store event as a watch event: ADDED, MODIFIED or DELETED, with an object moving
    /// into or out of the selection reported as ADDED or DELETED, as upstream does.
    fn translate(&self, event: &Event) -> Result<Option<(&'static str, Value)>, ApiError> {
        let revision = event.revision();
        let previous = match &event.prev {
            Some(prev) => Some(decode_bytes(&prev.value, revision)?),
            None => None,
        };
        let was = previous.as_ref().is_some_and(|p| self.matches(p));
        Ok(match event.kind {
            EventKind::Delete => previous.filter(|_| was).map(|object| ("DELETED", object)),
            EventKind::Put => {
                let object = decode_bytes(&event.kv.value, revision)?;
                match (was, self.matches(&object)) {
                    (true, true) => Some(("MODIFIED", object)),
                    (false, true) => Some(("ADDED", object)),
                    (true, false) => Some(("DELETED", object)),
                    (false, false) => None,
                }
            }
        })
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata})
    }

    fn error(&self, error: StoreError) -> ApiError {
        match error {
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::WatchLagged(_) => {
                ApiError::expired("the watch fell behind; list and watch again")
            }
            other => ApiError::unavailable(other.to_string()),
        }
    }
}
