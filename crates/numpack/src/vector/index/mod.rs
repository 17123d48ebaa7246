//! Approximate search beside the exact engine: an IVF index (k-means coarse quantiser and
//! inverted lists of physical rows) whose candidates are rescored exactly, so every score it
//! returns is exact. In progress: built and searched in memory; persistence in the store and
//! maintenance in the commits of appends, replaces and drops come next.

pub mod ivf;
pub mod kmeans;

pub use ivf::{BuildOptions, Ivf, RowSource, SliceRows};
