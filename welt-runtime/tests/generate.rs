//! The word generation loop (feature `candle`), driven by a scripted model whose logits favour
//! a given byte sequence per row: stopping, finished rows fed PAD, the length limit, prefix
//! continuation, bad input, seeded sampling, and the mask as a candle op.
#![cfg(feature = "candle")]

use candle_core::{DType, Device, Tensor};
use welt_runtime::{Decoder, ErrorKind, MaskOp, Sampler, Utf8Words, WordBatch, WordGenerator, WordModel};

/// Logits that put `+10` on the script's next byte for each row (after the script: on `a`),
/// with a small per-token slope so that ties never decide. Records what it was fed.
struct Scripted {
    scripts: Vec<Vec<u8>>,
    pos: usize,
    batch: usize,
    fed: Vec<Vec<u32>>,
    started_with_condition: bool,
}

impl Scripted {
    fn new(scripts: &[&[u8]]) -> Scripted {
        Scripted {
            scripts: scripts.iter().map(|s| s.to_vec()).collect(),
            pos: 0,
            batch: 0,
            fed: Vec::new(),
            started_with_condition: false,
        }
    }
    fn logits(&self) -> candle_core::Result<Tensor> {
        let mut v = vec![0f32; self.batch * 256];
        for row in 0..self.batch {
            for t in 0..256 {
                v[row * 256 + t] = -(t as f32) * 1e-3;
            }
            let script = &self.scripts[row % self.scripts.len()];
            let want = script.get(self.pos).copied().unwrap_or(b'a');
            v[row * 256 + want as usize] += 10.0;
        }
        Tensor::from_vec(v, (self.batch, 256), &Device::Cpu)
    }
}

impl WordModel for Scripted {
    fn vocab_size(&self) -> usize {
        256
    }
    fn start(&mut self, batch: usize, condition: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.batch = batch;
        self.pos = 0;
        self.fed.clear();
        self.started_with_condition = condition.is_some();
        self.logits()
    }
    fn next(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        self.fed.push(tokens.to_vec());
        self.pos += 1;
        self.logits()
    }
}

fn texts(words: &[welt_runtime::Word]) -> Vec<(String, bool)> {
    words.iter().map(|w| (w.text().unwrap(), w.stopped)).collect()
}

#[test]
fn rows_stop_when_their_word_is_complete_and_finished_rows_feed_pad() {
    let model = Scripted::new(&[b"ab ", b"hello\n", b"\x01"]);
    let mut g = WordGenerator::new(model, Utf8Words::TABLES, 3, Sampler::GREEDY).unwrap();
    let words = g.generate(None, &[]).unwrap();
    assert_eq!(
        texts(words),
        vec![
            ("ab ".to_string(), true),
            ("hello\n".to_string(), true),
            ("\u{1}".to_string(), true)
        ]
    );
    // The longest word took 6 tokens: 5 `next` calls; rows that had finished were fed PAD.
    let fed = &g.model_mut().fed;
    assert_eq!(fed.len(), 5);
    assert!(fed.iter().all(|f| f.len() == 3));
    // A row that finishes on a step feeds its own last token once, then PAD (as `generate`
    // pads finished rows).
    assert_eq!(fed[0][0], u32::from(b'a'));
    assert_eq!(fed[0][2], 1, "row 2's own token on the step it finished");
    assert_eq!(fed[1][2], 0, "then PAD");
    assert_eq!(fed[2][0], u32::from(b' '));
    assert_eq!(fed[3][0], 0);
    assert_eq!(fed[4][1], u32::from(b'o'));
    let stats = g.stats();
    assert_eq!(stats.steps, 5);
    assert_eq!(stats.words, 3);
}

