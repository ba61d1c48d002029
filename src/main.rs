//! `welt`: generate, inspect, query and benchmark welt's decoder tables.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;
use welt::Utf8Words;
use welt_runtime::Decoder;

/// `welt tables`.
const TABLES_USAGE: &str =
    "    welt tables [TOKENIZER OPTIONS] [--emit rust|dot|stats|cuda|header|blob] [-o FILE]
        Generate a decoder's tables and print them as Rust source, a Graphviz DOT graph,
        statistics (default), CUDA kernels with the tables, the kernels' C ABI header, or the
        raw table blob (binary; what the macro embeds and Python's Decoder.from_bytes reads).
        Default decoder: UTF-8 bytes, WeLT's word rule. -o FILE (--output) writes to what FILE
        names: a regular file is replaced atomically and keeps its mode; a symlink, a device
        or a pipe (/dev/stdout) is written through.
";

/// `welt query`.
const QUERY_USAGE: &str = "    welt query [TOKENIZER OPTIONS] [FILE]
        Read JSONL lines with a \"bytes\" array (a \"tokens\" array of ids with --tokenizer),
        from FILE or stdin, and print, for each, the mask, stop flag and reachability after it.
";

/// The decoder options of `tables`, `query` and `bench --tokenizer`.
const TOKENIZER_OPTIONS: &str = "\
TOKENIZER OPTIONS:
    --tokenizer FILE      a Hugging Face tokenizer.json (byte-level BPE, byte-fallback BPE or
                          Unigram) instead of the UTF-8 byte tokenizer
    --eos TOKEN           its EOS token (default: the special token named </s>,
                          <|endoftext|>, <|end_of_text|>, <eos>, ...; required if none is)
    --pad TOKEN           its PAD token (default: a special <pad>-like token, else EOS)
    --stop-token TOKEN    another token that ends a word (repeatable)
    --max-word-len N      the default word length limit in tokens (default 16)
    --layout L            auto, direct or classes (default auto)
    --forbid-leading-whitespace
                          a word may not begin with whitespace that is not also a control
                          character (such a word could never stop by the word rule)
";

/// `welt demo`.
const DEMO_USAGE: &str = "    welt demo [--prompt TEXT] [--words N] [--batch B] [--model DIR] [--seed S]
              [--temperature T] [--top-k K] [--top-p P] [--greedy] [--max-memory BYTES]
        Generate words for a prompt the way WeLT does, one word at a time with a byte decoder
        (default: random weights, fixed seed; --model: a local Llama checkpoint), then print
        where the time went. --max-memory bounds the KV cache, rotary tables and step buffers
        (default 4294967296); a larger --batch is refused with the bytes it would need.
";

/// `welt bench`, its four modes.
const BENCH_USAGE: &str = "    welt bench [--json] [--quick]
        CPU cost per decoding step of mask + advance + stop, beside a Rust port of the
        reference algorithm and the floor (one pass writing every logit); B = 1, 3, 32, 256.
    welt bench --vocab N [--batch B] [--json] [--quick]
        Per-token cost for a large vocabulary (a synthetic byte-level BPE of N tokens,
        257 <= N <= 1048576; B = 32 by default, at most 4096): mask against the floor, and the
        state step against V = 256.
    welt bench --tokenizer FILE [TOKENIZER OPTIONS] [--batch B] [--json] [--quick]
        The same for a real tokenizer's vocabulary (its word start and mid-word masks).
    welt bench --e2e [--json] [--quick]
        Whole word generation with the byte decoder, three ways: welt, the reference port,
        no constraint; B = 1, 3, 32.
";

/// `welt gpu-check`.
const GPU_CHECK_USAGE: &str = "    welt gpu-check [--quick] [--json FILE]
        (feature `cuda`) The GPU against the CPU tables, and kernel timings with CUDA events.
";

/// `welt help`.
const HELP_USAGE: &str = "    welt help [COMMAND]
        This text, or one command's; `welt COMMAND --help` (-h) does the same.
";

/// The subcommands and their usage, in the order `welt help` prints them.
const COMMANDS: [(&str, &str); 6] = [
    ("tables", TABLES_USAGE),
    ("query", QUERY_USAGE),
    ("demo", DEMO_USAGE),
    ("bench", BENCH_USAGE),
    ("gpu-check", GPU_CHECK_USAGE),
    ("help", HELP_USAGE),
];

/// The whole usage text, or one command's (`None` for an unknown command).
fn usage(command: Option<&str>) -> Option<String> {
    let mut s = String::new();
    match command {
        None => {
            s.push_str("welt — WeLT's word decoding constraints as one generated automaton\n\nUSAGE:\n");
            for (_, text) in COMMANDS {
                s.push_str(text);
            }
            s.push('\n');
            s.push_str(TOKENIZER_OPTIONS);
        }
        Some(name) => {
            let (_, text) = COMMANDS.iter().find(|(n, _)| *n == name)?;
            s.push_str("USAGE:\n");
            s.push_str(text);
            if matches!(name, "tables" | "query" | "bench") {
                s.push('\n');
                s.push_str(TOKENIZER_OPTIONS);
            }
        }
    }
    Some(s)
}

/// Prints a command's usage (`--help`, `-h`, `welt help COMMAND`).
fn help(command: Option<&str>) -> Result<()> {
    let text = usage(command).ok_or_else(|| {
        format!(
            "unknown command `{}`; try `welt help`",
            command.unwrap_or_default()
        )
    })?;
    write_output(None, text.as_bytes())
}

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
        Some(Long("help") | Short('h')) | None => return help(None),
        Some(other) => return Err(other.unexpected().into()),
    };
    match cmd.as_str() {
        "tables" => tables(parser),
        "query" => query(parser),
        "bench" => bench(parser),
        "demo" => demo(parser),
        "gpu-check" => gpu_check(parser),
        "help" => match parser.next()? {
            None => help(None),
            Some(Long("help") | Short('h')) => help(Some("help")),
            Some(Value(v)) => {
                let name = v.string()?;
                match parser.next()? {
                    None => help(Some(&name)),
                    Some(arg) => Err(arg.unexpected().into()),
                }
            }
            Some(arg) => Err(arg.unexpected().into()),
        },
        other => Err(format!("unknown command `{other}`; try `welt help`").into()),
    }
}

