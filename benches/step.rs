//! Criterion's view of one decoding step at B = 32 (V = 256, f32 logits): welt's
//! `WordBatch`, the Rust port of the reference algorithm, and the floor (one pass writing
//! every logit). The same workloads as `welt bench`, which interleaves the three modes and
//! prints the table; this is for `cargo bench` users and for criterion's regression
//! tracking between runs.
//!
//! `cargo bench --bench step`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use welt::bench::{check, Corpus, Mode, Workload};

const BATCH: usize = 32;

fn step(c: &mut Criterion) {
    let corpus = Corpus::standard().expect("the bench corpus");
    // The same guarantee as `welt bench`: every replayed token is allowed by welt's mask, and
    // welt and the reference port finish the same words at the same steps.
    let replay = check(&corpus, BATCH, 8192).expect("welt and the reference port agree on the corpus");
    let mut group = c.benchmark_group("step_b32_v256_f32");
    // One element = one row advanced by one token: criterion reports row-tokens per second.
    group.throughput(Throughput::Elements(BATCH as u64));
    for mode in Mode::ALL {
        let mut load = Workload::new(mode, &replay).expect("a workload");
        // Rows restart with their next word when they finish and the replay starts over at
        // its end, so the workload can run for as many steps as criterion asks.
        group.bench_function(mode.name(), |b| b.iter(|| load.run(1).expect("a step")));
    }
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
