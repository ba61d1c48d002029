//! `welt`: generate, inspect, query and benchmark welt's decoder tables.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;
use welt_runtime::{Decoder, Utf8Words};

const USAGE: &str = "\
welt — WeLT's word decoding constraints as one generated automaton

USAGE:
    welt tables [--emit rust|dot|stats] [-o FILE]
        Generate the default decoder's tables (UTF-8 bytes, WeLT's word rule) and print them
        as Rust source, a Graphviz DOT graph, or statistics (default: stats).
    welt query [FILE]
        Read JSONL lines with a \"bytes\" array (from FILE or stdin) and print, for each, the
        mask, stop flag and reachability after those bytes.
    welt bench [--json] [--quick]
        CPU cost per decoding step of mask + advance + stop, beside a Rust port of the
        reference algorithm and the floor (one pass writing every logit).
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
        "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`; try `welt help`").into()),
    }
}

fn tables(mut parser: lexopt::Parser) -> Result<()> {
    let mut emit = "stats".to_string();
    let mut out: Option<PathBuf> = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("emit") => emit = parser.value()?.string()?,
            Short('o') | Long("output") => out = Some(parser.value()?.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::utf8_bytes())?;
    let text = match emit.as_str() {
        "rust" => {
            kernels_gen::emit::rust::decoder_file(&tables, "Utf8Words", "WeLT's default byte decoder.")?
        }
        "dot" => kernels_gen::emit::dot::emit(&tables),
        "stats" => kernels_gen::emit::stats::emit(&tables),
        other => return Err(format!("unknown --emit `{other}`; expected rust, dot or stats").into()),
    };
    write_output(out, text.as_bytes())
}

/// Writes to a file atomically (a temporary file renamed into place), or to stdout.
fn write_output(out: Option<PathBuf>, bytes: &[u8]) -> Result<()> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
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
    while let Some(arg) = parser.next()? {
        match arg {
            Value(v) if file.is_none() => file = Some(v.into()),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let tables = Utf8Words::TABLES;
    let out = match &file {
        Some(path) if path.as_os_str() != "-" => {
            let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            welt::query::run(&tables, BufReader::new(f))
        }
        _ => welt::query::run(&tables, std::io::stdin().lock()),
    }
    .map_err(|e| match &file {
        Some(p) => format!("{}: {e}", p.display()),
        None => format!("<stdin>: {e}"),
    })?;
    write_output(None, out.as_bytes())
}

fn bench(mut parser: lexopt::Parser) -> Result<()> {
    let mut opts = welt::bench::Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("json") => opts.json = true,
            Long("quick") => opts.quick = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    welt::bench::run(&opts)
}
