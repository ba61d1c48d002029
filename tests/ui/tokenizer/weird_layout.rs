// An unknown layout, with a tokenizer: the error points at the layout string.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/sp_unigram.json", layout = "weird")]
pub struct WeirdLayout;

fn main() {}
