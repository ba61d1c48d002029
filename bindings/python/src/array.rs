//! Arrays from Python without copying: a torch CPU tensor (read through its attributes, the
//! fast path), or anything that speaks DLPack (`__dlpack__`: numpy, and torch too). Neither
//! imports torch: a tensor is recognised as an instance of `torch.Tensor` only once some other
//! code has imported torch (it is then in `sys.modules`).
//!
//! What comes out is an [`ArrayView`]: a pointer, an element type, a shape and strides in
//! elements, checked against what the caller needs (dimensions, type, writability, device,
//! alignment) before any memory is touched. The raw-pointer reads and writes live in the
//! functions at the bottom, each with its `SAFETY` argument.

use std::ffi::c_void;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyCapsule, PyDict, PyTuple};

/// An element type the bindings read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    U16,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::U16 => 2,
            DType::Bool => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::U16 => "uint16",
            DType::Bool => "bool",
        }
    }
}

/// A strided array of at most 2 dimensions, borrowed from a Python object for one call.
pub struct ArrayView<'py> {
    pub ptr: *mut u8,
    pub dtype: DType,
    pub ndim: usize,
    /// `shape[..ndim]`; the rest is 1.
    pub shape: [usize; 2],
    /// In elements, `strides[..ndim]`.
    pub strides: [isize; 2],
    /// Keeps the DLPack capsule (and so the producer's memory) alive while the view is used;
    /// dropping it runs the producer's deleter.
    _keep: Option<Bound<'py, PyAny>>,
}

/// How a caller will use an array.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Describes `what` for error messages ("logits", "input_ids", ...).
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// torch's tensor type and dtypes, found in `sys.modules` once torch has been imported by
/// someone else.
struct Torch {
    tensor: Py<PyAny>,
    dtypes: Vec<(Py<PyAny>, DType)>,
}

static TORCH: GILOnceCell<Torch> = GILOnceCell::new();
static SYS_MODULES: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

fn torch(py: Python<'_>) -> Option<&'static Torch> {
    if let Some(t) = TORCH.get(py) {
        return Some(t);
    }
    // `sys.modules` itself, looked up once: importing `sys` on every call costs a microsecond.
    let modules = SYS_MODULES
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("sys")?.getattr("modules")?.unbind())
        })
        .ok()?
        .bind(py);
    let torch = modules
        .downcast::<PyDict>()
        .ok()?
        .get_item(intern!(py, "torch"))
        .ok()??;
    let tensor = torch.getattr("Tensor").ok()?.unbind();
    let mut dtypes = Vec::new();
    for (name, dt) in [
        ("float32", DType::F32),
        ("float16", DType::F16),
        ("bfloat16", DType::BF16),
        ("float64", DType::F64),
        ("int64", DType::I64),
        ("int32", DType::I32),
        ("uint16", DType::U16),
        ("bool", DType::Bool),
    ] {
        // torch.uint16 is recent; a torch without it has no such tensors either.
        if let Ok(d) = torch.getattr(name) {
            dtypes.push((d.unbind(), dt));
        }
    }
    let _ = TORCH.set(py, Torch { tensor, dtypes });
    TORCH.get(py)
}

/// The array behind `obj`, checked: `ndim` dimensions, one of `dtypes`, writable if `access`
/// says so, on the CPU, aligned for its element type.
pub fn view<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    ndim: usize,
    dtypes: &[DType],
    access: Access,
) -> PyResult<ArrayView<'py>> {
    let py = obj.py();
    let v = match torch(py) {
        Some(t) if obj.is_instance(t.tensor.bind(py))? => torch_view(obj, t, what, access)?,
        _ => dlpack_view(obj, what, access)?,
    };
    if v.ndim != ndim {
        return Err(PyValueError::new_err(format!(
            "{what} must have {ndim} dimension{}, got {} (shape {:?})",
            if ndim == 1 { "" } else { "s" },
            v.ndim,
            &v.shape[..v.ndim.min(2)]
        )));
    }
    if !dtypes.contains(&v.dtype) {
        let names: Vec<&str> = dtypes.iter().map(|d| d.name()).collect();
        return Err(PyTypeError::new_err(format!(
            "{what} must be of dtype {}, got {}",
            names.join(" or "),
            v.dtype.name()
        )));
    }
    if !(v.ptr as usize).is_multiple_of(v.dtype.size()) {
        return Err(PyValueError::new_err(format!(
            "{what}'s data is not aligned for {} (address {:#x})",
            v.dtype.name(),
            v.ptr as usize
        )));
    }
    Ok(v)
}

