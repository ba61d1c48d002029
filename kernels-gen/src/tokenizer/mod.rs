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
mod lean;
mod roles;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
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
    load(label, json, opts, true)
}

/// [`load_str`], through the lean reader where `lean` (else always the `tokenizers` crate).
fn load(label: &str, json: &str, opts: &DecoderOptions, lean: bool) -> Result<Vocabulary, Error> {
    let Read {
        mut rest,
        mut first,
        names,
        model,
        plan,
    } = read(json, lean).map_err(|e| e.about(Subject::Tokenizer))?;
    let names = names.as_ref();
    let roles::Roles { eos, pad, note } = roles::choose(names, opts)?;
    // EOS ends the word and is allowed at every character boundary, as a special token is: its
    // own text is not part of the word even where the file does not mark it special.
    let content = names.id_to_token(eos).map(Cow::into_owned).unwrap_or_default();
    rest[eos as usize] = Token::Special(content.clone());
    first[eos as usize] = Token::Special(content);
    let label = format!("{label} ({model}, decoder: {})", plan.describe());
    let mut vocab = Vocabulary::new(label, rest, Some(eos), pad)?;
    vocab.set_first_tokens(first)?;
    vocab.forbid_chars(plan.forbidden.iter().copied());
    for (i, name) in opts.stop_tokens.iter().enumerate() {
        vocab.add_stop_token(roles::id_of(names, "stop", name, Subject::StopToken(i))?)?;
    }
    vocab.set_roles_note(note);
    Ok(vocab)
}

/// What the loader asks of a tokenizer, answered as the `tokenizers` crate answers it: by a
/// `Tokenizer`, or by the lean reader (see [`lean`]).
pub(super) trait Names {
    /// `Tokenizer::token_to_id`.
    fn token_to_id(&self, token: &str) -> Option<u32>;
    /// `Tokenizer::id_to_token`.
    fn id_to_token(&self, id: u32) -> Option<Cow<'_, str>>;
    /// `Tokenizer::get_vocab(false)`, in any order.
    fn model_vocab(&self) -> Vec<(Cow<'_, str>, u32)>;
    /// `Tokenizer::get_added_tokens_decoder`: id, content, special; in any order.
    fn added(&self) -> Vec<(u32, String, bool)>;
    /// The added token with this id: content, special.
    fn added_at(&self, id: u32) -> Option<(&str, bool)>;
}

/// A `Tokenizer`, with its added tokens by id.
struct Full {
    tk: Tokenizer,
    added: HashMap<u32, (String, bool)>,
}

impl Names for Full {
    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tk.token_to_id(token)
    }
    fn id_to_token(&self, id: u32) -> Option<Cow<'_, str>> {
        self.tk.id_to_token(id).map(Cow::Owned)
    }
    fn model_vocab(&self) -> Vec<(Cow<'_, str>, u32)> {
        self.tk
            .get_vocab(false)
            .into_iter()
            .map(|(t, id)| (Cow::Owned(t), id))
            .collect()
    }
    fn added(&self) -> Vec<(u32, String, bool)> {
        self.added
            .iter()
            .map(|(&id, (c, s))| (id, c.clone(), *s))
            .collect()
    }
    fn added_at(&self, id: u32) -> Option<(&str, bool)> {
        self.added.get(&id).map(|(c, s)| (c.as_str(), *s))
    }
}

struct Read<'a> {
    rest: Vec<Token>,
    first: Vec<Token>,
    names: Box<dyn Names + 'a>,
    model: &'static str,
    plan: Plan,
}

/// The `tokenizers` crate's reading of a file: the tokenizer, its model's name, the decoder
/// section and the added tokens as listed (content, id).
type Parsed = (Full, &'static str, Value, Vec<(String, Option<u64>)>);

fn parse_full(json: &str) -> Result<Parsed, Error> {
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
    let listed = value
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a.get("content").and_then(Value::as_str).unwrap_or("").to_string(),
                a.get("id").and_then(Value::as_u64),
            )
        })
        .collect();
    let decoder = value.get("decoder").cloned().unwrap_or(Value::Null);
    let added = tk
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, a)| (id, (a.content, a.special)))
        .collect();
    Ok((Full { tk, added }, model, decoder, listed))
}

