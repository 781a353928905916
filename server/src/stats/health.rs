//! The process's own numbers for the dashboard's health strip: CPU, resident memory, open
//! files and their limit, read from `/proc` (Linux; zeros elsewhere), and the host name.

use std::sync::Mutex;
use std::time::Instant;

/// Clock ticks per second of `/proc/self/stat`'s CPU times (100 on every Linux we target).
const TICKS_PER_SEC: f64 = 100.0;

/// The process's resource use now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub rss_bytes: i64,
    pub open_files: i64,
    pub max_open_files: i64,
}

/// The host's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `node`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// CPU seconds (user + system) from the text of `/proc/self/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after
    // its closing parenthesis. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Resident memory in bytes from the text of `/proc/self/status`.
pub fn rss_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft limit on open files from the text of `/proc/self/limits`.
pub fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the process's numbers (zeros where `/proc` does not have them).
pub fn process() -> Process {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Process {
        cpu_seconds: cpu_seconds(&read("/proc/self/stat")).unwrap_or(0.0),
        rss_bytes: rss_bytes(&read("/proc/self/status")).unwrap_or(0),
        open_files: std::fs::read_dir("/proc/self/fd")
            .map_or(0, |d| i64::try_from(d.count()).unwrap_or(i64::MAX)),
        max_open_files: max_open_files(&read("/proc/self/limits")).unwrap_or(0),
    }
}

/// CPU use between two calls, in percent of one core.
#[derive(Debug)]
pub struct CpuMeter(Mutex<Option<(Instant, f64)>>);

impl Default for CpuMeter {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl CpuMeter {
    /// The percentage since the previous call (since the process started on the first).
    pub fn percent(&self, cpu_seconds: f64, uptime_secs: f64) -> f64 {
        let now = Instant::now();
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (elapsed, used) = match *last {
            Some((at, cpu)) if now.duration_since(at).as_secs_f64() > 0.2 => {
                (now.duration_since(at).as_secs_f64(), cpu_seconds - cpu)
            }
            _ => (uptime_secs.max(1.0), cpu_seconds),
        };
        *last = Some((now, cpu_seconds));
        ((used / elapsed) * 1000.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed_even_with_odd_command_names() {
        let stat = "42 (a b) c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(rss_bytes("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2_097_152));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(cpu_seconds("garbage"), None);
        let p = process();
        assert!(
            p.rss_bytes > 0 && p.open_files > 0 && p.max_open_files > 0,
            "{p:?}"
        );
    }
}
