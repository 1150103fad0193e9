//! Lease-backed leader election for a control plane's controllers. Of the kflex processes
//! that serve one store (replicas sharing a PostgreSQL), only the holder of Lease
//! `kube-system/kube-controller-manager` runs the controllers, as kube-controller-manager's
//! replicas elect one with the same Lease and upstream's timings (15 s duration, renewed
//! every 2 s).
//!
//! Unlike upstream, the lease is held only while there is work: a process takes it when
//! its queue has work and releases it as client-go does on shutdown (no holder, a one-second
//! duration) once the queue is empty, so an idle control plane neither holds nor renews it.
//! A process whose queue has work while another holds the lease watches the lease key and
//! tries again as soon as it is written (a release), or after 2 s.
//!
//! The lease also records which processes owe garbage-collection work, in annotation
//! [`PENDING`] (identity → time): a process registers before a write whose consequences the
//! garbage collector must see (in the same write that takes the lease, when it is free) and
//! deregisters when its queue is done. An entry nobody can vouch for (one left by an earlier
//! run of this store's only writer, or one older than [`STALE`]) means a process stopped
//! with work owed: whoever finds it scans the store once for that work, then removes it.
//!
//! A store only this process can write ([`Store::exclusive`], SQLite) needs no election:
//! the lease is then written only for those registrations.
//!
//! Expiry compares the lease's `renewTime` with this host's clock, so replicas' clocks
//! must agree to well within the lease duration (as with NTP).

use crate::controlplane::ControlPlane;
use crate::handlers;
use crate::registry::ResourceDef;
use jiff::{SignedDuration, Timestamp};
use kflex_storage_backends::{KeyValue, Revision, StoreError};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The Lease's namespace and name: kube-controller-manager's.
pub const NAMESPACE: &str = "kube-system";
/// The Lease's name.
pub const NAME: &str = "kube-controller-manager";
/// The annotation that lists the processes owing garbage-collection work.
pub const PENDING: &str = "controllers.kflex.dev/pending";
/// How long a lease is held without renewal (upstream's `--leader-elect-lease-duration`).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often a leader renews, and a waiting process tries again (upstream's
/// `--leader-elect-retry-period`).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// How old another process's registration must be before a process scans for its work.
/// Its owner writes it again at its next registration once it is half this old; work owed
/// longer without new writes may be scanned for by another process too, which is harmless
/// (garbage collection acts on the store as it is).
pub const STALE: Duration = Duration::from_secs(60);
/// Read-modify-write attempts before giving up on a lease write that keeps conflicting.
const ATTEMPTS: usize = 16;

/// A new holder identity: `<hostname>_<uuid>`, as client-go makes it. Each control plane
/// instance has its own, so that two instances over one store never share the lease.
fn new_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kflex".to_owned());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// What taking the lease gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Leadership {
    /// This process leads; `resume` when it must first scan for work a stopped process
    /// owed (its lease expired unreleased, or an entry of [`PENDING`] nobody vouches for).
    Leading { resume: bool },
    /// Another process leads: try again when the lease changes after `seen` (its revision
    /// as read), or after `retry` at the latest.
    Waiting { seen: Revision, retry: Duration },
}

/// The lease as a [`Store::update`] needs it: the stored object and its revision.
struct Stored {
    object: Value,
    revision: Revision,
}

/// This process's view of the lease of one control plane.
#[derive(Default)]
struct View {
    /// The lease as last read or written, unless someone wrote it since.
    stored: Option<Stored>,
    /// Until when this process holds the lease (elected stores only).
    leading_until: Option<std::time::Instant>,
    /// When this process's entry of [`PENDING`] was written.
    registered: Option<std::time::Instant>,
    /// Entries of stopped processes whose work a resume scan covers: removed at release
    /// once the scan succeeded.
    /// With the time each was registered: one written again since is its owner's, alive.
    vouched: Vec<(String, Timestamp)>,
    /// Whether the resume scan for [`View::vouched`] succeeded.
    resumed: bool,
}

/// One control plane's lease, as this process holds it.
#[derive(Default)]
pub(super) struct Lease {
    view: tokio::sync::Mutex<View>,
    /// This instance's holder identity, made when first needed.
    identity: OnceLock<String>,
}

/// The lease's fields that election uses, read from and written into the object.
#[derive(Clone, Debug, Default, PartialEq)]
struct Record {
    holder: String,
    duration: i64,
    acquire_time: Option<Timestamp>,
    renew_time: Option<Timestamp>,
    transitions: i64,
    pending: BTreeMap<String, Timestamp>,
}

