//! The mask as candle in-place ops on `[B, V]` logits tensors: [`MaskOp`] from a
//! [`WordBatch`] on the CPU, `DeviceMaskOp` from a [`crate::cuda::DeviceBatch`] on a CUDA
//! device (feature `candle-cuda`), and the op [`crate::WordGenerator`] masks with through any
//! [`Constraint`].

use candle_core::{CpuStorage, InplaceOp1, Layout};

use crate::generate::{Constraint, GenerateError};
use crate::{Error, ErrorKind, Logit, WordBatch};

/// The mask of a [`WordBatch`] as an in-place candle op: `logits.inplace_op1(&MaskOp(&batch))`
/// writes `-inf` into forbidden logits of a `[B, V]` tensor (f32, f64, f16, bf16; contiguous
/// rows). On the CPU it runs [`WordBatch::apply_mask`]; another device is an `Err`: on a GPU
/// the state belongs on the device too, which is `DeviceMaskOp` (feature `candle-cuda`).
pub struct MaskOp<'a, 't>(pub &'a WordBatch<'t>);

fn cerr(e: Error) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

fn mask_slice<L: Logit>(batch: &WordBatch<'_>, v: &mut [L], layout: &Layout) -> candle_core::Result<()> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("welt mask: the logits must be contiguous".into()))?;
    let dims = layout.dims();
    let vocab = batch.tables().vocab_size();
    if dims.len() != 2 || dims[0] != batch.batch_size() || dims[1] != vocab {
        return Err(cerr(Error::new(ErrorKind::LogitsSize {
            expected: batch.batch_size() * vocab,
            got: end - start,
        })));
    }
    batch.apply_mask(&mut v[start..end]).map_err(cerr)
}

impl InplaceOp1 for MaskOp<'_, '_> {
    fn name(&self) -> &'static str {
        "welt-mask"
    }
    #[cfg(feature = "candle-cuda")]
    fn cuda_fwd(&self, _: &mut candle_core::CudaStorage, _: &Layout) -> candle_core::Result<()> {
        Err(candle_core::Error::Msg(
            "welt MaskOp masks CPU tensors from a WordBatch; for a CUDA tensor keep the state on \
             the device: DeviceMaskOp with a DeviceBatch (CudaDecoder::for_candle)"
                .into(),
        ))
    }
    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        match storage {
            CpuStorage::F32(v) => mask_slice(self.0, v, layout),
            CpuStorage::F64(v) => mask_slice(self.0, v, layout),
            CpuStorage::F16(v) => mask_slice(self.0, v, layout),
            CpuStorage::BF16(v) => mask_slice(self.0, v, layout),
            _ => Err(candle_core::Error::Msg(
                "welt mask: logits must be f32, f64, f16 or bf16".into(),
            )),
        }
    }
}

/// The mask of a [`crate::cuda::DeviceBatch`] as an in-place candle op on a CUDA tensor
/// (feature `candle-cuda`): `logits.inplace_op1(&DeviceMaskOp(&batch))` writes `-inf` into
/// the forbidden logits of a `[B, V]` tensor (f32, f16, bf16; contiguous, from its start)
/// with welt's mask kernel, on candle's stream, from the batch's state on the device — no
/// copy to the host. Build the decoder with [`crate::cuda::CudaDecoder::for_candle`] on the
/// tensor's device; another stream, a tensor on the CPU or of another shape is an `Err`.
#[cfg(feature = "candle-cuda")]
pub struct DeviceMaskOp<'a, 'd>(pub &'a crate::cuda::DeviceBatch<'d>);

#[cfg(feature = "candle-cuda")]
impl InplaceOp1 for DeviceMaskOp<'_, '_> {
    fn name(&self) -> &'static str {
        "welt-device-mask"
    }
    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        Err(candle_core::Error::Msg(
            "welt DeviceMaskOp masks CUDA tensors; use MaskOp with a WordBatch on the CPU".into(),
        ))
    }
    fn cuda_fwd(&self, storage: &mut candle_core::CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        use candle_core::backend::BackendStorage;
        use std::sync::Arc;
        let batch = self.0;
        let dec = batch.decoder();
        if !Arc::ptr_eq(dec.stream(), &storage.device.cuda_stream()) {
            return Err(candle_core::Error::Msg(
                "welt DeviceMaskOp: the batch's decoder is not on this tensor's stream \
                 (build it with CudaDecoder::for_candle on the tensor's device)"
                    .into(),
            ));
        }
        let vocab = dec.tables().vocab_size();
        let dims = layout.dims();
        let whole = batch.batch_size() * vocab;
        if dims.len() != 2 || dims[0] != batch.batch_size() || dims[1] != vocab {
            return Err(cerr(Error::new(ErrorKind::LogitsSize {
                expected: whole,
                got: layout.shape().elem_count(),
            })));
        }
        if layout.contiguous_offsets() != Some((0, whole)) {
            return Err(candle_core::Error::Msg(
                "welt DeviceMaskOp: the logits must be contiguous and start at the buffer's start".into(),
            ));
        }
        let derr = |e: crate::cuda::CudaError| candle_core::Error::Msg(e.to_string());
        match storage.dtype() {
            candle_core::DType::F32 => batch
                .mask(storage.as_cuda_slice_mut::<f32>()?, vocab)
                .map_err(derr),
            candle_core::DType::F16 => batch
                .mask(storage.as_cuda_slice_mut::<half::f16>()?, vocab)
                .map_err(derr),
            candle_core::DType::BF16 => batch
                .mask(storage.as_cuda_slice_mut::<half::bf16>()?, vocab)
                .map_err(derr),
            other => Err(candle_core::Error::Msg(format!(
                "welt DeviceMaskOp: logits must be f32, f16 or bf16, not {other:?}"
            ))),
        }
    }
}

/// Masks through any [`Constraint`] (f32 CPU tensors).
pub(crate) struct ConstraintMask<'a, C: Constraint>(pub &'a C);

impl<C: Constraint> InplaceOp1 for ConstraintMask<'_, C> {
    fn name(&self) -> &'static str {
        "welt-constraint-mask"
    }
    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(v) = storage else {
            return Err(candle_core::Error::Msg("WordGenerator needs f32 logits".into()));
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("the logits must be contiguous".into()))?;
        self.0.mask_f32(&mut v[start..end]).map_err(|e| match e.into() {
            GenerateError::Welt(e) => cerr(e),
            other => candle_core::Error::Msg(other.to_string()),
        })
    }
}
