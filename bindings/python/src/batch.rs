//! `welt.WordBatch`: welt-runtime's CPU batch, owning (a share of) its decoder's tables.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use self_cell::self_cell;
use welt_runtime::{OwnedTables, WordBatch as Batch};

use crate::array::{numpy_from_bytes, view, Access, ArrayView, DType};
use crate::decoder::Decoder;
use crate::{guard, runtime_err};

self_cell!(
    /// A batch and the tables it borrows, in one value (a `#[pyclass]` cannot borrow).
    struct BatchCell {
        owner: Arc<OwnedTables>,
        #[covariant]
        dependent: Batch,
    }
);

/// B words generated side by side on the CPU (welt-runtime's `WordBatch`).
#[pyclass(module = "welt._welt", name = "WordBatch")]
pub struct WordBatch {
    cell: BatchCell,
    decoder: Py<Decoder>,
    /// The tokens of one step, reused (nothing is allocated per step).
    tokens: Vec<u32>,
}

const LOGITS: &[DType] = &[DType::F32, DType::F16, DType::BF16, DType::F64];
const INTS: &[DType] = &[DType::I64, DType::I32];

impl WordBatch {
    fn batch(&self) -> &Batch<'_> {
        self.cell.borrow_dependent()
    }
    fn with_mut<R>(&mut self, f: impl FnOnce(&mut Batch<'_>) -> R) -> R {
        self.cell.with_dependent_mut(|_, b| f(b))
    }
    fn rows(&self) -> usize {
        self.batch().batch_size()
    }

    /// Fills `self.tokens` from a 1-D array or a sequence of ints (nothing else changes).
    fn read_tokens(&mut self, tokens: &Bound<'_, PyAny>, what: &str) -> PyResult<()> {
        let rows = self.rows();
        if is_array(tokens)? {
            let v = view(tokens, what, 1, INTS, Access::Read)?;
            return v.read_tokens(what, rows, &mut self.tokens);
        }
        let values: Vec<i64> = tokens.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must be a 1-D int tensor or array, or a sequence of ints"
            ))
        })?;
        if values.len() != rows {
            return Err(PyValueError::new_err(format!(
                "{what} has {} tokens, the batch has {rows} rows",
                values.len()
            )));
        }
        for (i, (&v, o)) in values.iter().zip(self.tokens.iter_mut()).enumerate() {
            *o = u32::try_from(v).map_err(|_| {
                PyValueError::new_err(format!("{what}: token {v} at row {i} is not a token id"))
            })?;
        }
        Ok(())
    }

    fn advance_tokens(&mut self) -> PyResult<usize> {
        let mut tokens = std::mem::take(&mut self.tokens);
        let r = self.with_mut(|b| b.advance(&mut tokens));
        self.tokens = tokens;
        r.map_err(runtime_err)
    }
}

fn is_array(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.hasattr(pyo3::intern!(obj.py(), "__dlpack__"))
}

fn bools<'py>(py: Python<'py>, v: &[bool]) -> PyResult<Bound<'py, PyAny>> {
    let bytes: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
    numpy_from_bytes(py, DType::Bool, &[v.len()], &bytes)
}

fn nonneg(what: &str, n: i64) -> PyResult<usize> {
    usize::try_from(n).map_err(|_| PyValueError::new_err(format!("{what} must be >= 0, got {n}")))
}

