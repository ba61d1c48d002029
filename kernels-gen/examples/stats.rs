//! Prints the statistics of WeLT's default decoder: `cargo run -p kernels-gen --example stats`.
fn main() -> Result<(), kernels_gen::Error> {
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::utf8_bytes())?;
    print!("{}", kernels_gen::emit::stats::emit(&tables));
    Ok(())
}
