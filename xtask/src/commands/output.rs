//! What commands print on stdout. Written with `?`, so a closed pipe ends the command
//! quietly (see `exit::classify`) instead of panicking as `println!` would.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// One JSON document on a line. Serialized first: serde_json's writer error would hide
/// the `io::Error` that says the pipe is closed.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    text(&format!("{}\n", serde_json::to_string(value)?))
}

/// Text as it is.
pub fn text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}
