//! Reading arrays: mapped snapshots, row gathers and streaming.

pub mod snapshot;
pub mod stream;
