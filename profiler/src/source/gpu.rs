//! GPU memory: NVML for what the driver sees (device used, this process's use) and a
//! pluggable reader for a framework's caching allocator (libtorch's allocated vs
//! reserved), which NVML cannot tell apart. The profiler knows nothing of tch: the
//! program registers a [`GpuAllocatorStats`] implementation.
//!
//! NVML is loaded at run time, so a machine without a driver or a GPU gets a
//! [`GpuStatus`] explaining why the GPU columns are empty, never a crash.

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

pub use profiler_api::{GpuAllocatorSnapshot, GpuAllocatorStats};

use super::Source;
use crate::timeline::Row;

/// Why the GPU columns are (or are not) filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuStatus {
    /// NVML is readable for this device.
    Active {
        /// The device's name.
        name: String,
    },
    /// The NVML library could not be loaded or initialised (no NVIDIA driver).
    NoDriver(String),
    /// NVML works but the requested device does not exist.
    NoDevice(String),
    /// GPU recording was not asked for (a CPU run); `probe` says what NVML found anyway.
    NotRequested {
        /// The token of the probe's status.
        probe: String,
    },
}

impl GpuStatus {
    /// Probe NVML's device 0 for a run that records no GPU, to say why columns are empty.
    pub fn probe() -> Self {
        let probe = match NvmlSource::open(0) {
            Ok((_, status)) | Err(status) => status.to_token(),
        };
        GpuStatus::NotRequested { probe }
    }

    /// One line for the timeline's first line and the summary (no spaces).
    pub fn to_token(&self) -> String {
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join("_");
        match self {
            GpuStatus::Active { name } => format!("active:{}", squash(name)),
            GpuStatus::NoDriver(why) => format!("no-driver:{}", squash(why)),
            GpuStatus::NoDevice(why) => format!("no-device:{}", squash(why)),
            GpuStatus::NotRequested { probe } => format!("not-requested;{probe}"),
        }
    }
}

/// Device-level and per-process memory from NVML.
pub struct NvmlSource {
    nvml: Nvml,
    index: u32,
    pid: u32,
}

impl NvmlSource {
    /// Open NVML for device `index`, or say why not.
    pub fn open(index: u32) -> Result<(Self, GpuStatus), GpuStatus> {
        let nvml = Nvml::init().map_err(|e| GpuStatus::NoDriver(e.to_string()))?;
        let count = nvml.device_count().map_err(|e| GpuStatus::NoDevice(e.to_string()))?;
        if index >= count {
            return Err(GpuStatus::NoDevice(format!("device {index} requested, {count} present")));
        }
        let name = nvml
            .device_by_index(index)
            .and_then(|d| d.name())
            .map_err(|e| GpuStatus::NoDevice(e.to_string()))?;
        Ok((NvmlSource { nvml, index, pid: std::process::id() }, GpuStatus::Active { name }))
    }
}

impl Source for NvmlSource {
    fn sample(&mut self, row: &mut Row) {
        let Ok(device) = self.nvml.device_by_index(self.index) else { return };
        row.gpu_device_used_bytes = device.memory_info().ok().map(|m| m.used);
        row.gpu_process_used_bytes = device.running_compute_processes().ok().and_then(|ps| {
            ps.iter().find(|p| p.pid == self.pid).map(|p| match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => b,
                UsedGpuMemory::Unavailable => 0,
            })
        });
    }
}

/// The caching-allocator reader as a source.
pub struct GpuSource(pub Box<dyn GpuAllocatorStats>);

impl Source for GpuSource {
    fn sample(&mut self, row: &mut Row) {
        if let Some(s) = self.0.snapshot() {
            row.gpu_allocated_bytes = Some(s.allocated);
            row.gpu_reserved_bytes = Some(s.reserved);
            row.gpu_peak_allocated_bytes = Some(s.peak_allocated);
            row.gpu_peak_reserved_bytes = Some(s.peak_reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tokens_have_no_spaces() {
        let s = GpuStatus::NoDriver("libnvidia-ml.so: cannot open shared object".into());
        assert_eq!(s.to_token(), "no-driver:libnvidia-ml.so:_cannot_open_shared_object");
        assert_eq!(GpuStatus::Active { name: "NVIDIA H100".into() }.to_token(), "active:NVIDIA_H100");
    }

    #[test]
    fn missing_driver_is_an_explained_status_not_a_crash() {
        // On a machine with a driver this opens device 0; either way it must not panic.
        match NvmlSource::open(0) {
            Ok((mut src, GpuStatus::Active { .. })) => {
                let mut row = Row::default();
                src.sample(&mut row);
                assert!(row.gpu_device_used_bytes.is_some());
            }
            Ok((_, other)) => panic!("open succeeded with status {other:?}"),
            Err(status) => assert!(matches!(status, GpuStatus::NoDriver(_) | GpuStatus::NoDevice(_))),
        }
    }
}
