//! One integration-test binary: each module runs the real `xtask` binary or its
//! library against real processes (git, dockerd, the local stack).

mod app_image;
mod architecture;
mod bad_input;
mod build_cache;
mod check;
mod cli;
mod deploy;
mod dockerignore;
mod index;
mod interrupt;
mod lifecycle;
mod local_provenance;
mod local_stack;
mod plan;
mod pr_channel;
mod promote;
mod provenance;
mod pull_path;
mod push;
mod readme;
mod rollback;
mod strategy;
mod support;
mod tag;
