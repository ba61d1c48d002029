//! `welt.Decoder`: generated tables, immutable and shared by every batch built on them.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use welt_runtime::OwnedTables;

use crate::array::{numpy_from_bytes, DType};
use crate::{guard, runtime_err};

/// A decoder: the automaton's tables (the same blob the macro and `welt tables` build), plus,
/// when it was generated here, the generator's view of them (for `stats` and `to_dot`).
#[pyclass(frozen, module = "welt._welt", name = "Decoder")]
pub struct Decoder {
    pub(crate) tables: Arc<OwnedTables>,
    generated: Option<Generated>,
}

struct Generated {
    tables: kernels_gen::Tables,
    /// Which tokens are EOS, PAD and stop tokens, and how they were chosen.
    roles: String,
}

/// kernels-gen's error as a `ValueError`, naming the option it is about.
fn gen_err(e: &kernels_gen::Error) -> PyErr {
    match e.subject().option_name() {
        Some(name) if e.subject() != kernels_gen::Subject::Tokenizer => {
            PyValueError::new_err(format!("{name}: {e}"))
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Where the tokenizer comes from.
enum Source {
    Path(PathBuf),
    /// A `tokenizer.json` as text, and what to call it.
    Json(String, String),
}

fn source(obj: &Bound<'_, PyAny>) -> PyResult<Source> {
    let py = obj.py();
    if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__")? {
        let path: PathBuf = py
            .import("os")?
            .call_method1("fspath", (obj,))?
            .extract()
            .map_err(|_| {
                PyTypeError::new_err("the tokenizer path must be a str path (bytes paths are not supported)")
            })?;
        return Ok(Source::Path(path));
    }
    let kind = obj
        .get_type()
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    // A transformers fast tokenizer: its `tokenizers.Tokenizer` is `backend_tokenizer`.
    let inner = if obj.hasattr("backend_tokenizer")? {
        obj.getattr("backend_tokenizer")?
    } else if obj.hasattr("to_str")? {
        obj.clone()
    } else if obj.hasattr("convert_tokens_to_ids")? {
        return Err(PyTypeError::new_err(format!(
            "{kind} is a slow (Python) transformers tokenizer; welt reads fast ones \
             (AutoTokenizer.from_pretrained(..., use_fast=True)) or a tokenizer.json path"
        )));
    } else {
        return Err(PyTypeError::new_err(format!(
            "tokenizer must be a path to a tokenizer.json, a tokenizers.Tokenizer or a \
             transformers fast tokenizer, got {kind}"
        )));
    };
    let json = inner.call_method0("to_str")?;
    let json: String = json
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{kind}.to_str() did not return a str")))?;
    Ok(Source::Json(kind, json))
}

impl Decoder {
    fn generate(
        py: Python<'_>,
        options: kernels_gen::DecoderOptions,
        json: Option<(String, String)>,
    ) -> PyResult<Decoder> {
        let errors = options.validate();
        if !errors.is_empty() {
            let msgs: Vec<String> = errors.iter().map(|e| gen_err(e).to_string()).collect();
            return Err(PyValueError::new_err(msgs.join("; ")));
        }
        // Generation can take seconds for a large vocabulary: other Python threads run meanwhile.
        let built = py.allow_threads(
            move || -> Result<(kernels_gen::Tables, String), kernels_gen::Error> {
                let spec = match json {
                    None => options.spec()?,
                    Some((label, json)) => kernels_gen::DecoderSpec {
                        vocab: kernels_gen::tokenizer::load_str(&label, &json, &options)?,
                        rule: options.rule(),
                        max_word_len: options.max_word_len,
                        layout: options.layout,
                    },
                };
                let tables = kernels_gen::generate(&spec)?;
                Ok((tables, spec.vocab.roles()))
            },
        );
        let (tables, roles) = built.map_err(|e| gen_err(&e))?;
        let owned = OwnedTables::from_bytes(tables.to_blob()).map_err(runtime_err)?;
        Ok(Decoder {
            tables: Arc::new(owned),
            generated: Some(Generated { tables, roles }),
        })
    }
}

fn max_word_len_option(options: &mut kernels_gen::DecoderOptions, n: &Bound<'_, PyAny>) -> PyResult<()> {
    let n: i64 = n
        .extract()
        .map_err(|_| PyTypeError::new_err("max_word_len must be an int"))?;
    options
        .set("max_word_len", &n.to_string())
        .map_err(|e| gen_err(&e))
}

#[pymethods]
impl Decoder {
    /// WeLT's default decoder: the UTF-8 byte tokenizer (vocabulary 256, PAD 0, BOS 2,
    /// EOS 3) and the word rule.
    #[staticmethod]
    #[pyo3(signature = (max_word_len = None))]
    fn default(py: Python<'_>, max_word_len: Option<&Bound<'_, PyAny>>) -> PyResult<Decoder> {
        guard(|| {
            let mut options = kernels_gen::DecoderOptions::default();
            if let Some(n) = max_word_len {
                max_word_len_option(&mut options, n)?;
            }
            Decoder::generate(py, options, None)
        })
    }

    /// A decoder for a Hugging Face tokenizer: a path to its tokenizer.json, a
    /// `tokenizers.Tokenizer`, or a transformers fast tokenizer. The options are the macro's.
    #[staticmethod]
    #[pyo3(signature = (tokenizer, *, eos = None, pad = None, stop_tokens = Vec::new(), max_word_len = None, layout = "auto", forbid_leading_whitespace = false))]
    #[allow(clippy::too_many_arguments)]
    fn from_tokenizer(
        py: Python<'_>,
        tokenizer: &Bound<'_, PyAny>,
        eos: Option<String>,
        pad: Option<String>,
        stop_tokens: Vec<String>,
        max_word_len: Option<&Bound<'_, PyAny>>,
        layout: &str,
        forbid_leading_whitespace: bool,
    ) -> PyResult<Decoder> {
        guard(|| {
            let mut options = kernels_gen::DecoderOptions {
                eos,
                pad,
                stop_tokens,
                forbid_leading_whitespace,
                ..Default::default()
            };
            if let Some(n) = max_word_len {
                max_word_len_option(&mut options, n)?;
            }
            options.set("layout", layout).map_err(|e| gen_err(&e))?;
            match source(tokenizer)? {
                Source::Path(path) => {
                    match std::fs::metadata(&path) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Err(PyFileNotFoundError::new_err(format!(
                                "tokenizer file {} does not exist",
                                path.display()
                            )))
                        }
                        Err(e) => {
                            return Err(PyOSError::new_err(format!(
                                "cannot read tokenizer file {}: {e}",
                                path.display()
                            )))
                        }
                        Ok(m) if m.is_dir() => {
                            return Err(PyOSError::new_err(format!(
                                "{} is a directory, not a tokenizer.json file",
                                path.display()
                            )))
                        }
                        Ok(_) => {}
                    }
                    options.tokenizer = Some(path);
                    Decoder::generate(py, options, None)
                }
                Source::Json(label, json) => {
                    // Validated as the macro would a tokenizer given by path; the text is read
                    // instead of the file.
                    options.tokenizer = Some(PathBuf::from(&label));
                    Decoder::generate(py, options, Some((label, json)))
                }
            }
        })
    }

    /// Tables from a blob (what `to_bytes`, the macro or `welt tables --emit blob` wrote),
    /// checked in full.
    #[staticmethod]
    fn from_bytes(blob: &Bound<'_, PyAny>) -> PyResult<Decoder> {
        guard(|| {
            let bytes = if let Ok(b) = blob.downcast::<PyBytes>() {
                b.as_bytes().to_vec()
            } else if let Ok(b) = blob.downcast::<PyByteArray>() {
                b.to_vec()
            } else {
                return Err(PyTypeError::new_err(format!(
                    "from_bytes takes bytes or bytearray, got {}",
                    blob.get_type().fully_qualified_name()?
                )));
            };
            let owned = OwnedTables::from_bytes(bytes).map_err(runtime_err)?;
            Ok(Decoder {
                tables: Arc::new(owned),
                generated: None,
            })
        })
    }

    /// The table blob, byte-identical to what the macro and `welt tables --emit blob` build.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.tables.as_bytes())
    }

    /// Pickling: a decoder travels as its blob.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = slf.get_type().getattr("from_bytes")?;
        Ok((ctor, (slf.get().to_bytes(py),)))
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.tables.as_tables().vocab_size()
    }
    #[getter]
    fn num_states(&self) -> usize {
        self.tables.as_tables().num_states()
    }
    #[getter]
    fn start_state(&self) -> u16 {
        self.tables.as_tables().start()
    }
    #[getter]
    fn eos(&self) -> Option<u32> {
        self.tables.as_tables().eos()
    }
    #[getter]
    fn pad(&self) -> u32 {
        self.tables.as_tables().pad()
    }
    #[getter]
    fn max_word_len(&self) -> u16 {
        self.tables.as_tables().max_word_len()
    }

    /// Sizes of the decoder. A decoder generated here has the generator's statistics too
    /// (byte automaton, minimization, byte classes) and its special tokens; one read with
    /// `from_bytes` has what the blob tells.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let t = self.tables.as_tables();
        match &self.generated {
            Some(g) => {
                let s = g.tables.stats();
                d.set_item(
                    "byte_states_before_minimization",
                    s.byte_states_before_minimization,
                )?;
                d.set_item("byte_states", s.byte_states)?;
                d.set_item("byte_classes", s.byte_classes)?;
                d.set_item("states", s.states)?;
                d.set_item("token_classes", s.token_classes)?;
                d.set_item("vocab_size", s.vocab_size)?;
                d.set_item("layout", s.layout)?;
                d.set_item("entry_bytes", s.entry_bytes)?;
                d.set_item("mask_bytes", s.mask_bytes)?;
                d.set_item("blob_bytes", s.blob_bytes)?;
                d.set_item("special_tokens", &g.roles)?;
                d.set_item("provenance", g.tables.provenance())?;
            }
            None => {
                d.set_item("states", t.num_states())?;
                d.set_item("vocab_size", t.vocab_size())?;
                match t.token_classes() {
                    Some(c) => {
                        d.set_item("token_classes", c)?;
                        d.set_item("layout", "token classes")?;
                    }
                    None => d.set_item("layout", "direct")?,
                }
                d.set_item("blob_bytes", t.as_bytes().len())?;
            }
        }
        Ok(d)
    }

    /// The automaton as a Graphviz DOT graph (a decoder generated here; one read with
    /// `from_bytes` lacks the generator's tables: ValueError).
    fn to_dot(&self) -> PyResult<String> {
        match &self.generated {
            Some(g) => Ok(kernels_gen::emit::dot::emit(&g.tables)),
            None => Err(PyValueError::new_err(
                "to_dot needs the generator's tables: this decoder was read with from_bytes \
                 (build it with Decoder.default or Decoder.from_tokenizer, or use `welt tables --emit dot`)",
            )),
        }
    }

    /// The tables as dense numpy arrays: `next_state` (uint16 [states, vocab]; 0 is the dead
    /// state), `stops` (bool [states, vocab]: the token completes the word) and `allowed`
    /// (bool [states, vocab]: the mask row of each state).
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(|| {
            let t = self.tables.as_tables();
            let (n, v) = (t.num_states(), t.vocab_size());
            let cells = n
                .checked_mul(v)
                .ok_or_else(|| PyValueError::new_err("tables too large"))?;
            let mut next = Vec::new();
            next.try_reserve_exact(cells * 2)
                .map_err(|_| pyo3::exceptions::PyMemoryError::new_err("tables too large for memory"))?;
            let mut stops = Vec::with_capacity(cells);
            let mut allowed = Vec::with_capacity(cells);
            for s in 0..n as u16 {
                let mask = t.mask(s);
                for tok in 0..v as u32 {
                    let (to, stop) = t.step(s, tok).map_err(runtime_err)?;
                    next.extend_from_slice(&to.to_ne_bytes());
                    stops.push(u8::from(stop));
                    allowed.push(u8::from(mask.allows(tok)));
                }
            }
            let d = PyDict::new(py);
            d.set_item("next_state", numpy_from_bytes(py, DType::U16, &[n, v], &next)?)?;
            d.set_item("stops", numpy_from_bytes(py, DType::Bool, &[n, v], &stops)?)?;
            d.set_item("allowed", numpy_from_bytes(py, DType::Bool, &[n, v], &allowed)?)?;
            Ok(d)
        })
    }

    fn __repr__(&self) -> String {
        let t = self.tables.as_tables();
        format!(
            "Decoder(vocab_size={}, num_states={}, eos={}, pad={}, max_word_len={})",
            t.vocab_size(),
            t.num_states(),
            t.eos().map_or("None".into(), |e| e.to_string()),
            t.pad(),
            t.max_word_len()
        )
    }
}
