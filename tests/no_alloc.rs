//! The decode loop allocates nothing: after a `WordBatch` is built, thousands of
//! `apply_mask` + `advance` steps and of fused `step` calls (with restarts, resets, prefixes,
//! errors and `Sequence` steps mixed in) make no heap allocation, on batches of one row, a few
//! rows and whole AVX-512 blocks. Counted by a global allocator, per thread, so the test harness's
//! own threads do not interfere; it is alone in this test binary because the allocator is
//! global to it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::SplitMix64;
use half::bf16;
use welt_runtime::{Decoder, Sequence, Utf8Words, WordBatch};

struct Counting;

thread_local! {
    // `const` and without a destructor, so touching it allocates nothing itself.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROWS: usize = 8;
const STRIDE: usize = 264;

/// Picks a random allowed token of `row` (or anything for a finished row), without allocating.
fn sample(batch: &WordBatch<'_>, row: usize, rng: &mut SplitMix64) -> u32 {
    let mask = batch.mask(row).unwrap();
    let n = mask.count();
    if n == 0 {
        return rng.next_u64() as u32; // finished: ignored, replaced by PAD
    }
    // Prefer spaces and EOS now and then so that words end by the rule too.
    if rng.chance(1, 6) && mask.allows(u32::from(b' ')) {
        return u32::from(b' ');
    }
    if rng.chance(1, 40) && mask.allows(3) {
        return 3;
    }
    mask.iter().nth(rng.index(n)).unwrap()
}

#[test]
fn the_decode_loop_does_not_allocate() {
    // Everything that allocates happens before counting starts.
    let mut batch = WordBatch::for_decoder::<Utf8Words>(ROWS).unwrap();
    let mut logits = vec![0.0f32; ROWS * STRIDE];
    let mut logits_bf16 = vec![bf16::ZERO; 33 * 256];
    let mut tokens = [0u32; ROWS];
    let mut rng = SplitMix64::new(0xA110C);
    let prefixes: [&[u32]; 4] = [&[], &[0x61], &[0x61, 0xE3], &[0xF0, 0x9F, 0x98]];

    // The counter works: this allocation is seen.
    let before = allocations();
    let probe = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before, "the counting allocator sees allocations");
    drop(probe);

    let before = allocations();
    let (mut words, mut stopped, mut errors) = (0usize, 0usize, 0usize);
    for step in 0..5_000 {
        batch.apply_mask_strided(&mut logits, STRIDE).unwrap();
        batch.apply_mask(&mut logits_bf16[..ROWS * 256]).unwrap();
        for (row, t) in tokens.iter_mut().enumerate() {
            *t = sample(&batch, row, &mut rng);
        }
        if let Some(r) = (0..ROWS).find(|&r| step % 97 == 0 && !batch.finished()[r]) {
            // A forbidden token in a running row: an error, with no allocation either.
            let saved = tokens[r];
            tokens[r] = 0xFF;
            assert!(batch.advance(&mut tokens).is_err());
            errors += 1;
            tokens[r] = saved;
        }
        batch.advance(&mut tokens).unwrap();
        if step % 31 == 0 {
            let row = rng.index(ROWS);
            batch
                .set_prefix(row, prefixes[rng.index(prefixes.len())])
                .unwrap();
        }
        if batch.is_done() {
            words += ROWS;
            stopped += batch.stopped().iter().filter(|&&s| s).count();
            batch.reset();
        }
        // A lone Sequence too.
        let mut seq = Sequence::new(Utf8Words::TABLES);
        for &b in b"ab " {
            seq.step(u32::from(b)).unwrap();
        }
        assert!(seq.is_complete());
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations in the decode loop");
    // The fused step, on every path it has (one row; row by row; blocks of 16).
    let mut batches = [1usize, 3, 16, 33].map(|b| WordBatch::for_decoder::<Utf8Words>(b).unwrap());
    let mut logits = vec![0.0f32; 33 * STRIDE];
    let mut tokens = [0u32; 33];
    let before = allocations();
    let (mut steps, mut refused) = (0usize, 0usize);
    for step in 0..3_000 {
        for batch in &mut batches {
            let b = batch.batch_size();
            let (tokens, logits) = (&mut tokens[..b], &mut logits[..b * STRIDE]);
            logits.fill(0.0); // the model's next logits
                              // A forbidden choice now and then: refused, nothing allocated either.
            let bad_row = (step % 89 == 0).then(|| rng.index(b));
            let r = batch.step_strided(logits, STRIDE, tokens, |row, masked| {
                if Some(row) == bad_row {
                    return 0xFF;
                }
                // The first allowed token from a random start: the masked logits say which.
                let start = rng.index(masked.len());
                (0..masked.len())
                    .map(|i| (start + i) % masked.len())
                    .find(|&t| masked[t].is_finite())
                    .unwrap() as u32
            });
            match r {
                Ok(_) => steps += 1,
                Err(_) => refused += 1,
            }
            batch.restart_finished();
            if step % 7 == 0 {
                batch
                    .step(&mut logits_bf16[..b * 256], tokens, |_, _| u32::from(b' '))
                    .ok();
            }
        }
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "{allocated} allocations in fused steps");
    assert!(steps > 10_000 && refused > 10, "steps {steps}, refused {refused}");
    // The loop did real work.
    assert!(
        words > 500 && stopped > 100 && errors > 10,
        "words {words}, stopped {stopped}, errors {errors}"
    );
}