impl Record {
    fn of(object: &Value) -> Self {
        let spec = &object["spec"];
        let time = |field: &str| spec[field].as_str().and_then(|t| t.parse().ok());
        let pending = object["metadata"]["annotations"][PENDING]
            .as_str()
            .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(text).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, at)| Some((id, at.parse().ok()?)))
            .collect();
        Record {
            holder: spec["holderIdentity"].as_str().unwrap_or("").to_owned(),
            duration: spec["leaseDurationSeconds"].as_i64().unwrap_or(0),
            acquire_time: time("acquireTime"),
            renew_time: time("renewTime"),
            transitions: spec["leaseTransitions"].as_i64().unwrap_or(0),
            pending,
        }
    }

    fn write_into(&self, object: &mut Value) {
        let time = |t: Option<Timestamp>| t.map(micro_time).map_or(Value::Null, Value::from);
        object["spec"] = json!({
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "acquireTime": time(self.acquire_time),
            "renewTime": time(self.renew_time),
            "leaseTransitions": self.transitions,
        });
        // Upstream refuses a duration of 0: a lease never held (a store without election)
        // has neither a holder nor a duration.
        let never_held = self.duration == 0;
        if let Some(spec) = object["spec"].as_object_mut() {
            let unset = |field: &str| {
                never_held && matches!(field, "holderIdentity" | "leaseDurationSeconds")
            };
            spec.retain(|field, v| !v.is_null() && !unset(field));
        }
        let pending: BTreeMap<&str, String> = self
            .pending
            .iter()
            .map(|(id, at)| (id.as_str(), at.to_string()))
            .collect();
        let meta = &mut object["metadata"];
        if pending.is_empty() {
            if let Some(annotations) = meta["annotations"].as_object_mut() {
                annotations.remove(PENDING);
                if annotations.is_empty() {
                    meta.as_object_mut().map(|m| m.remove("annotations"));
                }
            }
        } else {
            meta["annotations"][PENDING] =
                json!(serde_json::to_string(&pending).unwrap_or_default());
        }
    }

    /// Whether someone holds the lease at `now`.
    fn held(&self, now: Timestamp) -> bool {
        !self.holder.is_empty() && self.expires().is_some_and(|expires| expires > now)
    }

    /// When the lease runs out unless renewed (the far future if that overflows).
    fn expires(&self) -> Option<Timestamp> {
        self.renew_time.map(|renewed| {
            renewed
                .checked_add(SignedDuration::from_secs(self.duration))
                .unwrap_or(Timestamp::MAX)
        })
    }

    /// Takes the lease for `me` at `now`.
    fn take(&mut self, me: &str, now: Timestamp) {
        if self.holder != me {
            self.transitions += i64::from(!self.holder.is_empty() || self.acquire_time.is_some());
            self.holder = me.to_owned();
            self.acquire_time = Some(now);
        }
        self.duration = LEASE_DURATION.as_secs() as i64;
        self.renew_time = Some(now);
    }

    /// How long until the earliest entry of [`PENDING`] other than `me` goes stale, if any.
    fn next_stale(&self, me: &str) -> Option<Duration> {
        let now = Timestamp::now();
        self.pending
            .iter()
            .filter(|(id, _)| id.as_str() != me)
            .map(|(_, at)| {
                let stale = SignedDuration::try_from(STALE).unwrap_or(SignedDuration::MAX);
                let left = at
                    .checked_add(stale)
                    .map_or(SignedDuration::ZERO, |t| t.duration_since(now));
                Duration::try_from(left).unwrap_or(Duration::ZERO)
            })
            .min()
    }

    /// Entries of [`PENDING`] other than `me` that no running process vouches for at `now`.
    fn orphaned(&self, me: &str, exclusive: bool, now: Timestamp) -> Vec<String> {
        let stale = SignedDuration::try_from(STALE).unwrap_or(SignedDuration::MAX);
        self.pending
            .iter()
            .filter(|(id, at)| {
                id.as_str() != me && (exclusive || at.checked_add(stale).is_ok_and(|t| t <= now))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// A Lease's `MicroTime`: RFC 3339 with microseconds, in UTC.
fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn lease_def(cp: &ControlPlane) -> Arc<ResourceDef> {
    cp.registry()
        .lookup("coordination.k8s.io", "v1", "leases")
        .expect("leases are built in")
}

/// The lease's store key.
pub(super) fn key(cp: &ControlPlane) -> String {
    lease_def(cp).key(Some(NAMESPACE), NAME)
}

fn new_object() -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": crate::object::new_uid(),
            "creationTimestamp": crate::object::now(),
        },
        "spec": {},
    })
}

