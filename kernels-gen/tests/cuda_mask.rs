//! The CUDA mask kernel run on the CPU (no GPU here): `welt_mask_impl`, cut verbatim out of
//! `kernels.cu`, compiled as C++ with shims for the warp intrinsics (`cuda_mask_harness.cpp`:
//! a thread per lane, ballot and shuffle through a barrier) and run on every warp of several
//! grids, for vocabularies around every boundary the kernel decides at (a 64-token word, a
//! warp's 2,048 tokens, a block's 16,384); its logits must equal a per-token mask's. Needs a
//! C++20 compiler (`CXX`, else `c++`); without one the test says so and passes, unless
//! `WELT_REQUIRE_CXX` is set.

use std::path::Path;
use std::process::Command;

#[test]
fn the_mask_kernel_writes_exactly_the_forbidden_tokens() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kernels = std::fs::read_to_string(dir.join("src/emit/cuda/kernels.cu")).unwrap();
    let start = kernels
        .find("template <typename E>\n__device__ void welt_mask_impl(")
        .expect("welt_mask_impl in kernels.cu");
    let end = start + kernels[start..].find("\n}\n").expect("the end of welt_mask_impl") + 3;
    let out = std::env::temp_dir().join(format!("welt-cuda-mask-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mask_impl.inc"), &kernels[start..end]).unwrap();
    std::fs::copy(dir.join("tests/cuda_mask_harness.cpp"), out.join("harness.cpp")).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("WELT_REQUIRE_CXX").is_none(),
            "WELT_REQUIRE_CXX is set but {cxx} does not run"
        );
        eprintln!("skipped: no C++ compiler ({cxx})");
        return;
    }
    for v in [1u32, 63, 64, 65, 2047, 2048, 2049, 4097, 16_385, 20_011] {
        let exe = out.join(format!("mask_{v}"));
        let build = Command::new(&cxx)
            .args(["-std=c++20", "-O1", "-pthread", &format!("-DWELT_V={v}u"), "-o"])
            .arg(&exe)
            .arg(out.join("harness.cpp"))
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "V={v}: {cxx} failed:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let run = Command::new(&exe).output().unwrap();
        assert!(
            run.status.success(),
            "V={v}: the kernel's logits differ from a per-token mask:\n{}",
            String::from_utf8_lossy(&run.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
