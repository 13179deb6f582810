//! BuildKit builds: the context is served over a BuildKit session (module
//! `docker::session`), as buildx sends it, never uploaded as a tar; the daemon reports
//! progress as `moby.buildkit.trace` aux messages (vertexes, their statuses and logs), then
//! the image id as a `moby.image.id` aux message.
//!
//! No `# syntax` directive in our Dockerfiles: it makes BuildKit pull a frontend image.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use bollard::{
    Docker,
    errors::Error as DockerError,
    moby::buildkit::v1::StatusResponse,
    models::{BuildInfo, BuildInfoAux, ImageId},
    query_parameters::{BuildImageOptions, BuilderVersion},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

use super::{BuildSpec, Tail, inspect_id, short, to_map};
use crate::{
    clients::docker::{endpoint::Endpoint, session::Session},
    support::progress::{Progress, Task},
};

pub(super) async fn build(docker: &Docker, spec: &BuildSpec<'_>, progress: &Progress) -> Result<String> {
    let task = progress.task(spec.name);
    let endpoint = Endpoint::from_env()?;
    let api = format!("/v{}", docker.client_version());
    let session = Session::open(&endpoint, &api, spec.context, spec.registry.clone()).await?;
    let (_, dockerfile) = spec.context.dockerfile_dir_and_name();
    let options = BuildImageOptions {
        dockerfile: dockerfile.to_string(),
        t: Some(spec.tag.clone()),
        remote: Some("client-session".to_string()),
        buildargs: Some(to_map(&spec.build_args)),
        labels: Some(to_map(&spec.labels)),
        target: spec.target.clone().unwrap_or_default(),
        platform: spec.platform.clone().unwrap_or_default(),
        networkmode: network_mode(docker, spec).await,
        version: BuilderVersion::BuilderBuildKit,
        session: Some(session.id.clone()),
        cachefrom: (!spec.cache_from.is_empty()).then(|| spec.cache_from.clone()),
        ..Default::default()
    };
    let query = serde_urlencoded::to_string(&options).context("cannot encode the build options")?;
    let request = hyper::Request::post(format!("{api}/build?{query}"))
        .header("Host", "docker")
        .header("Content-Type", "application/x-tar")
        .body(Empty::<Bytes>::new())
        .context("cannot make the build request")?;
    task.step("starting the build");
    let response = endpoint.send(request).await.with_context(|| format!("cannot start the build of {}", spec.name))?;
    let status = response.status();
    let mut body = response.into_body();

    let mut trace = Trace::new(spec.name, &task, progress.is_live());
    let mut id = None;
    let mut buffer = Vec::new();
    let mut message = None;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                task.abandon();
                return Err(anyhow::Error::new(err).context(trace.failure(None)));
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        buffer.extend_from_slice(&data);
        if !status.is_success() {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_slice(&buffer).into_iter::<BuildInfo>();
        let mut consumed = 0;
        while let Some(item) = stream.next() {
            let info = match item {
                Ok(info) => info,
                Err(e) if e.is_eof() => break,
                Err(e) => {
                    task.abandon();
                    return Err(anyhow::Error::new(e)
                        .context(format!("the daemon's build output for {} is not JSON", spec.name)));
                }
            };
            consumed = stream.byte_offset();
            if let Some(detail) = info.error_detail {
                message = detail.message.or(Some(String::new()));
                continue;
            }
            match info.aux {
                Some(BuildInfoAux::BuildKit(status)) => trace.update(status),
                Some(BuildInfoAux::Default(ImageId { id: Some(image) })) => id = Some(image),
                _ => {}
            }
            if let Some(text) = info.stream {
                for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                    trace.line(None, line);
                }
            }
        }
        buffer.drain(..consumed);
    }
    if !status.is_success() {
        task.abandon();
        let text = String::from_utf8_lossy(&buffer);
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        return Err(trace.failure(Some(&format!("the daemon refused the build ({status}): {reason}"))));
    }
    // The daemon ends a failed build with an error message; a vertex error without one
    // still fails the build.
    if message.is_some() || trace.failed.is_some() {
        task.abandon();
        return Err(trace.failure(message.as_deref().filter(|m| !m.is_empty())));
    }
    let id = match id {
        Some(id) => id,
        None => inspect_id(docker, spec).await?,
    };
    let (bytes, files) = session.sent();
    drop(session);
    task.finish(format!("built {} ({}; context: {files} files, {bytes} bytes sent)", spec.tag, short(&id)));
    Ok(id)
}

/// The spec's network; else `none` on a daemon without the default bridge
/// (`dockerd --bridge=none`). The classic builder runs `RUN` steps there without a
/// network; BuildKit's default (the bridge) fails with "network bridge not found".
async fn network_mode(docker: &Docker, spec: &BuildSpec<'_>) -> Option<String> {
    if spec.network.is_some() {
        return spec.network.clone();
    }
    match docker.inspect_network("bridge", None).await {
        Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Some("none".to_string()),
        _ => None,
    }
}

