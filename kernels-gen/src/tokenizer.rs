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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use serde_json::Value;
use tokenizers::models::ModelWrapper;
use tokenizers::Tokenizer;

use crate::spec::{Token, Vocabulary};
use crate::{DecoderOptions, Error, Subject};

/// Names EOS usually has, tried in order when the caller names none; only *special* added
/// tokens are candidates (an ordinary token or a non-special added token spelled `</s>` is
/// text, not EOS). Ends of documents come first, then ends of turns: a file with both (Qwen 3,
/// Llama 3, Gemma 3) gets the end of document, and the report says which others are present.
pub const EOS_CANDIDATES: &[&str] = &[
    "</s>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<eos>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "<|eos|>",
    "[EOS]",
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|EOT|>",
];
/// Names PAD usually has, tried in order when the caller names none (then EOS); only
/// special added tokens are candidates.
pub const PAD_CANDIDATES: &[&str] = &[
    "<pad>",
    "<|pad|>",
    "[PAD]",
    "<|finetune_right_pad_id|>",
    "<\u{ff5c}\u{2581}pad\u{2581}\u{ff5c}>",
];

/// The largest token id a file may use, plus one. The vocabulary covers ids `0..=max id`
/// (ids no token has are never allowed), and the generator keeps a few dozen bytes per id, so
/// the id space is bounded before anything is allocated for it. The largest real
/// vocabularies have about 262,000 ids.
pub const MAX_TOKEN_IDS: u32 = 1 << 21;

