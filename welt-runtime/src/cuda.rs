//! Decoding on an NVIDIA GPU (feature `cuda`): the automaton state lives on the device and
//! one fused kernel per step masks, samples, advances and stops, with no host
//! synchronization per token.
//!
//! cudarc loads the CUDA driver and NVRTC dynamically, so this builds without CUDA installed;
//! a machine without a driver (or without NVRTC, when no PTX is given) gets an `Err` from
//! [`CudaDecoder::new`], never a panic.
//!
//! ```no_run
//! use welt_runtime::cuda::{CudaDecoder, DeviceBatch};
//! use welt_runtime::{Sampler, Utf8Words};
//! # fn main() -> Result<(), welt_runtime::cuda::CudaError> {
//! let dec = CudaDecoder::new::<Utf8Words>(0)?;          // NVRTC compiles the kernels once
//! let mut batch = DeviceBatch::new(&dec, 32)?;
//! let logits = dec.stream().alloc_zeros::<f32>(32 * 256)?; // the model writes these
//! batch.step(&logits, 256, &Sampler::GREEDY)?;            // mask + argmax + advance + stop
//! let next = batch.next_tokens();                          // the model's next input, on device
//! # let _ = next; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::{Decoder, Error, OwnedTables, Sampler, Tables};

/// The cudarc this module is built on, for allocating logits and events with the same version.
pub use cudarc;

#[allow(non_camel_case_types, non_upper_case_globals, dead_code, missing_docs)]
mod abi {
    include!(concat!(env!("OUT_DIR"), "/welt_abi.rs"));
}

// SAFETY: bindgen's `#[repr(C)]` copies of the kernel ABI structs (pointers and integers only,
// no references or drop glue); its layout assertions check size and field offsets against
// the C header at compile time, so the bytes cudarc copies are what the kernel reads.
unsafe impl DeviceRepr for abi::welt_tables {}
// SAFETY: as above.
unsafe impl DeviceRepr for abi::welt_step_params {}

/// Threads per block of the fused step kernel (`WELT_BLOCK` in the CUDA source).
const STEP_BLOCK: u32 = 256;
/// Threads per block of the mask kernel (a multiple of 32: the kernel works by warps).
const MASK_BLOCK: u32 = 256;
/// Tokens one block of the mask kernel covers per pass: each warp takes 32 mask words of 64
/// tokens.
const MASK_BLOCK_TOKENS: u32 = MASK_BLOCK / 32 * 32 * 64;

/// What went wrong on the CUDA path.
#[derive(Debug, Clone)]
pub struct CudaError {
    kind: CudaErrorKind,
    message: String,
}

/// The kinds of [`CudaError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CudaErrorKind {
    /// No CUDA driver (or no NVRTC where the kernels had to be compiled) on this machine.
    Unavailable,
    /// NVRTC rejected the kernel source (the message holds its log).
    Compile,
    /// A CUDA driver call failed.
    Driver,
    /// Bad input (sizes, token ids).
    Input,
    /// A kernel reported a bad token: out of the vocabulary, or forbidden by the mask.
    Kernel,
}

impl CudaError {
    fn new(kind: CudaErrorKind, message: impl Into<String>) -> CudaError {
        CudaError {
            kind,
            message: message.into(),
        }
    }
    /// The kind.
    pub fn kind(&self) -> CudaErrorKind {
        self.kind
    }
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CudaError {}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> CudaError {
        CudaError::new(CudaErrorKind::Driver, format!("CUDA driver: {e}"))
    }
}

impl From<Error> for CudaError {
    fn from(e: Error) -> CudaError {
        CudaError::new(CudaErrorKind::Input, e.to_string())
    }
}

fn input(kind: crate::ErrorKind) -> CudaError {
    Error::new(kind).into()
}

/// Whether a CUDA driver library can be loaded here.
#[cfg(not(feature = "candle-cuda"))]
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the driver library by its usual names; nothing is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether the NVRTC library can be loaded here.
#[cfg(not(feature = "candle-cuda"))]
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the NVRTC library by its usual names; nothing is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether a CUDA driver library can be loaded here: with `candle-cuda` cudarc links CUDA at
/// build time (candle's `dynamic-linking`), so a program that runs has it.
#[cfg(feature = "candle-cuda")]
pub fn driver_present() -> bool {
    true
}

