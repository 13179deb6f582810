//! `cargo xtask`: the release plumbing of this workspace.
//!
//! `commands` holds one module per command with its flags; the modules beside it hold one
//! job each: the stage a command works on (`stage`, and `target`, the one seam between a
//! stage in AWS and the local stack), the release steps (`push`, `deployable`, `deploy`,
//! `bootstrap`, and `pipeline`, the chain a local deploy runs), and what they are built
//! from (git identity, build context, Docker, ECR, CDK, the local stack).
//!
//! What the integration tests use is `pub`; the rest is `pub(crate)` or private.

mod aws;
mod bench;
mod bootstrap;
mod build_cache;
mod cdk;
pub mod commands;
pub mod config;
pub mod context;
mod deploy;
mod deployable;
mod deployed_tags;
pub mod docker;
mod dockerfile;
pub mod ecr;
mod ecs;
pub mod exit;
mod gc;
mod git;
pub mod http;
mod image;
mod inventory;
pub mod local;
mod lock;
mod pipeline;
mod plan;
mod progress;
mod promote;
mod push;
mod registry_api;
mod retention;
mod stage;
mod target;
mod verify;
pub mod workspace;