/// Reads `path` and builds its vocabulary, with the EOS, PAD and stop tokens of `opts` (its
/// other fields are not used here).
pub fn load_file(path: &Path, opts: &DecoderOptions) -> Result<Vocabulary, Error> {
    let json = std::fs::read_to_string(path).map_err(|e| {
        Error::new(format!("cannot read tokenizer file {}: {e}", path.display())).about(Subject::Tokenizer)
    })?;
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
    let id_of = |what: &str, name: &str, subject: Subject| -> Result<u32, Error> {
        tk.token_to_id(name).ok_or_else(|| {
            Error::new(format!("unknown {what} token `{name}`: not in the vocabulary")).about(subject)
        })
    };
    // Special added tokens with a usual name, in the order of `names`.
    let special = |names: &[&str]| -> Vec<(u32, String)> {
        let added = tk.get_added_tokens_decoder();
        let mut found: Vec<(usize, u32, String)> = added
            .iter()
            .filter(|(_, a)| a.special)
            .filter_map(|(&id, a)| {
                names
                    .iter()
                    .position(|n| *n == a.content)
                    .map(|rank| (rank, id, a.content.clone()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, id, c)| (id, c)).collect()
    };
    let mut note = Vec::new();
    let eos = match &opts.eos {
        Some(name) => id_of("EOS", name, Subject::Eos)?,
        None => {
            let found = special(EOS_CANDIDATES);
            let Some((id, _)) = found.first() else {
                return Err(Error::new(format!(
                    "no EOS token found: no special added token of the tokenizer is named {}; name it with \
                     `eos = \"...\"` (macro), `.eos(\"...\")` (build script) or `--eos TOKEN` (CLI)",
                    EOS_CANDIDATES.join(", ")
                ))
                .about(Subject::Eos));
            };
            note.push("EOS: the first special added token with a usual EOS name".to_string());
            if found.len() > 1 {
                let others: Vec<String> = found[1..].iter().map(|(i, c)| format!("{i} `{c}`")).collect();
                note.push(format!(
                    "also present, not stops unless named as stop tokens: {}",
                    others.join(", ")
                ));
            }
            *id
        }
    };
    let pad = match &opts.pad {
        Some(name) => id_of("PAD", name, Subject::Pad)?,
        None => match special(PAD_CANDIDATES).first() {
            Some((id, _)) => {
                note.push("PAD: the first special added token with a usual PAD name".into());
                *id
            }
            None => {
                note.push("PAD: EOS, no special added token has a usual PAD name".into());
                eos
            }
        },
    };
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
        vocab.add_stop_token(id_of("stop", name, Subject::StopToken(i))?)?;
    }
    vocab.set_roles_note(note.join("; "));
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

/// One step of a decoder, as it acts on one token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Map each character through GPT-2's byte-to-unicode alphabet; fuses.
    ByteLevel,
    /// `<0xAB>` -> the byte 0xAB.
    ByteFallback,
    /// Replace every occurrence of a string.
    Replace { from: Vec<u8>, to: Vec<u8> },
    /// Concatenate all tokens into one piece.
    Fuse,
    /// Remove up to `start` leading `content` characters of each piece.
    Strip { content: char, start: usize },
    /// `replacement` -> space; dropped in the first piece when `drop_first`.
    Metaspace { replacement: char, drop_first: bool },
    /// No decoder: tokens are joined with spaces.
    JoinWithSpaces,
}

/// A decoder as a list of steps, with what it means for one token's bytes.
#[derive(Clone, Debug)]
struct Plan {
    steps: Vec<Step>,
    names: Vec<String>,
    /// A `ByteFallback` step came before, with no `Fuse` or `ByteLevel` since: later steps see
    /// runs of byte tokens joined into one piece.
    byte_runs: bool,
    /// A `ByteFallback` or `ByteLevel` step came before: a token may be part of a character.
    splits_chars: bool,
    /// Characters that byte tokens must not spell (a later step would rewrite them).
    forbidden: Vec<char>,
}

impl Plan {
    fn from_json(decoder: &Value) -> Result<Plan, Error> {
        let mut plan = Plan {
            steps: Vec::new(),
            names: Vec::new(),
            byte_runs: false,
            splits_chars: false,
            forbidden: Vec::new(),
        };
        if decoder.is_null() {
            plan.steps.push(Step::JoinWithSpaces);
            plan.names.push("none (tokens joined with spaces)".into());
            return Ok(plan);
        }
        let mut fused = false;
        plan.push(decoder, &mut fused)?;
        Ok(plan)
    }

    fn push(&mut self, d: &Value, fused: &mut bool) -> Result<(), Error> {
        let ty = d.get("type").and_then(Value::as_str).unwrap_or("?");
        let str_field = |k: &str| d.get(k).and_then(Value::as_str);
        let char_field = |k: &str| -> Result<char, Error> {
            let s = str_field(k).unwrap_or("");
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(Error::new(format!("decoder {ty}: `{k}` must be one character"))),
            }
        };
        match ty {
            "Sequence" => {
                let list = d
                    .get("decoders")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Error::new("decoder Sequence without a `decoders` list".to_string()))?;
                for sub in list {
                    self.push(sub, fused)?;
                }
                return Ok(());
            }
            "ByteLevel" | "ByteFallback" if *fused => {
                return Err(Error::new(format!(
                "unsupported decoder: {ty} after Fuse or ByteLevel (it would act on the whole word at once)"
            )))
            }
            "ByteLevel" if self.byte_runs => {
                return Err(Error::new(
                    "unsupported decoder: ByteLevel after ByteFallback (it would reread runs of byte tokens)",
                ))
            }
            "ByteLevel" => {
                self.splits_chars = true;
                self.steps.push(Step::ByteLevel);
                *fused = true;
                self.byte_runs = false;
            }
            "ByteFallback" => {
                self.steps.push(Step::ByteFallback);
                self.byte_runs = true;
                self.splits_chars = true;
            }
            "Fuse" => {
                self.steps.push(Step::Fuse);
                *fused = true;
                self.byte_runs = false;
            }
            "Replace" => {
                let pattern = d.get("pattern");
                let from = match pattern.and_then(|p| p.get("String")).and_then(Value::as_str) {
                    Some(s) => s.to_string(),
                    None => {
                        return Err(Error::new(
                            "unsupported decoder Replace with a regex pattern (only string patterns are supported)",
                        ))
                    }
                };
                if from.is_empty() {
                    return Err(Error::new("decoder Replace with an empty pattern"));
                }
                if *fused && from.chars().count() > 1 {
                    return Err(Error::new(
                        "unsupported decoder: Replace of a multi-character pattern after Fuse (it could span tokens)",
                    ));
                }
                if self.byte_runs || *fused {
                    let mut chars = from.chars();
                    match (chars.next(), chars.next()) {
                        // One byte: replacing it in each token is replacing it in the run or
                        // the word. A longer character may be split across tokens: forbid
                        // that (whole in one token, it is replaced in that token's bytes).
                        (Some(c), None) if c.is_ascii() => {}
                        (Some(c), None) => self.forbidden.push(c),
                        _ => return Err(Error::new(
                            "unsupported decoder: Replace of a multi-character pattern after ByteFallback \
                                 (it could span byte tokens)",
                        )),
                    }
                }
                let to = str_field("content").unwrap_or("").to_string();
                self.steps.push(Step::Replace {
                    from: from.into_bytes(),
                    to: to.into_bytes(),
                });
            }
            "Strip" => {
                let content = char_field("content")?;
                let start = d.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
                let stop = d.get("stop").and_then(Value::as_u64).unwrap_or(0);
                if stop != 0 {
                    return Err(Error::new(
                        "unsupported decoder: Strip of trailing characters (it depends on the end of the word)",
                    ));
                }
                if self.byte_runs && start > 0 {
                    return Err(Error::new(
                        "unsupported decoder: Strip of leading characters after ByteFallback and before Fuse \
                         (it strips runs of byte tokens, not each token)",
                    ));
                }
                if *fused && start > 1 {
                    return Err(Error::new(
                        "unsupported decoder: Strip of more than one leading character after Fuse",
                    ));
                }
                if *fused && start > 0 && self.splits_chars && !content.is_ascii() {
                    return Err(Error::new(
                        "unsupported decoder: Strip of a multi-byte character after Fuse (tokens may split it)",
                    ));
                }
                self.steps.push(Step::Strip { content, start });
            }
            "Metaspace" => {
                if *fused {
                    return Err(Error::new("unsupported decoder: Metaspace after Fuse"));
                }
                let replacement = char_field("replacement")?;
                if self.byte_runs {
                    // Byte tokens spelling it would become a space, or nothing in the first run.
                    self.forbidden.push(replacement);
                }
                let scheme = match (
                    str_field("prepend_scheme"),
                    d.get("add_prefix_space").and_then(Value::as_bool),
                ) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(false)) => "never".into(),
                    (None, _) => "always".into(),
                };
                self.steps.push(Step::Metaspace {
                    replacement,
                    drop_first: scheme != "never",
                });
            }
            other => {
                return Err(Error::new(format!(
                "unsupported decoder {other} (supported: ByteLevel, ByteFallback, Metaspace, Replace, Fuse, \
                     Strip, Sequence, or none)"
            )))
            }
        }
        self.names.push(ty.to_string());
        Ok(())
    }

    fn describe(&self) -> String {
        self.names.join(" + ")
    }

    /// The bytes `token` contributes to a word, as the first token or elsewhere. `None` for a
    /// first token that is empty where a `Strip` after `Fuse` would strip the word's start: the
    /// strip would then fall on the next token, which the automaton does not model.
    fn bytes(&self, token: &str, first: bool) -> Option<Vec<u8>> {
        let mut bytes = token.as_bytes().to_vec();
        let mut fused = false;
        // A byte token: the run it belongs to is one piece for later steps; characters they
        // would rewrite in it are forbidden instead (see the module doc).
        let mut byte_token = false;
        for step in &self.steps {
            match step {
                Step::ByteLevel => {
                    if let Some(mapped) = std::str::from_utf8(&bytes).ok().and_then(byte_level_decode) {
                        bytes = mapped;
                    }
                    fused = true;
                }
                Step::ByteFallback => {
                    if !fused {
                        if let Some(b) = byte_fallback(&bytes) {
                            bytes = vec![b];
                            byte_token = true;
                        }
                    }
                }
                Step::Replace { from, to } => bytes = replace_all(&bytes, from, to),
                Step::Fuse => fused = true,
                Step::Strip { content, start } => {
                    if fused && first && *start > 0 && bytes.is_empty() {
                        return None;
                    }
                    // Before Fuse every token is a piece; after it only the word's start is.
                    if !fused || first {
                        let mut buf = [0u8; 4];
                        let c = content.encode_utf8(&mut buf).as_bytes();
                        let mut n = 0;
                        while n < *start && bytes.starts_with(c) {
                            bytes.drain(..c.len());
                            n += 1;
                        }
                    }
                }
                Step::Metaspace {
                    replacement,
                    drop_first,
                } => {
                    let mut buf = [0u8; 4];
                    let r = replacement.encode_utf8(&mut buf).as_bytes();
                    let to: &[u8] = if first && *drop_first { b"" } else { b" " };
                    if !byte_token {
                        bytes = replace_all(&bytes, r, to);
                    }
                }
                Step::JoinWithSpaces => {
                    if !first {
                        bytes.insert(0, b' ');
                    }
                }
            }
        }
        Some(bytes)
    }
}

