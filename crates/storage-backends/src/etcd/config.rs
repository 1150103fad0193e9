//! How to reach an etcd: endpoints, key prefix, TLS and timeouts, and their validation.

use crate::error::{Result, StoreError};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use std::fmt;
use std::time::Duration;

/// How long to wait for etcd to answer the first request when connecting.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take before the store reports etcd unavailable.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings on connections with open watches, so a dead etcd is noticed. Not more often
/// than etcd's default `--grpc-keepalive-min-time` (5 s) allows.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer accepted from etcd, as kube-apiserver does (`MaxCallRecvMsgSize`),
/// instead of gRPC's default 4 MiB, which a page of large values or a watch catching up on
/// history easily exceeds.
pub(crate) const MAX_ANSWER_BYTES: usize = i32::MAX as usize;

/// Where an [`EtcdStore`](super::EtcdStore) finds its etcd and which part of it it uses.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://host:port`, or `https://` with [`tls`](Self::tls)).
    pub endpoints: Vec<String>,
    /// Prepended to every key in etcd, so stores can share an etcd (e.g. `/kflex/tenant-a`).
    /// Plain bytes: add a trailing `/` if you want one. Empty: the whole etcd key space.
    pub key_prefix: Vec<u8>,
    /// TLS settings for `https://` endpoints; `None` for plain HTTP.
    pub tls: Option<EtcdTls>,
    /// How long [`EtcdStore::connect`](super::EtcdStore::connect) waits for etcd to answer
    /// before failing with `Unavailable` (it also bounds each TCP connection attempt).
    pub connect_timeout: Duration,
    /// How long any later request may take before it fails with `Unavailable`.
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// A configuration for plain-HTTP `endpoints`, with no key prefix and default timeouts
    /// (5 s to connect, 30 s per request).
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            key_prefix: Vec::new(),
            tls: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The same configuration with `key_prefix` prepended to every key.
    pub fn with_key_prefix(mut self, key_prefix: impl Into<Vec<u8>>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }

    /// The endpoints as one comma-separated string, for messages.
    pub(crate) fn endpoint_list(&self) -> String {
        self.endpoints.join(",")
    }

    /// Checks what can be checked without talking to etcd.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.endpoints.is_empty() {
            return Err(StoreError::InvalidInput(
                "etcd: no endpoints given".to_owned(),
            ));
        }
        if self
            .endpoints
            .iter()
            .any(|endpoint| endpoint.trim().is_empty())
        {
            return Err(StoreError::InvalidInput(format!(
                "etcd: empty endpoint URL in [{}]",
                self.endpoint_list()
            )));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(StoreError::InvalidInput(
                "etcd: connect and request timeouts must be positive".to_owned(),
            ));
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        Ok(())
    }

    /// The etcd client's options for this configuration.
    pub(crate) fn connect_options(&self) -> ConnectOptions {
        let options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false);
        match &self.tls {
            Some(tls) => options.with_tls(tls.options()),
            None => options,
        }
    }
}

/// TLS material for `https://` etcd endpoints, all PEM-encoded.
#[derive(Clone)]
pub struct EtcdTls {
    /// The certificate authority that signed etcd's server certificate.
    pub ca_pem: Vec<u8>,
    /// The client certificate, when etcd requires client authentication (`--client-cert-auth`).
    pub client_cert_pem: Option<Vec<u8>>,
    /// The client certificate's private key; given exactly when `client_cert_pem` is.
    pub client_key_pem: Option<Vec<u8>>,
}

impl EtcdTls {
    fn validate(&self) -> Result<()> {
        if self.ca_pem.is_empty() {
            return Err(StoreError::InvalidInput(
                "etcd TLS: empty CA certificate".to_owned(),
            ));
        }
        match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(_), None) => Err(StoreError::InvalidInput(
                "etcd TLS: a client certificate needs its private key".to_owned(),
            )),
            (None, Some(_)) => Err(StoreError::InvalidInput(
                "etcd TLS: a client private key needs its certificate".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    fn options(&self) -> TlsOptions {
        let options = TlsOptions::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => options.identity(Identity::from_pem(cert, key)),
            _ => options,
        }
    }
}

/// Shows which parts are set, never the private key.
impl fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(Vec::len),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
