//! Where the Docker daemon can pull the official base images (Docker Desktop on a laptop),
//! the local stage builds on the Dockerfiles' own bases and makes no stand-in. Here nothing
//! can reach Docker Hub, so a daemon is given a `registry-mirrors` entry: a registry that
//! serves the stand-in's bytes under Docker Hub's name, as Docker Hub would serve its own.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use xshell::{Shell, cmd};
use xtask_local_stack::{
    base_images::{self, DEBIAN},
    dockerd::PrivateDaemon,
};
use xtask_release::domain::image::BASE_IMAGES_LABEL;

use crate::support::{
    Fixture, create_repository, docker_or_skip, local_ecr, local_stack, runtime, tool_or_skip, unique, wait_until,
};

/// Docker Hub's name for what the Debian stand-in stands in for.
const OFFICIAL: &str = "docker.io/library/debian:bookworm-slim";

/// A registry (Debian's docker-registry) on a loopback port, its storage in `dir`; stopped
/// and removed on drop.
struct Mirror {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Mirror {
    fn start(dir: PathBuf) -> Mirror {
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("config.yml");
        let storage = dir.join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start docker-registry (install Debian's docker-registry)");
        let mirror = Mirror { child, dir, port };
        wait_until("the mirror to answer", Duration::from_secs(30), || mirror.answers());
        mirror
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let mut reply = String::new();
        stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_ok()
            && stream.read_to_string(&mut reply).is_ok()
            && reply.split_whitespace().nth(1) == Some("200")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The base images the image built as `reference` on `host` records, from its label.
fn recorded_bases(host: &str, reference: &str) -> String {
    runtime().block_on(async {
        let path = host.strip_prefix("unix://").unwrap();
        let docker = bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION).unwrap();
        let inspect = docker.inspect_image(reference).await.unwrap_or_else(|err| panic!("{reference}: {err}"));
        let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
        labels.get(BASE_IMAGES_LABEL).cloned().unwrap_or_default()
    })
}

/// Does the daemon at `host` hold `reference`?
fn holds(host: &str, reference: &str) -> bool {
    runtime().block_on(async {
        let path = host.strip_prefix("unix://").unwrap();
        let docker = bollard::Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION).unwrap();
        docker.inspect_image(reference).await.is_ok()
    })
}

#[test]
fn a_daemon_that_can_pull_builds_on_the_official_base_and_one_that_cannot_on_the_stand_in() {
    let test = "a_daemon_that_can_pull_builds_on_the_official_base_and_one_that_cannot_on_the_stand_in";
    if !docker_or_skip(test) || !tool_or_skip("skopeo", test) {
        return;
    }
    local_stack();
    let mirror =
        Mirror::start(xtask_local_stack::dockerd::private_dir("xtask-mirror-").unwrap_or_else(|err| panic!("{err:#}")));
    // Docker Hub's debian:bookworm-slim, as far as the mirror's clients can tell.
    let sh = Shell::new().unwrap();
    let (from, to) =
        (format!("docker-daemon:{DEBIAN}"), format!("docker://127.0.0.1:{}/library/debian:bookworm-slim", mirror.port));
    cmd!(sh, "skopeo copy --quiet --dest-tls-verify=false {from} {to}").run().unwrap();
    let dir = xtask_local_stack::dockerd::private_dir("xtask-pull-").unwrap_or_else(|err| panic!("{err:#}"));
    let host = format!("unix://{}/docker.sock", dir.display());
    let daemon = PrivateDaemon::start(dir, host.clone(), &["--registry-mirror".to_string(), mirror.url()])
        .unwrap_or_else(|err| panic!("{err:#}"));

    let repository = unique("it/pull");
    runtime().block_on(async { create_repository(&local_ecr().await, &repository, true).await });
    let repo = Fixture::with_repository(&repository);
    repo.write("svc/Dockerfile", &format!("ARG BASE_IMAGE={OFFICIAL}\nFROM ${{BASE_IMAGE}}\nCOPY data.txt /srv/\n"));
    let commit = repo.commit("on Docker Hub's Debian");

    // What `local up` and every command of the stage decide, per daemon: there no stand-in
    // is needed (so `local up` makes none, and asks for neither debootstrap nor root); on the
    // machine's own daemon, which cannot reach Docker Hub, the Dockerfile's argument names it.
    // (Asked of the library: `local up` on the shared stack would hold its lock while other
    // tests run.)
    let (there, here, needed) = runtime().block_on(async {
        let ws = xtask_release::domain::workspace::Workspace::at(&repo.path(), &xtask_local_stack::settings::IMPLICIT)
            .unwrap();
        let stage = ws.config.stage(xtask_local_stack::settings::LOCAL_STAGE).unwrap();
        let private = bollard::Docker::connect_with_unix(
            host.strip_prefix("unix://").unwrap(),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap();
        let own = xtask_release::clients::docker::connect().await.unwrap();
        let there = base_images::substitutes(&ws.config, stage, Some(&private)).await.unwrap();
        let here = base_images::substitutes(&ws.config, stage, Some(&own)).await.unwrap();
        (there, here, base_images::needed(&ws.config, &private).await.unwrap())
    });
    assert!(there.is_empty() && needed.is_empty(), "the daemon that pulls needs no stand-in: {there:?} {needed:?}");
    let status = repo.xtask_env(&["local", "status"], &[("DOCKER_HOST", &host)]).ok();
    for stand_in in [DEBIAN, base_images::RUST] {
        assert!(status.lines().any(|l| l.contains("not needed") && l.ends_with(stand_in)), "{status}");
    }
    assert_eq!(here, std::collections::BTreeMap::from([("BASE_IMAGE".to_string(), DEBIAN.to_string())]));

    // The daemon that reaches Docker Hub's name builds on it, and no stand-in is made there.
    let run = repo.xtask_env(&["push"], &[("DOCKER_HOST", &host)]);
    run.ok();
    let log = run.stderr();
    let bases = recorded_bases(&host, &format!("{repository}:{commit}"));
    assert!(bases.starts_with(&format!("{OFFICIAL}@sha256:")), "recorded bases: {bases}\n{log}");
    assert!(!holds(&host, DEBIAN), "the daemon that can pull got a stand-in");
    let plan = |docker_host: &str| {
        let out =
            repo.xtask_env(&["plan", "--stage", "local", "--no-diff", "--json"], &[("DOCKER_HOST", docker_host)]).ok();
        let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|err| panic!("{err}: {out}"));
        json["images"][0]["action"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(plan(&host), "skip", "the same daemon finds what it pushed");

    // A commit that changes nothing the image is built from: the daemon that pulls retags
    // the image it built; the machine's own daemon, which cannot reach Docker Hub, would
    // build on the stand-in, other inputs, so it builds rather than take the other's bytes.
    repo.write("NOTES.md", "outside the build context\n");
    repo.commit("a change outside the image");
    assert_eq!(plan(&host), "retag", "the daemon that pulls has these inputs pushed already");
    let own = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    assert_eq!(plan(&own), "build", "a daemon that cannot pull the official base builds on the stand-in");
    drop(daemon);
}
