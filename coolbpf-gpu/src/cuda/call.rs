//! [`CudaCall`]: a [`CallRecord`] of a CUDA function, read per the function's signature.

use crate::calls::CallRecord;

use super::functions::{Function, Role};

/// What a launch names its kernel by; each is turned into a name differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelRef {
    /// What `cudaLaunchKernel(func, ...)` was given: a host stub's address, named by
    /// `__cudaRegisterFunction` or by the symbolizer, or a CUDA 13 `cudaKernel_t`, mapped
    /// to its host stub by `__cudaGetKernel`.
    HostStub(u64),
    /// A driver `CUfunction`, named by `cuModuleGetFunction` / `cuLibraryGetKernel`.
    DriverFunction(u64),
    /// A CUDA graph (`cudaGraphExec_t`): many kernels at once.
    Graph(u64),
}

/// One kernel launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// The kernel.
    pub kernel: KernelRef,
    /// Grid dimensions (x, y, z).
    pub grid: [u32; 3],
    /// Block dimensions (x, y, z).
    pub block: [u32; 3],
    /// Dynamic shared memory, bytes.
    pub shared_mem: u64,
    /// The stream (0: the legacy default stream).
    pub stream: u64,
}

/// A CUDA call, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CudaCall {
    /// A kernel (or graph) launch.
    Launch(Launch),
    /// A device allocation of `bytes`; `ptr` once it succeeded.
    Malloc {
        /// Bytes asked for.
        bytes: u64,
        /// The device pointer returned.
        ptr: Option<u64>,
    },
    /// A device free.
    Free {
        /// The device pointer.
        ptr: u64,
    },
    /// A copy of `bytes` of direction `kind` (`cudaMemcpyKind`).
    Memcpy {
        /// Bytes copied.
        bytes: u64,
        /// 0 host-host, 1 host-device, 2 device-host, 3 device-device, 4 default.
        kind: u64,
    },
    /// A call that waits on the device (stream, event or all of it).
    Sync {
        /// The stream or event waited on (0 for device and context syncs).
        on: u64,
    },
    /// `cudaEventRecord(event, stream)`.
    EventRecord {
        /// The event.
        event: u64,
        /// The stream.
        stream: u64,
    },
    /// `cudaEventQuery(event)`.
    EventQuery {
        /// The event.
        event: u64,
    },
    /// `__cudaRegisterFunction`: `host_stub` launches the device function `name`
    /// (mangled).
    Register {
        /// The host stub's address.
        host_stub: u64,
        /// The device function's (mangled) name.
        name: String,
    },
    /// `__cudaGetKernel`: the handle of `host_stub`'s kernel.
    GetKernel {
        /// The host stub's address.
        host_stub: u64,
        /// The handle, once returned.
        handle: Option<u64>,
    },
    /// `cuModuleGetFunction` / `cuLibraryGetKernel`: a driver handle named `name`.
    GetFunction {
        /// The function's (mangled) name.
        name: String,
        /// The handle, once returned.
        handle: Option<u64>,
    },
}

fn dim(low_word: u64, next: u64) -> [u32; 3] {
    [low_word as u32, (low_word >> 32) as u32, next as u32]
}

impl Launch {
    /// A launch described by a config struct read from the first argument: six `u32`
    /// (grid x, y, z, block x, y, z), the shared memory size (of which `shared_mem_mask`
    /// is meaningful), then the stream at offset 32. `cudaLaunchConfig_t` and
    /// `CUlaunchConfig` share this layout.
    fn from_config(kernel: KernelRef, blob: &[u64; 6], shared_mem_mask: u64) -> Self {
        Self {
            kernel,
            grid: dim(blob[0], blob[1]),
            block: [
                (blob[1] >> 32) as u32,
                blob[2] as u32,
                (blob[2] >> 32) as u32,
            ],
            shared_mem: blob[3] & shared_mem_mask,
            stream: blob[4],
        }
    }
}