fn shape_strides(
    what: &str,
    shape: &Bound<'_, PyAny>,
    strides: &Bound<'_, PyAny>,
) -> PyResult<(usize, [usize; 2], [isize; 2])> {
    // torch.Size and the tuple of `stride()` are tuples.
    let (shape, strides) = (shape.downcast::<PyTuple>()?, strides.downcast::<PyTuple>()?);
    let n = shape.len();
    if n > 2 || strides.len() != n {
        return Err(PyValueError::new_err(format!(
            "{what} must have 1 or 2 dimensions, got {n}"
        )));
    }
    let (mut s, mut st) = ([1usize; 2], [0isize; 2]);
    for i in 0..n {
        s[i] = shape.get_item(i)?.extract()?;
        st[i] = strides.get_item(i)?.extract()?;
    }
    Ok((n, s, st))
}

/// A torch tensor, through `is_cpu`, `dtype`, `shape`, `stride()` and `data_ptr()`: a few
/// attribute reads, much cheaper than exporting a DLPack capsule each step.
fn torch_view<'py>(
    obj: &Bound<'py, PyAny>,
    t: &Torch,
    what: &str,
    access: Access,
) -> PyResult<ArrayView<'py>> {
    let py = obj.py();
    if !obj.getattr(intern!(py, "is_cpu"))?.is_truthy()? {
        let device = obj.getattr(intern!(py, "device"))?.str()?.to_string();
        return Err(PyValueError::new_err(format!(
            "{what} is on device {device}; WordBatch works on CPU tensors (use welt.hf for the GPU, or .cpu())"
        )));
    }
    let dt = obj.getattr(intern!(py, "dtype"))?;
    let Some(dtype) = t.dtypes.iter().find(|(d, _)| d.bind(py).is(&dt)).map(|(_, x)| *x) else {
        return Err(PyTypeError::new_err(format!(
            "{what} has dtype {}, which welt does not read",
            dt.str()?
        )));
    };
    // Only floating-point tensors can require grad.
    let float = matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64);
    if access == Access::Write && float && obj.getattr(intern!(py, "requires_grad"))?.is_truthy()? {
        return Err(PyValueError::new_err(format!(
            "{what} requires grad; welt writes it in place, so pass a tensor that does not (.detach() or torch.no_grad())"
        )));
    }
    // A tensor without strides or storage (sparse, mkldnn, ...) refuses `stride()` or
    // `data_ptr()`: dense tensors only.
    let not_dense = |_| {
        let layout = obj
            .getattr(intern!(py, "layout"))
            .and_then(|l| l.str().map(|s| s.to_string()))
            .unwrap_or_default();
        PyTypeError::new_err(format!(
            "{what} has layout {layout}; welt reads dense (strided) tensors"
        ))
    };
    let strides = obj.call_method0(intern!(py, "stride")).map_err(not_dense)?;
    let ptr: usize = obj
        .call_method0(intern!(py, "data_ptr"))
        .map_err(not_dense)?
        .extract()?;
    let (ndim, shape, strides) = shape_strides(what, &obj.getattr(intern!(py, "shape"))?, &strides)?;
    Ok(ArrayView {
        ptr: ptr as *mut u8,
        dtype,
        ndim,
        shape,
        strides,
        _keep: None,
    })
}

// The DLPack ABI (dlpack.h, v1.0; the legacy struct is v0.x's).
#[repr(C)]
#[derive(Clone, Copy)]
struct DLDevice {
    device_type: i32,
    device_id: i32,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct DLDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}
#[repr(C)]
struct DLTensor {
    data: *mut c_void,
    device: DLDevice,
    ndim: i32,
    dtype: DLDataType,
    shape: *const i64,
    strides: *const i64,
    byte_offset: u64,
}
#[repr(C)]
struct DLManagedTensor {
    dl_tensor: DLTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensor)>,
}
#[repr(C)]
struct DLPackVersion {
    major: u32,
    minor: u32,
}
#[repr(C)]
struct DLManagedTensorVersioned {
    version: DLPackVersion,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DLTensor,
}
const DLPACK_FLAG_BITMASK_READ_ONLY: u64 = 1;
const KDL_CPU: i32 = 1;

