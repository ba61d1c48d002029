// Arguments are `name = value`.
#[welt_runtime::welt_decoder(max_word_len)]
pub struct Words;

fn main() {}