fn byte_fallback(b: &[u8]) -> Option<u8> {
    if b.len() == 6 && b.starts_with(b"<0x") && b[5] == b'>' {
        u8::from_str_radix(std::str::from_utf8(&b[3..5]).ok()?, 16).ok()
    } else {
        None
    }
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// GPT-2's byte-to-unicode alphabet: the character that stands for each byte. Printable
/// Latin-1 bytes stand for themselves, the other 68 bytes are U+0100.. in byte order.
pub(crate) fn gpt2_alphabet() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        out[b as usize] = if matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF) {
            char::from(b)
        } else {
            n += 1;
            char::from_u32(255 + n).expect("U+0100..U+0143")
        };
    }
    out
}

fn byte_level_alphabet() -> HashMap<char, u8> {
    gpt2_alphabet()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

fn byte_level_decode(token: &str) -> Option<Vec<u8>> {
    thread_local! {
        static ALPHABET: HashMap<char, u8> = byte_level_alphabet();
    }
    ALPHABET.with(|a| token.chars().map(|c| a.get(&c).copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_is_gpt2s() {
        let a = byte_level_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[&'Ġ'], b' ');
        assert_eq!(a[&'Ċ'], b'\n');
        assert_eq!(a[&'A'], b'A');
        assert_eq!(a[&'\u{100}'], 0x00);
        assert_eq!(a[&'\u{143}'], 0xAD);
        assert_eq!(byte_level_decode("ĠhÃ©"), Some(b" h\xc3\xa9".to_vec()));
    }

    #[test]
    fn llama2_style_decoder() {
        let d: Value = serde_json::from_str(
            r#"{"type":"Sequence","decoders":[
                {"type":"Replace","pattern":{"String":"▁"},"content":" "},
                {"type":"ByteFallback"},{"type":"Fuse"},
                {"type":"Strip","content":" ","start":1,"stop":0}]}"#,
        )
        .unwrap();
        let p = Plan::from_json(&d).unwrap();
        assert_eq!(p.bytes("▁hello", false).unwrap(), b" hello");
        assert_eq!(p.bytes("▁hello", true).unwrap(), b"hello");
        assert_eq!(p.bytes("<0xE4>", true).unwrap(), b"\xe4");
        assert_eq!(p.bytes("▁", true).unwrap(), b"");
    }

    #[test]
    fn metaspace_drops_every_replacement_of_the_first_token() {
        let d: Value = serde_json::from_str(
            r#"{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}"#,
        )
        .unwrap();
        let p = Plan::from_json(&d).unwrap();
        assert_eq!(p.bytes("▁a▁b", true).unwrap(), b"ab");
        assert_eq!(p.bytes("▁a▁b", false).unwrap(), b" a b");
    }

    #[test]
    fn unsupported_decoders_are_named() {
        for (json, needle) in [
            (
                r###"{"type":"WordPiece","prefix":"##","cleanup":true}"###,
                "WordPiece",
            ),
            (r#"{"type":"Strip","content":" ","start":0,"stop":1}"#, "trailing"),
            (
                r#"{"type":"Replace","pattern":{"Regex":"x"},"content":" "}"#,
                "regex",
            ),
        ] {
            let e = Plan::from_json(&serde_json::from_str(json).unwrap()).unwrap_err();
            assert!(e.message().contains(needle), "{e}");
        }
    }

    /// A byte-fallback BPE `tokenizer.json`: `<0x00>`..`<0xFF>` at ids 0..=255, then `model`
    /// (more model tokens by id) and `added` (id, content, special).
    fn file(model: &[(&str, u64)], added: &[(u64, &str, bool)]) -> String {
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

    fn load(json: &str) -> Result<Vocabulary, Error> {
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

    #[test]
    fn default_eos_and_pad_are_special_added_tokens_with_usual_names() {
        let eos_pad = |json: &str| {
            let v = load(json).unwrap();
            (v.eos().unwrap(), v.pad(), v.roles())
        };
        // Qwen 3: an ordinary BPE token `</s>` is text; both ends of text are special.
        let (eos, pad, roles) = eos_pad(&file(
            &[("</s>", 256)],
            &[(257, "<|endoftext|>", true), (258, "<|im_end|>", true)],
        ));
        assert_eq!((eos, pad), (257, 257));
        assert!(
            roles.contains("258 `<|im_end|>`"),
            "the other end token is named: {roles}"
        );
        // Gemma 3: a non-special added `</s>`, the special `<eos>` and `<pad>`.
        let (eos, pad, _) = eos_pad(&file(
            &[],
            &[(256, "</s>", false), (257, "<eos>", true), (258, "<pad>", true)],
        ));
        assert_eq!((eos, pad), (257, 258));
        // DeepSeek-V3's names.
        let (eos, pad, _) = eos_pad(&file(
            &[],
            &[
                (256, "<\u{ff5c}begin\u{2581}of\u{2581}sentence\u{ff5c}>", true),
                (257, "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>", true),
                (258, "<\u{ff5c}\u{2581}pad\u{2581}\u{ff5c}>", true),
            ],
        ));
        assert_eq!((eos, pad), (257, 258));
        // Llama 3 ends turns with another token; the end of text comes first.
        let (eos, _, roles) = eos_pad(&file(
            &[],
            &[(256, "<|eot_id|>", true), (257, "<|end_of_text|>", true)],
        ));
        assert_eq!(eos, 257);
        assert!(roles.contains("256 `<|eot_id|>`"), "{roles}");
        // A named EOS that is an ordinary token becomes special (it ends the word).
        let o = DecoderOptions {
            eos: Some("</s>".into()),
            ..Default::default()
        };
        let v = load_str("t.json", &file(&[("</s>", 256)], &[(257, "<pad>", true)]), &o).unwrap();
        assert_eq!((v.eos(), v.pad()), (Some(256), 257));
        assert_eq!(v.tokens()[256], Token::Special("</s>".into()));
    }

    #[test]
    fn no_eos_found_says_how_to_name_one() {
        for json in [
            file(&[("</s>", 256)], &[(257, "<s>", true)]),
            file(&[], &[(256, "</s>", false)]),
        ] {
            let e = load(&json).unwrap_err();
            assert_eq!(e.subject(), Subject::Eos);
            assert!(e.message().contains("no EOS token found"), "{e}");
            assert!(
                e.message().contains("--eos") && e.message().contains("eos = \"...\""),
                "{e}"
            );
        }
    }
}
