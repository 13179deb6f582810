//! The report: a header naming the machine, the markdown table, and how it was measured.

use anyhow::Result;
use xshell::{Shell, cmd};

use super::{
    Row,
    measure::{self, Stats},
};

/// `date, N cores, M GiB memory, Docker X (API Y), a debug/release build of xtask`.
pub fn machine(sh: &Shell) -> Result<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let date = format!("{}Z", &xtask_release::domain::image::rfc3339(now)[..16]);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let format = "{{.Server.Version}} (API {{.Server.APIVersion}})";
    let docker = cmd!(sh, "docker version --format {format}").quiet().read()?;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = loadavg.split_whitespace().next().unwrap_or("?");
    Ok(format!(
        "{date}, {cores} cores, {:.1} GiB memory, load average {load} at the start, Docker {docker}, \
         xtask as `cargo xtask` builds it ({profile} profile)",
        kib as f64 / (1024.0 * 1024.0)
    ))
}

pub fn markdown(machine: &str, runs: usize, took: f64, rows: &[Row], notes: &[String]) -> String {
    let mut out = format!(
        "# cargo xtask bench\n\n{machine}. Each cell: median (min–max) of {runs} runs after a warm-up; \
         the bench took {:.1} min.\n\n",
        took / 60.0
    );
    out += "| # | measured | baseline | ours | baseline | ours / baseline | also measured |\n";
    out += "|---|---|---|---|---|---|---|\n";
    for row in rows {
        let (ours, theirs) = (Stats::of(&row.ours), Stats::of(&row.theirs));
        out += &format!(
            "| {} | {} | {} | {} | {} | {:.2} | {} |\n",
            row.id,
            row.what,
            row.baseline,
            ours.show(measure::secs),
            theirs.show(measure::secs),
            ours.median / theirs.median,
            row.also.join("; ")
        );
    }
    if !notes.is_empty() {
        out += "\n";
        for note in notes {
            out += &format!("- {note}\n");
        }
    }
    out
}
