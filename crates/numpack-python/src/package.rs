//! `.npkg` functions for Python: conversion, GIL release and progress callbacks only.

use crate::errors::IntoPy;
use numpack::package::{self, PackOptions};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Calls a Python progress callback (at most every 16 MiB, and at the end).
fn reporter(callback: Option<Py<PyAny>>) -> impl FnMut(u64, u64) {
    let mut last = 0u64;
    move |done, total| {
        if let Some(cb) = &callback {
            if done - last >= 16 << 20 || done == total {
                last = done;
                Python::attach(|py| {
                    // A failing callback must not abort the transfer.
                    let _ = cb.call1(py, (done, total));
                });
            }
        }
    }
}

/// Packs the store `source` into the package file `target`.
#[pyfunction]
#[pyo3(signature = (source, target, compression=true, level=3, shuffle=false, progress=None))]
pub fn pack(
    py: Python<'_>,
    source: PathBuf,
    target: PathBuf,
    compression: bool,
    level: i32,
    shuffle: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<()> {
    let opts = PackOptions {
        compress: compression,
        level,
        shuffle,
        ..PackOptions::default()
    };
    let mut report = reporter(progress);
    py.detach(|| package::pack(&source, &target, &opts, &mut report))
        .py_err()
}

/// Unpacks the package `source` into the store directory `target`.
#[pyfunction]
#[pyo3(signature = (source, target, overwrite=false, verify=true, progress=None))]
pub fn unpack(
    py: Python<'_>,
    source: PathBuf,
    target: PathBuf,
    overwrite: bool,
    verify: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<()> {
    let mut report = reporter(progress);
    py.detach(|| package::unpack(&source, &target, overwrite, verify, &mut report))
        .py_err()
}

/// The header and member table of a package, as a dict.
#[pyfunction]
pub fn package_info(py: Python<'_>, source: PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let info = py.detach(|| package::read_info(&source)).py_err()?;
    let d = PyDict::new(py);
    d.set_item("version", info.version)?;
    d.set_item("compression", info.compression)?;
    d.set_item("checksum", info.checksum)?;
    let files = info
        .entries
        .iter()
        .map(|e| {
            let f = PyDict::new(py);
            f.set_item("name", &e.name)?;
            f.set_item("original_size", e.original_size)?;
            f.set_item("compressed_size", e.compressed_size)?;
            f.set_item("actual_size", e.stored_size())?;
            f.set_item("shuffle", e.shuffle)?;
            Ok(f)
        })
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("files", files)?;
    Ok(d)
}

/// Checks a package (`*.npkg`: decodes every member, checks sizes and checksum) or a store
/// directory (every format invariant). Returns `(problems, notes)`; a package error is raised.
#[pyfunction]
pub fn verify(py: Python<'_>, source: PathBuf) -> PyResult<(Vec<String>, Vec<String>)> {
    if source.is_file() {
        py.detach(|| package::verify(&source)).py_err()?;
        return Ok((Vec::new(), Vec::new()));
    }
    let r = py.detach(|| numpack::store::verify::verify_dir(&source));
    Ok((r.problems, r.notes))
}
