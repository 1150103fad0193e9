//! The patch algorithms that need a kind's schema: strategic merge patch ([`strategic`]),
//! server-side apply's field sets and managed fields ([`fields`], [`managed`]), and the
//! per-field metadata they read ([`schema`]).

pub mod fields;
pub mod managed;
pub mod schema;
pub mod strategic;
