// A tokenizer file that is not JSON: the parser's message, at the path.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/bad/malformed.json")]
pub struct Malformed;

fn main() {}
