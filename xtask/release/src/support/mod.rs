//! What every layer may use: exit codes and signals, progress output, file locks.

pub mod exit;
pub mod lock;
pub mod progress;
