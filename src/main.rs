//! `welt`: generate, inspect, query and benchmark welt's decoder tables.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;
use welt_runtime::{Decoder, Utf8Words};

const USAGE: &str = "\
welt — WeLT's word decoding constraints as one generated automaton

USAGE:
    welt tables [TOKENIZER OPTIONS] [--emit rust|dot|stats|cuda|header] [-o FILE]
        Generate a decoder's tables and print them as Rust source, a Graphviz DOT graph,
        statistics (default), CUDA kernels with the tables, or the kernels' C ABI header. Default decoder: UTF-8 bytes, WeLT's word rule.
    welt query [TOKENIZER OPTIONS] [FILE]
        Read JSONL lines with a \"bytes\" array (a \"tokens\" array of ids with --tokenizer),
        from FILE or stdin, and print, for each, the mask, stop flag and reachability after it.

TOKENIZER OPTIONS:
    --tokenizer FILE      a Hugging Face tokenizer.json (byte-level BPE, byte-fallback BPE or
                          Unigram) instead of the UTF-8 byte tokenizer
    --eos TOKEN           its EOS token (default: </s>, <|endoftext|>, ... if present)
    --pad TOKEN           its PAD token (default: <pad>-like, else EOS)
    --stop-token TOKEN    another token that ends a word (repeatable)
    --max-word-len N      the default word length limit in tokens (default 16)
    --layout L            auto, direct or classes (default auto)
    welt demo [--prompt TEXT] [--words N] [--batch B] [--model DIR] [--seed S]
              [--temperature T] [--top-k K] [--top-p P] [--greedy]
        Generate words for a prompt the way WeLT does, one word at a time with a byte decoder
        (default: random weights, fixed seed; --model: a local Llama checkpoint), then print
        where the time went.
    welt bench [--json] [--quick]
        CPU cost per decoding step of mask + advance + stop, beside a Rust port of the
        reference algorithm and the floor (one pass writing every logit).
    welt bench --vocab N [--batch B] [--json] [--quick]
        Per-token cost for a large vocabulary (a synthetic byte-level BPE of N tokens, B = 32
        by default): mask against the floor, and the state step against V = 256.
    welt bench --e2e [--json] [--quick]
        Whole word generation with the byte decoder, three ways: welt, the reference port,
        no constraint; B = 1, 3, 32.
    welt gpu-check [--quick] [--json FILE]
        (feature `cuda`) The GPU against the CPU tables, and kernel timings with CUDA events.
    welt help
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("welt: error: {e}");
            ExitCode::from(2)
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run() -> Result<()> {
    let mut parser = lexopt::Parser::from_env();
    let cmd = match parser.next()? {
        Some(Value(v)) => v.string()?,
        Some(Long("help") | Short('h')) | None => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(other) => return Err(other.unexpected().into()),
    };
    match cmd.as_str() {
        "tables" => tables(parser),
        "query" => query(parser),
        "bench" => bench(parser),
        "demo" => demo(parser),
        "gpu-check" => gpu_check(parser),
        "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`; try `welt help`").into()),
    }
}

/// Which decoder a command works on.
#[derive(Default)]
struct DecoderArgs {
    tokenizer: Option<PathBuf>,
    options: kernels_gen::tokenizer::TokenizerOptions,
    max_word_len: Option<u16>,
    layout: Option<kernels_gen::Layout>,
}