/// Which decoder a command works on: the CLI's spelling of [`kernels_gen::DecoderOptions`]
/// (`--max-word-len` for `max_word_len`, `--forbid-leading-whitespace` a flag), which parses
/// and validates the values.
#[derive(Default)]
struct DecoderArgs {
    options: kernels_gen::DecoderOptions,
}

impl DecoderArgs {
    const OPTIONS: [&'static str; 7] = [
        "tokenizer",
        "eos",
        "pad",
        "stop-token",
        "max-word-len",
        "layout",
        "forbid-leading-whitespace",
    ];

    /// Takes the decoder option `--name` and its value.
    fn take(&mut self, name: &str, parser: &mut lexopt::Parser) -> Result<bool> {
        match name {
            // A path need not be UTF-8.
            "tokenizer" => self.options.tokenizer = Some(parser.value()?.into()),
            "forbid-leading-whitespace" => self.options.forbid_leading_whitespace = true,
            _ if Self::OPTIONS.contains(&name) => {
                let value = parser.value()?.string()?;
                self.options.set(name, &value).map_err(Self::flagged)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An error of the options, with the flag it is about.
    fn flagged(e: kernels_gen::Error) -> String {
        match e.subject().option_name() {
            Some(name) if e.subject() != kernels_gen::Subject::Tokenizer => {
                format!("--{}: {e}", name.replace('_', "-"))
            }
            _ => e.to_string(),
        }
    }

    fn is_default(&self) -> bool {
        self.options == kernels_gen::DecoderOptions::default()
    }

    /// The spec, or every problem with the options (one line each).
    fn spec(&self) -> Result<kernels_gen::DecoderSpec> {
        let errors: Vec<String> = self
            .options
            .validate()
            .into_iter()
            .map(|e| self.named(e))
            .collect();
        if !errors.is_empty() {
            return Err(errors.join("\nwelt: error: ").into());
        }
        Ok(self.options.spec().map_err(|e| self.named(e))?)
    }

    /// [`Self::flagged`], and an error about the tokenizer file's contents names the file.
    fn named(&self, e: kernels_gen::Error) -> String {
        let about_file = e.subject() == kernels_gen::Subject::Tokenizer;
        let text = Self::flagged(e);
        match &self.options.tokenizer {
            Some(path) if about_file && !text.contains(&path.display().to_string()) => {
                format!("{}: {text}", path.display())
            }
            _ => text,
        }
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
            Long("help") | Short('h') => return help(Some("tables")),
            _ => return Err(arg.unexpected().into()),
        }
    }
    const EMITS: [&str; 6] = ["rust", "dot", "stats", "cuda", "header", "blob"];
    // Checked before generating, which can take seconds for a large vocabulary.
    if !EMITS.contains(&emit.as_str()) {
        return Err(
            format!("unknown --emit `{emit}`; expected rust, dot, stats, cuda, header or blob").into(),
        );
    }
    let spec = dec.spec()?;
    let tables = kernels_gen::generate(&spec)?;
    if emit == "blob" {
        return write_output(out, &tables.to_blob());
    }
    let text = match emit.as_str() {
        "rust" => {
            let (name, doc) = match &dec.options.tokenizer {
                Some(p) => ("Words", format!("A welt decoder for {}.", p.display())),
                None => ("Utf8Words", "WeLT's default byte decoder.".to_string()),
            };
            kernels_gen::emit::rust::decoder_file(&tables, name, &doc)?
        }
        "dot" => kernels_gen::emit::dot::emit(&tables),
        "cuda" => kernels_gen::emit::cuda::source(&tables),
        "header" => kernels_gen::emit::cuda::header(&tables),
        _ => kernels_gen::emit::stats::emit_with_roles(&tables, &spec.vocab),
    };
    write_output(out, text.as_bytes())
}

/// Writes to stdout, or to what `out` names (see [`write_path`]).
fn write_output(out: Option<PathBuf>, bytes: &[u8]) -> Result<()> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
                // The reader went away (`welt query ... | head`): stop quietly, as Unix tools do.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
            Ok(())
        }
        Some(path) => write_path(&path, bytes),
    }
}

