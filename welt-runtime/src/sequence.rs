//! One word being generated.

use crate::error::{Error, ErrorKind};
use crate::tables::{split, Mask, Tables, DEAD};

/// One word in progress: the automaton state, the tokens so far, and whether it is complete.
///
/// The word is *finished* once it is complete (the word rule matched, or EOS or a stop token
/// was generated) or once it holds the decoder's word length limit of tokens
/// ([`Tables::max_word_len`]): as in [`crate::WordBatch`], a finished word allows no token
/// ([`Sequence::mask`] is empty), and [`Sequence::step`] refuses every token and changes
/// nothing.
///
/// ```
/// use welt_runtime::{Decoder, Sequence, Utf8Words};
/// let mut word = Sequence::new(Utf8Words::TABLES);
/// assert!(!word.step(b'h' as u32).unwrap());
/// assert!(!word.step(b'i' as u32).unwrap());
/// assert!(word.step(b' ' as u32).unwrap()); // "hi " is a complete word
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sequence<'t> {
    tables: Tables<'t>,
    state: u16,
    len: u32,
    complete: bool,
}

impl<'t> Sequence<'t> {
    /// An empty word.
    pub fn new(tables: Tables<'t>) -> Sequence<'t> {
        Sequence {
            tables,
            state: tables.start(),
            len: 0,
            complete: false,
        }
    }

    /// A word that continues `prefix` (mid-word continuation; the prefix may end inside a
    /// character). `Err` if a token is outside the vocabulary or not allowed where it stands
    /// (the prefix is not valid UTF-8 for this decoder), if the prefix already completes the
    /// word, or if it is longer than the decoder's word length limit.
    pub fn with_prefix(tables: Tables<'t>, prefix: &[u32]) -> Result<Sequence<'t>, Error> {
        let (state, _) = walk_prefix(&tables, prefix, u32::from(tables.max_word_len()))?;
        Ok(Sequence {
            tables,
            state,
            len: prefix.len() as u32,
            complete: false,
        })
    }

    /// The allowed next tokens: empty once the word is finished (complete, or at the word
    /// length limit).
    pub fn mask(&self) -> Mask<'t> {
        self.tables
            .mask(if self.is_finished() { DEAD } else { self.state })
    }

    /// Appends `token`; returns whether the word is now complete (the stop flag). `Err` (and
    /// no change) if the token is outside the vocabulary or not allowed, or if the word was
    /// already finished (complete, or at the word length limit: [`ErrorKind::WordComplete`]).
    pub fn step(&mut self, token: u32) -> Result<bool, Error> {
        if self.is_finished() {
            return Err(Error::new(ErrorKind::WordComplete));
        }
        if token as usize >= self.tables.vocab_size() {
            // Checked here rather than by `Tables::step` so that `at` is the index in the word.
            return Err(Error::new(ErrorKind::TokenOutOfRange {
                token,
                vocab: self.tables.vocab_size() as u32,
                at: self.len as usize,
            }));
        }
        let e = self.tables.entry(self.state, token);
        // Entry 0 is a forbidden token; a stop leads to DEAD with the stop flag (terminal).
        if e == 0 {
            return Err(Error::new(ErrorKind::TokenNotAllowed {
                token,
                state: self.state,
                at: self.len as usize,
            }));
        }
        let (next, stop) = split(e);
        self.state = next;
        self.len += 1;
        self.complete = stop;
        Ok(stop)
    }

    /// Whether the word is complete (the rule matched, or EOS or a stop token was generated).
    pub fn is_complete(&self) -> bool {
        self.complete
    }
    /// Whether the word is finished: complete, or at the decoder's word length limit. No
    /// token is allowed after it.
    pub fn is_finished(&self) -> bool {
        self.complete || self.len >= u32::from(self.tables.max_word_len())
    }
    /// Tokens in the word so far.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether no token has been added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The automaton state.
    pub fn state(&self) -> u16 {
        self.state
    }
    /// Whether the word so far ends at a character boundary.
    pub fn is_at_boundary(&self) -> bool {
        self.tables.is_boundary(self.state)
    }
}

/// Walks a prefix for continuation: returns the state and whether the row hits `max_len`.
pub(crate) fn walk_prefix(tables: &Tables<'_>, prefix: &[u32], max_len: u32) -> Result<(u16, bool), Error> {
    if prefix.len() > max_len as usize {
        return Err(Error::new(ErrorKind::PrefixTooLong {
            len: prefix.len(),
            max: max_len,
        }));
    }
    let mut state = tables.start();
    for (at, &token) in prefix.iter().enumerate() {
        if token as usize >= tables.vocab_size() {
            return Err(Error::new(ErrorKind::TokenOutOfRange {
                token,
                vocab: tables.vocab_size() as u32,
                at,
            }));
        }
        let e = tables.entry(state, token);
        if e == 0 {
            return Err(Error::new(ErrorKind::TokenNotAllowed { token, state, at }));
        }
        let (next, stop) = split(e);
        if stop {
            return Err(Error::new(ErrorKind::PrefixCompletesWord { at }));
        }
        state = next;
    }
    Ok((state, prefix.len() == max_len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, Utf8Words};

    /// At the word length limit the word is finished: the mask is empty and every further step
    /// is `Err(WordComplete)` and changes nothing, as after a stop.
    #[test]
    fn the_word_length_limit_finishes_the_word() {
        let t = Utf8Words::TABLES;
        let max = usize::from(t.max_word_len());
        let mut seq = Sequence::new(t);
        for _ in 0..max {
            assert!(!seq.is_finished() && seq.mask().count() > 0);
            assert!(!seq.step(u32::from(b'a')).unwrap(), "`a` never stops");
        }
        assert!(seq.is_finished() && !seq.is_complete());
        assert_eq!(seq.mask().count(), 0, "nothing is allowed at the limit");
        let before = (seq.state(), seq.len());
        for token in [u32::from(b'a'), u32::from(b' '), 3] {
            assert_eq!(seq.step(token).unwrap_err().kind(), ErrorKind::WordComplete);
            assert_eq!((seq.state(), seq.len()), before, "a refused step changes nothing");
        }
        // A prefix of exactly the limit is finished from the start.
        let full = Sequence::with_prefix(t, &vec![u32::from(b'a'); max]).unwrap();
        assert!(full.is_finished() && full.mask().count() == 0);
    }

    /// After a stop the word is complete and finished, in the dead state (a stop is terminal).
    #[test]
    fn a_stop_is_terminal() {
        for word in [&b"ab "[..], b"\x01", b"\x03", b"a\x03"] {
            let mut seq = Sequence::new(Utf8Words::TABLES);
            for &b in word {
                seq.step(b.into()).unwrap();
            }
            assert!(seq.is_complete() && seq.is_finished(), "{word:?}");
            assert_eq!(seq.state(), DEAD, "{word:?}");
            assert_eq!(seq.mask().count(), 0, "{word:?}");
            assert_eq!(seq.step(b'a'.into()).unwrap_err().kind(), ErrorKind::WordComplete);
        }
    }
}