/// Parses the file and maps every token id to its bytes (elsewhere, and as a first token).
fn read(json: &str, lean: bool) -> Result<Read<'_>, Error> {
    let lean = if lean { lean::read(json) } else { None };
    let (names, model, decoder, listed): (Box<dyn Names + '_>, _, _, _) = match lean {
        Some(l) => {
            let listed = l.listed.iter().map(|(c, id)| (c.clone(), Some(*id))).collect();
            let (model, decoder) = (l.model, l.decoder.clone());
            (Box::new(l), model, decoder, listed)
        }
        None => {
            let (full, model, decoder, listed) = parse_full(json)?;
            (Box::new(full), model, decoder, listed)
        }
    };
    let plan = Plan::from_json(&decoder)?;
    let v = id_space(&listed, names.as_ref())?;

    let mut rest = Vec::with_capacity(v);
    let mut first = Vec::with_capacity(v);
    for id in 0..v as u32 {
        match (names.added_at(id), names.id_to_token(id)) {
            (Some((content, true)), _) => {
                rest.push(Token::Special(content.to_string()));
                first.push(Token::Special(content.to_string()));
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

    Ok(Read {
        rest,
        first,
        names,
        model,
        plan,
    })
}

/// The number of token ids, `max id + 1`, after checking that no two model tokens share an id
/// (the `tokenizers` crate would keep one of them, chosen by a randomly seeded hash map), that
/// every added token has the id the file gives it (the crate gives an added token that is not
/// a model token the next free id, whatever the file says), and that the id space is within
/// [`MAX_TOKEN_IDS`].
fn id_space(listed: &[(String, Option<u64>)], names: &dyn Names) -> Result<usize, Error> {
    let vocab = names.model_vocab();
    let max_model = vocab.iter().map(|&(_, id)| id).max();
    // The model token of each id, and the smallest id two model tokens share: indexed by id
    // where the id space is within bounds (a file beyond it is refused below), else in a map.
    let mut at: Vec<u32> = Vec::new();
    let mut by_id: BTreeMap<u32, usize> = BTreeMap::new();
    let mut shared: Option<u32> = None;
    let dense = max_model.is_some_and(|m| m < MAX_TOKEN_IDS);
    if dense {
        at = vec![u32::MAX; max_model.map_or(0, |m| m as usize + 1)];
    }
    for (i, &(_, id)) in vocab.iter().enumerate() {
        let slot = if dense {
            &mut at[id as usize]
        } else {
            let e = by_id.entry(id).or_insert(u32::MAX as usize);
            if *e == u32::MAX as usize {
                *e = i;
                continue;
            }
            shared = Some(shared.map_or(id, |s| s.min(id)));
            continue;
        };
        if *slot == u32::MAX {
            *slot = i as u32;
        } else {
            shared = Some(shared.map_or(id, |s| s.min(id)));
        }
    }
    if let Some(id) = shared {
        let mut tokens: Vec<&str> = vocab.iter().filter(|t| t.1 == id).map(|t| t.0.as_ref()).collect();
        tokens.sort();
        let names: Vec<String> = tokens.iter().map(|t| format!("`{}`", t.escape_debug())).collect();
        return Err(Error::new(format!(
            "two tokens of the model vocabulary have id {id}: {}; every id must name one token",
            names.join(" and ")
        )));
    }
    for (content, listed) in listed {
        let given = names.token_to_id(content).map(u64::from);
        if listed.is_some() && *listed != given {
            return Err(Error::new(format!(
                "added token `{}` is listed with id {}, but has id {} (an added token that is not a model \
                 token takes the id after the largest so far; two added tokens cannot share one)",
                content.escape_debug(),
                listed.unwrap_or_default(),
                given.map_or_else(|| "none".to_string(), |g| g.to_string())
            )));
        }
    }
    let model_at = |id: u32| -> Option<&str> {
        let i = if dense {
            at.get(id as usize).copied().filter(|&i| i != u32::MAX)? as usize
        } else {
            *by_id.get(&id)?
        };
        Some(vocab[i].0.as_ref())
    };
    let mut added: Vec<(u32, String, bool)> = names.added();
    added.sort();
    if let Some((id, content, model)) = added
        .iter()
        .find_map(|(id, c, _)| model_at(*id).filter(|m| m != c).map(|m| (*id, c, m)))
    {
        return Err(Error::new(format!(
            "two tokens have id {id}: `{}` (model vocabulary) and `{}` (added token); every id must \
             name one token",
            model.escape_debug(),
            content.escape_debug()
        )));
    }
    let max = max_model
        .into_iter()
        .chain(added.iter().map(|a| a.0))
        .max()
        .ok_or_else(|| Error::new("the tokenizer has an empty vocabulary"))?;
    if max >= MAX_TOKEN_IDS {
        let name = names.id_to_token(max).unwrap_or_default();
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

    /// Loads `json` through both readers, checks they agree, and returns the result.
    pub(super) fn load(json: &str) -> Result<Vocabulary, Error> {
        load_opts(json, &DecoderOptions::default())
    }

    pub(super) fn load_opts(json: &str, opts: &DecoderOptions) -> Result<Vocabulary, Error> {
        let lean = super::load("t.json", json, opts, true);
        let full = super::load("t.json", json, opts, false);
        assert!(
            lean == full,
            "the readers disagree: {} / {}",
            summary(&lean),
            summary(&full)
        );
        lean
    }

    fn summary(r: &Result<Vocabulary, Error>) -> String {
        match r {
            Ok(v) => format!("{} tokens, {}", v.len(), v.roles()),
            Err(e) => e.to_string(),
        }
    }

    fn fixture(file: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        std::fs::read_to_string(dir.join(file)).unwrap()
    }

    /// The fixtures, their options and the 128k synthetic vocabulary are read by the lean
    /// reader (not handed to the crate), to the same vocabularies.
    #[test]
    fn the_lean_reader_reads_the_fixtures_as_the_crate_does() {
        for file in [
            "byt5_like.json",
            "bpe_bytelevel.json",
            "sp_bpe_bytefallback.json",
            "sp_unigram.json",
        ] {
            let json = fixture(file);
            assert!(lean::read(&json).is_some(), "{file} is declined");
            load(&json).unwrap();
        }
        let json = crate::synthetic::byte_level_bpe_json(131_072, 7);
        assert!(lean::read(&json).is_some());
        load(&json).unwrap();
        for file in [
            "malformed.json",
            "not_a_tokenizer.json",
            "wordpiece.json",
            "duplicate_ids.json",
        ] {
            let json = fixture(&format!("bad/{file}"));
            assert!(
                lean::read(&json).is_none() || file == "duplicate_ids.json",
                "{file}"
            );
            load(&json).unwrap_err();
        }
    }

    /// Variations the crate reads differently or refuses: each is read alike by both paths
    /// (the lean reader declines what it does not model).
    #[test]
    fn the_lean_reader_agrees_with_the_crate_on_variations() {
        let base = fixture("sp_bpe_bytefallback.json");
        let value: Value = serde_json::from_str(&base).unwrap();
        type Edit = Box<dyn Fn(&mut Value)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("version 2", Box::new(|v| v["version"] = "2.0".into())),
            ("version null", Box::new(|v| v["version"] = Value::Null)),
            (
                "no version",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("version");
                }),
            ),
            ("unknown top-level key", Box::new(|v| v["extra"] = 1.into())),
            (
                "no model type",
                Box::new(|v| {
                    v["model"].as_object_mut().unwrap().remove("type");
                }),
            ),
            ("dropout", Box::new(|v| v["model"]["dropout"] = 0.5.into())),
            ("bad dropout", Box::new(|v| v["model"]["dropout"] = 2.0.into())),
            (
                "merge out of vocabulary",
                Box::new(|v| {
                    v["model"]["merges"] = serde_json::json!([["<0x41>", "nope"]]);
                }),
            ),
            (
                "merge result out of vocabulary",
                Box::new(|v| {
                    v["model"]["merges"] = serde_json::json!([["<0x41>", "<0x42>"]]);
                }),
            ),
            (
                "legacy merges",
                Box::new(|v| {
                    v["model"]["merges"] = serde_json::json!(["#version: 0.2", "<0x41> <0x42>"]);
                }),
            ),
            (
                "bad legacy merge",
                Box::new(|v| {
                    v["model"]["merges"] = serde_json::json!(["a b c"]);
                }),
            ),
            (
                "float id",
                Box::new(|v| v["model"]["vocab"]["<0x41>"] = 65.0.into()),
            ),
            (
                "normalized added token",
                Box::new(|v| {
                    v["normalizer"] = serde_json::json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
                    v["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
                    "id": 1000, "content": "a b", "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": true, "special": false}));
                }),
            ),
            (
                "two added tokens normalized alike",
                Box::new(|v| {
                    v["normalizer"] = serde_json::json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
                    for (id, c) in [(1000, "a b"), (1001, "a\u{2581}b")] {
                        v["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
                            "id": id, "content": c, "single_word": false, "lstrip": false,
                            "rstrip": false, "normalized": true, "special": false}));
                    }
                }),
            ),
            (
                "an added token listed with another id",
                Box::new(|v| v["added_tokens"][0]["id"] = 7.into()),
            ),
            (
                "added token twice",
                Box::new(|v| {
                    let a = v["added_tokens"][0].clone();
                    v["added_tokens"].as_array_mut().unwrap().push(a);
                }),
            ),
            (
                "added token missing a field",
                Box::new(|v| {
                    v["added_tokens"][0].as_object_mut().unwrap().remove("lstrip");
                }),
            ),
            (
                "bad normalizer",
                Box::new(|v| v["normalizer"] = serde_json::json!({"type": "Nope"})),
            ),
            (
                "bad pre-tokenizer",
                Box::new(|v| v["pre_tokenizer"] = serde_json::json!({"type": "Nope"})),
            ),
            (
                "bad decoder",
                Box::new(|v| v["decoder"] = serde_json::json!({"type": "Nope"})),
            ),
            ("no decoder", Box::new(|v| v["decoder"] = Value::Null)),
            (
                "bad truncation",
                Box::new(|v| v["truncation"] = serde_json::json!({"max_length": "x"})),
            ),
            ("array", Box::new(|v| *v = Value::Array(vec![v.clone()]))),
        ];
        for (what, edit) in edits {
            let mut v = value.clone();
            edit(&mut v);
            let json = serde_json::to_string(&v).unwrap();
            let lean = super::load("t.json", &json, &DecoderOptions::default(), true);
            let full = super::load("t.json", &json, &DecoderOptions::default(), false);
            assert!(lean == full, "{what}: {} / {}", summary(&lean), summary(&full));
        }
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
        let v = load_opts(&json, &o).unwrap();
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
