// Every problem is reported at once, each at its own place.
#[welt_runtime::welt_decoder(max_word_len = 0, colour = "blue", max_word_len = 3, tokenizer = 7)]
pub struct Words {
    x: u8,
}

fn main() {}
