// An argument given twice: the error points at the second one.
#[welt_runtime::welt_decoder(max_word_len = 16, max_word_len = 24)]
pub struct Words;

fn main() {}
