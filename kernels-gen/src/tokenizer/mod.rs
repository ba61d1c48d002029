//! Vocabularies from Hugging Face `tokenizer.json` files: what each token id feeds the automaton.
//!
//! The word rule holds over a word's *decoded bytes*, so each token's bytes are taken from the
//! tokenizer's own decoder, step by step, as the `tokenizers` crate runs it:
//!
//! - `ByteLevel` (GPT-2, Llama 3): each character of the token is one byte of GPT-2's
//!   byte-to-unicode alphabet (a token with a character outside it keeps its UTF-8 bytes, as
//!   the decoder does);
//! - `ByteFallback` (SentencePiece-style BPE/Unigram): a token `<0xAB>` is the byte 0xAB;
//! - `Metaspace`: `▁` is a space, except in the first token of a word when the prepend scheme
//!   is `first` or `always`, where the decoder drops it;
//! - `Replace` (string patterns), `Fuse`, `Strip` (leading characters; after `Fuse` it strips
//!   the start of the word, i.e. of its first token), and `Sequence` of these;
//! - no decoder: the `tokenizers` crate joins tokens with spaces, so every token but the first
//!   gets a leading space.
//!
//! The bytes of the first token of a word may differ from its bytes elsewhere; the generator
//! keeps both ([`Vocabulary::set_first_tokens`]). What that means for a word's first token,
//! per decoder:
//!
//! - `Metaspace` with prepend scheme `first` or `always` (Unigram, e.g. T5-style): `▁the`
//!   first is `the`;
//! - `Replace ▁ -> space`, `ByteFallback`, `Fuse`, `Strip` of one leading space (Llama 2):
//!   `▁the` first is `the`;
//! - the same without `Strip` (Gemma 3): `▁the` first stays ` the`, a word that begins with a
//!   space and so never stops by the word rule (see [`crate::WordRule::forbid_leading_whitespace`]);
//! - `ByteLevel` (GPT-2, Llama 3, Qwen 3): `Ġthe` is ` the` everywhere, first too.
//!
//! Special added tokens are never generated, except EOS and named stop tokens, which end the
//! word and are allowed wherever a new character could start. EOS is named by the caller or is
//! the first *special* added token with a usual name ([`EOS_CANDIDATES`]); none is an error.
//! PAD likewise ([`PAD_CANDIDATES`]), else EOS.
//!
//! Token ids: the vocabulary covers every id from 0 to the largest a token has (ids without a
//! token are never allowed), below [`MAX_TOKEN_IDS`]; two tokens with one id are an error. Decoders
//! that need to see the end of the word (`Strip` of trailing characters, the BPE suffix
//! decoder) and models that cannot express arbitrary bytes (WordPiece, WordLevel) are errors
//! naming what is unsupported.
//!
//! One step is not per token: `ByteFallback` joins a run of byte tokens into one piece before
//! the steps after it see it, so a `Replace` or `Metaspace` after it also rewrites a character
//! spelled by byte tokens (`<0xE2><0x96><0x81>` is `▁`, which `Metaspace` turns into a space,
//! or drops at the start of the word). Such a character is forbidden
//! ([`Vocabulary::forbid_chars`]): the automaton never lets byte tokens spell it, so the
//! bytes it walks are always the bytes the decoder prints. Rewrites there that cannot be
//! handled so (a multi-character `Replace`, a `Strip` of leading characters before `Fuse`)
//! are errors.

mod decoder;
mod roles;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;
use tokenizers::models::ModelWrapper;
use tokenizers::Tokenizer;

use crate::spec::{Token, Vocabulary};
use crate::{DecoderOptions, Error, Subject};
use decoder::Plan;

pub(crate) use decoder::gpt2_alphabet;
pub use roles::{EOS_CANDIDATES, PAD_CANDIDATES};

/// The largest token id a file may use, plus one. The vocabulary covers ids `0..=max id`
/// (ids no token has are never allowed), and the generator keeps a few dozen bytes per id, so
/// the id space is bounded before anything is allocated for it. The largest real
/// vocabularies have about 262,000 ids.
pub const MAX_TOKEN_IDS: u32 = 1 << 21;

