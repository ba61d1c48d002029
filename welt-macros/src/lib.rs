//! `#[welt_decoder]`: generates a welt decoder's tables at compile time.
//!
//! A shim: all the logic is [`kernels_gen::expand()`], tested there without a compiler in the
//! loop. Use it through `welt_runtime::welt_decoder`, which re-exports it; the generated code
//! names `::welt_runtime`.
//!
//! ```ignore
//! #[welt_runtime::welt_decoder]                      // WeLT's UTF-8 byte decoder
//! pub struct MyWords;
//!
//! #[welt_runtime::welt_decoder(max_word_len = 24)]   // same, with another default limit
//! pub struct LongWords;
//!
//! // A custom tokenizer (feature `tokenizers` of welt-runtime); the path is relative to the
//! // crate's Cargo.toml, and an edit of the file rebuilds the crate.
//! #[welt_runtime::welt_decoder(tokenizer = "tokenizers/llama.json", eos = "</s>")]
//! pub struct LlamaWords;
//! ```

use proc_macro::TokenStream;

/// Implements `welt_runtime::Decoder` for a unit struct with generated `const` tables.
///
/// Arguments (all optional; the same options as the build-script API and the `welt` CLI):
/// - `tokenizer = "path/to/tokenizer.json"`: a Hugging Face tokenizer file, relative to the
///   using crate's `Cargo.toml` (needs the `tokenizers` feature of welt-runtime); without it,
///   WeLT's UTF-8 byte tokenizer;
/// - `eos = "TOKEN"`: the EOS token's content. Default: the first *special* added token named
///   `</s>`, `<|endoftext|>`, `<|end_of_text|>`, `<eos>`, `<｜end▁of▁sentence｜>`, `<|eos|>`,
///   `[EOS]`, `<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `<|end|>` or `<|EOT|>`, in that
///   order; if there is none, naming one is required;
/// - `pad = "TOKEN"`: the PAD token reported for finished rows. Default: the first special
///   added token named `<pad>`, `<|pad|>`, `[PAD]`, `<|finetune_right_pad_id|>` or
///   `<｜▁pad▁｜>`, else EOS;
/// - `stop_token = "TOKEN"`: another token that ends a word (repeat for several);
/// - `max_word_len = N`: the default word length limit in tokens (1..=65535; WeLT uses 16);
/// - `layout = "auto" | "direct" | "classes"`: the entry table layout (default `auto`);
/// - `forbid_leading_whitespace = true`: a word may not begin with a whitespace character that
///   is not also a control (which would keep it from ever stopping by the word rule), so that
///   byte-level BPE tokens like ` the` cannot start one. Default `false`, as in WeLT.
///
/// The generated type's docs say which tokens were chosen as EOS, PAD and stop tokens. Every
/// problem is a compile error pointing at the offending argument, all of them at once.
#[proc_macro_attribute]
pub fn welt_decoder(attr: TokenStream, item: TokenStream) -> TokenStream {
    kernels_gen::expand(attr.into(), item.into()).into()
}