#[pymethods]
impl WordBatch {
    /// `rows` empty words over `decoder`'s tables; `max_word_len` overrides the decoder's
    /// word length limit.
    #[new]
    #[pyo3(signature = (decoder, rows, max_word_len = None))]
    fn new(decoder: &Bound<'_, PyAny>, rows: i64, max_word_len: Option<i64>) -> PyResult<WordBatch> {
        guard(|| {
            let decoder = decoder.downcast::<Decoder>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "WordBatch needs a welt.Decoder, got {}",
                    decoder
                        .get_type()
                        .fully_qualified_name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let rows = nonneg("rows", rows)?;
            let tables = decoder.get().tables.clone();
            let mut cell =
                BatchCell::try_new(tables, |t| Batch::new(t.as_tables(), rows)).map_err(runtime_err)?;
            if let Some(n) = max_word_len {
                let n = u32::try_from(n).map_err(|_| {
                    PyValueError::new_err(format!("max_word_len must be in 1..=4294967295, got {n}"))
                })?;
                cell.with_dependent_mut(|_, b| b.set_max_word_len(n))
                    .map_err(runtime_err)?;
            }
            let mut tokens = Vec::new();
            tokens.try_reserve_exact(rows).map_err(|_| {
                PyValueError::new_err(format!("a batch of {rows} rows does not fit in memory"))
            })?;
            tokens.resize(rows, 0);
            Ok(WordBatch {
                cell,
                decoder: decoder.clone().unbind(),
                tokens,
            })
        })
    }

