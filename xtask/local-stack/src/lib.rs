//! The local stack: real stand-ins for AWS on this machine, so the whole pipeline runs
//! without an AWS account, and the local stage's whole chain around the release steps.
//!
//! **Architecture invariant:** this crate depends on `xtask-release`, never the reverse.
//! The release library opens a local stage as it opens any stage, with the plain data
//! [`stage`] makes; the few things the emulator cannot do are made up here, around the
//! release library's steps ([`chain`], [`deploy`]), never inside them.
//!
//! The stand-ins:
//! - `moto_server`: the AWS API (ECR, CloudFormation, S3, SSM, STS, IAM, ECS);
//! - `docker-registry` (CNCF distribution) with htpasswd auth whose user and password
//!   are exactly what the emulated ECR's `GetAuthorizationToken` hands out;
//! - a front door before it that keeps ECR's promises the registry lacks ([`front`]),
//!   the referrers API among them;
//! - a sync process (`cargo xtask local sync`) that turns each manifest push to the
//!   registry into an ECR image with the same tag and digest, and makes tags added
//!   through ECR `PutImage` pullable from the registry;
//! - base images for the services' Dockerfiles, made here when public images cannot be pulled;
//! - the service runner: the deployed containers, run on this machine's Docker daemon;
//! - the KMS keys that sign provenance, which moto's CloudFormation cannot make ([`signing_keys`]).
//!
//! Ports, pids, logs and data live in the stack's directory (`target/local/` unless
//! `--local-stack`/`XTASK_LOCAL_STACK` names another): the ports are picked free when the
//! stack starts, so two checkouts can each run their own.

mod agreement;
pub mod base_images;
pub mod chain;
mod credentials;
pub mod deploy;
pub mod dockerd;
mod files;
mod front;
mod moto;
pub mod ports;
pub mod prerequisites;
pub mod process;
pub mod quote;
mod referrers;
mod registry;
mod repository_settings;
pub mod service;
pub mod settings;
pub mod sidecar;
pub mod signing_keys;
pub mod stack;
pub mod stage;
pub mod sync;

pub use credentials::{LOCAL_SECRET_KEY, credentials_json};
pub use ports::{Ports, RegistryPorts};
pub use settings::DEFAULT_ACCOUNT;
pub use stack::{Deployed, Stack, running};