fn stored(kv: &KeyValue) -> Option<Stored> {
    Some(Stored {
        object: serde_json::from_slice(&kv.value).ok()?,
        revision: kv.mod_revision,
    })
}

impl View {
    /// Applies `change` to the lease (read when not known) and writes it if it changed,
    /// again on a conflict with another writer. Returns the record as written (or read).
    async fn modify<T>(
        &mut self,
        cp: &ControlPlane,
        mut change: impl FnMut(&mut Record, Timestamp) -> T,
    ) -> Result<(Record, T), StoreError> {
        let store = cp.store();
        let key = key(cp);
        // A change made on the remembered version is checked by the write; no change
        // (someone else holds the lease) is only believed once read afresh.
        let mut remembered = self.stored.is_some();
        if !remembered {
            self.stored = store
                .get(key.as_bytes(), None)
                .await?
                .0
                .as_ref()
                .and_then(stored);
        }
        for _ in 0..ATTEMPTS {
            let now = Timestamp::now();
            let before = self.stored.as_ref().map(|s| Record::of(&s.object));
            let mut record = before.clone().unwrap_or_default();
            let outcome = change(&mut record, now);
            if before.as_ref() == Some(&record) || (before.is_none() && record == Record::default())
            {
                if remembered {
                    remembered = false;
                    self.stored = store
                        .get(key.as_bytes(), None)
                        .await?
                        .0
                        .as_ref()
                        .and_then(stored);
                    continue;
                }
                return Ok((record, outcome));
            }
            let mut object = self
                .stored
                .as_ref()
                .map_or_else(new_object, |s| s.object.clone());
            record.write_into(&mut object);
            let value = handlers::encode(&object);
            let written = match &self.stored {
                Some(s) => store.update(key.as_bytes(), value, s.revision, None).await,
                None => store.create(key.as_bytes(), value, None).await,
            };
            match written {
                Ok(revision) => {
                    self.stored = Some(Stored { object, revision });
                    return Ok((record, outcome));
                }
                Err(StoreError::Conflict { current, .. }) => {
                    self.stored = current.as_deref().and_then(stored);
                }
                Err(StoreError::AlreadyExists { current }) => self.stored = stored(&current),
                Err(error) => {
                    self.stored = None;
                    return Err(error);
                }
            }
        }
        Err(StoreError::InvalidInput(format!(
            "lease {NAMESPACE}/{NAME}: {ATTEMPTS} conflicting writes in a row"
        )))
    }

    /// Adds entries a resume scan about to run covers.
    fn vouch(&mut self, record: &Record, entries: Vec<String>) {
        for entry in entries {
            let Some(at) = record.pending.get(&entry).copied() else {
                continue;
            };
            if !self.vouched.iter().any(|(id, _)| *id == entry) {
                self.vouched.push((entry, at));
            }
        }
        self.resumed = false;
    }

    /// Whether this process held the lease and let it run out.
    fn lapsed(&self) -> bool {
        self.leading_until
            .is_some_and(|until| until <= std::time::Instant::now())
    }

    fn leading(&self) -> bool {
        self.leading_until
            .is_some_and(|until| until > std::time::Instant::now())
    }
}

impl Lease {
    /// This instance's holder identity.
    fn identity(&self) -> &str {
        self.identity.get_or_init(new_identity)
    }

    /// Records, before a write whose consequences the garbage collector must see, that this
    /// process owes work; takes the lease in the same write when it is free.
    pub(super) async fn register(&self, cp: &ControlPlane) -> Result<(), StoreError> {
        let me = self.identity();
        let mut view = self.view.lock().await;
        let fresh = view.registered.is_some_and(|at| at.elapsed() < STALE / 2) && !view.lapsed();
        if fresh {
            return Ok(());
        }
        let exclusive = cp.store().exclusive();
        // The lease counts from before the write, as the stored renewTime does.
        let asked = std::time::Instant::now();
        let (_, took) = view
            .modify(cp, |record, now| {
                record.pending.insert(me.to_owned(), now);
                let free = !exclusive && (!record.held(now) || record.holder == me);
                if free {
                    record.take(me, now);
                }
                free
            })
            .await?;
        view.registered = Some(std::time::Instant::now());
        if took {
            view.leading_until = Some(asked + LEASE_DURATION);
        }
        Ok(())
    }

