//! Reading arrays: deleted rows, row selections, mapped snapshots and streaming.

pub mod deleted;
pub mod segments;
pub mod select;
pub mod snapshot;
pub mod stream;
pub mod version;
