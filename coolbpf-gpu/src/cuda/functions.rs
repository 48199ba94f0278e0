//! The CUDA functions the `cuda` probe traces, what each one's arguments mean, and what
//! to capture of them.
//!
//! Arguments are decoded from the x86-64 System V calling convention: a `dim3` passed by
//! value is 12 bytes, so it takes two registers (x and y packed in the first, z in the
//! low half of the second); arguments past the sixth word are on the stack above the
//! return address (`args[6]` onward in a [`CallRecord`](crate::calls::CallRecord)).

use super::call::KernelRef;
use crate::calls::CallFlags;
use crate::library::LibraryKind;

/// What a traced function does, which says how to read its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `cudaLaunchKernel(func, dim3 grid, dim3 block, args, shmem, stream)`, and
    /// `cudaLaunchCooperativeKernel` of the same signature. CUDA 13's `<<<>>>` stubs call
    /// `__cudaLaunchKernel(cudaKernel_t, ...)`, which jumps straight into
    /// `cudaLaunchKernel` (a `cudaKernel_t` is a valid `func`): tracing both would count
    /// each launch twice, so only `cudaLaunchKernel` is traced.
    LaunchRuntime,
    /// `cudaLaunchKernelExC(const cudaLaunchConfig_t *config, func, args)`.
    LaunchRuntimeEx,
    /// `cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, stream, params, extra)`.
    LaunchDriver,
    /// `cuLaunchKernelEx(const CUlaunchConfig *config, f, params, extra)`.
    LaunchDriverEx,
    /// `cudaGraphLaunch(graphExec, stream)`.
    GraphLaunch,
    /// `cudaMalloc(void **ptr, size)`, `cudaMallocAsync(ptr, size, stream)`,
    /// `cuMemAlloc(CUdeviceptr *ptr, size)`.
    Malloc,
    /// `cudaFree(ptr)`, `cuMemFree(ptr)`.
    Free,
    /// `cudaMemcpy(dst, src, count, kind)`, `cudaMemcpyAsync(..., stream)`.
    Memcpy,
    /// A call that waits for the device: `cudaStreamSynchronize(stream)`,
    /// `cudaDeviceSynchronize()`, `cudaEventSynchronize(event)`, `cuStreamSynchronize`,
    /// `cuCtxSynchronize`.
    Sync,
    /// `cudaEventRecord(event, stream)`.
    EventRecord,
    /// `cudaEventQuery(event)`: 600 (`cudaErrorNotReady`) while the work before the
    /// event has not completed.
    EventQuery,
    /// `__cudaRegisterFunction(handle, hostFun, deviceFun, deviceName, ...)`: called at
    /// start-up for each kernel of a module, names the host stub.
    RegisterFunction,
    /// `__cudaGetKernel(cudaKernel_t *out, hostFun)` (CUDA 13 stubs): the handle
    /// `__cudaLaunchKernel` is called with.
    GetKernel,
    /// `cuModuleGetFunction(CUfunction *out, module, name)` and
    /// `cuLibraryGetKernel(CUkernel *out, library, name)`: name a driver handle.
    GetFunction,
}

/// One traced function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The symbol in the library.
    pub symbol: &'static str,
    /// The name records use (per-thread-stream variants `_ptsz` share their base name,
    /// versioned driver symbols `_v2` theirs).
    pub name: &'static str,
    /// The library that defines it.
    pub library: LibraryKind,
    /// How to read it.
    pub role: Role,
}

