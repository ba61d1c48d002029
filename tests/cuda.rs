//! The CUDA path where no GPU is needed (feature `cuda`): every generated decoder's CUDA
//! source compiles to PTX for sm_90 with NVRTC and assembles with ptxas; the tables compiled
//! into the CUDA source are the CPU tables, byte for byte; a machine without a CUDA driver gets
//! an `Err`, not a panic.
//!
//! CI installs NVRTC and ptxas from PyPI and sets `WELT_REQUIRE_NVRTC=1` (and `WELT_PTXAS`), so
//! there a missing tool fails the test instead of skipping it.
#![cfg(feature = "cuda")]

use std::path::PathBuf;
use std::process::Command;

use welt_runtime::cuda::{
    compile_ptx, driver_present, nvrtc_present, CudaDecoder, CudaErrorKind, DeviceBatch,
};
use welt_runtime::{welt_decoder, Decoder, Utf8Words, WordBatch};

#[welt_decoder(tokenizer = "tests/fixtures/byt5_like.json")]
struct Byt5;
#[welt_decoder(tokenizer = "tests/fixtures/bpe_bytelevel.json")]
struct Bpe;
#[welt_decoder(tokenizer = "tests/fixtures/sp_bpe_bytefallback.json")]
struct SpBpe;
#[welt_decoder(tokenizer = "tests/fixtures/sp_unigram.json", layout = "classes")]
struct SpUnigramClasses;

fn required() -> bool {
    std::env::var_os("WELT_REQUIRE_NVRTC").is_some()
}

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WELT_PTXAS") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

/// The sources to check: every decoder of the tests, in both table placements (constant
/// memory for small tables, global memory for a 128k vocabulary).
fn sources() -> Vec<(String, String)> {
    let mut out = vec![
        ("utf8".to_string(), Utf8Words::CUDA_SOURCE.to_string()),
        ("byt5_like".to_string(), Byt5::CUDA_SOURCE.to_string()),
        ("bpe_bytelevel".to_string(), Bpe::CUDA_SOURCE.to_string()),
        ("sp_bpe_bytefallback".to_string(), SpBpe::CUDA_SOURCE.to_string()),
        (
            "sp_unigram_classes".to_string(),
            SpUnigramClasses::CUDA_SOURCE.to_string(),
        ),
    ];
    let json = kernels_gen::synthetic::byte_level_bpe_json(131_072, 1);
    let vocab = kernels_gen::tokenizer::load_str("synthetic-128k.json", &json, &Default::default()).unwrap();
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab)).unwrap();
    out.push((
        "synthetic_128k".to_string(),
        kernels_gen::emit::cuda::source(&tables),
    ));
    // A file name that would inject lines, end the comment or hold a NUL stays in the header.
    let tokens = (0..=255u8).map(|b| kernels_gen::Token::Bytes(vec![b])).collect();
    let label = "evil.json\n#error injected\r\n*/ \"q\" \\ \u{e9} \0 end\\";
    let vocab = kernels_gen::Vocabulary::new(label, tokens, Some(3), 0).unwrap();
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab)).unwrap();
    out.push((
        "hostile_label".to_string(),
        kernels_gen::emit::cuda::source(&tables),
    ));
    out
}

