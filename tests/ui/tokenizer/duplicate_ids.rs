// Two model tokens with one id: refused (the `tokenizers` crate would keep one of them at
// random), at the path.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/bad/duplicate_ids.json")]
pub struct DuplicateIds;

fn main() {}
