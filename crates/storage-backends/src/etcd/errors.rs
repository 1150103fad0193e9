//! Calling etcd with a deadline, and sorting its failures into what the store does about them.

use crate::error::StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why one etcd call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// "required revision has been compacted": the caller fills in the numbers.
    Compacted,
    /// "required revision is a future revision": the caller fills in the numbers.
    FutureRevision,
    /// "requested lease not found": the lease expired or was revoked; take another one.
    LeaseNotFound,
    /// Anything else, already in its final form.
    Failed(StoreError),
}

impl From<StoreError> for CallError {
    fn from(error: StoreError) -> Self {
        CallError::Failed(error)
    }
}

/// Makes etcd calls that give up after a deadline and name the endpoints when they fail.
#[derive(Clone, Debug)]
pub(crate) struct Rpc {
    endpoints: Arc<str>,
    timeout: Duration,
}

impl Rpc {
    pub(crate) fn new(endpoints: String, timeout: Duration) -> Self {
        Rpc {
            endpoints: endpoints.into(),
            timeout,
        }
    }

    /// How long a call may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The endpoints, for messages.
    pub(crate) fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Runs `call` (described by `what`, e.g. "create /registry/pods/a") within the deadline.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, CallError> {
        self.call_within(self.timeout, what, call).await
    }

    /// Like [`call`](Self::call), with its own deadline.
    pub(crate) async fn call_within<T>(
        &self,
        timeout: Duration,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.classify(what, &error)),
            Err(_) => Err(CallError::Failed(
                self.unavailable(what, format_args!("no answer within {timeout:?}")),
            )),
        }
    }

    /// An `Unavailable` error naming the operation and the endpoints.
    pub(crate) fn unavailable(
        &self,
        what: impl std::fmt::Display,
        cause: impl std::fmt::Display,
    ) -> StoreError {
        StoreError::unavailable(
            "etcd",
            format_args!("{what} (etcd at {})", self.endpoints),
            cause,
        )
    }

    /// The final error for a failed call that etcd cannot have answered with "compacted",
    /// "future revision" or "lease not found" (a call at the current revision, no lease).
    pub(crate) fn settle(&self, error: CallError) -> StoreError {
        match error {
            CallError::Failed(error) => error,
            other => self.unavailable(
                "request",
                format_args!("unexpected answer from etcd: {other:?}"),
            ),
        }
    }

    fn classify(&self, what: &str, error: &etcd_client::Error) -> CallError {
        let etcd_client::Error::GRpcStatus(status) = error else {
            return CallError::Failed(self.unavailable(what, error));
        };
        let message = status.message();
        if message.contains("required revision has been compacted") {
            CallError::Compacted
        } else if message.contains("required revision is a future revision") {
            CallError::FutureRevision
        } else if message.contains("requested lease not found") {
            CallError::LeaseNotFound
        } else if message.contains("request is too large")
            || message.contains("too large lease TTL")
        {
            CallError::Failed(StoreError::InvalidInput(format!(
                "{what}: etcd refused it: {message}"
            )))
        } else {
            CallError::Failed(self.unavailable(what, error))
        }
    }
}
