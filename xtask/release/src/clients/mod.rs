//! Clients of outside systems. Each takes plain values (an SDK client, a registry
//! endpoint, a directory), never a stage: what a workflow knows stays in the workflow.

pub mod aws;
pub mod cdk;
pub mod docker;
pub mod ecr;
pub mod ecs;
pub mod git;
pub mod http;
pub mod kms;
#[cfg(test)]
pub mod mocked;
pub mod registry_api;