#[test]
fn every_decoder_compiles_to_ptx_for_sm90_and_assembles() {
    if !nvrtc_present() {
        assert!(
            !required(),
            "WELT_REQUIRE_NVRTC is set but NVRTC (libnvrtc) was not found"
        );
        eprintln!("skipped: NVRTC not found (CI installs it from PyPI)");
        return;
    }
    let ptxas = ptxas();
    assert!(
        ptxas.is_some() || !required(),
        "WELT_REQUIRE_NVRTC is set but ptxas was not found"
    );
    let dir = std::env::temp_dir().join(format!("welt-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let srcs = sources();
    // Both placements of the tables are exercised.
    assert!(srcs
        .iter()
        .any(|(_, s)| s.contains("#define WELT_TABLES_IN_CONSTANT 1")));
    assert!(srcs
        .iter()
        .any(|(_, s)| s.contains("#define WELT_TABLES_IN_CONSTANT 0")));
    assert!(srcs.iter().any(|(_, s)| s.contains("#define WELT_DIRECT 0")));
    for (name, src) in srcs {
        let ptx = compile_ptx(&src, Some("sm_90")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ptx = ptx.to_src();
        for kernel in [
            "welt_mask_f32",
            "welt_mask_f16",
            "welt_mask_bf16",
            "welt_advance",
            "welt_step_f32",
            "welt_step_f16",
            "welt_step_bf16",
        ] {
            assert!(
                ptx.contains(&format!(".entry {kernel}(")),
                "{name}: no kernel {kernel} in the PTX"
            );
        }
        if let Some(ptxas) = &ptxas {
            let file = dir.join(format!("{name}.ptx"));
            std::fs::write(&file, &ptx).unwrap();
            let out = Command::new(ptxas)
                .args(["-arch=sm_90", "-o"])
                .arg(dir.join(format!("{name}.cubin")))
                .arg(&file)
                .output()
                .expect("ptxas runs");
            assert!(
                out.status.success(),
                "{name}: ptxas failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads the numbers of a `__constant__` array initializer out of the CUDA source.
fn constant_array(src: &str, name: &str) -> Vec<u64> {
    let start = src
        .find(&format!("{name}["))
        .unwrap_or_else(|| panic!("no {name} in the source"));
    let body = &src[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
    body.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.trim_end_matches("ull");
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{name}: `{h}`: {e}")),
                None => s.parse().unwrap_or_else(|e| panic!("{name}: `{s}`: {e}")),
            }
        })
        .collect()
}

/// The GPU's tables are the CPU's: the `__constant__` arrays of the CUDA source equal the
/// blob (direct and class layouts). Decoders too large for constant memory get the blob's own
/// bytes uploaded by `CudaDecoder`, so there is nothing to compare for them.
#[test]
fn cuda_tables_are_the_cpu_tables() {
    assert!(Bpe::CUDA_SOURCE.contains("#define WELT_TABLES_IN_CONSTANT 0"));
    for (src, tables) in [
        (Utf8Words::CUDA_SOURCE, Utf8Words::TABLES),
        (SpUnigramClasses::CUDA_SOURCE, SpUnigramClasses::TABLES),
    ] {
        assert!(src.contains("#define WELT_TABLES_IN_CONSTANT 1"));
        let blob = tables.as_bytes();
        let v = tables.vocab_size();
        let n = tables.num_states();
        let (class_len, width) = match tables.token_classes() {
            None => (0, v),
            Some(c) => (2 * v, c),
        };
        let entries = constant_array(src, "welt_entries");
        assert_eq!(entries.len(), n * width);
        for (i, &e) in entries.iter().enumerate() {
            let at = 64 + class_len + 2 * i;
            assert_eq!(
                e,
                u64::from(u16::from_le_bytes([blob[at], blob[at + 1]])),
                "entry {i}"
            );
        }
        if class_len > 0 {
            let classes = constant_array(src, "welt_class_of");
            assert_eq!(classes.len(), v);
            for (t, &c) in classes.iter().enumerate() {
                assert_eq!(
                    c,
                    u64::from(u16::from_le_bytes([blob[64 + 2 * t], blob[65 + 2 * t]]))
                );
            }
        }
        let masks = constant_array(src, "welt_masks");
        let masks_at = 64 + class_len + 2 * n * width;
        assert_eq!(masks.len(), n * v.div_ceil(64));
        for (i, &m) in masks.iter().enumerate() {
            let at = masks_at + 8 * i;
            assert_eq!(
                m,
                u64::from_le_bytes(blob[at..at + 8].try_into().unwrap()),
                "mask word {i}"
            );
        }
        assert!(src.contains(&format!("#define WELT_V {v}u")));
        assert!(src.contains(&format!("#define WELT_PAD {}u", tables.pad())));
    }
}

/// No driver here: loading is an `Err` of kind `Unavailable`. (On a GPU machine `welt
/// gpu-check` exercises the success path.)
#[test]
fn a_missing_driver_is_an_err_not_a_panic() {
    if driver_present() {
        eprintln!("a CUDA driver is present: this test is about machines without one");
        return;
    }
    let e = CudaDecoder::new::<Utf8Words>(0).unwrap_err();
    assert_eq!(e.kind(), CudaErrorKind::Unavailable);
    assert!(e.to_string().contains("driver"), "{e}");
}

/// gridDim.y is at most 65,535: a batch with more rows is masked and stepped in full, the
/// kernels looping over the rows past the grid. Needs a GPU (skipped without a driver; `welt
/// gpu-check` covers the rest on one).
#[test]
fn a_batch_past_the_grid_limit_runs_every_row() {
    if !driver_present() {
        eprintln!("skipped: no CUDA driver");
        return;
    }
    // A driver library without a GPU (CI installs the toolkit, which brings libcuda): skipped
    // too, but only for that error.
    let dec = match CudaDecoder::new::<Utf8Words>(0) {
        Ok(dec) => dec,
        Err(e) if e.kind() == CudaErrorKind::Unavailable || e.to_string().contains("NO_DEVICE") => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let v = Utf8Words::TABLES.vocab_size();
    let batch = 65_535 + 3;
    let host: Vec<f32> = (0..batch * v).map(|i| (i % v) as f32).collect();
    let stream = dec.stream();
    let mut gpu = DeviceBatch::new(&dec, batch).unwrap();
    let mut logits = stream.clone_htod(&host).unwrap();
    gpu.mask(&mut logits, v).unwrap();
    let got = stream.clone_dtoh(&logits).unwrap();
    let mut want = host.clone();
    WordBatch::new(Utf8Words::TABLES, batch)
        .unwrap()
        .apply_mask(&mut want)
        .unwrap();
    if let Some(i) = got
        .iter()
        .zip(&want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        panic!("mask differs at row {} token {}", i / v, i % v);
    }
    // Every row starts in the same state with the same logits: one greedy choice for all.
    let logits = stream.clone_htod(&host).unwrap();
    gpu.step(&logits, v, &welt_runtime::Sampler::GREEDY).unwrap();
    gpu.check_error().unwrap();
    let next = stream.clone_dtoh(gpu.next_tokens()).unwrap();
    assert!(next[..batch].iter().all(|&t| t == next[0]), "rows differ");
    let t = Utf8Words::TABLES;
    assert!(t.mask(t.start()).allows(next[0]), "token {}", next[0]);
}
