//! What commands print on stdout. Written with `?`, so a closed pipe ends the command
//! quietly (see `exit::classify`) instead of panicking as `println!` would.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// One JSON document on a line.
pub fn json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(out.flush()?)
}

/// Text as it is.
pub fn text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}
