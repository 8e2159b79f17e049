//! CPU-time measurements for criterion, shared by the bench files (`mod support;`).
//!
//! This VM's two cores are shared with other work: wall-clock rates move by tens of percent from
//! one run to the next while CPU time per byte barely does. So the benches also measure CPU time:
//! [`ThreadCpu`] (the bench thread's own time on a CPU, from `/proc/thread-self/schedstat`, ns) for
//! work done on the bench thread, and [`ProcessCpu`] (user + system of every thread, exited ones
//! included, from `/proc/self/stat`, 10 ms ticks) for work spread over threads. Criterion prints
//! them as "time" and derives "thrpt" from them: there it reads bytes per CPU-second.

#![allow(dead_code)] // each bench file uses a part

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, SamplingMode, Throughput};

/// Nanoseconds the calling thread has spent on a CPU (`/proc/thread-self/schedstat`, field 1).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat is readable (Linux with sched_info)")
}

/// Nanoseconds of user + system CPU of this process, every thread (`/proc/self/stat` 14 + 15).
fn process_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    let after_name = &stat[stat.rfind(')').expect("stat has a name") + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let mut tick = || -> u64 { fields.next().and_then(|f| f.parse().ok()).unwrap_or(0) };
    let ticks = tick() + tick();
    ticks * 10_000_000 // USER_HZ = 100
}

/// CPU time of the bench thread.
pub struct ThreadCpu {
    wall: WallTime,
}

/// CPU time of the whole process.
pub struct ProcessCpu {
    wall: WallTime,
}

impl ThreadCpu {
    pub fn new() -> Self {
        ThreadCpu { wall: WallTime }
    }
}

impl ProcessCpu {
    pub fn new() -> Self {
        ProcessCpu { wall: WallTime }
    }
}

macro_rules! cpu_measurement {
    ($ty:ty, $read:path) => {
        impl Measurement for $ty {
            type Intermediate = u64;
            type Value = u64;

            fn start(&self) -> u64 {
                $read()
            }
            fn end(&self, start: u64) -> u64 {
                $read().saturating_sub(start)
            }
            fn add(&self, a: &u64, b: &u64) -> u64 {
                a + b
            }
            fn zero(&self) -> u64 {
                0
            }
            fn to_f64(&self, value: &u64) -> f64 {
                *value as f64
            }
            // Nanoseconds, formatted as durations (and bytes per second of them).
            fn formatter(&self) -> &dyn ValueFormatter {
                self.wall.formatter()
            }
        }
    };
}

cpu_measurement!(ThreadCpu, thread_cpu_ns);
cpu_measurement!(ProcessCpu, process_cpu_ns);

/// The settings of every throughput group here: `bytes` per iteration, flat sampling (each
/// iteration is long), 10 samples, 1 s of warm-up and `seconds` measured.
pub fn flat_group<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, bytes: u64, seconds: u64) {
    group
        .throughput(Throughput::Bytes(bytes))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(seconds));
}
