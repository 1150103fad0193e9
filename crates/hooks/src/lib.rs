//! The PostCreateHook engine and built-in hook actions.
