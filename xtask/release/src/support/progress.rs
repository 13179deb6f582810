//! Progress for long work: a live display on a terminal, plain lines in CI
//! (`CI` set, or stderr not a terminal), so logs stay readable.

use std::{io::IsTerminal, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--verbose`: tools' own output in full, even on a terminal.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once, by `main`'s flags.
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Live when stderr is a terminal and `CI` is not set.
    pub fn detect() -> Progress {
        let live = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress { multi: live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())) }
    }

    pub fn is_live(&self) -> bool {
        self.multi.is_some()
    }

    /// A line that stays in the output.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line.as_ref());
            }
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// A spinner showing the current step of a task; in CI each step is a line.
    pub fn task(&self, prefix: &str) -> Task {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
                    .expect("valid template"),
            );
            bar.set_prefix(prefix.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Task { bar, prefix: prefix.to_string() }
    }
}

pub struct Task {
    bar: Option<ProgressBar>,
    prefix: String,
}

impl Task {
    /// The current step.
    pub fn step(&self, message: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.set_message(message.as_ref().to_string()),
            None => eprintln!("{}: {}", self.prefix, message.as_ref()),
        }
    }

    /// Transient detail (bytes of a layer): shown live on a terminal, dropped in CI logs.
    pub fn detail(&self, message: impl AsRef<str>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.as_ref().to_string());
        }
    }

    pub fn finish(&self, message: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.as_ref().to_string()),
            None => eprintln!("{}: {}", self.prefix, message.as_ref()),
        }
    }

    pub fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