fn dlpack_dtype(dt: DLDataType) -> Option<DType> {
    if dt.lanes != 1 {
        return None;
    }
    Some(match (dt.code, dt.bits) {
        (2, 32) => DType::F32,
        (2, 16) => DType::F16,
        (2, 64) => DType::F64,
        (4, 16) => DType::BF16,
        (0, 64) => DType::I64,
        (0, 32) => DType::I32,
        (1, 16) => DType::U16,
        (6, 8) => DType::Bool,
        _ => return None,
    })
}

fn dlpack_dtype_name(dt: DLDataType) -> String {
    let kind = match dt.code {
        0 => "int",
        1 => "uint",
        2 => "float",
        4 => "bfloat",
        5 => "complex",
        6 => "bool",
        _ => "code",
    };
    format!(
        "{kind}{}{}",
        dt.bits,
        if dt.lanes == 1 {
            String::new()
        } else {
            format!("x{}", dt.lanes)
        }
    )
}

/// Anything with `__dlpack__` (numpy arrays, torch tensors, ...). The device is asked first
/// (`__dlpack_device__`), so that a GPU array is refused before it is exported. The capsule
/// is not consumed: it stays named `dltensor`, so dropping it runs the producer's deleter.
fn dlpack_view<'py>(obj: &Bound<'py, PyAny>, what: &str, access: Access) -> PyResult<ArrayView<'py>> {
    let py = obj.py();
    let not_array = || {
        PyTypeError::new_err(format!(
            "{what} must be a torch tensor or a numpy array (an object with __dlpack__), got {}",
            type_name(obj)
        ))
    };
    if !obj.hasattr(intern!(py, "__dlpack__"))? {
        return Err(not_array());
    }
    if obj.hasattr(intern!(py, "__dlpack_device__"))? {
        let (device_type, device_id): (i32, i32) = obj
            .call_method0(intern!(py, "__dlpack_device__"))?
            .extract()
            .map_err(|_| not_array())?;
        if device_type != KDL_CPU {
            return Err(PyValueError::new_err(format!(
                "{what} is on DLPack device ({device_type}, {device_id}), not the CPU; WordBatch works on CPU arrays"
            )));
        }
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("max_version", (1, 0))?;
    let capsule = match obj.call_method(intern!(py, "__dlpack__"), (), Some(&kwargs)) {
        Ok(c) => c,
        // A producer from before DLPack 1.0 takes no `max_version`.
        Err(e) if e.is_instance_of::<PyTypeError>(py) => obj
            .call_method0(intern!(py, "__dlpack__"))
            .map_err(|e| export_error(py, what, e))?,
        Err(e) => return Err(export_error(py, what, e)),
    };
    let cap = capsule.downcast::<PyCapsule>().map_err(|_| not_array())?;
    let name = cap.name()?.map(|n| n.to_owned());
    let versioned = c"dltensor_versioned";
    let legacy = c"dltensor";
    // SAFETY: a capsule named `dltensor_versioned` holds a `DLManagedTensorVersioned`, one
    // named `dltensor` a `DLManagedTensor` (the DLPack protocol); `capsule` keeps it alive
    // until the view is dropped (the producer's deleter runs only when the capsule is freed).
    // The pointer is checked for null before use.
    let (t, read_only): (&DLTensor, bool) = unsafe {
        match name.as_deref() {
            Some(n) if n == versioned => {
                let p = cap.pointer() as *const DLManagedTensorVersioned;
                if p.is_null() {
                    return Err(not_array());
                }
                if (*p).version.major != 1 {
                    return Err(PyValueError::new_err(format!(
                        "{what}: DLPack version {}.{} is not supported (1.x is)",
                        (*p).version.major,
                        (*p).version.minor
                    )));
                }
                (&(*p).dl_tensor, (*p).flags & DLPACK_FLAG_BITMASK_READ_ONLY != 0)
            }
            Some(n) if n == legacy => {
                let p = cap.pointer() as *const DLManagedTensor;
                if p.is_null() {
                    return Err(not_array());
                }
                (&(*p).dl_tensor, false)
            }
            _ => return Err(not_array()),
        }
    };
    if t.device.device_type != KDL_CPU {
        return Err(PyValueError::new_err(format!(
            "{what} is on DLPack device ({}, {}), not the CPU; WordBatch works on CPU arrays",
            t.device.device_type, t.device.device_id
        )));
    }
    if access == Access::Write && read_only {
        return Err(PyValueError::new_err(format!(
            "{what} is read-only; welt writes it in place"
        )));
    }
    let Some(dtype) = dlpack_dtype(t.dtype) else {
        return Err(PyTypeError::new_err(format!(
            "{what} has dtype {}, which welt does not read",
            dlpack_dtype_name(t.dtype)
        )));
    };
    let ndim = t.ndim;
    if !(1..=2).contains(&ndim) {
        return Err(PyValueError::new_err(format!(
            "{what} must have 1 or 2 dimensions, got {ndim}"
        )));
    }
    let ndim = ndim as usize;
    let (mut shape, mut strides) = ([1usize; 2], [0isize; 2]);
    // SAFETY: `shape` (and `strides`, when not null) point to `ndim` int64 values (DLPack), and
    // `ndim` is 1 or 2 here.
    unsafe {
        if t.shape.is_null() {
            return Err(not_array());
        }
        for (i, s) in shape.iter_mut().enumerate().take(ndim) {
            *s = usize::try_from(*t.shape.add(i)).map_err(|_| not_array())?;
        }
        if t.strides.is_null() {
            // Null strides: compact and row-major.
            strides[ndim - 1] = 1;
            if ndim == 2 {
                strides[0] = shape[1] as isize;
            }
        } else {
            for (i, s) in strides.iter_mut().enumerate().take(ndim) {
                *s = isize::try_from(*t.strides.add(i)).map_err(|_| not_array())?;
            }
        }
    }
    let offset = usize::try_from(t.byte_offset).map_err(|_| not_array())?;
    let ptr = (t.data as *mut u8).wrapping_add(offset);
    Ok(ArrayView {
        ptr,
        dtype,
        ndim,
        shape,
        strides,
        _keep: Some(capsule),
    })
}

