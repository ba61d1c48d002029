// A PAD that is not in the vocabulary: the error points at the `pad` string.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/sp_unigram.json", pad = "[PAD]")]
pub struct UnknownPad;

fn main() {}