/// Writes `bytes` to what `path` names. A regular file (or a new one) is replaced atomically:
/// a temporary file beside it, given the old file's mode, renamed over it, so that a reader
/// never sees half a file. Anything else is written through, as a shell's `>` does: a
/// symlink's target stays where it is and the link stays a link, a device or a pipe
/// (`/dev/stdout`, `/dev/null`) is never replaced by a file, and a file with other hard links
/// stays shared. A directory is refused.
fn write_path(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("cannot write {}: it is a directory", path.display()).into()),
        Ok(m) if m.is_file() && m.nlink() == 1 => replace_file(path, Some(m.permissions()), bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => replace_file(path, None, bytes),
        Err(e) => Err(cannot(e).into()),
        Ok(_) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(cannot)?;
            match f.write_all(bytes).and_then(|()| f.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other.map_err(cannot)?),
            }
        }
    }
}

/// Replaces the regular file `path` (or creates it) by renaming a temporary file over it;
/// the temporary file is removed on every error.
fn replace_file(path: &std::path::Path, mode: Option<std::fs::Permissions>, bytes: &[u8]) -> Result<()> {
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let name = path
        .file_name()
        .ok_or_else(|| format!("cannot write {}: not a file name", path.display()))?;
    // Hidden, and named by the process so that two runs never share one.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".welt-tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(cannot)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| match mode {
            Some(mode) => f.set_permissions(mode),
            None => Ok(()),
        })
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            drop(f);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(cannot(e).into());
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
            Long("help") | Short('h') => return help(Some("query")),
            Value(v) if file.is_none() => file = Some(v.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    // The default decoder is the compiled-in one; a tokenizer's is generated here, and read
    // back through the same validating reader the compiled-in tables go through.
    let blob;
    let (tables, mode) = if !dec.is_default() {
        blob = kernels_gen::generate(&dec.spec()?)?.to_blob();
        let mode = if dec.options.tokenizer.is_some() {
            welt::query::Mode::Tokens
        } else {
            welt::query::Mode::Bytes
        };
        (welt_runtime::Tables::from_bytes(&blob)?, mode)
    } else {
        (Utf8Words::TABLES, welt::query::Mode::Bytes)
    };
    // Answers are written as the lines are read (memory stays bounded by the line limit); on a
    // malformed line the answers before it are out and the error names the line.
    let stdout = std::io::stdout().lock();
    let result = match &file {
        Some(path) if path.as_os_str() != "-" => {
            let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            welt::query::run_mode(&tables, mode, BufReader::new(f), stdout)
        }
        _ => welt::query::run_mode(&tables, mode, std::io::stdin().lock(), stdout),
    };
    match result {
        // The reader went away (`welt query ... | head`): stop quietly, as Unix tools do.
        Err(e)
            if e.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
                == Some(std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        Err(e) => Err(match &file {
            Some(p) if p.as_os_str() != "-" => format!("{}: {e}", p.display()),
            _ => format!("<stdin>: {e}"),
        }
        .into()),
        Ok(()) => Ok(()),
    }
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
            Long("max-memory") => o.max_memory = parser.value()?.parse()?,
            Long("help") | Short('h') => return help(Some("demo")),
            _ => return Err(arg.unexpected().into()),
        }
    }
    o.sampler.check()?;
    welt::demo::run(&o)
}

/// The largest `--vocab` of `welt bench`: 4x the largest real vocabularies (Gemma 3: 262,144),
/// so that the synthetic tokenizer and its tables stay within a few GB.
const BENCH_MAX_VOCAB: usize = 1 << 20;
/// The largest `--batch` of `welt bench --vocab` and `--tokenizer`.
const BENCH_MAX_BATCH: usize = 4096;
/// The most logits (`--batch` x the vocabulary) one step of `welt bench --vocab` or
/// `--tokenizer` may hold: 1 GiB of `f32`.
const BENCH_MAX_LOGITS: usize = 1 << 28;

