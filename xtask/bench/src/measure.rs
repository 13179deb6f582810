//! One timed child process: wall time, peak resident memory and its stdout;
//! and the median / min / max of a series.

use std::{
    fs::File,
    io::Read,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::cmd;

/// How often the child's peak RSS is read.
const RSS_POLL: Duration = Duration::from_millis(10);

/// What to do with the child's stdout.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Keep it (it is small).
    Keep,
    /// Read every byte and count it, keeping nothing (a tar stream).
    Drain,
}

pub struct Sample {
    /// From spawn to exit.
    pub secs: f64,
    /// The child's `VmHWM` (bytes), as last read before it exited.
    pub peak_rss: u64,
    /// CPU seconds (user and system) of the child and the descendants it waited for.
    pub cpu_secs: f64,
    pub stdout: String,
    pub stdout_bytes: u64,
}

/// Runs `command` to its end with its stderr written to `log`. Fails, with the tail
/// of the log, unless it exits 0 within `limit`; past it, the command's process group
/// (it gets its own) is stopped.
pub fn run(what: &str, command: impl Into<Command>, stdout: Stdout, log: &Path, limit: Duration) -> Result<Sample> {
    let mut command: Command = command.into();
    let err = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err).process_group(0);

    // The bench runs one command at a time: what the process's reaped children used grows
    // by this child's use alone.
    let cpu_before = children_cpu();
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("cannot start {what}"))?;
    let pid = child.id();
    let mut out = child.stdout.take().context("the child's stdout is not piped")?;
    let reader = thread::spawn(move || -> std::io::Result<(Vec<u8>, u64)> {
        let (mut kept, mut total, mut buf) = (Vec::new(), 0u64, vec![0u8; 256 * 1024]);
        loop {
            let n = out.read(&mut buf)?;
            if n == 0 {
                return Ok((kept, total));
            }
            total += n as u64;
            if stdout == Stdout::Keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
    });
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        thread::spawn(move || {
            let mut peak = 0;
            // Stops before the pid is reaped and could be reused.
            while !done.load(Ordering::Acquire) {
                peak = peak.max(vm_hwm(pid).unwrap_or(0));
                thread::sleep(RSS_POLL);
            }
            peak
        })
    };
    let (exited, receiver) = mpsc::channel();
    thread::spawn(move || {
        let status = child.wait();
        // The sampler stops reading the pid as soon as it is reaped.
        done.store(true, Ordering::Release);
        let _ = exited.send((status, started.elapsed()));
    });
    let (status, elapsed) = match receiver.recv_timeout(limit) {
        Ok(exit) => exit,
        Err(_) => {
            stop_group(pid, &receiver);
            bail!(
                "{what} did not finish within {} s and was stopped; {} ends with:\n{}",
                limit.as_secs(),
                log.display(),
                tail(log, 20)
            );
        }
    };
    let peak_rss = sampler.join().expect("the RSS sampler does not panic");
    let status = status.with_context(|| format!("cannot wait for {what}"))?;
    let (kept, stdout_bytes) = reader
        .join()
        .expect("the stdout reader does not panic")
        .with_context(|| format!("cannot read the output of {what}"))?;
    let stdout = String::from_utf8_lossy(&kept).into_owned();
    if !status.success() {
        bail!("{what} failed ({status}); {} ends with:\n{}\n{}", log.display(), tail(log, 20), tail_str(&stdout, 5));
    }
    let cpu_secs = children_cpu() - cpu_before;
    Ok(Sample { secs: elapsed.as_secs_f64(), peak_rss, cpu_secs, stdout, stdout_bytes })
}

/// User and system CPU seconds of this process's children that have been waited for.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes the struct it is given, which is plain data.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// TERM to the process group `pid` leads, KILL if it is still there 10 s later;
/// returns once the leader is reaped.
fn stop_group<T>(pid: u32, exited: &mpsc::Receiver<T>) {
    let Ok(sh) = xshell::Shell::new() else { return };
    let group = format!("-{pid}");
    let _ = cmd!(sh, "kill -TERM -- {group}").quiet().ignore_stderr().run();
    if exited.recv_timeout(Duration::from_secs(10)).is_err() {
        let _ = cmd!(sh, "kill -KILL -- {group}").quiet().ignore_stderr().run();
        let _ = exited.recv();
    }
}

/// `VmHWM` of a running process, in bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn tail(log: &Path, lines: usize) -> String {
    tail_str(&std::fs::read_to_string(log).unwrap_or_default(), lines)
}

fn tail_str(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Median, min and max of a series.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        assert!(!values.is_empty(), "a series has at least one run");
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2.0 } else { sorted[mid] };
        Stats { median, min: sorted[0], max: sorted[sorted.len() - 1] }
    }

    /// `median (min–max)`, each value formatted by `unit`.
    pub fn show(&self, unit: fn(f64) -> String) -> String {
        format!("{} ({}–{})", unit(self.median), unit(self.min), unit(self.max))
    }
}

pub fn secs(s: f64) -> String {
    if s < 1.0 { format!("{:.0} ms", s * 1e3) } else { format!("{s:.2} s") }
}

pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

pub fn bytes(n: f64) -> String {
    indicatif::HumanBytes(n as u64).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use xshell::{Shell, cmd};

    use super::{Stats, Stdout, run};

    #[test]
    fn drains_stdout_and_reads_peak_memory() {
        let sh = Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let sample = run(
            "head",
            cmd!(sh, "head -c 3000000 /dev/zero"),
            Stdout::Drain,
            &dir.path().join("log"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!((sample.stdout_bytes, sample.stdout.as_str()), (3_000_000, ""));
        let sample =
            run("sleep", cmd!(sh, "sleep 0.3"), Stdout::Keep, &dir.path().join("log"), Duration::from_secs(30))
                .unwrap();
        assert!(sample.secs >= 0.3 && sample.peak_rss > 0, "{} s, {} bytes", sample.secs, sample.peak_rss);
    }

    #[test]
    fn a_command_past_its_limit_is_stopped() {
        let sh = Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let started = Instant::now();
        let err = run("sleep", cmd!(sh, "sleep 30"), Stdout::Keep, &dir.path().join("log"), Duration::from_millis(300))
            .err()
            .unwrap();
        assert!(err.to_string().contains("did not finish within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn median_of_odd_and_even_series() {
        let odd = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }
}