/// Whether the NVRTC library can be loaded here (linked at build time with `candle-cuda`).
#[cfg(feature = "candle-cuda")]
pub fn nvrtc_present() -> bool {
    true
}

/// Compiles a decoder's CUDA source to PTX with NVRTC for `arch` (e.g. `"sm_90"`; `None`: the
/// NVRTC default). Needs only NVRTC, not a GPU: CI uses it to check every generated source.
pub fn compile_ptx(source: &str, arch: Option<&'static str>) -> Result<Ptx, CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::new(
            CudaErrorKind::Unavailable,
            "NVRTC (libnvrtc) was not found",
        ));
    }
    let opts = CompileOptions {
        arch,
        name: Some("welt.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(source, opts)
        .map_err(|e| CudaError::new(CudaErrorKind::Compile, format!("NVRTC: {e:?}")))
}

/// A decoder's kernels and tables loaded on one GPU.
pub struct CudaDecoder {
    /// A copy of the host tables: the decoder borrows nothing, whatever `from_parts` was given.
    tables: OwnedTables,
    stream: Arc<CudaStream>,
    _module: Arc<CudaModule>,
    mask: [CudaFunction; 3],
    step: [CudaFunction; 3],
    advance: CudaFunction,
    entries: CudaSlice<u8>,
    class_of: Option<CudaSlice<u8>>,
    masks: CudaSlice<u8>,
}

impl fmt::Debug for CudaDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaDecoder")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl CudaDecoder {
    /// Loads decoder `D` on GPU `ordinal`, compiling its CUDA source with NVRTC.
    pub fn new<D: Decoder>(ordinal: usize) -> Result<CudaDecoder, CudaError> {
        CudaDecoder::from_parts(D::TABLES, D::CUDA_SOURCE, None, ordinal)
    }

    /// Loads tables and their generated CUDA source (or PTX compiled from it ahead of time).
    pub fn from_parts(
        tables: Tables<'_>,
        cuda_source: &str,
        ptx: Option<Ptx>,
        ordinal: usize,
    ) -> Result<CudaDecoder, CudaError> {
        if !driver_present() {
            return Err(CudaError::new(
                CudaErrorKind::Unavailable,
                "no CUDA driver (libcuda) on this machine",
            ));
        }
        let ptx = match ptx {
            Some(p) => p,
            None => compile_ptx(cuda_source, None)?,
        };
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: every buffer this decoder and its batches allocate is used on the one stream
        // below, so cudarc's cross-stream event tracking has nothing to synchronize; turning it
        // off keeps event records out of captured CUDA graphs.
        unsafe { ctx.disable_event_tracking() };
        // A stream of its own: CUDA graphs cannot capture the legacy default stream.
        let stream = ctx.new_stream()?;
        CudaDecoder::load(tables, ptx, stream)
    }

    /// Loads tables and their CUDA source (or PTX) on an existing stream — another library's,
    /// such as candle's, so that welt's kernels and that library's work are ordered on one
    /// stream and share its buffers. The stream's context is left as it is (event tracking
    /// included).
    pub fn on_stream(
        tables: Tables<'_>,
        cuda_source: &str,
        ptx: Option<Ptx>,
        stream: Arc<CudaStream>,
    ) -> Result<CudaDecoder, CudaError> {
        let ptx = match ptx {
            Some(p) => p,
            None => compile_ptx(cuda_source, None)?,
        };
        CudaDecoder::load(tables, ptx, stream)
    }

    /// Loads decoder `D` on the stream of a candle CUDA device (feature `candle-cuda`), for
    /// [`crate::DeviceMaskOp`] on that device's tensors.
    #[cfg(feature = "candle-cuda")]
    pub fn for_candle<D: Decoder>(device: &candle_core::CudaDevice) -> Result<CudaDecoder, CudaError> {
        CudaDecoder::on_stream(D::TABLES, D::CUDA_SOURCE, None, device.cuda_stream())
    }

    fn load(tables: Tables<'_>, ptx: Ptx, stream: Arc<CudaStream>) -> Result<CudaDecoder, CudaError> {
        let module = stream.context().load_module(ptx)?;
        let f = |name: &str| module.load_function(name);
        let mask = [f("welt_mask_f32")?, f("welt_mask_f16")?, f("welt_mask_bf16")?];
        let step = [f("welt_step_f32")?, f("welt_step_f16")?, f("welt_step_bf16")?];
        let advance = f("welt_advance")?;
        // The tables go up in the blob's own layout, whatever the kernels compiled in.
        let entries = stream.clone_htod(tables.entries)?;
        let class_of = if tables.classes == 0 {
            None
        } else {
            Some(stream.clone_htod(tables.class_of)?)
        };
        let masks = stream.clone_htod(tables.masks)?;
        Ok(CudaDecoder {
            tables: OwnedTables::from(tables),
            stream,
            _module: module,
            mask,
            step,
            advance,
            entries,
            class_of,
            masks,
        })
    }

    /// The stream every launch goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
    /// The tables.
    pub fn tables(&self) -> Tables<'_> {
        self.tables.as_tables()
    }

    fn device_tables(&self) -> abi::welt_tables {
        let (entries, _) = self.entries.device_ptr(&self.stream);
        let (masks, _) = self.masks.device_ptr(&self.stream);
        let class_of = self.class_of.as_ref().map_or(0, |c| c.device_ptr(&self.stream).0);
        abi::welt_tables {
            entries: entries as *const u16,
            class_of: class_of as *const u16,
            masks: masks as *const u64,
        }
    }
}

