//! Pack files: append-only files holding blob bytes (see [`format`] for the layout).

pub(crate) mod format;
pub(crate) mod map;
pub(crate) mod reader;
pub(crate) mod writer;