#[test]
fn the_length_limit_finishes_a_row_without_a_stop() {
    let model = Scripted::new(&[b""]); // always `a`
    let mut g = WordGenerator::new(model, Utf8Words::TABLES, 2, Sampler::GREEDY).unwrap();
    let words = g.generate(None, &[]).unwrap();
    for w in words {
        assert_eq!(w.tokens.len(), 16);
        assert!(!w.stopped);
        assert_eq!(w.text().unwrap(), "a".repeat(16));
    }
    g.constraint_mut().set_max_word_len(4).unwrap();
    assert_eq!(g.generate(None, &[]).unwrap()[0].tokens.len(), 4);
}

#[test]
fn the_mask_overrides_the_model_where_the_model_is_wrong() {
    // The model wants a continuation byte (0x80) to start the word, then 0xFF: both invalid.
    let model = Scripted::new(&[b"\x80\xff "]);
    let mut g = WordGenerator::new(model, Utf8Words::TABLES, 1, Sampler::GREEDY).unwrap();
    let w = &g.generate(None, &[]).unwrap()[0];
    let bytes = w.bytes().unwrap();
    assert!(std::str::from_utf8(&bytes).is_ok(), "{bytes:?}");
    // With 0x80 forbidden, the slope makes 0x00 the best allowed byte, and so on.
    assert_eq!(bytes[0], 0x00);
}

#[test]
fn a_prefix_is_continued_mid_character() {
    // Prefix "a" + E3; the model (whose positions count from `start`, prefix included) then
    // proposes 0x80 and afterwards `a`, which the mask refuses mid-character, so the best
    // allowed byte (0x80) completes U+3000: "a\u{3000}" is a complete word.
    let model = Scripted::new(&[b"a\xe3\x80"]);
    let mut g = WordGenerator::new(model, Utf8Words::TABLES, 2, Sampler::GREEDY).unwrap();
    let words = g.generate(None, &[u32::from(b'a'), 0xE3]).unwrap();
    for w in words {
        assert_eq!(
            w.tokens,
            vec![0x80, 0x80],
            "the prefix is not part of the word's tokens"
        );
        assert!(w.stopped);
    }
    // The model saw the prefix: 2 `next` calls for it, then 1 for the first generated token.
    assert_eq!(g.model_mut().fed[..2], [vec![u32::from(b'a'); 2], vec![0xE3; 2]]);
}