impl Function {
    /// What `calls.bpf.c` must capture for it. Launches are counted in the kernel; with
    /// `send_launches` each one is sent as well (with its config struct, for the
    /// launch's dimensions).
    pub fn flags(&self, send_launches: bool) -> CallFlags {
        let launch = |key, stream: CallFlags| {
            let counted = CallFlags::AGGREGATE
                .with(CallFlags::ENTRY_ONLY)
                .with(CallFlags::key_at(key))
                .with(stream);
            if send_launches {
                counted.with(CallFlags::SEND)
            } else {
                counted
            }
        };
        match self.role {
            Role::LaunchRuntime => launch(0, CallFlags::stream_at(7)),
            Role::LaunchDriver => launch(0, CallFlags::stream_at(8)),
            Role::GraphLaunch => launch(0, CallFlags::stream_at(1)),
            Role::LaunchRuntimeEx | Role::LaunchDriverEx => {
                launch(1, CallFlags::STREAM_IN_CONFIG).with(CallFlags::BLOB_ARG0)
            }
            // Out-parameters: the pointer or handle made.
            Role::Malloc | Role::GetKernel => CallFlags::DEREF_ARG0,
            Role::Sync => CallFlags::STACK,
            Role::RegisterFunction => CallFlags::ENTRY_ONLY.with(CallFlags::name_at(3)),
            Role::GetFunction => CallFlags::DEREF_ARG0.with(CallFlags::name_at(2)),
            Role::Free | Role::Memcpy | Role::EventRecord | Role::EventQuery => CallFlags::NONE,
        }
    }

    /// What a launch through it of `key` (its key argument) launched.
    pub fn kernel_ref(&self, key: u64) -> KernelRef {
        match self.role {
            Role::LaunchDriver | Role::LaunchDriverEx => KernelRef::DriverFunction(key),
            Role::GraphLaunch => KernelRef::Graph(key),
            _ => KernelRef::HostStub(key),
        }
    }

    /// Whether it launches work on the device.
    pub fn is_launch(&self) -> bool {
        matches!(
            self.role,
            Role::LaunchRuntime
                | Role::LaunchRuntimeEx
                | Role::LaunchDriver
                | Role::LaunchDriverEx
                | Role::GraphLaunch
        )
    }
}

const fn rt(symbol: &'static str, name: &'static str, role: Role) -> Function {
    Function {
        symbol,
        name,
        library: LibraryKind::Cudart,
        role,
    }
}

const fn drv(symbol: &'static str, name: &'static str, role: Role) -> Function {
    Function {
        symbol,
        name,
        library: LibraryKind::Cuda,
        role,
    }
}

/// Every function the `cuda` probe traces; a function's id is its index here.
pub const FUNCTIONS: &[Function] = &[
    rt("cudaLaunchKernel", "cudaLaunchKernel", Role::LaunchRuntime),
    rt(
        "cudaLaunchKernel_ptsz",
        "cudaLaunchKernel",
        Role::LaunchRuntime,
    ),
    rt(
        "cudaLaunchKernelExC",
        "cudaLaunchKernelExC",
        Role::LaunchRuntimeEx,
    ),
    rt(
        "cudaLaunchKernelExC_ptsz",
        "cudaLaunchKernelExC",
        Role::LaunchRuntimeEx,
    ),
    rt(
        "cudaLaunchCooperativeKernel",
        "cudaLaunchCooperativeKernel",
        Role::LaunchRuntime,
    ),
    rt(
        "cudaLaunchCooperativeKernel_ptsz",
        "cudaLaunchCooperativeKernel",
        Role::LaunchRuntime,
    ),
    rt("cudaGraphLaunch", "cudaGraphLaunch", Role::GraphLaunch),
    rt("cudaGraphLaunch_ptsz", "cudaGraphLaunch", Role::GraphLaunch),
    rt("cudaMalloc", "cudaMalloc", Role::Malloc),
    rt("cudaMallocAsync", "cudaMallocAsync", Role::Malloc),
    rt("cudaMallocAsync_ptsz", "cudaMallocAsync", Role::Malloc),
    rt("cudaFree", "cudaFree", Role::Free),
    rt("cudaMemcpy", "cudaMemcpy", Role::Memcpy),
    rt("cudaMemcpy_ptds", "cudaMemcpy", Role::Memcpy),
    rt("cudaMemcpyAsync", "cudaMemcpyAsync", Role::Memcpy),
    rt("cudaMemcpyAsync_ptsz", "cudaMemcpyAsync", Role::Memcpy),
    rt("cudaStreamSynchronize", "cudaStreamSynchronize", Role::Sync),
    rt(
        "cudaStreamSynchronize_ptsz",
        "cudaStreamSynchronize",
        Role::Sync,
    ),
    rt("cudaDeviceSynchronize", "cudaDeviceSynchronize", Role::Sync),
    rt("cudaEventSynchronize", "cudaEventSynchronize", Role::Sync),
    rt("cudaEventRecord", "cudaEventRecord", Role::EventRecord),
    rt("cudaEventRecord_ptsz", "cudaEventRecord", Role::EventRecord),
    rt("cudaEventQuery", "cudaEventQuery", Role::EventQuery),
    rt(
        "__cudaRegisterFunction",
        "__cudaRegisterFunction",
        Role::RegisterFunction,
    ),
    rt("__cudaGetKernel", "__cudaGetKernel", Role::GetKernel),
    drv("cuLaunchKernel", "cuLaunchKernel", Role::LaunchDriver),
    drv("cuLaunchKernel_ptsz", "cuLaunchKernel", Role::LaunchDriver),
    drv("cuLaunchKernelEx", "cuLaunchKernelEx", Role::LaunchDriverEx),
    drv(
        "cuLaunchKernelEx_ptsz",
        "cuLaunchKernelEx",
        Role::LaunchDriverEx,
    ),
    drv("cuMemAlloc_v2", "cuMemAlloc", Role::Malloc),
    drv("cuMemFree_v2", "cuMemFree", Role::Free),
    drv("cuStreamSynchronize", "cuStreamSynchronize", Role::Sync),
    drv(
        "cuStreamSynchronize_ptsz",
        "cuStreamSynchronize",
        Role::Sync,
    ),
    drv("cuCtxSynchronize", "cuCtxSynchronize", Role::Sync),
    drv(
        "cuModuleGetFunction",
        "cuModuleGetFunction",
        Role::GetFunction,
    ),
    drv(
        "cuLibraryGetKernel",
        "cuLibraryGetKernel",
        Role::GetFunction,
    ),
];

