//! `welt._welt`: welt's decoder tables and CPU `WordBatch` for Python.
//!
//! Every entry point returns a Python exception for bad input (`ValueError`, `TypeError`,
//! `IndexError`, `OSError`) and leaves the objects as they were; a Rust panic, which no input
//! should cause, is caught ([`guard`]) and raised as a `RuntimeError`, never as pyo3's
//! `PanicException`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod array;
mod batch;
mod decoder;

/// Runs `f`, turning a panic into a `RuntimeError` (a bug in welt, not bad input).
pub(crate) fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "welt internal error (please report it): {msg}"
            )))
        }
    }
}

/// welt-runtime's errors as Python exceptions: a row past the batch is an `IndexError`,
/// everything else a `ValueError`.
pub(crate) fn runtime_err(e: welt_runtime::Error) -> PyErr {
    match e.kind() {
        welt_runtime::ErrorKind::RowOutOfRange { .. } => PyIndexError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

#[pymodule]
fn _welt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<decoder::Decoder>()?;
    m.add_class::<batch::WordBatch>()?;
    m.add("DEAD", welt_runtime::DEAD)?;
    Ok(())
}
