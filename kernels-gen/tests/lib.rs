//! kernels-gen's integration tests, one module per subject, linked into one test binary
//! (`cargo test -p kernels-gen --test all`).

mod cuda_mask;
mod snapshots;
mod utf8_words;
