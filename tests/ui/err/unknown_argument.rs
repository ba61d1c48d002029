// A misspelled argument: the error points at its name and lists the valid ones.
#[welt_runtime::welt_decoder(max_word_length = 16)]
pub struct Words;

fn main() {}