/// The largest `tokenizer.json` [`load_file`] reads: 128 MiB.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// Reads `path` and builds its vocabulary, with the EOS, PAD and stop tokens of `opts` (its
/// other fields are not used here).
///
/// A file over [`MAX_FILE_BYTES`] is refused after reading that much (a link to `/dev/zero`
/// is not read until memory runs out).
pub fn load_file(path: &Path, opts: &DecoderOptions) -> Result<Vocabulary, Error> {
    use std::io::Read;
    let cannot = |e: &dyn std::fmt::Display| {
        Error::new(format!("cannot read tokenizer file {}: {e}", path.display())).about(Subject::Tokenizer)
    };
    let mut json = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut json))
        .map_err(|e| cannot(&e))?;
    if json.len() as u64 > MAX_FILE_BYTES {
        return Err(cannot(&format_args!(
            "larger than {MAX_FILE_BYTES} bytes, the most welt reads (the largest real tokenizer.json files are about 35 MB)"
        )));
    }
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    load_str(&name, &json, opts)
}

/// Builds the vocabulary of a `tokenizer.json` given as text; `label` names it in generated
/// file headers. Uses the EOS, PAD and stop tokens of `opts`.
pub fn load_str(label: &str, json: &str, opts: &DecoderOptions) -> Result<Vocabulary, Error> {
    let (mut rest, mut first, tk, model, plan) = read(json).map_err(|e| e.about(Subject::Tokenizer))?;
    let roles::Roles { eos, pad, note } = roles::choose(&tk, opts)?;
    // EOS ends the word and is allowed at every character boundary, as a special token is: its
    // own text is not part of the word even where the file does not mark it special.
    let content = tk.id_to_token(eos).unwrap_or_default();
    rest[eos as usize] = Token::Special(content.clone());
    first[eos as usize] = Token::Special(content);
    let label = format!("{label} ({model}, decoder: {})", plan.describe());
    let mut vocab = Vocabulary::new(label, rest, Some(eos), pad)?;
    vocab.set_first_tokens(first)?;
    vocab.forbid_chars(plan.forbidden.iter().copied());
    for (i, name) in opts.stop_tokens.iter().enumerate() {
        vocab.add_stop_token(roles::id_of(&tk, "stop", name, Subject::StopToken(i))?)?;
    }
    vocab.set_roles_note(note);
    Ok(vocab)
}