fn bench(mut parser: lexopt::Parser) -> Result<()> {
    let mut opts = welt::bench::Options::default();
    let mut e2e = false;
    let mut vocab: Option<usize> = None;
    let mut batch: Option<usize> = None;
    let mut dec = DecoderArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long(name) if DecoderArgs::OPTIONS.contains(&name) => {
                let name = name.to_string();
                dec.take(&name, &mut parser)?;
            }
            Long("json") => opts.json = true,
            Long("quick") => opts.quick = true,
            Long("e2e") => e2e = true,
            Long("vocab") => vocab = Some(parse_bounded(&mut parser, "--vocab", 257, BENCH_MAX_VOCAB)?),
            Long("batch") => batch = Some(parse_bounded(&mut parser, "--batch", 1, BENCH_MAX_BATCH)?),
            Long("help") | Short('h') => return help(Some("bench")),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let tokenizer = dec.options.tokenizer.clone();
    if e2e {
        if vocab.is_some() || batch.is_some() || !dec.is_default() {
            return Err(
                "`welt bench --e2e` takes no --vocab, --batch or tokenizer options (it runs the byte decoder at B = 1, 3, 32)"
                    .into(),
            );
        }
        return welt::bench::e2e::run(&welt::bench::e2e::Options {
            json: opts.json,
            quick: opts.quick,
        });
    }
    if tokenizer.is_none() && !dec.is_default() {
        return Err("the tokenizer options of `welt bench` need --tokenizer".into());
    }
    use welt::bench::large::Vocabulary;
    let vocabulary = match (tokenizer, vocab) {
        (Some(_), Some(_)) => {
            return Err("--vocab and --tokenizer name two vocabularies; give one".into());
        }
        (Some(path), None) => Some(Vocabulary::Tokenizer(
            path.display().to_string(),
            Box::new(dec.spec()?),
        )),
        (None, Some(n)) => Some(Vocabulary::Synthetic(n)),
        (None, None) => None,
    };
    if let Some(vocabulary) = vocabulary {
        let (tokens, what) = match &vocabulary {
            Vocabulary::Synthetic(n) => (*n, format!("--vocab {n}")),
            Vocabulary::Tokenizer(_, spec) => (spec.vocab.len(), format!("{} tokens", spec.vocab.len())),
        };
        let batch = batch.unwrap_or(32);
        if batch.saturating_mul(tokens) > BENCH_MAX_LOGITS {
            return Err(format!(
                "--batch {batch} x {what} is {} logits per step; at most {BENCH_MAX_LOGITS} (1 GiB of f32)",
                batch.saturating_mul(tokens)
            )
            .into());
        }
        let o = welt::bench::large::Options {
            vocabulary,
            batch,
            json: opts.json,
            quick: opts.quick,
        };
        return welt::bench::large::run(&o);
    }
    if batch.is_some() {
        return Err(
            "--batch needs --vocab or --tokenizer (`welt bench` alone runs B = 1, 3, 32, 256)".into(),
        );
    }
    welt::bench::run(&opts)
}

/// The value of `option`, a number in `lo..=hi` (the error names the range).
fn parse_bounded(parser: &mut lexopt::Parser, option: &str, lo: usize, hi: usize) -> Result<usize> {
    let value = parser.value()?;
    let text = value.to_string_lossy();
    match text.parse::<u64>() {
        Ok(n) if (lo as u64..=hi as u64).contains(&n) => Ok(n as usize),
        _ => Err(format!("{option} `{text}`: expected a number from {lo} to {hi}").into()),
    }
}

#[cfg(feature = "cuda")]
fn gpu_check(mut parser: lexopt::Parser) -> Result<()> {
    let mut opts = welt::gpu_check::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("quick") => opts.quick = true,
            Long("json") => opts.json = Some(parser.value()?.into()),
            Long("help") | Short('h') => return help(Some("gpu-check")),
            _ => return Err(arg.unexpected().into()),
        }
    }
    welt::gpu_check::run(&opts)
}

#[cfg(not(feature = "cuda"))]
fn gpu_check(mut parser: lexopt::Parser) -> Result<()> {
    // Its options are still checked, and --help still answers, without the feature.
    while let Some(arg) = parser.next()? {
        match arg {
            Long("quick") => {}
            Long("json") => drop(parser.value()?),
            Long("help") | Short('h') => return help(Some("gpu-check")),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Err("this `welt` was built without the `cuda` feature: cargo build --release --features cuda".into())
}
