#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod convert;
pub mod dtype;
pub mod error;
pub mod format;
#[cfg(feature = "testing")]
pub mod fuzz;
pub mod io;
pub mod package;
pub mod parallel_io;
pub mod read;
pub mod store;
pub mod vector;

pub use dtype::{DataType, NpkElement};
pub use error::{NpkError, NpkResult};
pub use format::metadata::ArrayMetadata;
pub use ndarray;
pub use parallel_io::{ArrayView, ParallelIO};
pub use read::select::RowSelection;
pub use read::snapshot::{AccessHint, ArraySnapshot, Selected, WritableMap};
pub use read::stream::StreamIterator;
pub use store::{
    AppendItem, GcReport, ReplaceItem, SaveItem, Snapshot, StageMode, Store, VersionInfo,
};

/// Paths of the published crate, kept so its examples compile (`numpack::core::error`).
pub mod core {
    /// Error types.
    pub mod error {
        pub use crate::error::{NpkError, NpkResult};
    }
}

/// The project README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme_doctests {}

/// `use numpack::prelude::*;` brings the everyday types.
pub mod prelude {
    pub use crate::dtype::{DataType, NpkElement};
    pub use crate::error::{NpkError, NpkResult};
    pub use crate::format::metadata::ArrayMetadata;
    pub use crate::parallel_io::{ArrayView, ParallelIO};
    pub use crate::read::stream::StreamIterator;
}
