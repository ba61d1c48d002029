//! [`ModelError`]: why a model could not be built, loaded or saved.

use std::fmt;
use std::path::PathBuf;

use candle_core::DType;

/// Why a model could not be built, loaded or saved.
#[derive(Debug)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `config.json` is not JSON.
    Json {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's message.
        message: String,
    },
    /// The config is missing a field, has a field of the wrong type, or its sizes do not fit.
    Config(String),
    /// A tensor the config calls for is not in the checkpoint.
    MissingTensor {
        /// Hugging Face name of the tensor.
        name: String,
    },
    /// The checkpoint has a tensor that this config has no place for (a layer past
    /// `num_hidden_layers`, a bias the architecture does not have, ...).
    UnexpectedTensor {
        /// Hugging Face name of the tensor.
        name: String,
    },
    /// A tensor's shape is not the one the config calls for.
    Shape {
        /// Hugging Face name of the tensor.
        name: String,
        /// The shape the config calls for.
        expected: Vec<usize>,
        /// The config fields that give `expected`, e.g. `[vocab_size, hidden_size]`.
        dims: &'static str,
        /// The tensor's shape.
        found: Vec<usize>,
    },
    /// A tensor is not floating point.
    Dtype {
        /// Hugging Face name of the tensor.
        name: String,
        /// Its dtype.
        found: DType,
    },
    /// A tensor's dtype, as the safetensors header names it, is one candle cannot read.
    UnsupportedDtype {
        /// Hugging Face name of the tensor.
        name: String,
        /// The header's name of the dtype, e.g. `BOOL`.
        found: String,
    },
    /// `model.safetensors` could not be parsed.
    Safetensors {
        /// The file.
        path: PathBuf,
        /// candle's message.
        source: candle_core::Error,
    },
    /// Something sized by the config or the batch would need more memory than the limit
    /// allows (or than any machine has).
    TooLarge {
        /// What would be allocated, e.g. "the KV cache for 100000 rows x 32 positions".
        what: String,
        /// Bytes it would need; `None` when that does not even fit a `u128`.
        needed: Option<u128>,
        /// The limit in bytes.
        limit: u64,
    },
    /// A tensor operation failed.
    Candle(candle_core::Error),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ModelError::Json {
                path: Some(path),
                message,
            } => {
                write!(f, "{} is not valid JSON: {message}", path.display())
            }
            ModelError::Json { path: None, message } => write!(f, "config is not valid JSON: {message}"),
            ModelError::Config(msg) => write!(f, "invalid Llama config: {msg}"),
            ModelError::MissingTensor { name } => write!(f, "tensor `{name}` is missing from the checkpoint"),
            ModelError::UnexpectedTensor { name } => write!(
                f,
                "unexpected tensor `{name}`: a LlamaForCausalLM with this config has no such tensor"
            ),
            ModelError::Shape {
                name,
                expected,
                dims,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, expected {expected:?} = {dims}"
                )
            }
            ModelError::Dtype { name, found } => {
                write!(
                    f,
                    "tensor `{name}` has dtype {found:?}, expected a floating-point dtype"
                )
            }
            ModelError::UnsupportedDtype { name, found } => write!(
                f,
                "tensor `{name}` has dtype {found}, expected a floating-point dtype"
            ),
            ModelError::Safetensors { path, source } => write!(f, "{}: {source}", path.display()),
            ModelError::TooLarge {
                what,
                needed: Some(needed),
                limit,
            } => write!(
                f,
                "{what} would need {needed} bytes ({:.1} GiB), more than the limit of {limit} bytes ({:.1} GiB)",
                *needed as f64 / GIB,
                *limit as f64 / GIB
            ),
            ModelError::TooLarge {
                what,
                needed: None,
                limit,
            } => write!(
                f,
                "{what} would need more than 2^128 bytes (the limit is {limit} bytes)"
            ),
            ModelError::Candle(e) => write!(f, "{e}"),
        }
    }
}

const GIB: f64 = (1u64 << 30) as f64;

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ModelError::Io { source, .. } => Some(source),
            ModelError::Safetensors { source, .. } | ModelError::Candle(source) => Some(source),
            _ => None,
        }
    }
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Candle(e)
    }
}

impl From<ModelError> for candle_core::Error {
    fn from(e: ModelError) -> Self {
        candle_core::Error::wrap(e)
    }
}