#[test]
fn bad_input_is_an_error_and_generates_nothing() {
    let model = Scripted::new(&[b"ab "]);
    let mut g = WordGenerator::new(model, Utf8Words::TABLES, 2, Sampler::GREEDY).unwrap();
    match g.generate(None, &[0xFF]) {
        Err(welt_runtime::GenerateError::Welt(e)) => {
            assert!(matches!(e.kind(), ErrorKind::TokenNotAllowed { token: 0xFF, .. }))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.stats().steps, 0);
    match g.generate(None, b"ab ".map(u32::from).as_slice()) {
        Err(welt_runtime::GenerateError::Welt(e)) => {
            assert!(matches!(e.kind(), ErrorKind::PrefixCompletesWord { .. }))
        }
        other => panic!("{other:?}"),
    }

    struct Wide;
    impl WordModel for Wide {
        fn vocab_size(&self) -> usize {
            300
        }
        fn start(&mut self, _: usize, _: Option<&Tensor>) -> candle_core::Result<Tensor> {
            unreachable!()
        }
        fn next(&mut self, _: &[u32]) -> candle_core::Result<Tensor> {
            unreachable!()
        }
    }
    let e = WordGenerator::new(Wide, Utf8Words::TABLES, 1, Sampler::GREEDY)
        .err()
        .unwrap();
    assert!(matches!(
        e.kind(),
        ErrorKind::VocabMismatch {
            decoder: 256,
            model: 300
        }
    ));
}

#[test]
fn seeded_sampling_reproduces_and_only_generates_valid_words() {
    // A flat model: sampling decides everything.
    struct Flat(usize);
    impl WordModel for Flat {
        fn vocab_size(&self) -> usize {
            256
        }
        fn start(&mut self, b: usize, c: Option<&Tensor>) -> candle_core::Result<Tensor> {
            self.0 = b;
            assert!(c.is_some());
            Tensor::zeros((b, 256), DType::F32, &Device::Cpu)
        }
        fn next(&mut self, _: &[u32]) -> candle_core::Result<Tensor> {
            Tensor::zeros((self.0, 256), DType::F32, &Device::Cpu)
        }
    }
    let cond = Tensor::zeros((8, 4), DType::F32, &Device::Cpu).unwrap();
    let run = |seed: u64| -> Vec<Vec<(Vec<u8>, bool)>> {
        let mut g = WordGenerator::new(
            Flat(0),
            Utf8Words::TABLES,
            8,
            Sampler::with_temperature(1.0, seed),
        )
        .unwrap();
        (0..5)
            .map(|_| {
                g.generate(Some(&cond), &[])
                    .unwrap()
                    .iter()
                    .map(|w| (w.bytes().unwrap(), w.stopped))
                    .collect()
            })
            .collect()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    for words in &a {
        for (bytes, stopped) in words {
            // Every word is a valid UTF-8 prefix (the length limit may cut the last
            // character) and ends by the rule or EOS, or at the limit.
            let valid = std::str::from_utf8(bytes).map_or_else(|e| e.error_len().is_none(), |_| true);
            assert!(valid, "{bytes:?}");
            assert!(*stopped || bytes.len() == 16, "{bytes:?}");
        }
    }
}

#[test]
fn the_mask_op_masks_tensors_of_every_float_type() {
    let mut batch = WordBatch::new(Utf8Words::TABLES, 2).unwrap();
    batch.advance(&mut [0xE3, u32::from(b'a')]).unwrap();
    let mut want = vec![0.5f32; 512];
    batch.apply_mask(&mut want).unwrap();
    for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let t = Tensor::full(0.5f32, (2, 256), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        t.inplace_op1(&MaskOp(&batch)).unwrap();
        let got: Vec<f32> = t
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{dtype:?}");
    }
    // Wrong shapes and types are errors, not panics.
    let t = Tensor::zeros((3, 256), DType::F32, &Device::Cpu).unwrap();
    assert!(t.inplace_op1(&MaskOp(&batch)).is_err());
    let t = Tensor::zeros((2, 256), DType::U32, &Device::Cpu).unwrap();
    assert!(t.inplace_op1(&MaskOp(&batch)).is_err());
}

#[test]
fn text_drops_a_character_cut_by_the_length_limit_as_the_reference_decode_does() {
    let w = welt_runtime::Word {
        tokens: vec![0x61, 0xC3, 0xA9, 0xE3, 0x80],
        stopped: false,
    };
    assert_eq!(w.text().unwrap(), "a\u{e9}");
    assert_eq!(w.bytes().unwrap(), [0x61, 0xC3, 0xA9, 0xE3, 0x80]);
    let wide = welt_runtime::Word {
        tokens: vec![300],
        stopped: false,
    };
    assert!(wide.text().is_err());
}

#[test]
fn an_invalid_sampler_is_refused_and_a_subnormal_temperature_is_greedy() {
    let bad = Sampler {
        temperature: f32::NAN,
        ..Sampler::GREEDY
    };
    let e = WordGenerator::new(Scripted::new(&[b"ab "]), Utf8Words::TABLES, 1, bad)
        .err()
        .unwrap();
    assert!(matches!(e.kind(), ErrorKind::InvalidSampler(_)), "{e}");

    let words = |sampler: Sampler| {
        let mut g =
            WordGenerator::new(Scripted::new(&[b"ab ", b"xyz "]), Utf8Words::TABLES, 2, sampler).unwrap();
        let top_p = Sampler {
            top_p: -5.0,
            ..sampler
        };
        assert!(matches!(
            g.set_sampler(top_p).unwrap_err().kind(),
            ErrorKind::InvalidSampler(_)
        ));
        g.generate(None, &[]).unwrap().to_vec()
    };
    let greedy = words(Sampler::GREEDY);
    assert_eq!(greedy[0].bytes().unwrap(), b"ab ");
    assert_eq!(words(Sampler::with_temperature(1e-45, 3)), greedy);
}