type Read = (Vec<Token>, Vec<Token>, Tokenizer, &'static str, Plan);

/// Parses the file and maps every token id to its bytes (elsewhere, and as a first token).
fn read(json: &str) -> Result<Read, Error> {
    let value: Value = serde_json::from_str(json).map_err(|e| Error::new(format!("not JSON: {e}")))?;
    let tk = Tokenizer::from_str(json).map_err(|e| {
        Error::new(format!(
            "not a tokenizer.json the `tokenizers` crate can read: {e}"
        ))
    })?;
    let model = match tk.get_model() {
        ModelWrapper::BPE(_) => "BPE",
        ModelWrapper::Unigram(_) => "Unigram",
        ModelWrapper::WordPiece(_) => return Err(unsupported_model("WordPiece")),
        ModelWrapper::WordLevel(_) => return Err(unsupported_model("WordLevel")),
    };
    let plan = Plan::from_json(value.get("decoder").unwrap_or(&Value::Null))?;
    let v = id_space(&value, &tk)?;

    let added = tk.get_added_tokens_decoder();
    let mut rest = Vec::with_capacity(v);
    let mut first = Vec::with_capacity(v);
    for id in 0..v as u32 {
        match (added.get(&id), tk.id_to_token(id)) {
            (Some(a), _) if a.special => {
                rest.push(Token::Special(a.content.clone()));
                first.push(Token::Special(a.content.clone()));
            }
            (_, Some(text)) => {
                // Elsewhere than first a token is never cut short (only first tokens are).
                rest.push(Token::Bytes(plan.bytes(&text, false).unwrap_or_default()));
                // A first token the automaton cannot model is never allowed there.
                first.push(match plan.bytes(&text, true) {
                    Some(b) => Token::Bytes(b),
                    None => Token::Special(format!("{text} (as a word's first token)")),
                });
            }
            (_, None) => {
                rest.push(Token::Special(format!("<unused id {id}>")));
                first.push(Token::Special(format!("<unused id {id}>")));
            }
        }
    }

    Ok((rest, first, tk, model, plan))
}

/// The number of token ids, `max id + 1`, after checking that no two model tokens share an id
/// (the `tokenizers` crate would keep one of them, chosen by a randomly seeded hash map), that
/// every added token has the id the file gives it (the crate gives an added token that is not
/// a model token the next free id, whatever the file says), and that the id space is within
/// [`MAX_TOKEN_IDS`].
fn id_space(value: &Value, tk: &Tokenizer) -> Result<usize, Error> {
    let mut by_id: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (token, id) in tk.get_vocab(false) {
        by_id.entry(id).or_default().push(token);
    }
    if let Some((id, tokens)) = by_id.iter_mut().find(|(_, t)| t.len() > 1) {
        tokens.sort();
        let names: Vec<String> = tokens.iter().map(|t| format!("`{}`", t.escape_debug())).collect();
        return Err(Error::new(format!(
            "two tokens of the model vocabulary have id {id}: {}; every id must name one token",
            names.join(" and ")
        )));
    }
    for a in value
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let content = a.get("content").and_then(Value::as_str).unwrap_or("");
        let listed = a.get("id").and_then(Value::as_u64);
        let given = tk.token_to_id(content).map(u64::from);
        if listed.is_some() && listed != given {
            return Err(Error::new(format!(
                "added token `{}` is listed with id {}, but has id {} (an added token that is not a model \
                 token takes the id after the largest so far; two added tokens cannot share one)",
                content.escape_debug(),
                listed.unwrap_or_default(),
                given.map_or_else(|| "none".to_string(), |g| g.to_string())
            )));
        }
    }
    let model_at = |id: u32| by_id.get(&id).and_then(|t| t.first());
    let decoder = tk.get_added_tokens_decoder();
    let mut added: Vec<(u32, &str)> = decoder.iter().map(|(&id, a)| (id, a.content.as_str())).collect();
    added.sort();
    if let Some((id, content, model)) = added
        .iter()
        .find_map(|&(id, c)| model_at(id).filter(|m| *m != c).map(|m| (id, c, m)))
    {
        return Err(Error::new(format!(
            "two tokens have id {id}: `{}` (model vocabulary) and `{}` (added token); every id must \
             name one token",
            model.escape_debug(),
            content.escape_debug()
        )));
    }
    let max = by_id
        .keys()
        .chain(decoder.keys())
        .copied()
        .max()
        .ok_or_else(|| Error::new("the tokenizer has an empty vocabulary"))?;
    if max >= MAX_TOKEN_IDS {
        let name = tk.id_to_token(max).unwrap_or_default();
        return Err(Error::new(format!(
            "token `{}` has id {max}: welt supports ids below {MAX_TOKEN_IDS} (the vocabulary covers \
             every id from 0 to the largest, and the largest real ones have about 262,000)",
            name.escape_debug()
        )));
    }
    Ok(max as usize + 1)
}

