//! Image builds through the Engine API: the context is streamed as it is read.
//!
//! Two builders: BuildKit (a session next to the build, progress as vertexes) where the
//! daemon supports it, else the classic builder; `--builder` (or `XTASK_BUILDER`) overrides
//! the choice ([`BuilderChoice`]).
//!
//! Either way the image gets the same tag and labels, and a failed build names the
//! failing step and ends with the last lines of its output; nothing is tagged.

use std::collections::{BTreeMap, HashMap, VecDeque};

use anyhow::Result;
use bollard::Docker;

use crate::{clients::ecr::RegistryAuth, domain::context::BuildContext, support::progress::Progress};

mod buildkit;
mod classic;

/// The message of a failed build: the failing step, the reason when there is one, and the
/// last lines of its output when it printed any (no empty trailer when it printed none).
fn failure_message(name: &str, step: &str, reason: Option<&str>, tail: &str) -> String {
    let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
    match tail.trim().is_empty() {
        true => format!("build of {name} failed at {step}{reason}"),
        false => format!("build of {name} failed at {step}{reason}\n--- last lines of its output ---\n{tail}"),
    }
}

/// What to build.
pub struct BuildSpec<'a> {
    /// Shown in progress lines.
    pub name: &'a str,
    pub context: &'a BuildContext,
    /// The local tag (`repository:tag`) the image gets.
    pub tag: String,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<String>,
    /// `host` where a build step needs the network on a daemon without a bridge.
    pub network: Option<String>,
    pub builder: BuilderChoice,
    /// Images whose build cache BuildKit may use (`cachefrom`): registry references.
    pub cache_from: Vec<String>,
    /// The registry `cache_from` is read from, with its credentials (handed to BuildKit
    /// through the session, never in the request).
    pub registry: Option<RegistryAuth>,
}

/// Lines of build output shown when a step fails.
const TAIL: usize = 25;

/// The builder asked for (`--builder`, or `XTASK_BUILDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BuilderChoice {
    /// BuildKit on a Linux Docker daemon, the classic builder elsewhere (Windows, Podman).
    Auto,
    /// Always BuildKit (fails on a daemon without it).
    Buildkit,
    /// Always the classic builder (what `DOCKER_BUILDKIT=0` gives).
    Classic,
}

/// Which builder runs a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builder {
    Classic,
    BuildKit,
}

impl Builder {
    async fn select(docker: &Docker, choice: BuilderChoice) -> Builder {
        match choice {
            BuilderChoice::Classic => Builder::Classic,
            BuilderChoice::Buildkit => Builder::BuildKit,
            BuilderChoice::Auto => Builder::detect(docker).await,
        }
    }

    /// BuildKit on a Linux Docker daemon (`connect()` already requires API 1.41, and
    /// BuildKit sessions need 1.39); the classic builder where the daemon cannot tell
    /// or is not Docker's (Podman answers `/version` with a "Podman Engine" component).
    async fn detect(docker: &Docker) -> Builder {
        let Ok(version) = docker.version().await else {
            return Builder::Classic;
        };
        let linux = version.os.as_deref().is_some_and(|os| os.eq_ignore_ascii_case("linux"));
        let podman =
            version.components.iter().flatten().any(|component| component.name.to_ascii_lowercase().contains("podman"));
        if linux && !podman { Builder::BuildKit } else { Builder::Classic }
    }
}

/// Builds the image and returns its id (`sha256:...`) with the builder `spec.builder`
/// names or the daemon picks. On failure the error names the failing step and ends with
/// the tail of its output; nothing is tagged.
pub async fn build(docker: &Docker, spec: &BuildSpec<'_>, progress: &Progress) -> Result<String> {
    match Builder::select(docker, spec.builder).await {
        Builder::Classic => classic::build(docker, spec, progress).await,
        Builder::BuildKit => match buildkit::build(docker, spec, progress).await {
            // BuildKit runs a step that two builds share once, tied to the build that started
            // it; when that build ends first, the other can fail with "context canceled"
            // (seen with identical builds side by side on one daemon). This process was not
            // interrupted (it would not be here), so the build runs once more, from cache.
            Err(err) if is_shared_ref_cancelled(&format!("{err:#}")) => {
                progress.println(format!(
                    "{}: BuildKit cancelled a step this build shared with another one; building again",
                    spec.name
                ));
                buildkit::build(docker, spec, progress).await
            }
            other => other,
        },
    }
}

/// BuildKit's words for a step whose shared result went with the build that started it:
/// "failed to calculate checksum of ref …: context canceled".
fn is_shared_ref_cancelled(error: &str) -> bool {
    error.lines().any(|line| line.contains("failed to calculate checksum of ref") && line.contains("context canceled"))
}

/// Whether builds with `choice` run on BuildKit on this daemon (what build cache needs).
pub async fn is_buildkit(docker: &Docker, choice: BuilderChoice) -> bool {
    Builder::select(docker, choice).await == Builder::BuildKit
}

/// The id of the image the build tagged, for a stream that did not report it.
async fn inspect_id(docker: &Docker, spec: &BuildSpec<'_>) -> Result<String> {
    use anyhow::Context;
    let inspect = docker
        .inspect_image(&spec.tag)
        .await
        .with_context(|| format!("the build of {} ended without an image", spec.name))?;
    inspect.id.context("the daemon reported an image without an id")
}

/// The last `TAIL` lines of output.
#[derive(Default)]
struct Tail(VecDeque<String>);

impl Tail {
    fn push(&mut self, line: &str) {
        if self.0.len() == TAIL {
            self.0.pop_front();
        }
        self.0.push_back(line.to_string());
    }

    fn text(&self) -> String {
        self.0.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

fn to_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `sha256:0123456789ab` for display.
pub fn short(id: &str) -> &str {
    crate::support::text::short_digest(id)
}

#[cfg(test)]
mod failure_tests {
    use super::*;

    #[test]
    fn a_failure_without_output_has_no_empty_trailer() {
        assert_eq!(
            failure_message("svc", "[2/2] RUN x", Some("exit 1"), " \n"),
            "build of svc failed at [2/2] RUN x: exit 1"
        );
        assert_eq!(
            failure_message("svc", "RUN x", None, "one\ntwo"),
            "build of svc failed at RUN x\n--- last lines of its output ---\none\ntwo"
        );
    }
}
