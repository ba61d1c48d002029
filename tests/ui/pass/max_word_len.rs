// `max_word_len` sets the default limit; the tables are otherwise WeLT's default decoder.
use welt_runtime::{Decoder, Utf8Words, WordBatch};

#[welt_runtime::welt_decoder(max_word_len = 24)]
pub struct LongWords;

#[welt_runtime::welt_decoder]
struct DefaultWords;

// Validated at compile time, so usable in a const.
const _: () = assert!(LongWords::TABLES.max_word_len() == 24);

fn main() {
    assert_eq!(LongWords::TABLES.max_word_len(), 24);
    assert_eq!(DefaultWords::TABLES.max_word_len(), 16);
    assert_eq!(DefaultWords::TABLES.as_bytes(), Utf8Words::TABLES.as_bytes());
    // Only the header's word length field differs from the default decoder (offset 40).
    let (a, b) = (LongWords::TABLES.as_bytes(), Utf8Words::TABLES.as_bytes());
    assert_eq!(a.len(), b.len());
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert_eq!(differ, [40]);
    let batch = WordBatch::for_decoder::<LongWords>(2).unwrap();
    assert_eq!(batch.max_word_len(), 24);
}
