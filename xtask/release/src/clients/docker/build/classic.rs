//! The classic builder (`DOCKER_BUILDKIT=0`): progress from its `Step n/m` lines.

use std::collections::VecDeque;

use anyhow::{Context, Result, bail};
use bollard::{
    Docker,
    models::{BuildInfoAux, ImageId},
    query_parameters::BuildImageOptions,
};
use futures_util::StreamExt;

use super::{BuildSpec, TAIL, inspect_id, short, to_map};
use crate::support::progress::Progress;

/// Builds the image and returns its id (`sha256:...`). On failure the error names
/// the failing step and ends with the tail of its output; nothing is tagged.
pub(super) async fn build(docker: &Docker, spec: &BuildSpec<'_>, progress: &Progress) -> Result<String> {
    // Cache mounts are BuildKit's: this builder gets the Dockerfile without them.
    let path = spec.context.dockerfile_path();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rewritten =
        crate::domain::dockerfile::without_cache_mounts(&text).map(|t| spec.context.with_dockerfile(t.into_bytes()));
    let context = rewritten.as_ref().unwrap_or(spec.context);
    let options = BuildImageOptions {
        dockerfile: context.dockerfile_name().to_string(),
        t: Some(spec.tag.clone()),
        rm: true,
        forcerm: true,
        buildargs: Some(to_map(&spec.build_args)),
        labels: Some(to_map(&spec.labels)),
        target: spec.target.clone().unwrap_or_default(),
        platform: spec.platform.clone().unwrap_or_default(),
        networkmode: spec.network.clone(),
        ..Default::default()
    };
    let task = progress.task(spec.name);
    task.step("sending context");
    let body = bollard::body_try_stream(context.stream());
    let mut stream = docker.build_image(options, None, Some(body));

    let mut step = String::from("(before the first step)");
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL);
    let mut id = None;
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(err) => {
                task.abandon();
                let output: Vec<String> = tail.into_iter().collect();
                return Err(anyhow::Error::new(err)).context(super::failure_message(
                    spec.name,
                    &step,
                    None,
                    &output.join("\n"),
                ));
            }
        };
        if let Some(detail) = info.error_detail {
            task.abandon();
            bail!(super::failure_message(
                spec.name,
                &step,
                Some(&detail.message.unwrap_or_default()),
                &tail.into_iter().collect::<Vec<_>>().join("\n"),
            ));
        }
        if let Some(BuildInfoAux::Default(ImageId { id: Some(aux) })) = info.aux {
            id = Some(aux);
        }
        let Some(text) = info.stream else { continue };
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            if line.starts_with("Step ") {
                step = line.to_string();
                task.step(line);
            } else if !progress.is_live() {
                eprintln!("{}: {line}", spec.name);
            }
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        }
    }
    let id = match id {
        Some(id) => id,
        None => inspect_id(docker, spec).await?,
    };
    task.finish(format!("built {} ({})", spec.tag, short(&id)));
    Ok(id)
}