/// Logit element types the kernels take.
pub trait DeviceLogit: DeviceRepr + crate::Logit {
    #[doc(hidden)]
    const INDEX: usize;
}
impl DeviceLogit for f32 {
    const INDEX: usize = 0;
}
impl DeviceLogit for half::f16 {
    const INDEX: usize = 1;
}
impl DeviceLogit for half::bf16 {
    const INDEX: usize = 2;
}

/// B rows decoded on the device: state, length, flags, next tokens and the running count all
/// live in device memory.
pub struct DeviceBatch<'d> {
    dec: &'d CudaDecoder,
    batch: u32,
    max_len: u32,
    states: CudaSlice<u16>,
    lengths: CudaSlice<u16>,
    flags: CudaSlice<u8>,
    next_tokens: CudaSlice<u32>,
    running: CudaSlice<u32>,
    error: CudaSlice<u32>,
    draws: CudaSlice<u32>,
}

/// One fused step recorded as a CUDA graph (see [`DeviceBatch::capture_step`]).
pub struct StepGraph {
    graph: cudarc::driver::CudaGraph,
}

impl StepGraph {
    /// Replays the step on the decoder's stream (asynchronously).
    pub fn launch(&self) -> Result<(), CudaError> {
        self.graph.launch()?;
        Ok(())
    }
}

/// A copy of a batch's device state, for checks and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// Per row: the automaton state.
    pub states: Vec<u16>,
    /// Per row: tokens in the current word.
    pub lengths: Vec<u16>,
    /// Per row: `WELT_FLAG_*` bits (1 = stopped, 2 = finished).
    pub flags: Vec<u8>,
    /// Per row: the last chosen token (PAD for finished rows).
    pub next_tokens: Vec<u32>,
    /// Rows not finished.
    pub running: u32,
}

