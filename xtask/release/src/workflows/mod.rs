//! What the commands do, one workflow each: they take an opened stage
//! ([`crate::stage::StageContext`]) and call the domain and the clients.

pub mod attest;
pub mod bootstrap;
pub mod check;
pub mod deploy;
pub mod deployed_tags;
pub mod gc;
pub mod plan;
pub mod promote;
pub mod push;
pub mod retag;
pub mod rollback;
pub mod rollout;
pub mod untag;
pub mod verify;
pub mod work_tree;
