//! The registry stand-in: Debian's `docker-registry` (CNCF distribution), with
//! htpasswd basic auth and push notifications sent to the sync process.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::cmd;

use super::process::{self, Started};
use crate::ports::RegistryPorts;
use crate::quote;
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
    std::fs::write(&config, config_yaml(dir, ports)?).with_context(|| format!("cannot write {}", config.display()))?;
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

/// The registry's config; its paths quoted as YAML, so that any directory reads back as itself.
fn config_yaml(dir: &Path, ports: &RegistryPorts) -> Result<String> {
    let path = |name: &str| {
        let path = dir.join(name);
        quote::text(&path, "the registry's directory")
            .and_then(quote::yaml)
            .context("cannot write the registry's config; use a local stack directory (--local-stack, XTASK_LOCAL_STACK) without such characters")
    };
    Ok(format!(
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
        data = path("data")?,
        registry = ports.registry_backend,
        front = ports.registry,
        htpasswd = path("htpasswd")?,
        sync = ports.sync,
    ))
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

    /// Stops the process on drop, when the test fails too.
    struct Stopped(Started);

    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.stop(std::time::Duration::from_secs(5));
        }
    }

    /// The registry itself reads the config of a directory whose name is YAML syntax
    /// unquoted (`: `, ` #`) and shell syntax (`'`, `"`, `$`): its htpasswd file lets the
    /// password in, and an upload lands under its storage directory.
    #[test]
    fn the_registry_reads_its_config_in_a_directory_of_any_name() {
        let sh = xshell::Shell::new().unwrap();
        let tmp = sh.create_temp_dir().unwrap();
        let dir = tmp.path().join(r#"registry a'b"c$HOME: d #e"#);
        std::fs::create_dir_all(&dir).unwrap();
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ports = RegistryPorts { registry: free(), registry_backend: free(), sync: free() };
        let auth = RegistryAuth {
            username: "AWS".into(),
            password: "123456789012-auth-token".into(),
            host: format!("127.0.0.1:{}", ports.registry_backend),
            plain_http: true,
        };
        std::fs::write(dir.join("htpasswd"), htpasswd_line(&auth).unwrap()).unwrap();
        let config = dir.join("config.yml");
        std::fs::write(&config, config_yaml(&dir, &ports).unwrap()).unwrap();
        let log = tmp.path().join("registry.log");
        let registry = Stopped(process::spawn(cmd!(sh, "docker-registry serve {config}"), &log).unwrap());
        let base = format!("http://127.0.0.1:{}/v2/", ports.registry_backend);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !xtask_release::clients::http::answers(&base).await {
                let tail = process::log_tail(&log, 15);
                assert!(registry.0.is_alive(), "the registry exited; its log ends with:\n{tail}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "the registry did not answer; its log ends with:\n{tail}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let client =
                xtask_release::clients::http::Client::new().with_credentials(&base, auth.basic_header()).unwrap();
            assert_eq!(client.anonymous().get(&base, &[]).await.unwrap().status, 401);
            assert_eq!(client.get(&base, &[]).await.unwrap().status, 200);
            let uploads = format!("{base}it/blobs/uploads/");
            let started = client.send(hyper::Method::POST, &uploads, &[], bytes::Bytes::new()).await.unwrap();
            assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
        });
        assert!(dir.join("data/docker/registry/v2/repositories/it/_uploads").is_dir());
    }
}
