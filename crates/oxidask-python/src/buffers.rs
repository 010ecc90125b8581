//! Buffers between Rust and Python without copies.
//!
//! Sending: a pickled object's out-of-band buffers (`PickleBuffer`s of NumPy arrays, Arrow
//! columns) become `Bytes` that point at the exporter's memory ([`bytes_of`]); the exporter
//! is kept alive until the last `Bytes` drops. Receiving: a received frame part becomes a
//! Python object exporting the buffer protocol over the `Bytes` ([`python_buffer`]), which
//! NumPy and pyarrow wrap without copying.
//!
//! The buffer protocol is in the stable ABI only from Python 3.11; the package targets 3.10's,
//! so the few functions and the `Py_buffer` layout are declared here. They are exported by
//! every CPython 3 and their layout has not changed since 3.3 (3.11 made it official).
//!
//! # Invariants
//! - A received buffer is decoded once, so the memory a Python object exposes is aliased by
//!   no other Python object; it is exposed writable, as Dask's received arrays are.
//! - Releasing an exporter's buffer needs the GIL; a `Bytes` dropped on a thread that does not
//!   hold it (the network thread after a send) queues the release, done at the next attach.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// `Py_buffer`, as CPython has laid it out since 3.3.
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

impl RawBuffer {
    /// A view holding nothing (filled by `PyObject_GetBuffer`).
    fn empty() -> Box<RawBuffer> {
        Box::new(RawBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 1,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        })
    }
}

extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
    fn PyBuffer_FillInfo(
        view: *mut RawBuffer,
        obj: *mut ffi::PyObject,
        buf: *mut c_void,
        len: ffi::Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
    fn PyGILState_Check() -> c_int;
}

/// `PyBUF_SIMPLE`: contiguous bytes, no format or shape needed.
const PYBUF_SIMPLE: c_int = 0;

/// An exporter's buffer, held until dropped.
struct HeldBuffer(Box<RawBuffer>);

// SAFETY: the exporter keeps the memory valid and in place until `PyBuffer_Release`; reading it
// needs no GIL. Release happens with the GIL held (see `Drop`).
unsafe impl Send for HeldBuffer {}
unsafe impl Sync for HeldBuffer {}

impl AsRef<[u8]> for HeldBuffer {
    fn as_ref(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: a simple buffer is `len` contiguous bytes at `buf`, valid while held.
        unsafe { std::slice::from_raw_parts(self.0.buf as *const u8, self.0.len as usize) }
    }
}

static PENDING: Mutex<Vec<HeldBuffer>> = Mutex::new(Vec::new());
static ANY_PENDING: AtomicBool = AtomicBool::new(false);

impl Drop for HeldBuffer {
    fn drop(&mut self) {
        if crate::gil::exiting() {
            // The interpreter is finalizing (or gone): releasing could touch freed objects, and
            // nothing would release a queued buffer. The exporter's reference is leaked.
            self.0.obj = std::ptr::null_mut();
            return;
        }
        // SAFETY: callable from any thread of an initialized interpreter.
        if unsafe { PyGILState_Check() } == 1 {
            // SAFETY: the view was filled by `PyObject_GetBuffer` and is released once.
            unsafe { PyBuffer_Release(&mut *self.0) };
            self.0.obj = std::ptr::null_mut();
        } else if !self.0.obj.is_null() {
            let moved = HeldBuffer(std::mem::replace(&mut self.0, RawBuffer::empty()));
            PENDING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(moved);
            ANY_PENDING.store(true, Ordering::Release);
        }
    }
}

/// Releases buffers whose `Bytes` were dropped off the GIL. Called with the GIL held.
pub fn release_pending() {
    if !ANY_PENDING.load(Ordering::Acquire) {
        return;
    }
    let drained: Vec<HeldBuffer> =
        std::mem::take(&mut *PENDING.lock().unwrap_or_else(|p| p.into_inner()));
    ANY_PENDING.store(false, Ordering::Release);
    drop(drained); // attached now: each releases in place
}

/// The bytes of a contiguous buffer exporter (a `memoryview` of a `PickleBuffer`), shared
/// without copying; the exporter stays alive while the `Bytes` (or a slice of it) lives.
pub fn bytes_of(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    let mut view = RawBuffer::empty();
    // SAFETY: `obj` is a live object; on success the view holds a reference to the exporter.
    if unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, PYBUF_SIMPLE) } != 0 {
        return Err(PyErr::take(obj.py())
            .unwrap_or_else(|| PyBufferError::new_err("the object exports no contiguous buffer")));
    }
    Ok(Bytes::from_owner(HeldBuffer(view)))
}

