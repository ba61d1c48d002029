//! The forbidden tokens of the states that forbid few, as lists: the mask of such a state is
//! one loop of stores, one per forbidden token.
//!
//! At a word start a large vocabulary allows nearly everything (Llama 3: 127,052 of 128,256
//! tokens), and what it forbids is scattered: Llama 3's 1,204 forbidden tokens sit in a third
//! of the row's 64-token words. The bitset paths test every word and, in each word that
//! forbids anything, loop over its bits (or its 16-token groups), a loop whose length changes
//! from word to word: a branch mispredicted in most of those words, which costs more than the
//! stores. A list is one loop the branch predictor gets right, so the mask costs what it
//! forbids (the README has the numbers: `welt bench --tokenizer`).

use crate::mask::Logit;
use crate::tables::Tables;

/// Vocabularies smaller than this have no lists: their rows are a few 64-token words, which
/// the bitset paths mask in a few stores.
const MIN_VOCAB: usize = 4096;

/// A state is listed when it forbids at most `V / SHARE` tokens.
const SHARE: usize = 32;

/// Per state, its forbidden tokens where they are few (see the module).
#[derive(Clone)]
pub(crate) struct SparseMasks {
    /// `ids[spans[s].0 as usize..spans[s].1 as usize]` are state `s`'s forbidden tokens in
    /// increasing order; an unlisted state has `start > end`.
    spans: Vec<(u32, u32)>,
    ids: Vec<u32>,
}

impl SparseMasks {
    /// The lists of `tables`' sparse states, or `None` for a small vocabulary, for tables with
    /// no sparse state, and where the lists cannot be allocated (the bitset paths give the
    /// same masks). The lists together hold at most `states * V / 32` ids: as many bytes as
    /// the tables' own masks.
    pub(crate) fn new(tables: &Tables<'_>) -> Option<SparseMasks> {
        let v = tables.vocab_size();
        if v < MIN_VOCAB {
            return None;
        }
        let states = tables.num_states();
        let limit = v / SHARE;
        let mut forbidden = Vec::new();
        forbidden.try_reserve_exact(states).ok()?;
        // `Tables::from_bytes` refuses mask bits past V: a count is at most V.
        forbidden.extend((0..states).map(|s| v - tables.mask(s as u16).count()));
        let total: usize = forbidden.iter().filter(|&&n| n <= limit).sum();
        if total == 0 {
            return None;
        }
        let mut ids = Vec::new();
        ids.try_reserve_exact(total).ok()?;
        let mut spans = Vec::new();
        spans.try_reserve_exact(states).ok()?;
        for (s, &n) in forbidden.iter().enumerate() {
            if n > limit {
                spans.push((1, 0));
                continue;
            }
            let start = ids.len();
            let bytes = tables.mask(s as u16).padded_bytes();
            for (w, word) in bytes.chunks_exact(8).enumerate() {
                let bits = u64::from_le_bytes(word.try_into().ok()?);
                // Past V the padding bits are clear: not tokens.
                let mut forbid = !bits;
                while forbid != 0 {
                    let t = w * 64 + forbid.trailing_zeros() as usize;
                    if t >= v {
                        break;
                    }
                    ids.push(t as u32);
                    forbid &= forbid - 1;
                }
            }
            spans.push((u32::try_from(start).ok()?, u32::try_from(ids.len()).ok()?));
        }
        Some(SparseMasks { spans, ids })
    }

    /// Leaves out the first token of `state`'s list: a list that differs from the bitset, for
    /// the tests that show which one a path reads.
    #[cfg(test)]
    pub(crate) fn drop_first(&mut self, state: u16) {
        if let Some(span) = self.spans.get_mut(usize::from(state)) {
            span.0 += u32::from(span.0 < span.1);
        }
    }

