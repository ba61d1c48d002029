//! Compile errors of `#[welt_runtime::welt_decoder(...)]`, as a user sees them: each problem
//! (unknown or repeated argument, a bad word length, an item that is not a unit struct; for
//! custom tokenizers a missing, malformed or unsupported file, and token names (EOS, PAD, stop
//! tokens) or a layout that do not fit) is reported at the offending tokens, all of them at
//! once; and valid uses compile and run. The expected messages are the `.stderr` files beside
//! the cases; regenerate them with `TRYBUILD=overwrite cargo test -p welt-ui-tests` and review
//! the diff.
//!
//! One `TestCases`, so that trybuild builds its scratch project's dependencies once.
//!
//! Paths: the macro resolves a relative `tokenizer` path against `CARGO_MANIFEST_DIR`, and
//! trybuild compiles each case in a scratch crate of its own,
//! `<target dir>/tests/trybuild/welt-ui-tests/`, so that is what `CARGO_MANIFEST_DIR` names
//! there, not this repository. The cases keep the paths a user would write
//! (`tests/fixtures/...`), and this test copies the files they name into the scratch crate
//! first.

use std::path::{Path, PathBuf};

/// trybuild's scratch crate: `<target dir>/tests/trybuild/<package name>/` (trybuild 1.x).
fn trybuild_crate_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target dir>/tmp");
    target.join("tests").join("trybuild").join(env!("CARGO_PKG_NAME"))
}

/// Copies the tokenizer files the cases name, from the repository's `tests/fixtures`, to the
/// same relative paths in the scratch crate.
fn stage_fixtures() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dest = trybuild_crate_dir();
    for file in [
        "tests/fixtures/sp_unigram.json",
        "tests/fixtures/bad/malformed.json",
        "tests/fixtures/bad/not_a_tokenizer.json",
        "tests/fixtures/bad/wordpiece.json",
        "tests/fixtures/bad/duplicate_ids.json",
    ] {
        let to = dest.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), &to)
            .unwrap_or_else(|e| panic!("copy {file} to {}: {e}", to.display()));
    }
}

#[test]
fn ui() {
    stage_fixtures();
    let t = trybuild::TestCases::new();
    t.compile_fail("err/*.rs");
    t.compile_fail("tokenizer/*.rs");
    t.pass("pass/*.rs");
    t.pass("tokenizer/pass/*.rs");
}
