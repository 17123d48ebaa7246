//! `numpack._core`: the PyO3 bindings of the numpack engine. Registration only.

mod convert;
mod copy;
mod errors;
mod index;
mod numpy_conv;
mod package;
mod rows;
mod selection;
mod snapshot;
mod staged;
mod store;
mod vector;
mod writer;

use pyo3::prelude::*;

/// The native module.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<store::PyStore>()?;
    m.add_class::<numpy_conv::MappedFile>()?;
    m.add_class::<writer::PyArrayWriter>()?;
    m.add_class::<rows::PyRowSource>()?;
    m.add_class::<snapshot::PySnapshot>()?;
    m.add_class::<convert::PyCsvReader>()?;
    m.add_class::<convert::PyCsvWriter>()?;
    m.add_function(wrap_pyfunction!(convert::csv_format_columns, m)?)?;
    m.add_function(wrap_pyfunction!(numpy_conv::dtype_code, m)?)?;
    m.add_function(wrap_pyfunction!(writer::preallocate, m)?)?;
    m.add_function(wrap_pyfunction!(package::pack, m)?)?;
    m.add_function(wrap_pyfunction!(staged::stage_begin, m)?)?;
    m.add_function(wrap_pyfunction!(staged::stage_write, m)?)?;
    m.add_function(wrap_pyfunction!(staged::stage_commit, m)?)?;
    m.add_function(wrap_pyfunction!(staged::stage_abort, m)?)?;
    m.add_function(wrap_pyfunction!(package::unpack, m)?)?;
    m.add_function(wrap_pyfunction!(package::package_info, m)?)?;
    m.add_function(wrap_pyfunction!(package::verify, m)?)?;
    m.add_function(wrap_pyfunction!(vector::simd_capabilities, m)?)?;
    m.add_function(wrap_pyfunction!(vector::vector_scores, m)?)?;
    m.add_function(wrap_pyfunction!(vector::vector_top_k, m)?)?;
    m.add_function(wrap_pyfunction!(vector::vector_stream_top_k, m)?)?;
    m.add_function(wrap_pyfunction!(vector::vector_stream_scores, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_create, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_rebuild, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_drop, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_info, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_search, m)?)?;
    Ok(())
}
