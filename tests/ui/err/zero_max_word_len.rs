// A word length limit of zero (and one past u16): the error points at the number.
#[welt_runtime::welt_decoder(max_word_len = 0)]
pub struct Zero;

#[welt_runtime::welt_decoder(max_word_len = 65536)]
pub struct TooLong;

#[welt_runtime::welt_decoder(max_word_len = "16")]
pub struct NotANumber;

fn main() {}
