// An EOS that is not in the vocabulary: the error points at the `eos` string, not the path.
#[welt_runtime::welt_decoder(tokenizer = "tests/fixtures/sp_unigram.json", eos = "<nope>")]
pub struct UnknownEos;

fn main() {}
