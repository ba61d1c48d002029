//! Reading a `tokenizer.json` for what the tables need — the model's token ids, the added
//! tokens, the decoder — without building a `tokenizers::Tokenizer`.
//!
//! The `tokenizers` crate deserializes the model through two intermediate trees and builds
//! its merge table, which is most of the generator's time where it runs unoptimized (a proc
//! macro in a debug build). This reader answers the same questions the loader asks of a
//! `Tokenizer` ([`Names`]), with the crate's semantics: ids of added tokens assigned as
//! `AddedVocabulary::add_tokens` assigns them, normalized added tokens decoded in their
//! normalized form, the last of two equal model tokens kept. It accepts only files the crate
//! accepts: the small sections (normalizer, pre-tokenizer, post-processor, decoder, truncation,
//! padding, added tokens) are deserialized with the crate's own types, and the model is checked
//! as its builder checks it (every merge's parts and result in the vocabulary). Anything else
//! it declines (`None`), and the loader then reads the file with the `tokenizers` crate, so
//! every refusal, and its message, is the crate's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizedString, Normalizer, NormalizerWrapper, PaddingParams,
    PostProcessorWrapper, PreTokenizerWrapper, TruncationParams,
};

use super::Names;

/// A file as the loader sees it.
pub(super) struct Lean<'a> {
    pub(super) model: &'static str,
    /// The decoder section (`Null` where there is none).
    pub(super) decoder: Value,
    /// The added tokens as listed: content and id.
    pub(super) listed: Vec<(String, u64)>,
    /// The model's tokens and ids (the last of two equal tokens).
    vocab: Vec<(Cow<'a, str>, u32)>,
    by_token: TokenMap<'a>,
    /// The index in `vocab` of each id's token, where ids are below [`super::MAX_TOKEN_IDS`];
    /// else ids are looked up in `vocab`.
    by_id: Option<Vec<Option<u32>>>,
    /// Added tokens by id (content, special), as `AddedVocabulary` holds them.
    added: HashMap<u32, AddedToken, BuildHasherDefault<StrHasher>>,
    added_by_content: HashMap<String, u32>,
    /// The normalized form of normalized added tokens, where it differs.
    normalized: HashMap<u32, String>,
}

/// The model's tokens to ids.
type TokenMap<'a> = HashMap<Cow<'a, str>, u32, BuildHasherDefault<StrHasher>>;

/// What a borrowed string field holds: borrowed where the JSON has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// `"version"`: absent, or a string (`null` is refused, as the crate refuses it).
#[derive(Default)]
struct Version(Option<String>);

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Version(Some(s)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File<'a> {
    #[serde(default)]
    version: Version,
    #[serde(default)]
    #[allow(dead_code)]
    truncation: Option<TruncationParams>,
    #[serde(default)]
    #[allow(dead_code)]
    padding: Option<PaddingParams>,
    #[serde(default)]
    added_tokens: Vec<AddedWithId>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    #[allow(dead_code)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    #[allow(dead_code)]
    post_processor: Option<PostProcessorWrapper>,
    #[serde(default, borrow)]
    decoder: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Model<'a>,
}

/// The crate's `AddedTokenWithId`.
#[derive(Deserialize)]
struct AddedWithId {
    id: u32,
    #[serde(flatten)]
    token: AddedToken,
}

/// The model section, read in one pass: `"type"` first (as the crate writes it), then the
/// fields of that model. Anything the crate's reader might read otherwise is an error here.
enum Model<'a> {
    Bpe {
        prefix: Option<String>,
        vocab: Pairs<'a>,
        merges: Merges<'a>,
    },
    Unigram {
        unk_id: Option<usize>,
        vocab: Vec<(Str<'a>, f64)>,
    },
}

/// The fields of a model section, as they are read.
#[derive(Default)]
struct Fields<'a> {
    seen: Vec<String>,
    prefix: Option<String>,
    unk_id: Option<usize>,
    pairs: Option<Pairs<'a>>,
    pieces: Option<Vec<(Str<'a>, f64)>>,
    merges: Option<Merges<'a>>,
}

