//! One mode of `welt bench` (V = 256) at one batch size for a given number of steps, and
//! nothing else: for counting its instructions and branches with callgrind, which is
//! repeatable where the wall clock of these shared machines is not. The count per step is the
//! difference between two runs, which cancels the set-up (the corpus, the check pass):
//!
//! ```text
//! cargo build --release --example step_mode
//! B=3; for n in 100000 300000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//!     target/release/examples/step_mode $B welt $((n / B))
//! done   # (Ir of cg.300000 - Ir of cg.100000) / 200000 = instructions per row-token
//! ```
//!
//! It also prints the wall-clock time per step, for a quick look; `welt bench` is the
//! measurement (modes side by side, rounds, the floor).

use std::error::Error;
use std::time::Instant;
use welt::bench::{check, Corpus, Mode, Workload};

const USAGE: &str =
    "usage: step_mode B MODE STEPS  (MODE: welt, welt_split, welt_no_mask, reference_port, floor, floor_baseline)";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [b, mode, steps] = &args[..] else {
        return Err(USAGE.into());
    };
    let batch: usize = b.parse().map_err(|_| USAGE)?;
    let steps: usize = steps.parse().map_err(|_| USAGE)?;
    let mode = Mode::ALL.into_iter().find(|m| m.name() == mode).ok_or(USAGE)?;
    if batch == 0 || batch > 4096 {
        return Err("B must be 1 to 4096".into());
    }
    let corpus = Corpus::standard()?;
    // As `welt bench` does: the replay is recorded by the check pass, about 256k row-tokens.
    let replay = check(&corpus, batch, (1 << 18) / batch)?;
    let mut w = Workload::new(mode, &replay)?;
    w.run(1000)?;
    let start = Instant::now();
    w.run(steps)?;
    let ns = start.elapsed().as_nanos() as f64 / steps.max(1) as f64;
    println!("{} B={batch}: {steps} steps, {ns:.1} ns/step", mode.name());
    Ok(())
}
