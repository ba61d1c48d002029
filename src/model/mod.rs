//! The byte decoder that spells WeLT's words (see [`ByteLlama`]).

mod llama;

pub use llama::{ByteLlama, LlamaConfig, ModelError};
