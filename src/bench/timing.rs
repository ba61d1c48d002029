//! What the OS says about a measurement: CPU time waited for and used by others (Linux), the
//! machine the numbers come from.

use serde_json::json;

use super::floor::floor_stores;

/// Nanoseconds this thread has spent runnable but waiting for a CPU, from the second field
/// of `/proc/thread-self/schedstat` (Linux); `None` where that cannot be read.
pub(super) fn cpu_wait_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This thread's CPU time in ns: the first field of `/proc/thread-self/schedstat` (Linux).
pub(super) fn own_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of every process on every core in ns: the first line of `/proc/stat` (Linux),
/// all but idle and iowait, in clock ticks taken as 10 ms (`USER_HZ` is 100 on Linux).
pub(super) fn all_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy * 10_000_000)
}

/// CPU time used by other processes over a period, from two snapshots of
/// `(all_cpu_ns, own_cpu_ns)`.
pub(super) fn others_ns(
    before: (Option<u64>, Option<u64>),
    after: (Option<u64>, Option<u64>),
) -> Option<u64> {
    let all = after.0?.checked_sub(before.0?)?;
    let own = after.1?.checked_sub(before.1?)?;
    Some(all.saturating_sub(own))
}

pub(super) fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The 1-minute load average (Linux); `None` where it cannot be read.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine the numbers come from.
pub(super) fn machine() -> serde_json::Value {
    let cores = std::thread::available_parallelism().map(|n| n.get()).ok();
    // Best effort: on Linux the CPU's name; nothing if it cannot be read.
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    json!({
        "cores": cores,
        "cpu": cpu,
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "load_average_1m": load_average(),
        // Whether welt's AVX-512 paths (mask stores; advance from 16 rows) run on this CPU.
        "avx512": avx512(),
        "floor_stores": floor_stores(),
    })
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