impl DecoderArgs {
    const OPTIONS: [&'static str; 6] = ["tokenizer", "eos", "pad", "stop-token", "max-word-len", "layout"];

    /// Takes the decoder option `--name` and its value.
    fn take(&mut self, name: &str, parser: &mut lexopt::Parser) -> Result<bool> {
        match name {
            "tokenizer" => self.tokenizer = Some(parser.value()?.into()),
            "eos" => self.options.eos = Some(parser.value()?.string()?),
            "pad" => self.options.pad = Some(parser.value()?.string()?),
            "stop-token" => self.options.stop_tokens.push(parser.value()?.string()?),
            "max-word-len" => {
                let n: u16 = parser.value()?.parse()?;
                if n == 0 {
                    return Err("--max-word-len must be at least 1".into());
                }
                self.max_word_len = Some(n)
            }
            "layout" => {
                self.layout = Some(match parser.value()?.string()?.as_str() {
                    "auto" => kernels_gen::Layout::Auto,
                    "direct" => kernels_gen::Layout::Direct,
                    "classes" => kernels_gen::Layout::Classes,
                    other => {
                        return Err(
                            format!("unknown --layout `{other}`; expected auto, direct or classes").into(),
                        )
                    }
                })
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn is_default(&self) -> bool {
        self.tokenizer.is_none() && self.max_word_len.is_none() && self.layout.is_none()
    }

    fn spec(&self) -> Result<kernels_gen::DecoderSpec> {
        let mut spec = match &self.tokenizer {
            Some(path) => {
                kernels_gen::DecoderSpec::new(kernels_gen::tokenizer::load_file(path, &self.options)?)
            }
            None => {
                if self.options != Default::default() {
                    return Err("--eos, --pad and --stop-token need --tokenizer".into());
                }
                kernels_gen::DecoderSpec::utf8_bytes()
            }
        };
        if let Some(n) = self.max_word_len {
            spec.max_word_len = n;
        }
        if let Some(l) = self.layout {
            spec.layout = l;
        }
        Ok(spec)
    }
}

fn tables(mut parser: lexopt::Parser) -> Result<()> {
    let mut emit = "stats".to_string();
    let mut out: Option<PathBuf> = None;
    let mut dec = DecoderArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long(name) if DecoderArgs::OPTIONS.contains(&name) => {
                let name = name.to_string();
                dec.take(&name, &mut parser)?;
            }
            Long("emit") => emit = parser.value()?.string()?,
            Short('o') | Long("output") => out = Some(parser.value()?.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let tables = kernels_gen::generate(&dec.spec()?)?;
    let text = match emit.as_str() {
        "rust" => {
            let (name, doc) = match &dec.tokenizer {
                Some(p) => ("Words", format!("A welt decoder for {}.", p.display())),
                None => ("Utf8Words", "WeLT's default byte decoder.".to_string()),
            };
            kernels_gen::emit::rust::decoder_file(&tables, name, &doc)?
        }
        "dot" => kernels_gen::emit::dot::emit(&tables),
        "stats" => kernels_gen::emit::stats::emit(&tables),
        "cuda" => kernels_gen::emit::cuda::source(&tables),
        "header" => kernels_gen::emit::cuda::header(&tables),
        other => {
            return Err(format!("unknown --emit `{other}`; expected rust, dot, stats, cuda or header").into())
        }
    };
    write_output(out, text.as_bytes())
}

/// Writes to a file atomically (a temporary file renamed into place), or to stdout.
fn write_output(out: Option<PathBuf>, bytes: &[u8]) -> Result<()> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
                // The reader went away (`welt query ... | head`): stop quietly, as Unix tools do.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
        Some(path) => {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".welt-tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn query(mut parser: lexopt::Parser) -> Result<()> {
    let mut file: Option<PathBuf> = None;
    let mut dec = DecoderArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long(name) if DecoderArgs::OPTIONS.contains(&name) => {
                let name = name.to_string();
                dec.take(&name, &mut parser)?;
            }
            Value(v) if file.is_none() => file = Some(v.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    // The default decoder is the compiled-in one; a tokenizer's is generated here, and read
    // back through the same validating reader the compiled-in tables go through.
    let blob;
    let (tables, mode) = if !dec.is_default() {
        blob = kernels_gen::generate(&dec.spec()?)?.to_blob();
        let mode = if dec.tokenizer.is_some() {
            welt::query::Mode::Tokens
        } else {
            welt::query::Mode::Bytes
        };
        (welt_runtime::Tables::from_bytes(&blob)?, mode)
    } else {
        (Utf8Words::TABLES, welt::query::Mode::Bytes)
    };
    let out = match &file {
        Some(path) if path.as_os_str() != "-" => {
            let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            welt::query::run_mode(&tables, mode, BufReader::new(f))
        }
        _ => welt::query::run_mode(&tables, mode, std::io::stdin().lock()),
    }
    .map_err(|e| match &file {
        Some(p) => format!("{}: {e}", p.display()),
        None => format!("<stdin>: {e}"),
    })?;
    write_output(None, out.as_bytes())
}

fn demo(mut parser: lexopt::Parser) -> Result<()> {
    let mut o = welt::demo::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("prompt") => {
                // Raw bytes: a prompt that is not UTF-8 gets a clear error, not a lossy guess.
                use std::os::unix::ffi::OsStringExt;
                o.prompt = parser.value()?.into_vec();
            }
            Long("words") => o.words = parser.value()?.parse()?,
            Long("batch") => o.batch = parser.value()?.parse()?,
            Long("model") => o.model = Some(parser.value()?.into()),
            Long("seed") => {
                o.seed = parser.value()?.parse()?;
                o.sampler.seed = o.seed;
            }
            Long("temperature") => o.sampler.temperature = parser.value()?.parse()?,
            Long("top-k") => o.sampler.top_k = parser.value()?.parse()?,
            Long("top-p") => o.sampler.top_p = parser.value()?.parse()?,
            Long("greedy") => o.sampler.temperature = 0.0,
            _ => return Err(arg.unexpected().into()),
        }
    }
    o.sampler.check()?;
    welt::demo::run(&o)
}

fn bench(mut parser: lexopt::Parser) -> Result<()> {
    let mut opts = welt::bench::Options::default();
    let mut e2e = false;
    let mut vocab: Option<usize> = None;
    let mut batch = 32;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("json") => opts.json = true,
            Long("quick") => opts.quick = true,
            Long("e2e") => e2e = true,
            Long("vocab") => vocab = Some(parser.value()?.parse()?),
            Long("batch") => batch = parser.value()?.parse()?,
            _ => return Err(arg.unexpected().into()),
        }
    }
    if e2e {
        return welt::e2e::run(&welt::e2e::Options {
            json: opts.json,
            quick: opts.quick,
        });
    }
    if let Some(vocab) = vocab {
        if vocab < 257 || batch == 0 {
            return Err("--vocab needs at least 257 tokens and --batch at least 1".into());
        }
        let o = welt::bench_large::Options {
            vocab,
            batch,
            json: opts.json,
            quick: opts.quick,
        };
        return welt::bench_large::run(&o);
    }
    welt::bench::run(&opts)
}

#[cfg(feature = "cuda")]
fn gpu_check(mut parser: lexopt::Parser) -> Result<()> {
    let mut opts = welt::gpu_check::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("quick") => opts.quick = true,
            Long("json") => opts.json = Some(parser.value()?.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    welt::gpu_check::run(&opts)
}

#[cfg(not(feature = "cuda"))]
fn gpu_check(_: lexopt::Parser) -> Result<()> {
    Err("this `welt` was built without the `cuda` feature: cargo build --release --features cuda".into())
}
