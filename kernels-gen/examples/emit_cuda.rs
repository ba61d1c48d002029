//! Writes the default decoder's CUDA source and header: `cargo run -p kernels-gen --example emit_cuda -- DIR`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::utf8_bytes())?;
    std::fs::write(
        format!("{dir}/welt_utf8.cu"),
        kernels_gen::emit::cuda::source(&tables),
    )?;
    std::fs::write(
        format!("{dir}/welt_kernels.h"),
        kernels_gen::emit::cuda::header(&tables),
    )?;
    Ok(())
}
