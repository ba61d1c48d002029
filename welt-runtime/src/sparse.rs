//! The masks of states that forbid little, in forms cheaper to write than their bitsets: a
//! list of the forbidden tokens, or a few runs of them. Either is one loop of stores over what
//! the state forbids, with no bit to test.
//!
//! **Lists.** At a word start a large vocabulary allows nearly everything (Llama 3: 127,052 of
//! 128,256 tokens), and what it forbids is scattered: Llama 3's 1,204 forbidden tokens sit in
//! a third of the row's 64-token words. The bitset paths test every word and, in each word
//! that forbids anything, loop over its bits (or its 16-token groups), a loop whose length
//! changes from word to word: a branch mispredicted in most of those words, which costs more
//! than the stores. A list is one loop the branch predictor gets right.
//!
//! **Runs.** In a byte-level decoder every state forbids one or two ranges of bytes (after a
//! lead byte: everything but 0x80-0xBF), so its mask is at most a few runs. The portable
//! bitset path writes a run through its 64-token words, the bytes of each mixed word and
//! their bits one at a time: at B = 1 that costs as much as the floor's pass over the whole
//! row. A run is written with wide stores from its first token to its last, the same few
//! branches for any length. Where the CPU has AVX, 32-byte stores through a raw pointer once
//! the run is checked against the row: half the baseline target's 16-byte stores, and no
//! range check or loop set-up per chunk. Runs are built only where the CPU has no AVX-512
//! (and so are these stores): the AVX-512 path already writes any word with masked stores
//! and no bit loop.
//!
//! The README has the numbers: `welt bench` (B = 1 and 3) and `welt bench --tokenizer`.

use crate::cpu::Avx;
use crate::mask::Logit;
use crate::tables::{Tables, DEAD};

/// Vocabularies smaller than this have no lists: their rows are a few 64-token words, which
/// the bitset paths mask in a few stores.
const MIN_VOCAB: usize = 4096;

/// A state is listed when it forbids at most `V / SHARE` tokens.
const SHARE: usize = 32;

/// A state is written as runs when its forbidden tokens are at most this many runs: the
/// byte decoder's states have one or two.
const MAX_RUNS: usize = 8;