impl<'de> Fields<'de> {
    /// Reads the field `key` of a model of type `ty` from `d`.
    fn take<D: Deserializer<'de>>(&mut self, ty: &str, key: &str, d: D) -> Result<(), D::Error> {
        let bad = |m: &str| de::Error::custom(m);
        if self.seen.iter().any(|s| s == key) {
            return Err(bad("duplicate field"));
        }
        self.seen.push(key.to_string());
        match (ty, key) {
            (_, "type") => {
                Str::deserialize(d)?;
            }
            ("BPE", "dropout") => {
                // The crate checks its range; no real file sets it.
                if Option::<f32>::deserialize(d)?.is_some() {
                    return Err(bad("dropout"));
                }
            }
            ("BPE", "continuing_subword_prefix") => self.prefix = Option::<String>::deserialize(d)?,
            ("BPE", "unk_token" | "end_of_word_suffix") => {
                Option::<String>::deserialize(d)?;
            }
            ("BPE", "fuse_unk" | "byte_fallback" | "ignore_merges") => {
                Option::<bool>::deserialize(d)?;
            }
            ("BPE", "vocab") => self.pairs = Some(Pairs::deserialize(d)?),
            ("BPE", "merges") => self.merges = Some(Merges::deserialize(d)?),
            ("Unigram", "unk_id") => self.unk_id = Option::<usize>::deserialize(d)?,
            ("Unigram", "byte_fallback") => {
                bool::deserialize(d)?;
            }
            ("Unigram", "vocab") => self.pieces = Some(Vec::deserialize(d)?),
            _ => return Err(bad("unknown field")),
        }
        Ok(())
    }

    fn finish<E: de::Error>(self, ty: &str) -> Result<Model<'de>, E> {
        match (ty, self.pairs, self.merges, self.pieces) {
            ("BPE", Some(vocab), Some(merges), _) => Ok(Model::Bpe {
                prefix: self.prefix,
                vocab,
                merges,
            }),
            ("Unigram", _, _, Some(vocab)) => Ok(Model::Unigram {
                unk_id: self.unk_id,
                vocab,
            }),
            _ => Err(E::custom("missing fields")),
        }
    }
}

/// Reads one field's value into [`Fields`] straight from the map.
struct FieldSeed<'f, 'a> {
    fields: &'f mut Fields<'a>,
    ty: &'f str,
    key: &'f str,
}