/// The object layout of `ReceivedBuffer`: the Python header, then the bytes it exposes.
///
/// Instances are made only by [`python_buffer`] (the type disallows instantiation from Python),
/// but an instance made some other way is zero-filled: `filled` is then false and `bytes`
/// holds nothing, and such an instance exports no buffer and frees nothing.
#[repr(C)]
struct Received {
    ob_base: ffi::PyObject,
    /// `bytes` holds a value (written by [`python_buffer`]).
    filled: bool,
    bytes: std::mem::MaybeUninit<Bytes>,
}

impl Received {
    /// The bytes exposed, if the instance holds any.
    fn bytes(&self) -> Option<&Bytes> {
        // SAFETY: `bytes` is initialized whenever `filled` is set (see `python_buffer`).
        self.filled.then(|| unsafe { self.bytes.assume_init_ref() })
    }
}

unsafe extern "C" fn received_getbuffer(
    slf: *mut ffi::PyObject,
    view: *mut RawBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: called by CPython on an instance of the type below, whose layout is `Received`.
    let r = unsafe { &*(slf as *const Received) };
    let Some(bytes) = r.bytes() else {
        // SAFETY: called with the GIL held; the message is a C string.
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_BufferError,
                c"this ReceivedBuffer holds no bytes (only oxidask makes usable ones)".as_ptr(),
            )
        };
        return -1;
    };
    let ptr = bytes.as_ptr() as *mut c_void;
    // Writable: see the module invariant (decoded once, aliased by no other Python object).
    unsafe { PyBuffer_FillInfo(view, slf, ptr, bytes.len() as ffi::Py_ssize_t, 0, flags) }
}

unsafe extern "C" fn received_dealloc(slf: *mut ffi::PyObject) {
    // SAFETY: called once by CPython when the last reference goes; the type is a heap type, so
    // the instance holds a reference to it that is dropped here.
    unsafe {
        let tp = ffi::Py_TYPE(slf);
        let r = &mut *(slf as *mut Received);
        if std::mem::replace(&mut r.filled, false) {
            r.bytes.assume_init_drop();
        }
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        if !free.is_null() {
            let free: ffi::freefunc = std::mem::transmute(free);
            free(slf as *mut c_void);
        }
        ffi::Py_DECREF(tp as *mut ffi::PyObject);
    }
}

struct TypePtr(*mut ffi::PyTypeObject);
// SAFETY: a type object lives for the life of the interpreter and is only used with the GIL.
unsafe impl Send for TypePtr {}
unsafe impl Sync for TypePtr {}

fn received_type(_py: Python<'_>) -> PyResult<*mut ffi::PyTypeObject> {
    static TYPE: OnceLock<TypePtr> = OnceLock::new();
    if let Some(t) = TYPE.get() {
        return Ok(t.0);
    }
    static NAME: &[u8] = b"oxidask._oxidask.ReceivedBuffer\0";
    static DOC: &[u8] = b"Bytes received by oxidask, exposed through the buffer protocol.\0";
    let mut slots = [
        ffi::PyType_Slot {
            slot: 1, // Py_bf_getbuffer (stable since 3.9 in type specs)
            pfunc: received_getbuffer as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: received_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: DOC.as_ptr() as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: std::ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: NAME.as_ptr() as *const c_char,
        basicsize: std::mem::size_of::<Received>() as c_int,
        itemsize: 0,
        // Only `python_buffer` makes instances: `ReceivedBuffer()` raises `TypeError`.
        flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION) as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and slots are valid for the call; CPython copies what it keeps.
    let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
    if tp.is_null() {
        return Err(PyErr::take(_py)
            .unwrap_or_else(|| PyBufferError::new_err("cannot create the buffer type")));
    }
    let _ = TYPE.set(TypePtr(tp as *mut ffi::PyTypeObject));
    Ok(TYPE.get().expect("set above").0)
}

/// A Python object exposing `bytes` through the buffer protocol (writable, see the module
/// invariant), without copying.
pub fn python_buffer(py: Python<'_>, bytes: Bytes) -> PyResult<Bound<'_, PyAny>> {
    let tp = received_type(py)?;
    // SAFETY: `tp` is the heap type above; `PyType_GenericAlloc` zero-fills the instance and
    // takes a reference to the type, released in `received_dealloc`.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(tp, 0);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        let r = &mut *(obj as *mut Received);
        r.bytes.write(bytes);
        r.filled = true;
        Ok(Bound::from_owned_ptr(py, obj))
    }
}
