//! Base images for the services' Dockerfiles where the Docker daemon cannot pull the
//! official ones (as on a machine without internet access), made on this machine. Their names
//! are ours, never an official image's:
//!
//! - a Debian bookworm rootfs from Debian's packages (`debootstrap --variant=minbase`);
//! - that rootfs with gcc and the host's Rust toolchain (without its docs).
//!
//! Where the daemon has or can pull the official images (Docker Desktop on a laptop, a daemon
//! whose `registry-mirrors` serve them), the Dockerfiles' own bases are built on and no
//! stand-in is made: [`substitutes`] decides, per daemon, and the local stages pass what it
//! says as build arguments ([`xtask_release::stage::Access::build_args`]).

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use xshell::cmd;

use crate::prerequisites;
use xtask_release::{
    clients::docker::{
        self,
        build::{BuildSpec, BuilderChoice},
    },
    domain::config::{Config, Stage},
    domain::context::BuildContext,
    domain::dockerfile,
    domain::workspace::Workspace,
    support::progress::Progress,
};

/// Debian bookworm, minimal: stands in for `debian:bookworm-slim`.
pub const DEBIAN: &str = "xtask-local/debian:bookworm-minbase";
/// Debian bookworm with gcc and the host's Rust toolchain: stands in for `rust:*-slim-bookworm`.
pub const RUST: &str = "xtask-local/rust:host";

/// Where debootstrap fetches Debian's packages unless `--debian-mirror` says otherwise.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The official image `reference` names that a stand-in stands in for, if any: Docker Hub's
/// `rust` (any tag) and `debian:bookworm*`, however the reference spells Docker Hub.
pub fn stand_in_for(reference: &str) -> Option<&'static str> {
    let name = ["docker.io/library/", "index.docker.io/library/", "registry-1.docker.io/library/", "library/"]
        .iter()
        .find_map(|prefix| reference.strip_prefix(prefix))
        .unwrap_or(reference);
    // A digest pins bytes, not a name: the name before it says what it is.
    let name = name.split('@').next().unwrap_or(name);
    if name.contains('/') {
        return None;
    }
    let (repository, tag) = name.split_once(':').unwrap_or((name, "latest"));
    match repository {
        "rust" => Some(RUST),
        "debian" if tag.starts_with("bookworm") => Some(DEBIAN),
        _ => None,
    }
}

/// The build arguments the builds of `stage` on `docker` need: each Dockerfile argument that
/// names a base image a stand-in stands in for (`ARG RUST_IMAGE=…`, `FROM ${RUST_IMAGE}`),
/// given the image's and the stage's own build arguments, names the stand-in when the daemon
/// neither has that image nor can pull it. No daemon (`None`): every such argument does.
/// A Dockerfile that cannot be read is left to the build, which says why.
pub async fn substitutes(config: &Config, stage: &Stage, docker: Option<&Docker>) -> Result<BTreeMap<String, String>> {
    let args = stand_ins_of(config, stage, docker, &mut BTreeMap::new()).await?;
    Ok(args.into_iter().map(|(arg, stand_in)| (arg, stand_in.to_string())).collect())
}

/// [`substitutes`], the daemon's answer for each reference kept in `reachable` (several
/// stages name the same bases).
async fn stand_ins_of(
    config: &Config,
    stage: &Stage,
    docker: Option<&Docker>,
    reachable: &mut BTreeMap<String, bool>,
) -> Result<BTreeMap<String, &'static str>> {
    let mut args: BTreeMap<String, &'static str> = BTreeMap::new();
    for image in &config.images {
        let Ok(text) = std::fs::read_to_string(config.root.join(&image.dockerfile)) else { continue };
        let mut given = image.build_args.clone();
        given.extend(stage.build_args.clone());
        let Ok(named) = dockerfile::base_image_args(&text, &given) else { continue };
        for (arg, reference) in named {
            let Some(stand_in) = stand_in_for(&reference) else { continue };
            let can = match (reachable.get(&reference), docker) {
                (Some(can), _) => *can,
                (None, None) => false,
                (None, Some(docker)) => {
                    let can = can_reach(docker, &reference).await;
                    reachable.insert(reference.clone(), can);
                    can
                }
            };
            if can {
                continue;
            }
            if let Some(other) = args.get(&arg)
                && *other != stand_in
            {
                bail!(
                    "build argument {arg} names both {other}'s and {stand_in}'s originals in the Dockerfiles of \
                     stage `{}`; give the images arguments of their own",
                    stage.name
                );
            }
            args.insert(arg, stand_in);
        }
    }
    Ok(args)
}

/// Does the daemon have `reference`, or can it pull it (from Docker Hub or a mirror it is
/// configured with)? Asked of the daemon's distribution endpoint: a manifest, not a pull.
async fn can_reach(docker: &Docker, reference: &str) -> bool {
    if exists(docker, reference).await {
        return true;
    }
    let asked = tokio::time::timeout(Duration::from_secs(15), docker.inspect_registry_image(reference, None)).await;
    matches!(asked, Ok(Ok(_)))
}

