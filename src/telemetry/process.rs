//! Process metrics read from `/proc` at scrape time (Linux; zeros elsewhere).

/// A snapshot of the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Start time, in seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Clock ticks per second as Linux reports `/proc` times (`sysconf(_SC_CLK_TCK)`, 100 on
/// every mainstream architecture).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads the current process's figures.
pub fn read() -> ProcessStats {
    let mut stats = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may contain spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok());
        // utime and stime are fields 14 and 15 of the line (11 and 12 after the name);
        // starttime is field 22 (19 after the name).
        if let (Some(user), Some(system)) = (field(11), field(12)) {
            stats.cpu_seconds = (user + system) / TICKS_PER_SECOND;
        }
        if let (Some(start), Some(boot)) = (field(19), boot_time()) {
            stats.start_time_seconds = boot + start / TICKS_PER_SECOND;
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        stats.resident_bytes = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        stats.open_fds = dir.count() as u64;
    }
    stats
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn figures_are_plausible_for_this_process() {
        let stats = super::read();
        assert!(stats.resident_bytes > 1024 * 1024, "{stats:?}");
        assert!(stats.open_fds >= 3, "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stats.start_time_seconds > now - 86_400.0 && stats.start_time_seconds <= now + 1.0,
            "{stats:?}"
        );
    }
}
