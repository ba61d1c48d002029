//! The `welt` command-line tool's library: `welt query`, `welt bench` (with the Rust port of
//! the reference algorithm it is measured against), `welt demo` and its byte Llama. The runtime
//! that programs link is `welt-runtime`; the generator is `kernels-gen`.

// `unsafe` only in `bench::floor::wide` (the floor's vector stores), each use with its SAFETY note.
#![deny(unsafe_code)]

pub mod bench;
pub mod demo;
#[cfg(feature = "cuda")]
pub mod gpu_check;
pub mod model;
pub mod query;
pub mod rng;

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
