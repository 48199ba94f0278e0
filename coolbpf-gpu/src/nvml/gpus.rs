//! [`Gpus`]: the GPUs NVML sees, for the probes that need to name or ask a GPU (the xid
//! probe maps a bus id to a GPU, the CPU-or-GPU verdict asks how busy a GPU is).

use coolbpf_core::{Error, Result};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessUtilizationSample;
use nvml_wrapper::{Device, Nvml};

use super::bus_id::PciBusId;
use super::library::{nvml_error, shared, unavailable};
use super::snapshot::{GpuIdentity, Utilization};

/// The GPUs of this host, as NVML enumerated them when [`Gpus::open`] ran.
#[derive(Debug)]
pub struct Gpus {
    nvml: &'static Nvml,
    found: Vec<GpuIdentity>,
    unreachable: Vec<(u32, String)>,
}

/// One process's share of a GPU over NVML's last sample (percent of the period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessUtilization {
    /// NVML's CPU timestamp of the sample, µs: pass it as `since` next time to get
    /// only newer samples.
    pub timestamp_us: u64,
    /// SM (compute and 3D) busy.
    pub sm_percent: u32,
    /// Memory read or written.
    pub memory_percent: u32,
    /// Video encoder busy.
    pub encoder_percent: u32,
    /// Video decoder busy.
    pub decoder_percent: u32,
}

impl Gpus {
    /// Initializes NVML (once per process) and lists its GPUs. Without NVML the error is
    /// [`Error::Unsupported`] with the reason `coolbpf list` shows; a GPU that cannot be
    /// opened (fallen off the bus) is left out and listed in [`Self::unreachable`].
    pub fn open() -> Result<Self> {
        let nvml = shared().map_err(|_| unavailable())?;
        let count = nvml
            .device_count()
            .map_err(|err| nvml_error("counting GPUs", err))?;
        let mut found = Vec::new();
        let mut unreachable = Vec::new();
        for index in 0..count {
            match nvml
                .device_by_index(index)
                .and_then(|d| identity(&d, index))
            {
                Ok(identity) => found.push(identity),
                Err(err) => unreachable.push((index, err.to_string())),
            }
        }
        Ok(Self {
            nvml,
            found,
            unreachable,
        })
    }

    /// Every GPU that answered, in index order.
    pub fn gpus(&self) -> &[GpuIdentity] {
        &self.found
    }

    /// The GPUs NVML counted but could not open, with why.
    pub fn unreachable(&self) -> &[(u32, String)] {
        &self.unreachable
    }

    /// The GPU at PCI address `bus_id`, in any spelling ([`PciBusId`]: `0000:3b:00` from
    /// an Xid line matches NVML's `00000000:3B:00.0`). `Ok(None)` when no GPU is there.
    pub fn by_bus_id(&self, bus_id: &str) -> Result<Option<&GpuIdentity>> {
        let wanted: PciBusId = bus_id.parse()?;
        Ok(self.found.iter().find(|gpu| gpu.bus_id.matches(&wanted)))
    }

    /// The GPU with NVML index `index`.
    pub fn by_index(&self, index: u32) -> Result<&GpuIdentity> {
        self.found
            .iter()
            .find(|gpu| gpu.index == index)
            .ok_or_else(|| Error::NotFound {
                what: "GPU",
                name: index.to_string(),
                known: self.found.iter().map(|gpu| gpu.index.to_string()).collect(),
            })
    }

    /// How busy GPU `index` is now (NVML's last sample period).
    pub fn utilization(&self, index: u32) -> Result<Utilization> {
        let rates = self
            .device(index)?
            .utilization_rates()
            .map_err(|err| nvml_error(&format!("utilization of GPU {index}"), err))?;
        Ok(Utilization {
            gpu_percent: rates.gpu,
            memory_percent: rates.memory,
        })
    }

    /// Process `pid`'s latest utilization sample on GPU `index` newer than `since_us`
    /// (a previous [`ProcessUtilization::timestamp_us`]; `None`: any NVML still holds).
    /// `Ok(None)` when the process had no sample: it did not use that GPU.
    pub fn process_utilization(
        &self,
        index: u32,
        pid: u32,
        since_us: Option<u64>,
    ) -> Result<Option<ProcessUtilization>> {
        match self.device(index)?.process_utilization_stats(since_us) {
            Ok(samples) => Ok(latest_for_pid(&samples, pid)),
            Err(NvmlError::NotFound) => Ok(None),
            Err(err) => Err(nvml_error(
                &format!("process utilization on GPU {index}"),
                err,
            )),
        }
    }

    /// The shared NVML handle.
    pub(crate) fn nvml(&self) -> &'static Nvml {
        self.nvml
    }

    /// NVML's handle of GPU `index`.
    pub(crate) fn device(&self, index: u32) -> Result<Device<'static>> {
        self.nvml
            .device_by_index(index)
            .map_err(|err| nvml_error(&format!("opening GPU {index}"), err))
    }
}

/// What names a GPU: index, UUID, product name and bus id.
fn identity(device: &Device<'_>, index: u32) -> Result<GpuIdentity, NvmlError> {
    let pci = device.pci_info()?;
    let bus_id = pci.bus_id.parse().unwrap_or(PciBusId {
        domain: pci.domain,
        bus: pci.bus as u8,
        device: pci.device as u8,
        function: None,
    });
    Ok(GpuIdentity {
        index,
        uuid: device.uuid()?,
        model: device.name()?,
        bus_id,
    })
}

/// The newest of `pid`'s samples.
pub(crate) fn latest_for_pid(
    samples: &[ProcessUtilizationSample],
    pid: u32,
) -> Option<ProcessUtilization> {
    samples
        .iter()
        .filter(|sample| sample.pid == pid)
        .max_by_key(|sample| sample.timestamp)
        .map(|sample| ProcessUtilization {
            timestamp_us: sample.timestamp,
            sm_percent: sample.sm_util,
            memory_percent: sample.mem_util,
            encoder_percent: sample.enc_util,
            decoder_percent: sample.dec_util,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pid: u32, timestamp: u64, sm_util: u32) -> ProcessUtilizationSample {
        ProcessUtilizationSample {
            pid,
            timestamp,
            sm_util,
            mem_util: 1,
            enc_util: 0,
            dec_util: 0,
        }
    }

    #[test]
    fn the_newest_sample_of_the_pid_wins() {
        let samples = [sample(7, 100, 10), sample(8, 300, 90), sample(7, 200, 40)];
        let latest = latest_for_pid(&samples, 7).unwrap();
        assert_eq!((latest.timestamp_us, latest.sm_percent), (200, 40));
        assert_eq!(latest_for_pid(&samples, 9), None);
    }
}