/// The stand-ins the stages the stack serves need on `docker`, the Debian one first when
/// any is (the Rust one is built on it).
pub async fn needed(config: &Config, docker: &Docker) -> Result<Vec<&'static str>> {
    let mut reachable = BTreeMap::new();
    let mut needed = vec![];
    for stage in config.stages.values().filter(|stage| crate::settings::serves(stage)) {
        for stand_in in stand_ins_of(config, stage, Some(docker), &mut reachable).await?.into_values() {
            if !needed.contains(&stand_in) {
                needed.push(stand_in);
            }
        }
    }
    if !needed.is_empty() && !needed.contains(&DEBIAN) {
        needed.insert(0, DEBIAN);
    }
    Ok(needed)
}

/// Makes whichever of the stand-ins `needed` ([`needed`]) `docker` lacks.
pub async fn ensure(ws: &Workspace, docker: &Docker, dir: &Path, mirror: &str, needed: &[&str]) -> Result<()> {
    let dir = dir.join("base");
    let progress = Progress::detect();
    if needed.contains(&DEBIAN) && !exists(docker, DEBIAN).await {
        make_debian(ws, docker, &dir, mirror, &progress).await?;
    }
    if needed.contains(&RUST) && !exists(docker, RUST).await {
        make_rust(ws, docker, &dir, &progress).await?;
    }
    Ok(())
}

/// Must [`ensure`] make the Debian base image (with debootstrap)? Only where it is `needed`
/// and missing: the Rust one is built from it by the daemon and needs nothing more from
/// this machine.
pub async fn must_make_debian(needed: &[&str], docker: &Docker) -> bool {
    needed.contains(&DEBIAN) && !exists(docker, DEBIAN).await
}

/// Each stand-in and its state on the daemon: `present`, `missing`, or `not needed` (the
/// daemon reaches the official images the workspace's Dockerfiles name).
pub async fn states(config: &Config) -> Vec<(&'static str, &'static str)> {
    let Ok(docker) = docker::connect().await else {
        return vec![(DEBIAN, "missing"), (RUST, "missing")];
    };
    // When it cannot be told, both count as needed: "missing" is the safer word.
    let needed = needed(config, &docker).await.unwrap_or_else(|_| vec![DEBIAN, RUST]);
    let mut states = vec![];
    for stand_in in [DEBIAN, RUST] {
        let state = match (exists(&docker, stand_in).await, needed.contains(&stand_in)) {
            (true, _) => "present",
            (false, true) => "missing",
            (false, false) => "not needed",
        };
        states.push((stand_in, state));
    }
    states
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_stand_in_for_docker_hubs_rust_and_debian_bookworm_however_named() {
        for (reference, stand_in) in [
            ("docker.io/library/rust:1.95-slim-bookworm", Some(RUST)),
            ("rust:1.95", Some(RUST)),
            ("library/rust@sha256:00", Some(RUST)),
            ("docker.io/library/debian:bookworm-slim", Some(DEBIAN)),
            ("index.docker.io/library/debian:bookworm", Some(DEBIAN)),
            ("debian:bookworm-slim@sha256:00", Some(DEBIAN)),
            ("debian:trixie-slim", None),
            ("debian", None),
            ("ghcr.io/library/rust:1.95", None),
            ("docker.io/someone/rust:1.95", None),
            ("127.0.0.1:5000/debian:bookworm-slim", None),
            ("xtask-local/rust:host", None),
        ] {
            assert_eq!(stand_in_for(reference), stand_in, "{reference}");
        }
    }

    #[test]
    fn without_a_daemon_every_argument_naming_an_original_names_its_stand_in() {
        let dir = std::env::temp_dir().join(format!("xtask-substitutes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("svc")).unwrap();
        std::fs::write(
            dir.join("svc/Dockerfile"),
            "ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm\nARG RUNTIME_IMAGE=debian:bookworm-slim\n\
             ARG OTHER=alpine:3\nFROM ${RUST_IMAGE} AS build\nFROM ${OTHER} AS tools\nFROM ${RUNTIME_IMAGE}\n",
        )
        .unwrap();
        let settings = "[workspace.metadata.xtask]\nproject = \"p\"\n\n[[workspace.metadata.xtask.images]]\n\
                        name = \"svc\"\ncontext = \"svc\"\ndockerfile = \"svc/Dockerfile\"\nrepository = \"p/svc\"\nport = 80\n\n\
                        [workspace.metadata.xtask.stages.local]\nbuild-args = { RUNTIME_IMAGE = \"debian:trixie\" }\n";
        let config = Config::parse(&dir, settings, &crate::settings::IMPLICIT).unwrap();
        let stage = config.stage(crate::settings::LOCAL_STAGE).unwrap();
        let args = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(substitutes(&config, stage, None))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        // RUNTIME_IMAGE names trixie through the stage: no stand-in is that.
        assert_eq!(args, BTreeMap::from([("RUST_IMAGE".to_string(), RUST.to_string())]));
    }
}