/// How a state's row is masked when not through its bitset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forbidden<'a> {
    /// The forbidden tokens, increasing.
    List(&'a [u32]),
    /// The forbidden runs as `[start, end)` pairs one after the other, increasing.
    Runs(&'a [u32]),
}

/// Which of `ids` a state owns, and as what.
#[derive(Clone, Copy, Debug)]
enum Span {
    Bitset,
    List(u32, u32),
    Runs(u32, u32),
}

/// Per state, its forbidden tokens as a list or as runs where either is short (see the
/// module); the other states are masked through their bitsets.
#[derive(Clone)]
pub(crate) struct SparseMasks {
    spans: Vec<Span>,
    /// The lists and the runs' bounds, each state's `ids[start..end]`.
    ids: Vec<u32>,
    /// The CPU's AVX, detected once: runs are written with 32-byte stores when `Some`.
    avx: Option<Avx>,
}

impl SparseMasks {
    /// The lists and (where `runs`: a CPU without AVX-512) the runs of `tables`' states, or
    /// `None` where no state has either, and where they cannot be allocated (the bitset paths
    /// give the same masks). A state has runs where its forbidden tokens are at most
    /// [`MAX_RUNS`] runs, else a list where it forbids at most `V / 32` tokens and `V >=
    /// 4,096`. Together they hold at most `states * max(V / 32, 16)` ids: as many bytes as
    /// the tables' own masks, or 64 bytes a state.
    pub(crate) fn new(tables: &Tables<'_>, runs: bool) -> Option<SparseMasks> {
        let v = tables.vocab_size();
        let lists = v >= MIN_VOCAB;
        if !lists && !runs {
            return None;
        }
        let states = tables.num_states();
        let limit = if lists { v / SHARE } else { 0 };
        let mut spans = Vec::new();
        spans.try_reserve_exact(states).ok()?;
        let mut scratch = [0u32; 2 * MAX_RUNS];
        // First each state's form and where its ids go, then the ids in one exact allocation.
        let mut total = 0u32;
        for s in 0..states {
            let state = s as u16;
            let mask = tables.mask(state);
            // `Tables::from_bytes` refuses mask bits past V: a count is at most V.
            let forbidden = v - mask.count();
            let end = |len: usize| total.checked_add(u32::try_from(len).ok()?);
            let span = if state == DEAD {
                // The dead state's rows are finished: never masked.
                Span::Bitset
            } else if let Some(n) = runs
                .then(|| forbidden_runs(mask.padded_bytes(), v, &mut scratch))
                .flatten()
            {
                Span::Runs(total, end(2 * n)?)
            } else if lists && forbidden <= limit {
                Span::List(total, end(forbidden)?)
            } else {
                Span::Bitset
            };
            if let Span::List(_, e) | Span::Runs(_, e) = span {
                total = e;
            }
            spans.push(span);
        }
        if spans.iter().all(|s| matches!(s, Span::Bitset)) {
            return None;
        }
        let mut ids = Vec::new();
        ids.try_reserve_exact(total as usize).ok()?;
        for (s, span) in spans.iter().enumerate() {
            let bytes = tables.mask(s as u16).padded_bytes();
            match span {
                Span::Runs(..) => {
                    let n = forbidden_runs(bytes, v, &mut scratch)?;
                    ids.extend_from_slice(scratch.get(..2 * n)?);
                }
                Span::List(..) => forbidden_list(bytes, v, &mut ids)?,
                Span::Bitset => {}
            }
        }
        Some(SparseMasks {
            spans,
            ids,
            avx: Avx::detect(),
        })
    }

    /// Leaves out the first forbidden token of `state` (its list's first id, or its first
    /// run's first token): a mask that differs from the bitset, for the tests that show which
    /// one a path reads.
    #[cfg(test)]
    pub(crate) fn drop_first(&mut self, state: u16) {
        match self.spans.get_mut(usize::from(state)) {
            Some(Span::List(start, end)) => *start += u32::from(*start < *end),
            // A state with no run (it forbids nothing) owns no id to change.
            Some(&mut Span::Runs(start, end)) if start < end => {
                if let Some(first) = self.ids.get_mut(start as usize) {
                    *first += 1;
                }
            }
            _ => {}
        }
    }

    /// Writes the runs with the baseline target's stores even where the CPU has AVX, for the
    /// tests that compare both.
    #[cfg(test)]
    pub(crate) fn without_avx(mut self) -> SparseMasks {
        self.avx = None;
        self
    }

    /// `state`'s list or runs, where it has either.
    #[inline(always)]
    pub(crate) fn get(&self, state: u16) -> Option<Forbidden<'_>> {
        match *self.spans.get(usize::from(state))? {
            Span::Bitset => None,
            Span::List(start, end) => self.ids.get(start as usize..end as usize).map(Forbidden::List),
            Span::Runs(start, end) => self.ids.get(start as usize..end as usize).map(Forbidden::Runs),
        }
    }

    /// Masks `row`, the logits of a row in `state`, from the state's list or runs, and
    /// returns `true`; `false`, with nothing written, where the state has neither (its bitset
    /// masks it).
    #[must_use = "`false`: the row is not masked yet, its bitset must mask it"]
    #[inline(always)]
    pub(crate) fn mask<L: Logit>(&self, row: &mut [L], state: u16) -> bool {
        match self.get(state) {
            Some(Forbidden::List(ids)) => mask_listed(row, ids),
            Some(Forbidden::Runs(runs)) => match self.avx {
                #[cfg(target_arch = "x86_64")]
                Some(avx) => x86::mask_runs(avx, row, runs),
                _ => mask_runs(row, runs),
            },
            None => return false,
        }
        true
    }
}

/// Counts only: a `WordBatch`'s `{:?}` would otherwise print thousands of ids.
impl std::fmt::Debug for SparseMasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = |f: fn(&Span) -> bool| self.spans.iter().filter(|s| f(s)).count();
        f.debug_struct("SparseMasks")
            .field("listed_states", &count(|s| matches!(s, Span::List(..))))
            .field("run_states", &count(|s| matches!(s, Span::Runs(..))))
            .field("ids", &self.ids.len())
            .field("avx", &self.avx.is_some())
            .finish()
    }
}

/// Appends the forbidden tokens below `v` of the mask `bytes` (whole little-endian words),
/// for which the caller has reserved room. `None` for a mask of the wrong size.
fn forbidden_list(bytes: &[u8], v: usize, ids: &mut Vec<u32>) -> Option<()> {
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
    Some(())
}