/// What the trace has told so far.
struct Trace<'t> {
    name: &'t str,
    task: &'t Task,
    live: bool,
    /// By vertex digest.
    vertexes: HashMap<String, Vertex>,
    /// The digest of the vertex that started last.
    current: Option<String>,
    /// The digest and error of the failed vertex.
    failed: Option<(String, String)>,
    /// All output, for an error no vertex claims.
    all: Tail,
}

#[derive(Default)]
struct Vertex {
    /// `[build 3/5] RUN cargo build ...`
    name: String,
    shown: bool,
    tail: Tail,
    /// Log bytes after the last newline.
    partial: Vec<u8>,
}

impl<'t> Trace<'t> {
    fn new(name: &'t str, task: &'t Task, live: bool) -> Self {
        Trace { name, task, live, vertexes: HashMap::new(), current: None, failed: None, all: Tail::default() }
    }

    fn update(&mut self, status: StatusResponse) {
        for v in status.vertexes {
            let vertex = self.vertexes.entry(v.digest.clone()).or_default();
            if vertex.name.is_empty() {
                vertex.name = v.name.clone();
            }
            if !vertex.shown && (v.cached || v.started.is_some()) {
                vertex.shown = true;
                match v.cached {
                    true => self.task.step(format!("{} (cached)", vertex.name)),
                    false => self.task.step(&vertex.name),
                }
                self.current = Some(v.digest.clone());
            }
            // Output that did not end with a newline.
            if v.completed.is_some() && !vertex.partial.is_empty() {
                let rest = String::from_utf8_lossy(&std::mem::take(&mut vertex.partial)).trim_end().to_string();
                self.line(Some(&v.digest), &rest);
            }
            // A failure cancels the steps running beside it; keep the one that failed.
            let cancelled = |error: &str| error.contains("context canceled");
            if !v.error.is_empty()
                && self.failed.as_ref().is_none_or(|(_, error)| cancelled(error) && !cancelled(&v.error))
            {
                self.failed = Some((v.digest, v.error));
            }
        }
        for s in status.statuses {
            // Transfers (context, layers): bytes on a terminal, nothing in CI logs.
            if let Some(vertex) = self.vertexes.get(&s.vertex) {
                let amount = match s.total {
                    0 => format!("{}", s.current),
                    total => format!("{}/{total}", s.current),
                };
                self.task.detail(format!("{} {} {amount}", vertex.name, s.id));
            }
        }
        for log in status.logs {
            let vertex = self.vertexes.entry(log.vertex.clone()).or_default();
            vertex.partial.extend_from_slice(&log.msg);
            let Some(end) = vertex.partial.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let complete: Vec<u8> = vertex.partial.drain(..=end).collect();
            for line in String::from_utf8_lossy(&complete).lines() {
                self.line(Some(&log.vertex), line.trim_end());
            }
        }
        for w in status.warnings {
            self.line(Some(&w.vertex), &format!("warning: {}", String::from_utf8_lossy(&w.short)));
        }
    }

    /// A line of output: into the tails, and printed in CI.
    fn line(&mut self, vertex: Option<&str>, line: &str) {
        if line.is_empty() {
            return;
        }
        if !self.live {
            eprintln!("{}: {line}", self.name);
        }
        self.all.push(line);
        if let Some(vertex) = vertex.and_then(|digest| self.vertexes.get_mut(digest)) {
            vertex.tail.push(line);
        }
    }

    /// The error for a failed build: the failing step, the daemon's message (or the
    /// vertex's error) and the last lines of that step's output.
    fn failure(&mut self, message: Option<&str>) -> anyhow::Error {
        let digest = self.failed.as_ref().map(|(digest, _)| digest.clone()).or_else(|| self.current.clone());
        let vertex = digest.and_then(|digest| self.vertexes.get_mut(&digest));
        let (step, tail) = match vertex {
            Some(vertex) => {
                let partial = String::from_utf8_lossy(&std::mem::take(&mut vertex.partial)).trim_end().to_string();
                if !partial.is_empty() {
                    vertex.tail.push(&partial);
                }
                let tail = match vertex.tail.0.is_empty() {
                    true => self.all.text(),
                    false => vertex.tail.text(),
                };
                (vertex.name.clone(), tail)
            }
            None => ("(before the first step)".to_string(), self.all.text()),
        };
        let message = message.or(self.failed.as_ref().map(|(_, error)| error.as_str()));
        anyhow::anyhow!(super::failure_message(self.name, &step, message, &tail))
    }
}
