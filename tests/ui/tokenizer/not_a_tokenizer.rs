// JSON, but not a tokenizer.json: the `tokenizers` crate's message, at the path.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/bad/not_a_tokenizer.json")]
pub struct NotATokenizer;

fn main() {}
