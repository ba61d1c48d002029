// A valid use compiles in a crate of its own and runs: a SentencePiece Unigram tokenizer with
// its EOS, PAD and a stop token named.
use welt_runtime::{Decoder, WordBatch};

#[welt_runtime::welt_decoder(
    tokenizer = "tests/fixtures/sp_unigram.json",
    eos = "</s>",
    pad = "<pad>",
    stop_token = "<0x2E>",
    max_word_len = 8
)]
pub struct UnigramWords;

fn main() {
    let t = UnigramWords::TABLES;
    assert_eq!(
        (t.vocab_size(), t.eos(), t.pad(), t.max_word_len()),
        (1156, Some(1), 0, 8)
    );
    // "a" then "." (<0x61> <0x2E>): the stop token ends the word.
    let mut batch = WordBatch::new(t, 1).unwrap();
    batch.advance(&mut [3 + 0x61]).unwrap();
    batch.advance(&mut [3 + 0x2E]).unwrap();
    assert_eq!(batch.stopped(), &[true]);
}
