//! Backend-specific tests (one module per backend): crash safety, supervision, bad input.
//! The behaviour every backend shares is tested once, in `tests/conformance`.

mod crash;
mod etcd;
mod external;
mod postgres;
mod sqlite;