    /// Whether the lease records work owed by another process, read at start: the work of
    /// an earlier run, or of a replica (running or not), which a resume scan then covers.
    pub(super) async fn owed(&self, cp: &ControlPlane) -> Result<bool, StoreError> {
        let me = self.identity();
        let mut view = self.view.lock().await;
        let (record, ()) = view.modify(cp, |_, _| ()).await?;
        let now = Timestamp::now();
        view.vouch(&record, record.orphaned(me, cp.store().exclusive(), now));
        Ok(!record.orphaned(me, true, now).is_empty())
    }

    /// Takes (or keeps) the lease before running the controllers.
    pub(super) async fn lead(&self, cp: &ControlPlane) -> Result<Leadership, StoreError> {
        let exclusive = cp.store().exclusive();
        let me = self.identity();
        let mut view = self.view.lock().await;
        if exclusive || view.leading() {
            return Ok(Leadership::Leading { resume: false });
        }
        if view.lapsed() {
            // Whoever took over may have removed this process's entry: write it again.
            view.registered = None;
        }
        let asked = std::time::Instant::now();
        let (record, (outcome, vouched)) = view
            .modify(cp, |record, now| {
                if record.held(now) && record.holder != me {
                    let left = record
                        .expires()
                        .and_then(|e| Duration::try_from(e.duration_since(now)).ok())
                        .unwrap_or(RETRY_PERIOD);
                    let retry = left.min(RETRY_PERIOD);
                    return (Leadership::Waiting { seen: 0, retry }, Vec::new());
                }
                // A holder that let the lease run out stopped (or lost its store) mid-work.
                let mut vouched = record.orphaned(me, false, now);
                let abandoned = !record.holder.is_empty() && record.holder != me;
                if abandoned && record.pending.contains_key(&record.holder) {
                    vouched.push(record.holder.clone());
                }
                record.take(me, now);
                let resume = abandoned || !vouched.is_empty();
                (Leadership::Leading { resume }, vouched)
            })
            .await?;
        let mut outcome = outcome;
        if let Leadership::Waiting { seen, .. } = &mut outcome {
            *seen = view.stored.as_ref().map_or(0, |s| s.revision);
        }
        if let Leadership::Leading { resume } = outcome {
            view.leading_until = Some(asked + LEASE_DURATION);
            if resume {
                view.vouch(&record, vouched);
            }
            tracing::debug!(
                control_plane = cp.name(),
                resume,
                "controllers' lease taken"
            );
        }
        Ok(outcome)
    }

    /// Renews the lease while this process leads; `false` when it lost it.
    pub(super) async fn renew(&self, cp: &ControlPlane) -> Result<bool, StoreError> {
        let me = self.identity();
        let mut view = self.view.lock().await;
        if !view.leading() {
            return Ok(false);
        }
        let asked = std::time::Instant::now();
        let (_, kept) = view
            .modify(cp, |record, now| {
                let kept = record.holder == me;
                if kept {
                    record.renew_time = Some(now);
                }
                kept
            })
            .await?;
        view.leading_until = kept.then(|| asked + LEASE_DURATION);
        if !kept {
            // Whoever took over may have removed this process's entry: write it again.
            view.registered = None;
        }
        Ok(kept)
    }

    /// Records that a resume scan succeeded: the entries it covered go at release.
    pub(super) async fn resumed(&self) {
        self.view.lock().await.resumed = true;
    }

    /// Whether this process may run the controllers now.
    pub(super) async fn leading(&self, cp: &ControlPlane) -> bool {
        cp.store().exclusive() || self.view.lock().await.leading()
    }

