//! The settings and what images are made of: pure logic over values, no outside calls
//! beyond reading the workspace's files.

pub mod build_cache;
pub mod channel;
pub mod config;
pub mod context;
pub mod dockerfile;
pub mod image;
pub mod inventory;
pub mod provenance;
pub mod resolved;
pub mod retention;
pub mod rollout;
pub mod scan;
pub mod service_deployment;
pub mod workspace;