    /// Masks the logits of every running row in place (forbidden tokens get -inf): a torch
    /// CPU tensor or numpy array [rows, >= vocab], float32/float16/bfloat16/float64, last
    /// dimension contiguous, any row stride. Finished rows are left as they are.
    fn apply_mask(&self, logits: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| {
            let v = view(logits, "logits", 2, LOGITS, Access::Write)?;
            let b = self.batch();
            let (rows, vocab) = (b.batch_size(), b.tables().vocab_size());
            let r = match v.dtype {
                DType::F32 => {
                    v.with_rows_mut::<f32, _>("logits", rows, vocab, |l, s| b.apply_mask_strided(l, s))
                }
                DType::F16 => {
                    v.with_rows_mut::<half::f16, _>("logits", rows, vocab, |l, s| b.apply_mask_strided(l, s))
                }
                DType::BF16 => {
                    v.with_rows_mut::<half::bf16, _>("logits", rows, vocab, |l, s| b.apply_mask_strided(l, s))
                }
                DType::F64 => {
                    v.with_rows_mut::<f64, _>("logits", rows, vocab, |l, s| b.apply_mask_strided(l, s))
                }
                _ => unreachable!("view checked the dtype"),
            }?;
            r.map_err(runtime_err)
        })
    }

    /// Advances every row by its token (1-D ints: a tensor, an array or a sequence, one per
    /// row). Returns the tokens taken as a numpy int64 array: PAD for rows that had already
    /// finished. Out-of-range or forbidden tokens, or a wrong length: ValueError, nothing
    /// changed.
    fn advance<'py>(&mut self, py: Python<'py>, tokens: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            self.read_tokens(tokens, "tokens")?;
            self.advance_tokens()?;
            let taken: Vec<u8> = self
                .tokens
                .iter()
                .flat_map(|&t| i64::from(t).to_ne_bytes())
                .collect();
            numpy_from_bytes(py, DType::I64, &[self.tokens.len()], &taken)
        })
    }

    /// Advances every row by the newest token of `input_ids` (a 2-D int64/int32 CPU tensor or
    /// array [rows, n], n >= 1: its last column), read in place. Returns the number of rows
    /// still running.
    fn advance_last(&mut self, input_ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        guard(|| {
            let rows = self.rows();
            let v: ArrayView<'_> = view(input_ids, "input_ids", 2, INTS, Access::Read)?;
            v.read_tokens("input_ids", rows, &mut self.tokens)?;
            self.advance_tokens()
        })
    }

    /// Writes `finished` into `out` (a 1-D bool tensor or array of `rows` elements, any
    /// stride) in place, and returns `out`.
    fn finished_into<'py>(&self, out: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let v = view(out, "out", 1, &[DType::Bool], Access::Write)?;
            v.write_bools("out", self.batch().finished())?;
            Ok(out.clone())
        })
    }

    /// Per row: the word is complete (the rule matched, or EOS). A numpy copy.
    #[getter]
    fn stopped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        bools(py, self.batch().stopped())
    }
    /// Per row: stopped, or at the word length limit. A numpy copy.
    #[getter]
    fn finished<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        bools(py, self.batch().finished())
    }
    /// Per row: tokens in the current word (prefix included). A numpy int64 copy.
    #[getter]
    fn lengths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let b: Vec<u8> = self
            .batch()
            .lengths()
            .iter()
            .flat_map(|&l| i64::from(l).to_ne_bytes())
            .collect();
        numpy_from_bytes(py, DType::I64, &[self.rows()], &b)
    }
    /// Per row: the automaton state. A numpy uint16 copy.
    #[getter]
    fn states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let b: Vec<u8> = self
            .batch()
            .states()
            .iter()
            .flat_map(|&s| s.to_ne_bytes())
            .collect();
        numpy_from_bytes(py, DType::U16, &[self.rows()], &b)
    }
    /// Number of rows still running.
    #[getter]
    fn running(&self) -> usize {
        self.batch().running()
    }
    #[getter]
    fn batch_size(&self) -> usize {
        self.rows()
    }
    #[getter]
    fn decoder(&self, py: Python<'_>) -> Py<Decoder> {
        self.decoder.clone_ref(py)
    }
    /// The word length limit in tokens, for the words in progress and the next ones.
    #[getter]
    fn get_max_word_len(&self) -> u32 {
        self.batch().max_word_len()
    }
    #[setter]
    fn set_max_word_len(&mut self, n: i64) -> PyResult<()> {
        guard(|| {
            let n = u32::try_from(n).map_err(|_| {
                PyValueError::new_err(format!("max_word_len must be in 1..=4294967295, got {n}"))
            })?;
            self.with_mut(|b| b.set_max_word_len(n)).map_err(runtime_err)
        })
    }
    /// Whether every row has finished.
    fn is_done(&self) -> bool {
        self.batch().is_done()
    }
    /// Starts a new, empty word in every row.
    fn reset(&mut self) {
        self.with_mut(|b| b.reset())
    }
    /// Starts a new, empty word in every finished row; returns how many.
    fn restart_finished(&mut self) -> usize {
        self.with_mut(|b| b.restart_finished())
    }
    /// Starts a new, empty word in `row`.
    fn reset_row(&mut self, row: i64) -> PyResult<()> {
        guard(|| {
            let row = row_index(row, self.rows())?;
            self.with_mut(|b| b.reset_row(row)).map_err(runtime_err)
        })
    }
    /// Starts `row` as a continuation of `tokens` (a sequence of ints).
    fn set_prefix(&mut self, row: i64, tokens: Vec<i64>) -> PyResult<()> {
        guard(|| {
            let row = row_index(row, self.rows())?;
            let prefix = tokens
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    u32::try_from(t).map_err(|_| {
                        PyValueError::new_err(format!("prefix: token {t} at {i} is not a token id"))
                    })
                })
                .collect::<PyResult<Vec<u32>>>()?;
            self.with_mut(|b| b.set_prefix(row, &prefix)).map_err(runtime_err)
        })
    }
    /// The allowed next tokens of `row` as a numpy bool array [vocab] (all False once the row
    /// has finished).
    fn allowed<'py>(&self, py: Python<'py>, row: i64) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let row = row_index(row, self.rows())?;
            let b = self.batch();
            let mask = b.mask(row).map_err(runtime_err)?;
            let v = b.tables().vocab_size();
            let bytes: Vec<u8> = (0..v as u32).map(|t| u8::from(mask.allows(t))).collect();
            numpy_from_bytes(py, DType::Bool, &[v], &bytes)
        })
    }
    fn __len__(&self) -> usize {
        self.rows()
    }
    fn __repr__(&self) -> String {
        let b = self.batch();
        format!(
            "WordBatch(rows={}, running={}, max_word_len={})",
            b.batch_size(),
            b.running(),
            b.max_word_len()
        )
    }
}

/// A row index; negative counts from the end, as Python's do.
fn row_index(row: i64, rows: usize) -> PyResult<usize> {
    let r = if row < 0 { row + rows as i64 } else { row };
    usize::try_from(r).ok().filter(|&r| r < rows).ok_or_else(|| {
        pyo3::exceptions::PyIndexError::new_err(format!("row {row} is past the batch of {rows} rows"))
    })
}
