//! Tables over owned storage, what `Tables::from_bytes` checks in each layout, and batch sizes
//! past what memory holds.

use welt_runtime::{Decoder, ErrorKind, OwnedTables, Tables, Utf8Words, WordBatch};

fn blob(layout: kernels_gen::Layout) -> Vec<u8> {
    let mut spec = kernels_gen::DecoderSpec::utf8_bytes();
    spec.layout = layout;
    kernels_gen::generate(&spec).unwrap().to_blob()
}

/// Clears the mask bit of one allowed token (not EOS) in the start state: the mask now
/// disagrees with an entry that is not dead, and nothing else is wrong.
fn forbid_one_allowed_token(blob: &mut [u8]) -> u32 {
    let t = Tables::from_bytes(blob).unwrap();
    let (s, w) = (t.start() as usize, t.vocab_size().div_ceil(64) * 8);
    let token = t.mask(t.start()).iter().find(|&k| Some(k) != t.eos()).unwrap();
    let masks_at = blob.len() - t.num_states().div_ceil(8) - t.num_states() * w;
    blob[masks_at + s * w + token as usize / 8] &= !(1 << (token % 8));
    token
}

#[test]
fn owned_tables_are_the_borrowed_ones() {
    let borrowed = Utf8Words::TABLES;
    let owned = OwnedTables::from_bytes(borrowed.as_bytes().to_vec()).unwrap();
    for copy in [owned.clone(), OwnedTables::from(borrowed)] {
        let t = copy.as_tables();
        assert_eq!(t.as_bytes(), borrowed.as_bytes());
        assert_eq!(
            (
                t.vocab_size(),
                t.num_states(),
                t.start(),
                t.eos(),
                t.pad(),
                t.max_word_len()
            ),
            (
                borrowed.vocab_size(),
                borrowed.num_states(),
                borrowed.start(),
                borrowed.eos(),
                borrowed.pad(),
                borrowed.max_word_len()
            )
        );
        for s in 0..t.num_states() as u16 {
            assert_eq!(t.mask(s), borrowed.mask(s));
            assert_eq!(t.is_boundary(s), borrowed.is_boundary(s));
            for token in 0..t.vocab_size() as u32 {
                assert_eq!(t.step(s, token), borrowed.step(s, token));
            }
        }
    }
    assert_eq!(owned.into_bytes(), borrowed.as_bytes());
}

#[test]
fn owned_tables_outlive_their_source() {
    let owned = {
        let bytes = blob(kernels_gen::Layout::Classes);
        OwnedTables::from_bytes(bytes).unwrap()
    };
    let eos = owned.as_tables().eos().unwrap();
    let mut batch = WordBatch::new(owned.as_tables(), 2).unwrap();
    batch.advance(&mut [u32::from(b'a'), eos]).unwrap();
    assert_eq!(batch.stopped(), &[false, true]);
}

#[test]
fn owned_tables_refuse_bad_blobs() {
    let mut bytes = Utf8Words::TABLES.as_bytes().to_vec();
    bytes[0] ^= 1;
    let e = OwnedTables::from_bytes(bytes).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidTables(_)), "{e}");
    assert!(OwnedTables::from_bytes(Vec::new()).is_err());
}

/// The documented split: `Tables::from_bytes` (a `const fn`) checks mask bits against entries
/// in the direct layout only; `Tables::validate` and `OwnedTables::from_bytes` check them in
/// both.
#[test]
fn mask_bits_against_entries_are_checked_where_the_docs_say() {
    let disagree = ErrorKind::InvalidTables("a mask bit disagrees with its entry");
    for layout in [kernels_gen::Layout::Direct, kernels_gen::Layout::Classes] {
        let mut bytes = blob(layout);
        Tables::from_bytes(&bytes).unwrap().validate().unwrap();
        forbid_one_allowed_token(&mut bytes);
        let direct = layout == kernels_gen::Layout::Direct;
        match Tables::from_bytes(&bytes) {
            Ok(t) => {
                assert!(!direct, "the direct layout's masks are checked by from_bytes");
                assert_eq!(t.validate().unwrap_err().kind(), disagree);
            }
            Err(e) => {
                assert!(direct, "the class layout's masks are left to validate");
                assert_eq!(e.kind(), disagree);
            }
        }
        assert_eq!(OwnedTables::from_bytes(bytes).unwrap_err().kind(), disagree);
    }
}

#[test]
fn a_batch_larger_than_memory_is_an_err() {
    for rows in [usize::MAX, usize::MAX / 2, 1 << (usize::BITS - 4)] {
        let e = WordBatch::new(Utf8Words::TABLES, rows).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BatchTooLarge { rows });
    }
}

/// `CudaDecoder` copies what it needs: the tables it was made from may be dropped first.
#[cfg(feature = "cuda")]
#[test]
fn a_cuda_decoder_borrows_nothing() {
    use welt_runtime::cuda::CudaDecoder;
    let owned = OwnedTables::from(Utf8Words::TABLES);
    let dec = CudaDecoder::from_parts(owned.as_tables(), Utf8Words::CUDA_SOURCE, None, 0);
    drop(owned);
    if let Ok(dec) = dec {
        assert_eq!(dec.tables().as_bytes(), Utf8Words::TABLES.as_bytes());
    }
}
