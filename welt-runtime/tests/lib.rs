//! welt-runtime's integration tests, one module per subject, linked into one test binary
//! (`cargo test -p welt-runtime --test all`).

mod generate;
mod tables;
