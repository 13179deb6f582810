//! Base images for the app's Dockerfile, made on this machine because public
//! images cannot be pulled here. Their names are ours, never an official image's;
//! the `local` stage passes them as build arguments
//! (`[workspace.metadata.xtask.stages.local] build-args`).
//!
//! - a Debian bookworm rootfs from Debian's packages (`debootstrap --variant=minbase`);
//! - that rootfs with gcc and the host's Rust toolchain (without its docs).

use std::path::Path;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use xshell::cmd;

use crate::prerequisites;
use xtask_release::{
    clients::docker::{
        self,
        build::{BuildSpec, BuilderChoice},
    },
    domain::context::BuildContext,
    domain::workspace::Workspace,
    support::progress::Progress,
};

/// Debian bookworm, minimal: stands in for `debian:bookworm-slim`.
pub const DEBIAN: &str = "xtask-local/debian:bookworm-minbase";
/// Debian bookworm with gcc and the host's Rust toolchain: stands in for `rust:*-slim-bookworm`.
pub const RUST: &str = "xtask-local/rust:host";

/// Where debootstrap fetches Debian's packages unless `--debian-mirror` says otherwise.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Makes whichever base image is missing.
pub async fn ensure(ws: &Workspace, docker: &Docker, dir: &Path, mirror: &str) -> Result<()> {
    let dir = dir.join("base");
    let progress = Progress::detect();
    if !exists(docker, DEBIAN).await {
        make_debian(ws, docker, &dir, mirror, &progress).await?;
    }
    if !exists(docker, RUST).await {
        make_rust(ws, docker, &dir, &progress).await?;
    }
    Ok(())
}

/// Must [`ensure`] make the Debian base image (with debootstrap)? The Rust one is built
/// from it by the daemon and needs nothing more from this machine.
pub async fn must_make_debian(docker: &Docker) -> bool {
    !exists(docker, DEBIAN).await
}

/// Each base image and whether the daemon has it.
pub async fn present() -> Vec<(&'static str, bool)> {
    let Ok(docker) = docker::connect().await else {
        return vec![(DEBIAN, false), (RUST, false)];
    };
    vec![(DEBIAN, exists(&docker, DEBIAN).await), (RUST, exists(&docker, RUST).await)]
}

/// Copies the stand-in base images from the daemon `from` into `to`, as a runner whose
/// daemon starts empty would pull them (they cannot be pulled from anywhere).
pub async fn copy(from: &Docker, to: &Docker) -> Result<()> {
    use futures_util::StreamExt;
    let tar = from.export_images(&[RUST, DEBIAN]);
    let mut load = to.import_image_stream(bollard::query_parameters::ImportImageOptions::default(), tar, None);
    while let Some(item) = load.next().await {
        if let Some(detail) = item.context("cannot load the base images")?.error_detail {
            bail!("cannot load the base images: {}", detail.message.unwrap_or_default());
        }
    }
    Ok(())
}