fn unsupported_model(kind: &str) -> Error {
    Error::new(format!(
        "unsupported tokenizer model {kind}: its tokens cannot express arbitrary bytes, so the UTF-8 mask \
         cannot be built over it (supported: byte-level BPE, BPE or Unigram with byte fallback)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-fallback BPE `tokenizer.json`: `<0x00>`..`<0xFF>` at ids 0..=255, then `model`
    /// (more model tokens by id) and `added` (id, content, special).
    pub(super) fn file(model: &[(&str, u64)], added: &[(u64, &str, bool)]) -> String {
        let mut vocab: Vec<String> = (0..=255u8).map(|b| format!("\"<0x{b:02X}>\":{b}")).collect();
        vocab.extend(
            model
                .iter()
                .map(|(t, id)| format!("{}:{id}", Value::String(t.to_string()))),
        );
        let added: Vec<String> = added
            .iter()
            .map(|(id, c, special)| {
                format!(
                    r#"{{"id":{id},"content":{},"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":{special}}}"#,
                    Value::String(c.to_string())
                )
            })
            .collect();
        format!(
            r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{}],"normalizer":null,
"pre_tokenizer":null,"post_processor":null,
"decoder":{{"type":"Sequence","decoders":[{{"type":"ByteFallback"}},{{"type":"Fuse"}}]}},
"model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
"fuse_unk":false,"byte_fallback":true,"ignore_merges":false,"vocab":{{{}}},"merges":[]}}}}"#,
            added.join(","),
            vocab.join(",")
        )
    }

    pub(super) fn load(json: &str) -> Result<Vocabulary, Error> {
        load_str("t.json", json, &DecoderOptions::default())
    }

    #[test]
    fn the_vocabulary_covers_every_id_up_to_the_largest() {
        // 258 tokens, one of them at id 300: ids 257..300 exist, the gap is never allowed.
        let json = file(&[("xyz", 300)], &[(257, "</s>", true)]);
        let v = load(&json).unwrap();
        assert_eq!(v.len(), 301);
        assert_eq!(v.tokens()[300], Token::Bytes(b"xyz".to_vec()));
        assert!(matches!(&v.tokens()[280], Token::Special(s) if s.contains("unused")));
        let t = crate::generate(&crate::DecoderSpec::new(v)).unwrap();
        assert!(t.allows(t.start(), 300) && !t.allows(t.start(), 280));
        // EOS named at the id past the count of tokens.
        let o = DecoderOptions {
            eos: Some("xyz".into()),
            ..Default::default()
        };
        let v = load_str("t.json", &json, &o).unwrap();
        assert_eq!(v.eos(), Some(300));
        assert!(v.is_stop_token(300));
        // Added tokens take the ids after the model's; one listed elsewhere is refused.
        let v = load(&file(&[], &[(256, "</s>", true), (257, "<x>", true)])).unwrap();
        assert_eq!(v.len(), 258);
        let e = load(&file(&[], &[(256, "</s>", true), (1000, "<x>", true)])).unwrap_err();
        assert!(e.message().contains("listed with id 1000, but has id 257"), "{e}");
    }

    #[test]
    fn the_id_space_is_bounded_before_anything_is_allocated_for_it() {
        for id in [1u64 << 31, 100_000_000, u64::from(MAX_TOKEN_IDS)] {
            let e = load(&file(&[("xyz", id)], &[(257, "</s>", true)])).unwrap_err();
            assert_eq!(e.subject(), Subject::Tokenizer);
            assert!(e.message().contains(&format!("`xyz` has id {id}")), "{e}");
            assert!(e.message().contains(&MAX_TOKEN_IDS.to_string()), "{e}");
            let e = load(&file(&[], &[(256, "</s>", true), (id, "<far>", true)])).unwrap_err();
            assert!(e.message().contains(&format!("listed with id {id}")), "{e}");
        }
        let last = u64::from(MAX_TOKEN_IDS) - 1;
        assert_eq!(
            load(&file(&[("xyz", last)], &[(257, "</s>", true)]))
                .unwrap()
                .len(),
            MAX_TOKEN_IDS as usize
        );
    }

    #[test]
    fn two_tokens_with_one_id_are_refused() {
        for (json, id) in [
            (file(&[("b", 300), ("a", 300)], &[(258, "</s>", true)]), 300),
            (file(&[("a", 65)], &[(257, "</s>", true)]), 65),
            // The `tokenizers` crate gives an added token the id after the model's count.
            (file(&[("z", 257)], &[(257, "</s>", true)]), 257),
            (
                file(
                    &[],
                    &[(256, "</s>", true), (257, "<y>", true), (257, "<x>", true)],
                ),
                257,
            ),
        ] {
            let e = load(&json).unwrap_err();
            assert_eq!(e.subject(), Subject::Tokenizer);
            assert!(e.message().contains(&format!(" id {id}")), "{e}");
            // The same message every time (no hash map order in it).
            for _ in 0..8 {
                assert_eq!(load(&json).unwrap_err(), e);
            }
        }
        let e = load(&file(&[("b", 300), ("a", 300)], &[(258, "</s>", true)])).unwrap_err();
        assert!(
            e.message().contains("`a` and `b`") && e.message().contains("id 300"),
            "{e}"
        );
    }
}
