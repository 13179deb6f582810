//! What every layer may use: exit codes and signals, progress output, file locks, text
//! cut for display.

pub mod exit;
pub mod lock;
pub mod progress;
pub mod text;
