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

    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, htpasswd_line(auth)?)
        .with_context(|| format!("cannot write the registry's htpasswd file {}", htpasswd.display()))?;

    let config = dir.join("config.yml");
    std::fs::write(&config, config_yaml(dir, ports)).with_context(|| format!("cannot write {}", config.display()))?;
    process::spawn(cmd!(sh, "docker-registry serve {config}"), log)
}

/// The bcrypt cost of the htpasswd entry: 2^5 rounds, what `htpasswd -B` uses by default.
/// Enough for a registry that listens on loopback only and whose password is the
/// emulator's dummy token (`<account>-auth-token`, handed out to anyone who asks); and
/// the registry checks it on every request, so a higher cost would slow every push.
const HTPASSWD_COST: u32 = 5;

/// The registry's htpasswd file for `auth`: `<user>:<bcrypt hash>`, one line. The crate
/// writes `$2b$` hashes, which distribution (golang.org/x/crypto/bcrypt) reads as it
/// reads `$2a$` and `$2y$`; both truncate a password at 72 bytes alike.
fn htpasswd_line(auth: &RegistryAuth) -> Result<String> {
    // Without the crate's `std` feature its error is no `std::error::Error`: keep its text.
    let hash = bcrypt::hash(&auth.password, HTPASSWD_COST)
        .map_err(|err| anyhow::anyhow!("cannot hash the registry's password: {err}"))?;
    Ok(format!("{}:{hash}\n", auth.username))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_htpasswd_line_is_the_user_and_a_bcrypt_hash_of_the_password() {
        let auth = RegistryAuth {
            username: "AWS".into(),
            password: "123456789012-auth-token".into(),
            host: "127.0.0.1:5000".into(),
            plain_http: true,
        };
        let line = htpasswd_line(&auth).unwrap();
        let hash = line.strip_prefix("AWS:").and_then(|rest| rest.strip_suffix('\n')).expect(&line);
        assert!(hash.starts_with("$2b$05$"), "{hash}");
        assert!(bcrypt::verify("123456789012-auth-token", hash).unwrap());
        assert!(!bcrypt::verify("another-token", hash).unwrap());
    }
}