    /// `state`'s forbidden tokens, where it is listed.
    #[inline(always)]
    pub(crate) fn get(&self, state: u16) -> Option<&[u32]> {
        let &(start, end) = self.spans.get(usize::from(state))?;
        self.ids.get(start as usize..end as usize)
    }
}

/// Counts only: a `WordBatch`'s `{:?}` would otherwise print thousands of ids.
impl std::fmt::Debug for SparseMasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let listed = self.spans.iter().filter(|(start, end)| start <= end).count();
        f.debug_struct("SparseMasks")
            .field("listed_states", &listed)
            .field("ids", &self.ids.len())
            .finish()
    }
}

/// Writes `-inf` into `row[t]` for each `t` of `ids` (ids past the row are skipped).
#[inline(always)]
pub(crate) fn mask_listed<L: Logit>(row: &mut [L], ids: &[u32]) {
    for &t in ids {
        if let Some(x) = row.get_mut(t as usize) {
            *x = L::NEG_INFINITY;
        }
    }
}

/// A vocabulary of `n` tokens whose word start forbids few: the 256 bytes, then ASCII
/// pieces (allowed at a word start), a few pieces that begin inside a character (forbidden
/// there) and EOS.
#[cfg(test)]
pub(crate) fn sparse_start_tables(n: usize) -> crate::OwnedTables {
    use kernels_gen::Token;
    let mut tokens: Vec<Token> = (0..=255u8).map(|b| Token::Bytes(vec![b])).collect();
    // From 0x100: three hex digits and more, no piece equal to a byte's token.
    let mut i = 0xFFu64;
    while tokens.len() < n - 1 {
        i += 1;
        let mut bytes: Vec<u8> = format!("{i:x}").into_bytes();
        if i.is_multiple_of(97) {
            // "é" cut after its lead: a piece that starts with a continuation byte.
            bytes.insert(0, 0xA9);
        }
        tokens.push(Token::Bytes(bytes));
    }
    tokens.push(Token::Special("</s>".into()));
    let vocab = kernels_gen::Vocabulary::new("sparse-start", tokens, Some(n as u32 - 1), 0).unwrap();
    let blob = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab))
        .unwrap()
        .to_blob();
    crate::OwnedTables::from_bytes(blob).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;

    /// Every listed state lists exactly the tokens its mask forbids; the dense states and a
    /// small vocabulary are not listed; the word start of the test vocabulary is.
    #[test]
    fn lists_are_the_forbidden_tokens() {
        // 5,000: the last mask word is partial, its padding bits clear (not tokens).
        for n in [5000, 8192] {
            let owned = sparse_start_tables(n);
            let t = owned.as_tables();
            let sparse = SparseMasks::new(&t).expect("a sparse state");
            let v = t.vocab_size();
            for s in 0..t.num_states() as u16 {
                let mask = t.mask(s);
                let forbidden: Vec<u32> = (0..v as u32).filter(|&x| !mask.allows(x)).collect();
                match sparse.get(s) {
                    Some(ids) => assert_eq!(ids, &forbidden[..], "V = {v}, state {s}"),
                    None => assert!(forbidden.len() > v / SHARE, "state {s}: {}", forbidden.len()),
                }
            }
            assert!(sparse.get(t.start()).is_some());
            assert!(sparse.get(crate::DEAD).is_none());
            assert!(sparse.get(u16::MAX).is_none());
            assert!(format!("{sparse:?}").len() < 100, "{sparse:?}");
        }
        assert!(SparseMasks::new(&crate::Utf8Words::TABLES).is_none());
    }

    #[test]
    fn mask_listed_writes_the_listed_logits_only() {
        let mut row = vec![1.0f32; 10];
        mask_listed(&mut row, &[0, 3, 9, 10, u32::MAX]);
        let inf: Vec<usize> = (0..10).filter(|&i| row[i] == f32::NEG_INFINITY).collect();
        assert_eq!(inf, [0, 3, 9]);
        assert_eq!(row.iter().filter(|x| **x == 1.0).count(), 7);
    }
}
