//! `cargo xtask`: the command line of the release plumbing. `commands` holds one module per
//! command with its flags: it parses, opens the stage (through the local stack for a stage it
//! serves), calls a workflow of `xtask-release` and prints. No command calls another.
//!
//! **Architecture invariant:** this crate only wires; what a command does lives in
//! `xtask-release` (the production path) or `xtask-local-stack` (the stand-in and the local
//! stage's whole chain).

pub mod commands;
