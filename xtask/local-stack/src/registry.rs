//! The registry stand-in: Debian's `docker-registry` (CNCF distribution), with
//! htpasswd basic auth and push notifications sent to the sync process.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::cmd;

use super::process::{self, Started};
use crate::ports::RegistryPorts;
use xtask_release::{clients::ecr::RegistryAuth, domain::workspace::Workspace};

pub fn start(ws: &Workspace, dir: &Path, ports: &RegistryPorts, auth: &RegistryAuth, log: &Path) -> Result<Started> {
    let sh = &ws.sh;
    cmd!(sh, "docker-registry --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .context("docker-registry is missing; install Debian's package: apt-get install docker-registry")?;
    // Its storage stays across restarts, as the AWS API's recorded state does.
    std::fs::create_dir_all(dir.join("data")).with_context(|| format!("cannot create {}", dir.display()))?;

    // The password goes through stdin (`-i`), never argv.
    let htpasswd = dir.join("htpasswd");
    let user = &auth.username;
    cmd!(sh, "htpasswd -iBc {htpasswd} {user}").stdin(&auth.password).quiet().ignore_stderr().run().context(
        "cannot write the registry's htpasswd file; install apache2-utils (Debian: apt-get install apache2-utils)",
    )?;

    let config = dir.join("config.yml");
    std::fs::write(&config, config_yaml(dir, ports)).with_context(|| format!("cannot write {}", config.display()))?;
    process::spawn(cmd!(sh, "docker-registry serve {config}"), log)
}

fn config_yaml(dir: &Path, ports: &RegistryPorts) -> String {
    format!(
        r#"version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{registry}
  # Clients reach it through the sync process's front (see local/front.rs): the URLs it
  # hands out name the front.
  host: http://127.0.0.1:{front}
auth:
  htpasswd:
    realm: local-ecr
    path: {htpasswd}
notifications:
  endpoints:
    - name: sync
      url: http://127.0.0.1:{sync}/events
      timeout: 2s
      threshold: 5
      backoff: 200ms
"#,
        data = dir.join("data").display(),
        registry = ports.registry_backend,
        front = ports.registry,
        htpasswd = dir.join("htpasswd").display(),
        sync = ports.sync,
    )
}