/// The forbidden runs below `v` of the mask `bytes`, as `[start, end)` pairs at the front of
/// `runs`, and how many; `None` where there are more than [`MAX_RUNS`] (or the mask is short).
fn forbidden_runs(bytes: &[u8], v: usize, runs: &mut [u32; 2 * MAX_RUNS]) -> Option<usize> {
    let mut n = 0;
    let mut run_start = None;
    let mut t = 0;
    while t <= v {
        let (allowed, step) = if t == v {
            // Past the last token: closes a run that reaches V.
            (true, 1)
        } else {
            let w = t / 64;
            let word = u64::from_le_bytes(bytes.get(8 * w..8 * w + 8)?.try_into().ok()?);
            // A whole word of one kind is one test, not 64.
            if t % 64 == 0 && t + 64 <= v && (word == 0 || word == !0) {
                (word == !0, 64)
            } else {
                (word >> (t % 64) & 1 == 1, 1)
            }
        };
        match (allowed, run_start) {
            (false, None) => run_start = Some(t),
            (true, Some(a)) => {
                let pair = runs.get_mut(2 * n..2 * n + 2)?;
                pair[0] = u32::try_from(a).ok()?;
                pair[1] = u32::try_from(t).ok()?;
                n += 1;
                run_start = None;
            }
            _ => {}
        }
        t += step;
    }
    Some(n)
}

/// Writes `-inf` into `row[t]` for each `t` of `ids` (ids past the row are skipped).
#[inline(always)]
fn mask_listed<L: Logit>(row: &mut [L], ids: &[u32]) {
    for &t in ids {
        if let Some(x) = row.get_mut(t as usize) {
            *x = L::NEG_INFINITY;
        }
    }
}

/// Writes `-inf` into each run of `runs` (`[start, end)` pairs; a run that does not fit in
/// the row is skipped).
#[inline(always)]
fn mask_runs<L: Logit>(row: &mut [L], runs: &[u32]) {
    for pair in runs.chunks_exact(2) {
        if let Some(run) = row.get_mut(pair[0] as usize..pair[1] as usize) {
            fill(run);
        }
    }
}

/// `-inf` into every logit of `run`: chunks of 32 (or of 8 for a run shorter than 32), the
/// last chunk overlapping the one before it, so a run of any length is one short loop and
/// one more store. (`<[L]>::fill` compiles to a loop of two stores, its speed at the mercy of
/// where the code lands: see the bench's floor.)
#[inline(always)]
fn fill<L: Logit>(run: &mut [L]) {
    let n = run.len();
    if n >= 32 {
        fill_chunks::<L, 32>(run);
    } else if n >= 8 {
        fill_chunks::<L, 8>(run);
    } else {
        for x in run {
            *x = L::NEG_INFINITY;
        }
    }
}

/// [`fill`] for a run of at least `N` logits: its whole chunks of `N`, then its last `N`.
#[inline(always)]
fn fill_chunks<L: Logit, const N: usize>(run: &mut [L]) {
    let n = run.len();
    let mut chunks = run.chunks_exact_mut(N);
    for chunk in &mut chunks {
        if let Ok(chunk) = <&mut [L; N]>::try_from(chunk) {
            *chunk = [L::NEG_INFINITY; N];
        }
    }
    if !n.is_multiple_of(N) {
        if let Some(Ok(last)) = run.get_mut(n.saturating_sub(N)..).map(<&mut [L; N]>::try_from) {
            *last = [L::NEG_INFINITY; N];
        }
    }
}

