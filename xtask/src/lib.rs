//! `cargo xtask`: the release plumbing of this workspace.
//!
//! Each command lives in its own module under `commands`; the modules beside it
//! hold one job each (git identity, build context, Docker, ECR, CDK, the local stack).

pub mod aws;
pub mod bench;
pub mod cdk;
pub mod commands;
pub mod config;
pub mod deployable;
pub mod context;
pub mod docker;
pub mod ecr;
pub mod git;
pub mod http;
pub mod image;
pub mod local;
pub mod progress;
pub mod registry_api;
pub mod workspace;