    /// Gives the lease up once the queue is empty. When `done` still holds (checked with the
    /// lease locked, so that no write registers meanwhile), also this process's entry of
    /// [`PENDING`] (it owes nothing now) and those a successful resume scan covered.
    /// Returns when the earliest entry of another process goes stale, if the lease (on an
    /// elected store) still lists one: if its owner stopped, nobody else may look again.
    pub(super) async fn release(
        &self,
        cp: &ControlPlane,
        done: impl Fn() -> bool,
    ) -> Result<Option<Duration>, StoreError> {
        let me = self.identity();
        let mut view = self.view.lock().await;
        let exclusive = cp.store().exclusive();
        let leading = !exclusive && view.leading_until.is_some();
        let deregister = view.registered.is_some() && done();
        let vouched = if view.resumed && done() {
            view.vouched.clone()
        } else {
            Vec::new()
        };
        if !leading && !deregister && vouched.is_empty() {
            return Ok(None);
        }
        let (record, ()) = view
            .modify(cp, |record, now| {
                if leading && record.holder == me {
                    record.holder.clear();
                    record.duration = 1;
                    record.acquire_time = Some(now);
                    record.renew_time = Some(now);
                }
                if deregister {
                    record.pending.remove(me);
                }
                for (id, at) in &vouched {
                    if record.pending.get(id) == Some(at) {
                        record.pending.remove(id);
                    }
                }
            })
            .await?;
        tracing::debug!(
            control_plane = cp.name(),
            leading,
            deregister,
            vouched = vouched.len(),
            "controllers' lease released"
        );
        view.leading_until = None;
        if deregister {
            view.registered = None;
        }
        if !vouched.is_empty() {
            view.vouched.clear();
            view.resumed = false;
        }
        Ok((!exclusive).then(|| record.next_stale(me)).flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_record_round_trips_through_the_lease_object() {
        let mut record = Record {
            holder: "a_1".into(),
            duration: 15,
            acquire_time: Some(at("2026-11-22T10:00:00.123456Z")),
            renew_time: Some(at("2026-11-22T10:00:02.5Z")),
            transitions: 3,
            pending: [("a_1".to_owned(), at("2026-11-22T10:00:00Z"))].into(),
        };
        let mut object = new_object();
        object["metadata"]["annotations"] = json!({"other": "kept"});
        record.write_into(&mut object);
        assert_eq!(object["spec"]["renewTime"], "2026-11-22T10:00:02.500000Z");
        assert_eq!(object["metadata"]["annotations"]["other"], "kept");
        assert_eq!(Record::of(&object), record);
        record.pending.clear();
        record.write_into(&mut object);
        assert_eq!(object["metadata"]["annotations"], json!({"other": "kept"}));
        assert_eq!(Record::of(&object), record);
    }

    #[test]
    fn a_lease_never_held_has_no_holder_nor_duration() {
        let record = Record {
            pending: [("a_1".to_owned(), at("2026-11-22T10:00:00Z"))].into(),
            ..Default::default()
        };
        let mut object = new_object();
        record.write_into(&mut object);
        assert_eq!(object["spec"], json!({"leaseTransitions": 0}));
        assert_eq!(Record::of(&object), record);
    }

    #[test]
    fn a_lease_is_held_until_its_duration_after_renewal() {
        let record = Record {
            holder: "a_1".into(),
            duration: 15,
            renew_time: Some(at("2026-11-22T10:00:00Z")),
            ..Default::default()
        };
        assert!(record.held(at("2026-11-22T10:00:14Z")));
        assert!(!record.held(at("2026-11-22T10:00:15Z")));
        let released = Record {
            holder: String::new(),
            ..record.clone()
        };
        assert!(!released.held(at("2026-11-22T10:00:01Z")));
        let forever = Record {
            duration: i64::MAX,
            ..record
        };
        assert!(forever.held(at("2099-01-01T00:00:00Z")));
    }

    #[test]
    fn taking_counts_transitions_between_holders_only() {
        let now = at("2026-11-22T10:00:00Z");
        let me = "me_1";
        let mut record = Record::default();
        record.take(me, now);
        assert_eq!((record.holder.as_str(), record.transitions), (me, 0));
        record.take(me, at("2026-11-22T10:00:05Z"));
        assert_eq!(record.transitions, 0);
        assert_eq!(record.acquire_time, Some(now));
        record.holder = "other_2".into();
        record.take(me, now);
        assert_eq!(record.transitions, 1);
        // After a release (no holder), the next take is a transition too, as upstream.
        record.holder.clear();
        record.take(me, now);
        assert_eq!(record.transitions, 2);
    }

    #[test]
    fn only_stale_entries_of_others_are_orphaned_on_a_shared_store() {
        let now = at("2026-11-22T10:10:00Z");
        let record = Record {
            pending: [
                ("me_1".to_owned(), at("2026-11-22T09:00:00Z")),
                ("fresh_1".to_owned(), at("2026-11-22T10:09:30Z")),
                ("stale_2".to_owned(), at("2026-11-22T10:08:59Z")),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            record.orphaned("me_1", false, now),
            vec!["stale_2".to_owned()]
        );
        // On a store only this process writes, every other entry is an earlier run's.
        assert_eq!(
            record.orphaned("me_1", true, now),
            vec!["fresh_1".to_owned(), "stale_2".to_owned()]
        );
    }

    #[test]
    fn an_unreadable_pending_annotation_is_no_entry() {
        let mut object = new_object();
        object["metadata"]["annotations"] = json!({PENDING: "not json"});
        assert!(Record::of(&object).pending.is_empty());
        object["metadata"]["annotations"] = json!({PENDING: r#"{"a_1": "yesterday"}"#});
        assert!(Record::of(&object).pending.is_empty());
    }
}
