//! With the `cuda` feature: Rust declarations of the kernel ABI, made by bindgen from the C
//! header that kernels-gen emits with every decoder's CUDA source. Without it: nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("welt_abi.rs");
        bindgen::Builder::default()
            .header_contents("welt_kernels.h", kernels_gen::emit::cuda::ABI)
            .allowlist_type("welt_.*")
            .allowlist_var("WELT_.*")
            .derive_default(true)
            .layout_tests(true)
            .generate()
            .map_err(|e| {
                format!("bindgen could not read the kernel ABI header (is libclang installed?): {e}")
            })?
            .write_to_file(&out)?;
    }
    Ok(())
}
