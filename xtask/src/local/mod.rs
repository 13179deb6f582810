//! The local stack: real stand-ins for AWS on this machine, so the whole pipeline
//! runs without an AWS account.
//!
//! - `moto_server`: the AWS API (ECR, CloudFormation, S3, SSM, STS, IAM, ECS);
//! - `docker-registry` (CNCF distribution) with htpasswd auth whose user and password
//!   are exactly what the emulated ECR's `GetAuthorizationToken` hands out;
//! - a sync process (this binary, `local sync`) that turns each manifest push to the
//!   registry into an ECR image with the same tag and digest, and makes tags added
//!   through ECR `PutImage` pullable from the registry;
//! - base images for the app's Dockerfile, made here since public images cannot be pulled.
//!
//! Pids, logs and data live under `target/local/`.

pub mod base_images;
mod moto;
pub mod process;
mod registry;
pub mod repository_settings;
pub mod sync;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{aws, config::LocalPorts, http, workspace::Workspace};
use process::Started;

/// The parts `up` starts, in start order.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    moto: Option<Started>,
    sync: Option<Started>,
    registry: Option<Started>,
}

pub struct Stack {
    dir: PathBuf,
    pub ports: LocalPorts,
}

/// How long a part may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Stack {
    pub fn new(ws: &Workspace) -> Stack {
        Stack { dir: ws.target_dir().join("local"), ports: ws.config.local }
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn load_state(&self) -> State {
        std::fs::read(self.state_file())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save_state(&self, state: &State) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(state)?;
        std::fs::write(self.state_file(), json).with_context(|| format!("cannot write {}", self.state_file().display()))
    }

    pub fn moto_url(&self) -> String {
        aws::local_endpoint(&self.ports)
    }
    pub fn registry_host(&self) -> String {
        format!("127.0.0.1:{}", self.ports.registry_port)
    }
    pub fn sync_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.sync_port)
    }

    /// Which parts answer now.
    pub async fn health(&self) -> Health {
        Health {
            moto: http::answers(&format!("{}/moto-api/", self.moto_url())).await,
            registry: http::answers(&format!("http://{}/v2/", self.registry_host())).await,
            sync: http::answers(&format!("{}/healthz", self.sync_url())).await,
        }
    }

    /// Starts every part that is not running, or reuses a healthy stack. Idempotent.
    pub async fn up(&self, ws: &Workspace) -> Result<()> {
        let started = Instant::now();
        // The registry is pushed to by a Docker daemon, and the base images live in one:
        // without a daemon nothing is started.
        let docker = crate::docker::connect().await?;
        let state = self.load_state();
        if self.health().await.all() {
            eprintln!("local stack already running (AWS API {}, registry {})", self.moto_url(), self.registry_host());
        } else {
            // A partial stack is restarted whole: the registry's data must match the AWS API's memory.
            self.stop(&state)?;
            self.start(ws).await?;
            eprintln!(
                "local stack up in {:.1}s: AWS API {}, registry {}",
                started.elapsed().as_secs_f64(),
                self.moto_url(),
                self.registry_host()
            );
        }
        base_images::ensure(ws, &docker, &self.dir).await?;
        Ok(())
    }

    async fn start(&self, ws: &Workspace) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        for (what, port) in [
            ("AWS API (moto-port)", self.ports.moto_port),
            ("registry (registry-port)", self.ports.registry_port),
            ("sync (sync-port)", self.ports.sync_port),
        ] {
            ensure_port_free(what, port)?;
        }
        let mut state = State::default();

        let moto_log = self.dir.join("moto.log");
        let moto = moto::start(ws, &self.dir, self.ports.moto_port, &moto_log)?;
        state.moto = Some(moto.clone());
        self.save_state(&state)?;
        wait_until(&format!("{}/moto-api/", self.moto_url()), &moto, &moto_log).await?;

        // The registry accepts exactly the credentials the emulated ECR hands out.
        let (sdk, _) = aws::load(ws.config.stage(crate::config::LOCAL_STAGE)?, None, &self.ports).await?;
        let auth = crate::ecr::authorization(&aws_sdk_ecr::Client::new(&sdk)).await?;

        let sync_log = self.dir.join("sync.log");
        let sync = sync::start(ws, &sync_log)?;
        state.sync = Some(sync.clone());
        self.save_state(&state)?;
        wait_until(&format!("{}/healthz", self.sync_url()), &sync, &sync_log).await?;

        let registry_log = self.dir.join("registry.log");
        let registry_dir = self.dir.join("registry");
        let registry = registry::start(ws, &registry_dir, &self.ports, &auth, &registry_log)?;
        state.registry = Some(registry.clone());
        self.save_state(&state)?;
        wait_until(&format!("http://{}/v2/", self.registry_host()), &registry, &registry_log).await?;
        Ok(())
    }

    fn stop(&self, state: &State) -> Result<()> {
        for started in [&state.registry, &state.sync, &state.moto].into_iter().flatten() {
            started.stop(Duration::from_secs(5))?;
        }
        if self.state_file().exists() {
            std::fs::remove_file(self.state_file())?;
        }
        Ok(())
    }

    /// Stops what `up` started (and nothing else).
    pub fn down(&self) -> Result<()> {
        let state = self.load_state();
        let running: Vec<&Started> =
            [&state.registry, &state.sync, &state.moto].into_iter().flatten().filter(|s| s.is_alive()).collect();
        self.stop(&state)?;
        if running.is_empty() {
            eprintln!("local stack was not running");
        } else {
            let names: Vec<String> = running.iter().map(|s| format!("{} (pid {})", s.program, s.pid)).collect();
            eprintln!("stopped {}", names.join(", "));
        }
        Ok(())
    }

    /// A report of what runs where.
    pub async fn status(&self, ws: &Workspace) -> Result<String> {
        let state = self.load_state();
        let health = self.health().await;
        let line = |name: &str, url: &str, up: bool, started: &Option<Started>| {
            let owner = match started {
                Some(s) if s.is_alive() => format!("pid {}", s.pid),
                _ if up => "not started by `local up`".to_string(),
                _ => String::new(),
            };
            format!("{name:<10} {:<12} {url:<28} {owner}\n", if up { "running" } else { "not running" })
        };
        let mut out = String::new();
        out += &line("aws-api", &self.moto_url(), health.moto, &state.moto);
        out += &line("registry", &format!("http://{}", self.registry_host()), health.registry, &state.registry);
        out += &line("sync", &self.sync_url(), health.sync, &state.sync);
        for (name, present) in base_images::present(ws).await {
            out += &format!("{:<10} {:<12} {name}\n", "image", if present { "present" } else { "missing" });
        }
        out += &format!("logs       {}\n", self.dir.display());
        Ok(out)
    }

    /// Variables another shell needs to talk to the local stack.
    pub fn env(&self, region: &str) -> String {
        let key = aws::LOCAL_ACCESS_KEY;
        format!(
            "export AWS_ENDPOINT_URL={}\nexport AWS_REGION={region}\nexport AWS_DEFAULT_REGION={region}\nexport AWS_ACCESS_KEY_ID={key}\nexport AWS_SECRET_ACCESS_KEY={key}\nexport XTASK_LOCAL_REGISTRY={}\n",
            self.moto_url(),
            self.registry_host()
        )
    }

    /// Has `bootstrap` run with these settings against the AWS API that runs now?
    /// The API keeps its state in memory, so its repositories are asked too.
    pub async fn is_bootstrapped(&self, ws: &Workspace, ecr: &aws_sdk_ecr::Client) -> Result<bool> {
        let marker = std::fs::read_to_string(self.dir.join("bootstrapped")).unwrap_or_default();
        if marker != settings_hash(ws)? {
            return Ok(false);
        }
        for image in &ws.config.images {
            if !crate::ecr::repository_exists(ecr, &image.repository).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn mark_bootstrapped(&self, ws: &Workspace) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let marker = self.dir.join("bootstrapped");
        std::fs::write(&marker, settings_hash(ws)?).with_context(|| format!("cannot write {}", marker.display()))
    }

    /// Fails with the command that starts the stack unless every part answers.
    pub async fn ensure_running(&self) -> Result<()> {
        let health = self.health().await;
        if !health.all() {
            bail!("the local stack is not running ({}); start it with `cargo xtask local up`", health.missing().join(", "));
        }
        Ok(())
    }
}