/// [`mask_runs`] with AVX's 32-byte stores.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::{Avx, Logit};
    use std::mem::size_of;

    /// [`super::mask_runs`] where the CPU has AVX: the same logits written, in chunks of `N`
    /// logits, one 32-byte store each (`Logit`s are 2, 4 or 8 bytes).
    #[inline(always)]
    pub(super) fn mask_runs<L: Logit>(_: Avx, row: &mut [L], runs: &[u32]) {
        let (p, len) = (row.as_mut_ptr(), row.len());
        // SAFETY: the CPU has AVX (an `Avx` exists), the one feature `write_runs` enables, and
        // `p` is valid for writes of `len` logits (the row, borrowed mutably for the call).
        unsafe {
            match size_of::<L>() {
                2 => write_runs::<L, 16>(p, len, runs),
                4 => write_runs::<L, 8>(p, len, runs),
                _ => write_runs::<L, 4>(p, len, runs),
            }
        }
    }

    /// Writes the runs inside `p[..len]` and skips the others, as the portable path does.
    /// Raw pointers, not slices: each run is checked against the row once, not each chunk
    /// (the compiler also built loops around the slices' checks).
    ///
    /// # Safety
    /// The CPU has AVX, and `p` is valid for writes of `len` logits.
    #[target_feature(enable = "avx")]
    unsafe fn write_runs<L: Logit, const N: usize>(p: *mut L, len: usize, runs: &[u32]) {
        for pair in runs.chunks_exact(2) {
            let (a, b) = (pair[0] as usize, pair[1] as usize);
            if a > b || b > len {
                continue;
            }
            // SAFETY: `a <= b <= len`: `p[a..b]` is inside the row.
            unsafe { fill::<L, N>(p.add(a), b - a) }
        }
    }

    /// `-inf` into `p[..n]` in chunks of `N` logits, one 32-byte store each: four at a time
    /// from the start, then up to four more ending at the run's last logit (overlapping the
    /// chunks before them rather than narrower stores or a loop of one chunk each); a run
    /// shorter than `4 * N` in up to four overlapping chunks, one shorter than `N` a logit at
    /// a time. One loop of a few turns at most for the byte decoder's runs, and branches on
    /// the length.
    ///
    /// # Safety
    /// `p` is valid for writes of `n` logits.
    #[inline(always)]
    unsafe fn fill<L: Logit, const N: usize>(p: *mut L, n: usize) {
        // SAFETY (every `put`, `put4` and `write` below): each writes `N` logits (`4 * N`,
        // one) from an offset `o >= 0` with `o + N <= n` (`o + 4 * N <= n`, `o < n`), which
        // the branch it sits in ensures.
        unsafe {
            if n >= 4 * N {
                let mut i = 0;
                while i + 4 * N <= n {
                    put4::<L, N>(p.add(i));
                    i += 4 * N;
                }
                // The 0 to 4N - 1 logits left, in chunks that end at the run's end (every
                // one starts at or after p, as n >= 4N).
                let (rest, e) = (n - i, p.add(n));
                if rest > 0 {
                    put::<L, N>(e.sub(N));
                    if rest > N {
                        put::<L, N>(e.sub(2 * N));
                        if rest > 2 * N {
                            put::<L, N>(e.sub(3 * N));
                            if rest > 3 * N {
                                put::<L, N>(e.sub(4 * N));
                            }
                        }
                    }
                }
            } else if n >= N {
                put::<L, N>(p);
                put::<L, N>(p.add(n - N));
                if n > 2 * N {
                    put::<L, N>(p.add(N));
                    if n > 3 * N {
                        put::<L, N>(p.add(2 * N));
                    }
                }
            } else {
                for i in 0..n {
                    p.add(i).write(L::NEG_INFINITY);
                }
            }
        }
    }

    /// `-inf` into `p[..4 * N]`.
    ///
    /// # Safety
    /// `p` is valid for writes of `4 * N` logits.
    #[inline(always)]
    unsafe fn put4<L: Logit, const N: usize>(p: *mut L) {
        // SAFETY: the four chunks are `p[..4 * N]`.
        unsafe {
            put::<L, N>(p);
            put::<L, N>(p.add(N));
            put::<L, N>(p.add(2 * N));
            put::<L, N>(p.add(3 * N));
        }
    }

    /// `-inf` into `p[..N]`, unaligned (logits are only aligned to their own size).
    ///
    /// # Safety
    /// `p` is valid for writes of `N` logits.
    #[inline(always)]
    unsafe fn put<L: Logit, const N: usize>(p: *mut L) {
        // SAFETY: the caller's; `write_unaligned` needs no alignment.
        unsafe { p.cast::<[L; N]>().write_unaligned([L::NEG_INFINITY; N]) }
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

    /// The tokens a state's list or runs forbid, in order.
    fn tokens(f: Forbidden<'_>) -> Vec<u32> {
        match f {
            Forbidden::List(ids) => ids.to_vec(),
            Forbidden::Runs(runs) => runs.chunks_exact(2).flat_map(|r| r[0]..r[1]).collect(),
        }
    }

    /// Every state with a list or runs forbids exactly the tokens of its mask, in runs that
    /// are sorted, disjoint, apart and at most `MAX_RUNS`; the others are past both limits.
    fn check(t: &Tables<'_>, sparse: &SparseMasks, runs: bool) -> (usize, usize) {
        let v = t.vocab_size();
        let (mut listed, mut run_states) = (0, 0);
        for s in 0..t.num_states() as u16 {
            let mask = t.mask(s);
            let forbidden: Vec<u32> = (0..v as u32).filter(|&x| !mask.allows(x)).collect();
            let run_count = (0..v as u32)
                .filter(|&x| !mask.allows(x) && (x == 0 || mask.allows(x - 1)))
                .count();
            match sparse.get(s) {
                Some(f) => {
                    assert_eq!(tokens(f), forbidden, "V = {v}, state {s}");
                    if let Forbidden::Runs(r) = f {
                        assert!(runs && r.len() / 2 <= MAX_RUNS && r.len() % 2 == 0);
                        assert!(r.windows(2).all(|w| w[0] < w[1]), "state {s}: {r:?}");
                        run_states += 1;
                    } else {
                        assert!(!runs || run_count > MAX_RUNS, "state {s}");
                        listed += 1;
                    }
                }
                None if s == DEAD => {}
                None => {
                    assert!(forbidden.len() > v / SHARE || v < MIN_VOCAB, "state {s}");
                    assert!(!runs || run_count > MAX_RUNS, "state {s}: {run_count} runs");
                }
            }
        }
        assert!(sparse.get(DEAD).is_none());
        assert!(sparse.get(u16::MAX).is_none());
        assert!(format!("{sparse:?}").len() < 100, "{sparse:?}");
        (listed, run_states)
    }

    /// Lists on vocabularies whose word start forbids few (V = 5,000: the last mask word is
    /// partial, its padding bits clear, not tokens); runs on the byte decoder, whose every
    /// live state forbids one or two runs; neither on a small vocabulary without runs.
    #[test]
    fn lists_and_runs_are_the_forbidden_tokens() {
        for n in [5000, 8192] {
            let owned = sparse_start_tables(n);
            let t = owned.as_tables();
            for runs in [false, true] {
                let sparse = SparseMasks::new(&t, runs).expect("a sparse state");
                let (listed, _) = check(&t, &sparse, runs);
                assert!(listed > 0);
                assert!(matches!(sparse.get(t.start()), Some(Forbidden::List(_))));
            }
        }
        let t = crate::Utf8Words::TABLES;
        assert!(SparseMasks::new(&t, false).is_none());
        let sparse = SparseMasks::new(&t, true).expect("runs");
        assert_eq!(check(&t, &sparse, true), (0, t.num_states() - 1));
        for s in 1..t.num_states() as u16 {
            match sparse.get(s) {
                Some(Forbidden::Runs(r)) => assert!(r.len() <= 4, "state {s}: {r:?}"),
                other => panic!("state {s}: {other:?}"),
            }
        }
        // The word start forbids the continuation bytes, C0 and C1, and F5-FF: two runs.
        assert_eq!(
            sparse.get(t.start()),
            Some(Forbidden::Runs(&[0x80, 0xC2, 0xF5, 0x100]))
        );
    }

    /// Every run `[a, b)` and every pair of runs with bounds at the edges of the 64-token
    /// words (0, 1, 63, 64, 65, ..., 199, 200 in a vocabulary of 200, whose last word is
    /// partial) is found exactly; more than `MAX_RUNS` runs are none.
    #[test]
    fn runs_are_found_at_every_boundary() {
        let v = 200usize;
        let mask = |forbid: &dyn Fn(usize) -> bool| {
            let mut bytes = vec![0u8; v.div_ceil(64) * 8];
            for t in (0..v).filter(|&t| !forbid(t)) {
                bytes[t / 8] |= 1 << (t % 8);
            }
            bytes
        };
        let runs = |bytes: &[u8]| {
            let mut scratch = [u32::MAX; 2 * MAX_RUNS];
            forbidden_runs(bytes, v, &mut scratch).map(|n| scratch[..2 * n].to_vec())
        };
        assert_eq!(runs(&mask(&|_| false)), Some(vec![]));
        assert_eq!(runs(&mask(&|_| true)), Some(vec![0, 200]));
        let edges = [0u32, 1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 199, 200];
        let inside = |r: &[u32], t: usize| r.chunks_exact(2).any(|p| (p[0]..p[1]).contains(&(t as u32)));
        for (i, &a) in edges.iter().enumerate() {
            for &b in &edges[i + 1..] {
                let one = [a, b];
                assert_eq!(runs(&mask(&|t| inside(&one, t))), Some(one.to_vec()), "{one:?}");
                // A second run after a gap of at least one allowed token.
                for &c in edges.iter().filter(|&&c| c > b) {
                    for &d in edges.iter().filter(|&&d| d > c) {
                        let two = [a, b, c, d];
                        assert_eq!(runs(&mask(&|t| inside(&two, t))), Some(two.to_vec()), "{two:?}");
                    }
                }
            }
        }
        for k in [MAX_RUNS, MAX_RUNS + 1] {
            let got = runs(&mask(&|t| t % 20 == 1 && t / 20 < k));
            let want: Vec<u32> = (0..k as u32).flat_map(|i| [20 * i + 1, 20 * i + 2]).collect();
            assert_eq!(got, (k <= MAX_RUNS).then_some(want), "{k} runs");
        }
        assert_eq!(runs(&mask(&|t| t % 2 == 0)), None);
        // A mask shorter than V: no runs, no panic.
        assert_eq!(runs(&mask(&|_| true)[..8]), None);
    }

    #[test]
    fn mask_listed_writes_the_listed_logits_only() {
        let mut row = vec![1.0f32; 10];
        mask_listed(&mut row, &[0, 3, 9, 10, u32::MAX]);
        let inf: Vec<usize> = (0..10).filter(|&i| row[i] == f32::NEG_INFINITY).collect();
        assert_eq!(inf, [0, 3, 9]);
        assert_eq!(row.iter().filter(|x| **x == 1.0).count(), 7);
    }

    /// Each run of every length up to 140 at every offset up to 40 and ending at the row's
    /// end, one and two runs, in every dtype's width: `-inf` in the run and nothing written
    /// outside it, in the row or in the guard logits around it; runs past the row are
    /// skipped whole. Lengths to 140 take the AVX path's four-chunk loop through two turns
    /// and more in every width (four chunks: 64 `f16`s, 32 `f32`s, 16 `f64`s), and its tail
    /// through every remainder.
    fn runs_write_the_runs_only<L: Logit + PartialEq + std::fmt::Debug>(
        one: L,
        write: impl Fn(&mut [L], &[u32]),
    ) {
        let (len, guard) = (260u32, 64);
        let guarded = |runs: &[u32]| {
            let mut buf = vec![one; len as usize + 2 * guard];
            write(&mut buf[guard..guard + len as usize], runs);
            assert!(buf[..guard]
                .iter()
                .chain(&buf[guard + len as usize..])
                .all(|x| *x == one));
            buf[guard..guard + len as usize].to_vec()
        };
        for start in 0..40u32 {
            for n in 0..=140u32 {
                let gap = 3;
                let second = [start + n + gap, (start + n + gap + n / 2).min(len)];
                let last = [start, start + n, len - n, len];
                let shapes = [
                    &[start, start + n][..],
                    &[start, start + n, second[0], second[1]],
                    &last[2..],
                    &last,
                ];
                for runs in shapes.into_iter().filter(|r| r.windows(2).all(|w| w[0] <= w[1])) {
                    let row = guarded(runs);
                    for (i, x) in row.iter().enumerate() {
                        let inside = runs.chunks_exact(2).any(|r| (r[0]..r[1]).contains(&(i as u32)));
                        let want = if inside { L::NEG_INFINITY } else { one };
                        assert_eq!(*x, want, "runs {runs:?}, logit {i}");
                    }
                }
            }
        }
        let mut row = vec![one; 10];
        write(&mut row, &[8, 11, 2, 3, 5]);
        let want: Vec<L> = (0..10)
            .map(|i| if i == 2 { L::NEG_INFINITY } else { one })
            .collect();
        assert_eq!(row, want, "a run past the row and an odd bound are skipped");
        let mut row = vec![one; 10];
        write(&mut row, &[6, 4, 0, 0, 10, 10]);
        assert_eq!(row, vec![one; 10], "a reversed run and empty runs write nothing");
    }

    /// The portable stores, and AVX's where the CPU has it.
    fn runs_write_the_runs_only_both<L: Logit + PartialEq + std::fmt::Debug>(one: L) {
        runs_write_the_runs_only(one, mask_runs);
        #[cfg(target_arch = "x86_64")]
        match Avx::detect() {
            Some(avx) => runs_write_the_runs_only(one, |row, runs| x86::mask_runs(avx, row, runs)),
            None => eprintln!("no AVX on this CPU: only the portable stores run here"),
        }
    }

    #[test]
    fn runs_write_the_runs_only_f32() {
        runs_write_the_runs_only_both(1.5f32);
    }
    #[test]
    fn runs_write_the_runs_only_f64() {
        runs_write_the_runs_only_both(1.5f64);
    }
    #[cfg(feature = "half")]
    #[test]
    fn runs_write_the_runs_only_f16() {
        runs_write_the_runs_only_both(half::f16::from_f32(1.5));
    }
}
