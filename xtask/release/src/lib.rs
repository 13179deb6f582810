//! The release library: take a workspace's services from a git commit to a running ECS
//! deployment (build, tag with the commit, push to ECR, check, promote, deploy, verify,
//! keep what a stage runs).
//!
//! **Architecture invariant:** this crate knows nothing of the local stack. It does not
//! depend on `xtask-local-stack` (a test over `cargo metadata` keeps it so), and no source
//! here names the emulator: a stage is opened with plain data ([`stage::Access`]: the SDK
//! configuration, the registry's endpoint, cdk's environment, the build network), and the
//! few points where a stage may act differently are narrow traits ([`stage::Rollouts`]).
//!
//! Layers, each calling only the ones below it:
//! - [`workflows`]: what a command does (push, promote, check, plan, deploy, verify, ...);
//! - [`domain`]: the settings and what images are made of (config, image inputs,
//!   Dockerfiles, build contexts, retention);
//! - [`clients`]: outside systems, each taking plain values (Docker Engine API, the
//!   registry API, ECR, ECS, git, cdk, http);
//! - [`support`]: exit codes and signals, progress output, file locks.

pub mod clients;
pub mod domain;
pub mod stage;
pub mod support;
pub mod workflows;
