//! The root package's integration tests, one module per subject, linked into one test binary
//! (`cargo test --test all`; one module: `cargo test --test all cli::`), so that the tool,
//! candle and tokenizers are linked once rather than once per file. Separate binaries only
//! where they must be: `tests/no_alloc.rs` installs a counting global allocator, and the
//! compile-error tests of the macro live in `welt-ui-tests` (tests/ui/), whose trybuild
//! project then builds only welt-runtime's tree.

mod common;

mod build_script;
mod cli;
mod cuda;
mod demo;
mod fuzz_regressions;
mod invariants;
mod model;
mod oracle;
mod runtime;
mod spec;
mod tokenizers;