pub struct Health {
    pub moto: bool,
    pub registry: bool,
    pub sync: bool,
}

impl Health {
    pub fn all(&self) -> bool {
        self.moto && self.registry && self.sync
    }
    fn missing(&self) -> Vec<&'static str> {
        let mut out = vec![];
        if !self.moto {
            out.push("AWS API down");
        }
        if !self.registry {
            out.push("registry down");
        }
        if !self.sync {
            out.push("sync down");
        }
        out
    }
}

/// A hash of the workspace settings the registry stack is made from.
fn settings_hash(ws: &Workspace) -> Result<String> {
    use sha2::Digest;
    let manifest = ws.root.join("Cargo.toml");
    let settings = std::fs::read(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    let hash = sha2::Sha256::digest(settings);
    Ok(hash.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

fn ensure_port_free(what: &str, port: u16) -> Result<()> {
    TcpListener::bind(("127.0.0.1", port)).map(drop).map_err(|err| {
        anyhow::anyhow!(
            "port {port} for the local {what} is taken ({err}); stop whatever holds it or choose another port under [workspace.metadata.xtask.local]"
        )
    })
}

/// Waits until `url` answers HTTP, or fails with the tail of the process's log.
async fn wait_until(url: &str, started: &Started, log: &Path) -> Result<()> {
    let what = &started.program;
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if http::answers(url).await {
            return Ok(());
        }
        if !started.is_alive() {
            bail!("{what} exited before it answered at {url}; its log ({}) ends with:\n{}", log.display(), process::log_tail(log, 15));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{what} did not answer at {url} within {}s; its log ({}) ends with:\n{}",
        START_TIMEOUT.as_secs(),
        log.display(),
        process::log_tail(log, 15)
    )
}
