// A WordPiece model cannot spell arbitrary bytes, so no UTF-8 mask can be built over it.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/bad/wordpiece.json")]
pub struct Bert;

fn main() {}