impl CudaCall {
    /// Reads `record` as a call of `function`.
    pub fn decode(function: &Function, record: &CallRecord) -> Self {
        let a = &record.args;
        let blob = record.blob.unwrap_or_default();
        match function.role {
            Role::LaunchRuntime => Self::Launch(Launch {
                kernel: function.kernel_ref(a[0]),
                grid: dim(a[1], a[2]),
                block: dim(a[3], a[4]),
                shared_mem: a[6],
                stream: a[7],
            }),
            // cudaLaunchConfig_t { dim3 gridDim; dim3 blockDim; size_t dynamicSmemBytes;
            // cudaStream_t stream; ... }.
            Role::LaunchRuntimeEx => Self::Launch(Launch::from_config(
                function.kernel_ref(a[1]),
                &blob,
                u64::MAX,
            )),
            Role::LaunchDriver => Self::Launch(Launch {
                kernel: function.kernel_ref(a[0]),
                grid: [a[1] as u32, a[2] as u32, a[3] as u32],
                block: [a[4] as u32, a[5] as u32, a[6] as u32],
                shared_mem: a[7] & 0xffff_ffff,
                stream: a[8],
            }),
            // CUlaunchConfig { unsigned gridDimX..Z, blockDimX..Z, sharedMemBytes;
            // CUstream hStream; ... }: the same layout, with a 32-bit shared memory size.
            Role::LaunchDriverEx => Self::Launch(Launch::from_config(
                function.kernel_ref(a[1]),
                &blob,
                0xffff_ffff,
            )),
            Role::GraphLaunch => Self::Launch(Launch {
                kernel: function.kernel_ref(a[0]),
                grid: [0; 3],
                block: [0; 3],
                shared_mem: 0,
                stream: a[1],
            }),
            Role::Malloc => Self::Malloc {
                bytes: a[1],
                ptr: record.deref.filter(|_| record.ret == 0),
            },
            Role::Free => Self::Free { ptr: a[0] },
            Role::Memcpy => Self::Memcpy {
                bytes: a[2],
                kind: a[3],
            },
            // cudaDeviceSynchronize() and cuCtxSynchronize() take no argument.
            Role::Sync => Self::Sync {
                on: if function.name.contains("Stream") || function.name.contains("Event") {
                    a[0]
                } else {
                    0
                },
            },
            Role::EventRecord => Self::EventRecord {
                event: a[0],
                stream: a[1],
            },
            Role::EventQuery => Self::EventQuery { event: a[0] },
            Role::RegisterFunction => Self::Register {
                host_stub: a[1],
                name: record.name.clone().unwrap_or_default(),
            },
            Role::GetKernel => Self::GetKernel {
                host_stub: a[1],
                handle: record.deref.filter(|_| record.ret == 0),
            },
            Role::GetFunction => Self::GetFunction {
                name: record.name.clone().unwrap_or_default(),
                handle: record.deref.filter(|_| record.ret == 0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::functions::FUNCTIONS;

    fn function(symbol: &str) -> &'static Function {
        FUNCTIONS.iter().find(|f| f.symbol == symbol).unwrap()
    }

    #[test]
    fn dim3_by_value_takes_two_registers() {
        let record = CallRecord {
            args: [
                0x1000,
                (2 << 32) | 3,
                4,
                (1 << 32) | 64,
                1,
                0,
                128,
                0xabc,
                0,
                0,
                0,
            ],
            ..CallRecord::default()
        };
        let CudaCall::Launch(launch) = CudaCall::decode(function("cudaLaunchKernel"), &record)
        else {
            panic!("a launch");
        };
        assert_eq!(launch.kernel, KernelRef::HostStub(0x1000));
        assert_eq!(launch.grid, [3, 2, 4]);
        assert_eq!(launch.block, [64, 1, 1]);
        assert_eq!((launch.shared_mem, launch.stream), (128, 0xabc));
    }

    #[test]
    fn driver_launches_read_the_stack_arguments() {
        let record = CallRecord {
            args: [0xf, 8, 4, 2, 32, 2, 1, 256, 0x5, 0, 0],
            ..CallRecord::default()
        };
        let CudaCall::Launch(launch) = CudaCall::decode(function("cuLaunchKernel"), &record) else {
            panic!("a launch");
        };
        assert_eq!(launch.grid, [8, 4, 2]);
        assert_eq!(launch.block, [32, 2, 1]);
        assert_eq!((launch.shared_mem, launch.stream), (256, 5));
    }

    #[test]
    fn config_struct_launches_read_the_struct() {
        // grid 8x4x2, block 32x2x1, shared (1 << 32) | 256, stream 0x5.
        let blob = [
            (4 << 32) | 8,
            (32 << 32) | 2,
            (1 << 32) | 2,
            (1 << 32) | 256,
            0x5,
            0,
        ];
        let record = CallRecord {
            args: [0x7000, 0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            blob: Some(blob),
            ..CallRecord::default()
        };
        for (symbol, kernel, shared) in [
            (
                "cudaLaunchKernelExC",
                KernelRef::HostStub(0xf),
                (1 << 32) | 256,
            ),
            ("cuLaunchKernelEx", KernelRef::DriverFunction(0xf), 256),
        ] {
            let CudaCall::Launch(launch) = CudaCall::decode(function(symbol), &record) else {
                panic!("a launch");
            };
            assert_eq!(launch.kernel, kernel);
            assert_eq!((launch.grid, launch.block), ([8, 4, 2], [32, 2, 1]));
            assert_eq!((launch.shared_mem, launch.stream), (shared, 5));
        }
    }

    #[test]
    fn a_failed_malloc_has_no_pointer() {
        let record = CallRecord {
            args: [0x7ff0, 4096, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ret: 35,
            deref: Some(0xdead),
            ..CallRecord::default()
        };
        assert_eq!(
            CudaCall::decode(function("cudaMalloc"), &record),
            CudaCall::Malloc {
                bytes: 4096,
                ptr: None
            }
        );
    }
}