impl<'de> de::DeserializeSeed<'de> for FieldSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.fields.take(self.ty, self.key, d)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Model<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Model<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a BPE or Unigram model")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Model<'de>, A::Error> {
                let mut fields = Fields::default();
                let Some(first) = map.next_key::<Str<'de>>()? else {
                    return Err(de::Error::custom("no type"));
                };
                if first.0 == "type" {
                    // As the crate writes files: the type first, then one pass.
                    let ty = map.next_value::<Str<'de>>()?.0;
                    fields.seen.push("type".into());
                    while let Some(key) = map.next_key::<Str<'de>>()? {
                        map.next_value_seed(FieldSeed {
                            fields: &mut fields,
                            ty: &ty,
                            key: &key.0,
                        })?;
                    }
                    return fields.finish(&ty);
                }
                // The type comes later: keep the fields' text until it is known.
                let mut raw: Vec<(Str<'de>, &'de RawValue)> = vec![(first, map.next_value()?)];
                while let Some(entry) = map.next_entry::<Str<'de>, &'de RawValue>()? {
                    raw.push(entry);
                }
                let ty = match raw.iter().find(|(k, _)| k.0 == "type") {
                    Some((_, v)) => {
                        serde_json::from_str::<Str<'de>>(v.get())
                            .map_err(de::Error::custom)?
                            .0
                    }
                    None => return Err(de::Error::custom("no type")),
                };
                for (key, value) in &raw {
                    let mut d = serde_json::Deserializer::from_str(value.get());
                    fields.take(&ty, &key.0, &mut d).map_err(de::Error::custom)?;
                }
                fields.finish(&ty)
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON object of token -> id, in file order.
struct Pairs<'a>(Vec<(Cow<'a, str>, u32)>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of tokens to ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((k, v)) = map.next_entry::<Str<'de>, u32>()? {
                    out.push((k.0, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The merges: all pairs `["a", "b"]`, or all strings `"a b"` (the crate's two forms).
enum Merges<'a> {
    Pairs(Vec<(Cow<'a, str>, Cow<'a, str>)>),
    Lines(Vec<Cow<'a, str>>),
}

enum Merge<'a> {
    Pair(Cow<'a, str>, Cow<'a, str>),
    Line(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Merge<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Merge<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a merge")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Merge<'de>, E> {
                Ok(Merge::Line(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Merge<'de>, E> {
                Ok(Merge::Line(Cow::Owned(s.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merge<'de>, A::Error> {
                let a: Str<'de> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let b: Str<'de> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Merge::Pair(a.0, b.0))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Merges<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Merges<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of merges")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merges<'de>, A::Error> {
                let (mut pairs, mut lines) = (Vec::new(), Vec::new());
                while let Some(m) = seq.next_element::<Merge<'de>>()? {
                    match m {
                        Merge::Pair(a, b) => pairs.push((a, b)),
                        Merge::Line(l) => lines.push(l),
                    }
                    if !pairs.is_empty() && !lines.is_empty() {
                        return Err(de::Error::custom("mixed merges"));
                    }
                }
                Ok(if lines.is_empty() {
                    Merges::Pairs(pairs)
                } else {
                    Merges::Lines(lines)
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// FNV-1a over 8-byte words, then a finalizer: std's SipHash dominates lookups in an
/// unoptimized build.
#[derive(Default)]
pub(super) struct StrHasher(u64);

impl Hasher for StrHasher {
    fn finish(&self) -> u64 {
        // The table takes its tag from the top bits: mix every input bit into them
        // (MurmurHash3's finalizer), or short tokens collide in the tag and are compared.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            h = (h ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Reads `json`, or `None` where the `tokenizers` crate must (see the module doc).
pub(super) fn read(json: &str) -> Option<Lean<'_>> {
    // The crate reads the file and the model as maps only (a struct can also be read from a
    // JSON array).
    if !json.trim_start().starts_with('{') {
        return None;
    }
    let file: File<'_> = serde_json::from_str(json).ok()?;
    if file.version.0.as_ref().is_some_and(|v| v != "1.0") {
        return None;
    }
    let decoder = match file.decoder {
        None => Value::Null,
        Some(raw) => {
            serde_json::from_str::<DecoderWrapper>(raw.get()).ok()?;
            serde_json::from_str(raw.get()).ok()?
        }
    };
    let (model, vocab, by_token) = match file.model {
        Model::Bpe {
            prefix,
            vocab,
            merges,
        } => {
            // A JSON object read into a map keeps the last value of a key.
            let mut by_token = TokenMap::default();
            by_token.reserve(vocab.0.len());
            for (t, id) in &vocab.0 {
                by_token.insert(t.clone(), *id);
            }
            check_merges(&by_token, merges, prefix.as_deref())?;
            let vocab = if by_token.len() == vocab.0.len() {
                vocab.0
            } else {
                by_token.iter().map(|(t, id)| (t.clone(), *id)).collect()
            };
            ("BPE", vocab, by_token)
        }
        Model::Unigram { unk_id, vocab } => {
            let n = vocab.len();
            if unk_id.is_some_and(|unk| n == 0 || unk >= n) || n > u32::MAX as usize {
                return None;
            }
            let pieces: Vec<(Cow<'_, str>, u32)> = vocab
                .into_iter()
                .enumerate()
                .map(|(id, (p, _))| (p.0, id as u32))
                .collect();
            // The model's map keeps the last id of a piece.
            let mut by_token = TokenMap::default();
            by_token.reserve(pieces.len());
            for (t, id) in &pieces {
                by_token.insert(t.clone(), *id);
            }
            ("Unigram", pieces, by_token)
        }
    };
    let mut lean = Lean {
        model,
        decoder,
        listed: file
            .added_tokens
            .iter()
            .map(|a| (a.token.content.clone(), u64::from(a.id)))
            .collect(),
        vocab,
        by_token,
        by_id: None,
        added: HashMap::default(),
        added_by_content: HashMap::new(),
        normalized: HashMap::new(),
    };
    lean.index();
    lean.add_tokens(
        file.added_tokens.into_iter().map(|a| a.token),
        file.normalizer.as_ref(),
    )?;
    Some(lean)
}

/// The BPE builder's checks: each merge's parts, and their concatenation (the second part
/// without the continuing-subword prefix), are tokens. `None` where one is not.
fn check_merges(known: &TokenMap<'_>, merges: Merges<'_>, prefix: Option<&str>) -> Option<()> {
    let prefix_len = prefix.map_or(0, str::len);
    let mut buf = String::new();
    let mut check = |a: &str, b: &str| -> Option<()> {
        if !known.contains_key(a) || !known.contains_key(b) || !b.is_char_boundary(prefix_len) {
            return None;
        }
        buf.clear();
        buf.push_str(a);
        buf.push_str(&b[prefix_len..]);
        known.contains_key(buf.as_str()).then_some(())
    };
    match merges {
        Merges::Pairs(pairs) => {
            for (a, b) in &pairs {
                check(a, b)?;
            }
        }
        Merges::Lines(lines) => {
            for line in lines.iter().filter(|l| !l.starts_with("#version")) {
                let mut parts = line.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) => check(a, b)?,
                    _ => return None,
                }
            }
        }
    }
    Some(())
}

impl<'a> Lean<'a> {
    fn index(&mut self) {
        let max = self.vocab.iter().map(|&(_, id)| id).max().unwrap_or(0);
        // The loader refuses ids from MAX_TOKEN_IDS on (and then asks for one token, the
        // largest, by search); below, it allocates for every id anyway.
        if max < super::MAX_TOKEN_IDS {
            let mut by_id = vec![None; max as usize + 1];
            for (i, (_, id)) in self.vocab.iter().enumerate() {
                by_id[*id as usize] = Some(i as u32);
            }
            self.by_id = Some(by_id);
        }
    }

    fn model_token_to_id(&self, token: &str) -> Option<u32> {
        self.by_token.get(token).copied()
    }

    fn model_id_to_token(&self, id: u32) -> Option<&str> {
        match &self.by_id {
            Some(by_id) => by_id
                .get(id as usize)
                .copied()
                .flatten()
                .map(|i| self.vocab[i as usize].0.as_ref()),
            None => self
                .vocab
                .iter()
                .rev()
                .find(|(_, i)| *i == id)
                .map(|(t, _)| t.as_ref()),
        }
    }

    /// `AddedVocabulary::add_tokens`, as the crate runs it when it reads a file.
    fn add_tokens(
        &mut self,
        tokens: impl Iterator<Item = AddedToken>,
        normalizer: Option<&NormalizerWrapper>,
    ) -> Option<()> {
        let size = self.vocab.len() as u64;
        let mut next_id = size;
        for token in tokens {
            if token.content.is_empty() {
                continue;
            }
            if let Some(id) = self.added_by_content.get(&token.content) {
                if self.added.get(id) == Some(&token) {
                    continue;
                }
            }
            let new_id = match self.token_to_id(&token.content) {
                Some(id) => id,
                None => {
                    let id = u32::try_from(next_id).ok()?;
                    next_id += 1;
                    id
                }
            };
            if token.normalized {
                if let Some(n) = normalizer {
                    let mut s = NormalizedString::from(token.content.as_str());
                    n.normalize(&mut s).ok()?;
                    if s.get() != token.content {
                        self.normalized.insert(new_id, s.get().to_string());
                    }
                }
            }
            self.added_by_content.insert(token.content.clone(), new_id);
            self.added.insert(new_id, token);
        }
        // The crate then builds one matcher over the normalized tokens' patterns and one over
        // the others'; its builder refuses an empty or repeated pattern.
        let mut patterns: [std::collections::HashSet<&str>; 2] = Default::default();
        for (id, t) in &self.added {
            let pattern = match (t.normalized, self.normalized.get(id)) {
                (true, Some(n)) => n.as_str(),
                _ => t.content.as_str(),
            };
            if pattern.is_empty() || !patterns[usize::from(t.normalized)].insert(pattern) {
                return None;
            }
        }
        Some(())
    }
}

impl Names for Lean<'_> {
    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.added_by_content
            .get(token)
            .copied()
            .or_else(|| self.model_token_to_id(token))
    }
    fn id_to_token(&self, id: u32) -> Option<Cow<'_, str>> {
        match self.added.get(&id) {
            Some(t) => Some(Cow::Borrowed(
                self.normalized
                    .get(&id)
                    .map_or(t.content.as_str(), String::as_str),
            )),
            None => self.model_id_to_token(id).map(Cow::Borrowed),
        }
    }
    fn model_vocab(&self) -> Vec<(Cow<'_, str>, u32)> {
        // The model's own map: for a Unigram model too, the last of two equal pieces.
        self.by_token
            .iter()
            .map(|(t, id)| (Cow::Borrowed(t.as_ref()), *id))
            .collect()
    }
    fn added(&self) -> Vec<(u32, String, bool)> {
        self.added
            .iter()
            .map(|(&id, t)| (id, t.content.clone(), t.special))
            .collect()
    }
    fn added_at(&self, id: u32) -> Option<(&str, bool)> {
        self.added.get(&id).map(|t| (t.content.as_str(), t.special))
    }
}
