//! The store's typed errors: what went wrong, with enough context to act on it.

use crate::kv::{KeyValue, Revision};

/// Everything a [`Store`](crate::Store) operation can fail with.
///
/// The API layer maps these onto `metav1.Status` errors: [`Compacted`](Self::Compacted) to
/// 410 Expired, [`FutureRevision`](Self::FutureRevision) to 504 with cause
/// `ResourceVersionTooLarge`, [`AlreadyExists`](Self::AlreadyExists) to 409 AlreadyExists,
/// [`Conflict`](Self::Conflict) to 409 Conflict (or 404 when `current` is `None`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create` of a key that exists.
    #[error("key {} already exists", show_key(&current.key))]
    AlreadyExists {
        /// The value the key holds.
        current: Box<KeyValue>,
    },
    /// A compare-and-swap failed: the key's modification revision is not the expected one.
    /// `current` is the key's value now, or `None` when the key does not exist.
    #[error("{}: expected modification revision {expected}, found {}", show_key(key), current.as_ref().map_or("no key".to_owned(), |kv| kv.mod_revision.to_string()))]
    Conflict {
        /// The key written.
        key: Vec<u8>,
        /// The modification revision the caller expected.
        expected: Revision,
        /// What the key holds now.
        current: Option<Box<KeyValue>>,
    },
    /// An unconditional `delete` of a key that does not exist.
    #[error("key {} not found", show_key(key))]
    NotFound {
        /// The key asked for.
        key: Vec<u8>,
    },
    /// A read or watch at a revision older than the oldest one kept.
    #[error("required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction revision.
        compacted: Revision,
    },
    /// A read at a revision newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The caller's input is unusable (an empty key, a bad store name, a bad DSN).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backend cannot be reached or refused to work (connection refused, permission
    /// denied, disk full). The message says which backend and why.
    #[error("{backend} store unavailable: {message}")]
    Unavailable {
        /// Which backend: `sqlite`, `postgres`, `etcd`.
        backend: &'static str,
        /// What failed, with the underlying cause.
        message: String,
    },
    /// A watcher fell too far behind and its missed events are gone; re-list and re-watch.
    #[error("watch fell behind and was cancelled at revision {0}")]
    WatchLagged(Revision),
}

impl StoreError {
    /// Wraps a backend failure with the backend's name and the operation's context.
    pub fn unavailable(
        backend: &'static str,
        context: impl std::fmt::Display,
        cause: impl std::fmt::Display,
    ) -> Self {
        StoreError::Unavailable {
            backend,
            message: format!("{context}: {cause}"),
        }
    }
}

/// Shorthand for results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Renders a key for messages: as text when it is UTF-8, escaped otherwise.
pub(crate) fn show_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}