/// numpy refuses to export a read-only array through legacy DLPack with a BufferError; any
/// export error becomes a ValueError that names the argument.
fn export_error(py: Python<'_>, what: &str, e: PyErr) -> PyErr {
    let msg = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    PyValueError::new_err(format!("{what} cannot be read through DLPack: {msg}"))
}

impl ArrayView<'_> {
    /// Masks rows in place: the view is 2-D, `rows` rows of at least `vocab` logits, last
    /// dimension contiguous, rows at a positive stride. Calls `f` with the logits as one
    /// slice of the minimal length `(rows - 1) * stride + vocab` and the row stride.
    pub fn with_rows_mut<L: Copy, R>(
        &self,
        what: &str,
        rows: usize,
        vocab: usize,
        f: impl FnOnce(&mut [L], usize) -> R,
    ) -> PyResult<R> {
        debug_assert_eq!(std::mem::size_of::<L>(), self.dtype.size());
        if self.shape[0] != rows {
            return Err(PyValueError::new_err(format!(
                "{what} has {} rows, the batch has {rows}",
                self.shape[0]
            )));
        }
        if self.shape[1] < vocab {
            return Err(PyValueError::new_err(format!(
                "{what} has {} columns, fewer than the vocabulary of {vocab} tokens",
                self.shape[1]
            )));
        }
        if self.strides[1] != 1 && self.shape[1] > 1 {
            return Err(PyValueError::new_err(format!(
                "{what}'s last dimension is not contiguous (stride {}); use .contiguous()",
                self.strides[1]
            )));
        }
        let stride = self.strides[0];
        if rows > 1 && (stride < 0 || (stride as usize) < vocab) {
            return Err(PyValueError::new_err(format!(
                "{what}'s rows overlap or run backwards (row stride {stride}, vocabulary {vocab})"
            )));
        }
        let stride = if rows > 1 { stride as usize } else { vocab };
        let len = (rows - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(vocab))
            .ok_or_else(|| PyValueError::new_err(format!("{what} is too large")))?;
        // SAFETY: the producer (torch, or a DLPack exporter kept alive by `self._keep`) owns a
        // writable (checked above: not read-only, no grad) CPU buffer holding `rows` rows of
        // `shape[1] >= vocab` elements of this type, row `i` at `i * stride` elements, the last
        // dimension contiguous; the pointer is aligned (checked in `view`). The slice spans from
        // the first element to the last one used, `(rows - 1) * stride + vocab` elements, all
        // inside the array's span. Rows do not overlap (stride >= vocab). The GIL is held and no
        // Python code runs while the slice lives, so nothing else touches the memory.
        let logits = unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut L, len) };
        Ok(f(logits, stride))
    }

    /// Reads element `at` of a 1-D view as an integer (any integer dtype the view allows).
    fn read_int(&self, offset: isize) -> i64 {
        // SAFETY: callers pass the offset (in elements) of an element of the array (index <
        // shape in every dimension times its stride), so it lies inside the producer's buffer,
        // which outlives the view; the pointer is aligned for the dtype (checked in `view`).
        unsafe {
            let p = self.ptr.offset(offset * self.dtype.size() as isize);
            match self.dtype {
                DType::I64 => *(p as *const i64),
                DType::I32 => i64::from(*(p as *const i32)),
                DType::U16 => i64::from(*(p as *const u16)),
                DType::Bool => i64::from(*p != 0),
                _ => unreachable!("read_int on a float array"),
            }
        }
    }

    /// Integers along the last column of a 2-D view (`col = shape[1] - 1`) or all of a 1-D
    /// view, into `out` as token ids. `Err` (nothing written past what `out` had) for a wrong
    /// length or a value outside `u32`.
    pub fn read_tokens(&self, what: &str, rows: usize, out: &mut [u32]) -> PyResult<()> {
        if self.shape[0] != rows {
            return Err(PyValueError::new_err(format!(
                "{what} has {} rows, the batch has {rows}",
                self.shape[0]
            )));
        }
        let col = if self.ndim == 2 {
            if self.shape[1] == 0 {
                return Err(PyValueError::new_err(format!(
                    "{what} has no columns: there is no newest token"
                )));
            }
            (self.shape[1] - 1) as isize * self.strides[1]
        } else {
            0
        };
        for (i, o) in out.iter_mut().enumerate().take(rows) {
            let v = self.read_int(i as isize * self.strides[0] + col);
            *o = u32::try_from(v).map_err(|_| {
                PyValueError::new_err(format!("{what}: token {v} at row {i} is not a token id"))
            })?;
        }
        Ok(())
    }

    /// Writes `src` into a 1-D bool view of the same length (any stride).
    pub fn write_bools(&self, what: &str, src: &[bool]) -> PyResult<()> {
        if self.shape[0] != src.len() {
            return Err(PyValueError::new_err(format!(
                "{what} has {} elements, the batch has {} rows",
                self.shape[0],
                src.len()
            )));
        }
        let s = self.strides[0];
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: element `i < shape[0]` of a writable (checked in `view`) 1-D bool array
            // lies at `i * stride` bytes from its start, inside the producer's buffer; a bool
            // is one byte, 0 or 1.
            unsafe { *self.ptr.offset(i as isize * s) = u8::from(b) };
        }
        Ok(())
    }

    /// Fills a fresh, writable, C-contiguous view (made by numpy for us) from `src`, whose
    /// bytes are the elements in order.
    pub fn fill_contiguous(&self, src: &[u8]) -> PyResult<()> {
        let n: usize = self.shape[..self.ndim].iter().product();
        let contiguous = match self.ndim {
            1 => self.strides[0] == 1 || n <= 1,
            _ => {
                (self.strides[1] == 1 || self.shape[1] <= 1)
                    && (self.strides[0] as usize == self.shape[1] || self.shape[0] <= 1)
            }
        };
        if !contiguous || n * self.dtype.size() != src.len() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "welt internal error: a fresh array is not the expected size or layout",
            ));
        }
        // SAFETY: the array is writable (checked in `view`), C-contiguous and holds exactly
        // `src.len()` bytes (checked above); `src` is a different allocation (Rust's).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, src.len()) };
        Ok(())
    }
}

static NUMPY_EMPTY: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// A new numpy array of `dtype` and `shape` holding `bytes` (the elements in C order, native
/// endianness).
pub fn numpy_from_bytes<'py>(
    py: Python<'py>,
    dtype: DType,
    shape: &[usize],
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let empty = NUMPY_EMPTY.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("numpy")?.getattr("empty")?.unbind())
    })?;
    let shape = PyTuple::new(py, shape)?;
    let a = empty.bind(py).call1((shape, dtype.name()))?;
    view(
        &a,
        "a new array",
        a.getattr("ndim")?.extract()?,
        &[dtype],
        Access::Write,
    )?
    .fill_contiguous(bytes)?;
    Ok(a)
}
