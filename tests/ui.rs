//! Compile errors of `#[welt_runtime::welt_decoder(...)]`, as a user sees them: each problem
//! (unknown or repeated argument, a bad word length, a tokenizer file, an item that is not a
//! unit struct) is reported at the offending tokens, all of them at once; and a valid use
//! compiles and runs. The expected messages are the `.stderr` files beside the cases;
//! regenerate them with `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/err/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