async fn exists(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

async fn make_debian(ws: &Workspace, docker: &Docker, dir: &Path, mirror: &str, progress: &Progress) -> Result<()> {
    let sh = &ws.sh;
    // Root first: a user's PATH often leaves out /usr/sbin, where debootstrap is, and
    // "missing" would be the wrong advice to someone who has it.
    let uid = cmd!(sh, "id -u").quiet().read()?;
    if uid.trim() != "0" {
        bail!(
            "debootstrap needs root to make {DEBIAN}; run `cargo xtask local up` once as root (later runs reuse the image)"
        );
    }
    // Where the prerequisites check found it (`local up` checked before starting anything).
    let debootstrap = prerequisites::locate(sh, "debootstrap").context(
        "debootstrap is missing; install Debian's package (apt-get install debootstrap) to make the local base images",
    )?;
    let rootfs = dir.join("bookworm-minbase");
    if rootfs.exists() {
        std::fs::remove_dir_all(&rootfs).with_context(|| format!("cannot clear {}", rootfs.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let task = progress.task(DEBIAN);
    task.step(format!("debootstrap --variant=minbase bookworm from {mirror}"));
    let log = dir.join("debootstrap.log");
    let out =
        cmd!(sh, "{debootstrap} --variant=minbase bookworm {rootfs} {mirror}").quiet().ignore_status().output()?;
    std::fs::write(&log, [out.stdout.as_slice(), out.stderr.as_slice()].concat())?;
    if !out.status.success() {
        task.abandon();
        bail!(
            "debootstrap of Debian bookworm from {mirror} failed (pass `--debian-mirror URL` or set XTASK_DEBIAN_MIRROR to a reachable mirror); {} ends with:\n{}",
            log.display(),
            super::process::log_tail(&log, 10)
        );
    }
    task.finish("rootfs ready");
    // Downloaded packages and package lists only make the image bigger.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(dir);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                std::fs::remove_file(entry.path()).ok();
            }
        }
    }
    let dockerfile = dir.join("Dockerfile.debian");
    std::fs::write(
        &dockerfile,
        "FROM scratch\nCOPY . /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD [\"/bin/bash\"]\n",
    )?;
    build(docker, DEBIAN, "debian:bookworm-slim", &rootfs, &dockerfile, None, progress).await?;
    std::fs::remove_dir_all(&rootfs).ok();
    Ok(())
}

/// Debian's bundle of the certificate authorities the host trusts.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CA_BUNDLE_IN_CONTEXT: &str = "host-ca-certificates.crt";

async fn make_rust(ws: &Workspace, docker: &Docker, dir: &Path, progress: &Progress) -> Result<()> {
    let sh = &ws.sh;
    let sysroot = cmd!(sh, "rustc --print sysroot").quiet().read().context("cannot find the host's Rust toolchain")?;
    let toolchain = dir.join("rust-toolchain");
    if toolchain.exists() {
        std::fs::remove_dir_all(&toolchain)?;
    }
    std::fs::create_dir_all(&toolchain)?;
    // Everything but share/ (docs and man pages, ~800 MB).
    for part in ["bin", "lib", "libexec", "etc"] {
        let from = Path::new(&sysroot).join(part);
        if from.exists() {
            cmd!(sh, "cp -a {from} {toolchain}").quiet().run()?;
        }
    }
    // The host's trust store, so builds reach the package registries over https as the host
    // does: through whatever TLS-inspecting proxy the host trusts, as on many office networks.
    let host_cas = Path::new(HOST_CA_BUNDLE);
    if host_cas.is_file() {
        std::fs::copy(host_cas, toolchain.join(CA_BUNDLE_IN_CONTEXT))
            .with_context(|| format!("cannot copy {HOST_CA_BUNDLE}"))?;
    }
    let dockerfile = dir.join("Dockerfile.rust");
    std::fs::write(
        &dockerfile,
        format!(
            "FROM {DEBIAN}\n\
             RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates && rm -rf /var/lib/apt/lists/*\n\
             COPY . /usr/local/rust/\n\
             RUN if [ -f /usr/local/rust/{CA_BUNDLE_IN_CONTEXT} ]; then mv /usr/local/rust/{CA_BUNDLE_IN_CONTEXT} /etc/ssl/certs/ca-certificates.crt; fi\n\
             ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin CARGO_HOME=/usr/local/cargo\n"
        ),
    )?;
    // apt-get needs the network; the daemon may run without a bridge.
    build(docker, RUST, "rust:slim-bookworm", &toolchain, &dockerfile, Some("host"), progress).await?;
    std::fs::remove_dir_all(&toolchain).ok();
    Ok(())
}

/// Builds a stand-in named `name` for `official` through the same path as every image.
async fn build(
    docker: &Docker,
    name: &str,
    official: &str,
    context: &Path,
    dockerfile: &Path,
    network: Option<&str>,
    progress: &Progress,
) -> Result<()> {
    let context = BuildContext::new(context, dockerfile)?;
    let title = ("org.opencontainers.image.title".to_string(), format!("local stand-in for {official}"));
    let spec = BuildSpec {
        name,
        context: &context,
        tag: name.to_string(),
        build_args: Default::default(),
        labels: [title].into(),
        target: None,
        platform: None,
        network: network.map(str::to_owned),
        builder: BuilderChoice::Auto,
        cache_from: vec![],
        registry: None,
    };
    docker::build::build(docker, &spec, progress).await?;
    Ok(())
}
