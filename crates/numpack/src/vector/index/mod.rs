//! Approximate search beside the exact engine: an IVF index (k-means coarse quantiser and
//! inverted lists of physical rows) whose candidates are rescored exactly, so every score it
//! returns is exact. Kept in the store and maintained by the commits of the array in
//! `store/index`.

pub mod ivf;
pub mod kmeans;
pub mod listed;
pub mod pq;
mod search;

pub use ivf::{BuildOptions, Ivf, RowSource, SliceRows};
pub use listed::Listed;
