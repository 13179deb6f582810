//! The periodic job: it records a tick (how many, and when the last ran), which is
//! what `/healthz` and `/version` report.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::time::MissedTickBehavior;

/// How many intervals may pass without a tick before the worker is stale.
const STALE_AFTER: u32 = 3;

pub struct Ticks {
    interval: Duration,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub count: u64,
    /// When the last tick ran: monotonic (for staleness) and wall-clock (for people).
    pub last: Option<(Instant, SystemTime)>,
}

impl Ticks {
    pub fn new(interval: Duration) -> Ticks {
        Ticks { interval, started: Instant::now(), state: Mutex::default() }
    }

    /// The job: records a tick and returns how many have run.
    pub fn record(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.count += 1;
        state.last = Some((Instant::now(), SystemTime::now()));
        state.count
    }

    pub fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the last tick (or the start, before the first) is at most
    /// [`STALE_AFTER`] intervals before `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        let since = self.state().last.map_or(self.started, |(at, _)| at);
        now.saturating_duration_since(since) <= self.interval * STALE_AFTER
    }
}

/// Runs the job once now, before the caller serves anything (so `/version` never shows
/// a worker that has not ticked yet), then every interval on a task of its own, for as
/// long as the runtime runs.
pub fn start(ticks: Arc<Ticks>) {
    tick(&ticks);
    let first = tokio::time::Instant::now() + ticks.interval;
    let mut interval = tokio::time::interval_at(first, ticks.interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            interval.tick().await;
            tick(&ticks);
        }
    });
}

fn tick(ticks: &Ticks) {
    let count = ticks.record();
    tracing::info!(count, "tick");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ticks_and_goes_stale() {
        let start = Instant::now();
        let ticks = Ticks::new(Duration::from_secs(10));
        assert_eq!(ticks.state(), State::default());
        assert!(ticks.is_fresh(start + Duration::from_secs(30)), "fresh before the first tick");
        assert!(!ticks.is_fresh(start + Duration::from_secs(31)));

        assert_eq!((ticks.record(), ticks.record()), (1, 2));
        let (at, _) = ticks.state().last.unwrap();
        assert!(ticks.is_fresh(at + Duration::from_secs(30)));
        assert!(!ticks.is_fresh(at + Duration::from_secs(31)));
    }
}
