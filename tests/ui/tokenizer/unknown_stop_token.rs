// The second stop token is not in the vocabulary: the error points at that one.
#[welt_runtime::welt_decoder(
    tokenizer = "tests/fixtures/sp_unigram.json",
    stop_token = "<0x2E>",
    stop_token = "<|eot_id|>"
)]
pub struct UnknownStop;

fn main() {}
