//! The patch algorithms that need a kind's schema: strategic merge patch ([`strategic`]),
//! and the per-field metadata it reads ([`schema`]).

pub mod schema;
pub mod strategic;
