//! Foreign formats worth doing in Rust: CSV and text files, parsed and written in parallel.
//!
//! - [`csv_read`]: a file → rows of one dtype, block by block ([`CsvReader`], [`import_csv`]).
//! - [`csv_write`]: rows → text, shortest round-trip or printf ([`CsvWriter`], [`export_csv`]).
//! - [`number_parse`] / [`number_format`]: one value ↔ text for each of the 14 dtypes.
//! - [`printf`]: printf row formats as Python's `%` applies them.

mod csv_line;
pub mod csv_read;
pub mod csv_write;
pub mod number_format;
pub mod number_parse;
pub mod printf;

pub use csv_line::Delimiter;
pub use csv_read::{import_csv, Block, CsvReader, ReadOptions};
pub use csv_write::{csv_width, export_csv, CsvWriter, Rows, WriteOptions};
pub use printf::RowFormat;

/// Worker threads available for parsing and formatting.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Runs `$body` with `$T` bound to the text element type of `$dtype` (bools as one byte).
macro_rules! with_field {
    ($dtype:expr, $T:ident => $body:expr) => {
        $crate::with_dtype!($dtype, $T => $body; bool = $crate::convert::number_parse::BoolByte)
    };
}
pub(crate) use with_field;