impl<'d> DeviceBatch<'d> {
    /// The decoder this batch runs on.
    pub fn decoder(&self) -> &'d CudaDecoder {
        self.dec
    }

    /// Number of rows.
    pub fn batch_size(&self) -> usize {
        self.batch as usize
    }

    /// `batch` empty words with the decoder's default word length limit.
    ///
    /// `Err` for 0 rows and for more than `u32::MAX` (the kernels count rows in `u32`).
    pub fn new(dec: &'d CudaDecoder, batch: usize) -> Result<DeviceBatch<'d>, CudaError> {
        let rows = device_rows(batch)?;
        let s = &dec.stream;
        let mut b = DeviceBatch {
            dec,
            batch: rows,
            max_len: u32::from(dec.tables().max_word_len()),
            states: s.alloc_zeros(batch)?,
            lengths: s.alloc_zeros(batch)?,
            flags: s.alloc_zeros(batch)?,
            next_tokens: s.alloc_zeros(batch)?,
            running: s.alloc_zeros(1)?,
            error: s.alloc_zeros(1)?,
            draws: s.alloc_zeros(batch)?,
        };
        b.reset()?;
        Ok(b)
    }

    /// Sets the word length limit in tokens (at most 65535: lengths are `u16` on the device).
    pub fn set_max_word_len(&mut self, n: u32) -> Result<(), CudaError> {
        self.max_len = device_word_len(n)?;
        Ok(())
    }

    /// Starts a new word in every row (asynchronously, on the stream). Draw counters go on,
    /// so the next word samples fresh random numbers.
    pub fn reset(&mut self) -> Result<(), CudaError> {
        let s = &self.dec.stream;
        s.memcpy_htod(
            &vec![self.dec.tables().start(); self.batch as usize],
            &mut self.states,
        )?;
        s.memset_zeros(&mut self.lengths)?;
        s.memset_zeros(&mut self.flags)?;
        s.memcpy_htod(&[self.batch], &mut self.running)?;
        s.memset_zeros(&mut self.error)?;
        Ok(())
    }

    fn check_logits<L>(&self, logits: &CudaSlice<L>, row_stride: usize) -> Result<(), CudaError> {
        let v = self.dec.tables().vocab_size();
        let need = crate::mask::min_logits_len(self.batch as usize, row_stride, v, logits.len())?;
        if logits.len() < need {
            return Err(input(crate::ErrorKind::LogitsSize {
                expected: need,
                got: logits.len(),
            }));
        }
        Ok(())
    }

    /// Masks the logits of every running row in place (`-inf` where forbidden).
    pub fn mask<L: DeviceLogit>(
        &self,
        logits: &mut CudaSlice<L>,
        row_stride: usize,
    ) -> Result<(), CudaError> {
        self.check_logits(logits, row_stride)?;
        let v = self.dec.tables().vocab;
        let cfg = LaunchConfig {
            // A block per MASK_BLOCK_TOKENS of the row; gridDim.y is at most 65,535. The kernel
            // loops over the words and rows past the grid, so any grid masks every row.
            grid_dim: (v.div_ceil(MASK_BLOCK_TOKENS).min(1024), self.batch.min(65_535), 1),
            block_dim: (MASK_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let t = self.dec.device_tables();
        let stride = row_stride as u64;
        let mut launch = self.dec.stream.launch_builder(&self.dec.mask[L::INDEX]);
        launch
            .arg(&t)
            .arg(logits)
            .arg(&stride)
            .arg(&self.states)
            .arg(&self.flags)
            .arg(&self.batch);
        // SAFETY: the arguments match `welt_mask_*(welt_tables, T*, u64, const u16*, const u8*,
        // u32)`; `check_logits` proved the buffer holds `batch` rows of `row_stride >= V`
        // elements, the per-row buffers hold `batch` entries, and the kernel bounds-checks
        // rows, tokens and states.
        unsafe { launch.launch(cfg) }?;
        Ok(())
    }

    /// Advances every running row by its token in `tokens` (on the device); finished rows get
    /// PAD in [`DeviceBatch::next_tokens`]. A bad token sets the error word, read by
    /// [`DeviceBatch::check_error`].
    pub fn advance(&mut self, tokens: &CudaSlice<u32>) -> Result<(), CudaError> {
        if tokens.len() < self.batch as usize {
            return Err(input(crate::ErrorKind::BatchSizeMismatch {
                expected: self.batch as usize,
                got: tokens.len(),
            }));
        }
        let cfg = LaunchConfig::for_num_elems(self.batch);
        let t = self.dec.device_tables();
        let mut launch = self.dec.stream.launch_builder(&self.dec.advance);
        launch
            .arg(&t)
            .arg(tokens)
            .arg(&mut self.next_tokens)
            .arg(&mut self.states)
            .arg(&mut self.lengths)
            .arg(&mut self.flags)
            .arg(&self.batch)
            .arg(&self.max_len)
            .arg(&mut self.running)
            .arg(&mut self.error);
        // SAFETY: the arguments match `welt_advance(welt_tables, const u32*, u32*, u16*, u16*,
        // u8*, u32, u32, u32*, u32*)`; every per-row buffer holds `batch` entries (`tokens`
        // checked above), `running` and `error` one, and the kernel checks rows, token ids and
        // states before any table lookup.
        unsafe { launch.launch(cfg) }?;
        Ok(())
    }

    /// The fused step for every row: mask, choose, advance, stop, length limit, PAD, next
    /// input token. The logits are read, not modified. Nothing is copied to the host.
    pub fn step<L: DeviceLogit>(
        &mut self,
        logits: &CudaSlice<L>,
        row_stride: usize,
        sampler: &Sampler,
    ) -> Result<(), CudaError> {
        sampler.check()?;
        self.check_logits(logits, row_stride)?;
        let s = &self.dec.stream;
        let (logits_ptr, _g0) = logits.device_ptr(s);
        let (states, _g1) = self.states.device_ptr(s);
        let (lengths, _g2) = self.lengths.device_ptr(s);
        let (flags, _g3) = self.flags.device_ptr(s);
        let (next_tokens, _g4) = self.next_tokens.device_ptr(s);
        let (running, _g5) = self.running.device_ptr(s);
        let (error, _g6) = self.error.device_ptr(s);
        let (draws, _g7) = self.draws.device_ptr(s);
        let p = abi::welt_step_params {
            tables: self.dec.device_tables(),
            logits: logits_ptr as *mut std::ffi::c_void,
            row_stride: row_stride as u64,
            batch: self.batch,
            max_word_len: self.max_len,
            states: states as *mut u16,
            lengths: lengths as *mut u16,
            flags: flags as *mut u8,
            next_tokens: next_tokens as *mut u32,
            running: running as *mut u32,
            error: error as *mut u32,
            // The kernel's greedy test is `temperature <= 0`: a sampler that is greedy by
            // `Sampler::is_greedy` (a subnormal temperature) goes as 0, as on the CPU.
            temperature: if sampler.is_greedy() {
                0.0
            } else {
                sampler.temperature
            },
            top_k: sampler.top_k,
            top_p: sampler.top_p,
            seed: sampler.seed,
            draws: draws as *mut u32,
        };
        let cfg = LaunchConfig {
            // gridDim.x is at most 2^31 - 1: the kernel loops over the rows past it.
            grid_dim: (self.batch.min(i32::MAX as u32), 1, 1),
            block_dim: (STEP_BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = s.launch_builder(&self.dec.step[L::INDEX]);
        launch.arg(&p);
        // SAFETY: `welt_step_*` takes one `welt_step_params` by value (bindgen's copy of the C
        // struct); every pointer in it is a live device allocation of this context held
        // borrowed for the launch (`_g*` guards), with `batch` entries per row buffer and
        // `check_logits`-verified logits; the kernel runs one block of STEP_BLOCK threads per
        // row, the block size it checks for, and bounds-checks rows, tokens and states.
        unsafe { launch.launch(cfg) }?;
        Ok(())
    }

    /// Records one fused step (with these buffers and settings) as a CUDA graph: replaying it
    /// runs the step with one launch call and no per-kernel CPU overhead. The per-row draw
    /// counters live on the device, so every replay samples fresh random numbers.
    pub fn capture_step<L: DeviceLogit>(
        &mut self,
        logits: &CudaSlice<L>,
        row_stride: usize,
        sampler: &Sampler,
    ) -> Result<StepGraph, CudaError> {
        let stream = self.dec.stream.clone();
        stream
            .begin_capture(cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
        let launched = self.step(logits, row_stride, sampler);
        let graph = stream.end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0));
        launched?;
        let graph = graph?
            .ok_or_else(|| CudaError::new(CudaErrorKind::Driver, "stream capture produced no graph"))?;
        graph.upload()?;
        Ok(StepGraph { graph })
    }

    /// The tokens chosen by the last step (PAD for finished rows): the model's next input.
    pub fn next_tokens(&self) -> &CudaSlice<u32> {
        &self.next_tokens
    }

    /// Waits for the stream and reads the number of rows still running.
    pub fn running(&self) -> Result<u32, CudaError> {
        Ok(self.dec.stream.clone_dtoh(&self.running)?[0])
    }

    /// Waits for the stream and turns a kernel-reported bad token into an `Err`.
    pub fn check_error(&self) -> Result<(), CudaError> {
        let bits = self.dec.stream.clone_dtoh(&self.error)?[0];
        if bits == 0 {
            return Ok(());
        }
        Err(CudaError::new(
            CudaErrorKind::Kernel,
            format!("a kernel rejected a token (error bits {bits:#x}: 1 = out of vocabulary, 2 = forbidden, 4 = no allowed token)"),
        ))
    }

    /// Overwrites the next-token buffer with `value` (to poison it before a check).
    pub fn fill_next_tokens(&mut self, value: u32) -> Result<(), CudaError> {
        self.dec
            .stream
            .memcpy_htod(&vec![value; self.batch as usize], &mut self.next_tokens)?;
        Ok(())
    }

    /// Waits for the stream and copies the batch's state to the host.
    pub fn download(&self) -> Result<HostState, CudaError> {
        let s = &self.dec.stream;
        Ok(HostState {
            states: s.clone_dtoh(&self.states)?,
            lengths: s.clone_dtoh(&self.lengths)?,
            flags: s.clone_dtoh(&self.flags)?,
            next_tokens: s.clone_dtoh(&self.next_tokens)?,
            running: s.clone_dtoh(&self.running)?[0],
        })
    }
}

/// The device's row count: the kernels take the batch size, and count rows, in `u32`.
fn device_rows(batch: usize) -> Result<u32, Error> {
    if batch == 0 {
        return Err(Error::new(crate::ErrorKind::EmptyBatch));
    }
    u32::try_from(batch).map_err(|_| {
        Error::new(crate::ErrorKind::TooManyRows {
            rows: batch,
            limit: u32::MAX,
        })
    })
}

/// The device's word length limit: lengths are `u16` there.
fn device_word_len(n: u32) -> Result<u32, Error> {
    let limit = u32::from(u16::MAX);
    if n == 0 {
        return Err(Error::new(crate::ErrorKind::ZeroWordLength));
    }
    if n > limit {
        return Err(Error::new(crate::ErrorKind::WordLengthTooLong {
            max_len: n,
            limit,
        }));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A batch past `u32::MAX` rows is refused, not truncated to its low 32 bits (2^32 + 3
    /// rows would run as 3).
    #[test]
    fn the_device_batch_is_1_to_u32_max_rows_with_an_error_for_each_side() {
        assert_eq!(device_rows(1), Ok(1));
        assert_eq!(device_rows(u32::MAX as usize), Ok(u32::MAX));
        assert_eq!(device_rows(0).unwrap_err().kind(), ErrorKind::EmptyBatch);
        for rows in [u32::MAX as usize + 1, (1usize << 32) + 3, usize::MAX] {
            assert_eq!(
                device_rows(rows).unwrap_err().kind(),
                ErrorKind::TooManyRows {
                    rows,
                    limit: u32::MAX
                }
            );
        }
    }

    #[test]
    fn the_device_word_limit_is_1_to_65535_with_an_error_for_each_side() {
        assert_eq!(device_word_len(1), Ok(1));
        assert_eq!(device_word_len(65_535), Ok(65_535));
        assert_eq!(device_word_len(0).unwrap_err().kind(), ErrorKind::ZeroWordLength);
        for n in [65_536, u32::MAX] {
            assert_eq!(
                device_word_len(n).unwrap_err().kind(),
                ErrorKind::WordLengthTooLong {
                    max_len: n,
                    limit: 65_535
                }
            );
        }
    }
}
