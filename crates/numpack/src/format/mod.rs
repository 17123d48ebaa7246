//! Bytes on disk only: encoders and decoders of the store's files. No locking, no policy.

pub mod attrs;
pub mod bitmap;
pub mod cursor;
pub mod history;
pub mod index;
pub mod index_log;
pub mod metadata;
pub mod names;
pub mod segments;