/// The function with id `id`.
pub fn by_id(id: u16) -> Option<&'static Function> {
    FUNCTIONS.get(usize::from(id))
}

/// The ids and functions defined by libraries of `kind`.
pub fn of_library(kind: LibraryKind) -> impl Iterator<Item = (u16, &'static Function)> {
    FUNCTIONS
        .iter()
        .enumerate()
        .filter(move |(_, f)| f.library == kind)
        .map(|(id, f)| (id as u16, f))
}

/// The names of the CUDA runtime's error codes the probe reports most (`cudaError_t`).
pub fn error_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "cudaSuccess",
        1 => "cudaErrorInvalidValue",
        2 => "cudaErrorMemoryAllocation",
        3 => "cudaErrorInitializationError",
        35 => "cudaErrorInsufficientDriver",
        98 => "cudaErrorInvalidDeviceFunction",
        100 => "cudaErrorNoDevice",
        101 => "cudaErrorInvalidDevice",
        209 => "cudaErrorNoKernelImageForDevice",
        400 => "cudaErrorInvalidResourceHandle",
        500 => "cudaErrorNotFound",
        600 => "cudaErrorNotReady",
        700 => "cudaErrorIllegalAddress",
        701 => "cudaErrorLaunchOutOfResources",
        702 => "cudaErrorLaunchTimeout",
        719 => "cudaErrorLaunchFailure",
        999 => "cudaErrorUnknown",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fit_the_cookie_and_symbols_are_unique() {
        assert!(FUNCTIONS.len() < 0x8000);
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert_eq!(
                FUNCTIONS.iter().filter(|g| g.symbol == f.symbol).count(),
                1,
                "{}",
                f.symbol
            );
            assert_eq!(by_id(i as u16), Some(f));
        }
        assert!(of_library(LibraryKind::Cuda).all(|(_, f)| f.symbol.starts_with("cu")));
    }

    #[test]
    fn launches_are_counted_in_the_kernel_and_sent_only_when_asked() {
        for f in FUNCTIONS.iter().filter(|f| f.is_launch()) {
            assert!(f
                .flags(false)
                .has(CallFlags::ENTRY_ONLY.with(CallFlags::AGGREGATE)));
            assert!(!f.flags(false).has(CallFlags::SEND));
            assert!(f.flags(true).has(CallFlags::SEND));
        }
        let register = FUNCTIONS
            .iter()
            .find(|f| f.role == Role::RegisterFunction)
            .unwrap();
        assert_eq!(register.flags(false).name_arg(), Some(3));
    }
}
