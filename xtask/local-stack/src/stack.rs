//! One local stack: its directory (ports, pids, logs, data), starting and stopping its
//! parts, their health, and the records the local stage keeps there (bootstrapped
//! settings, what the last deploy left running).

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use xtask_release::{
    clients::http,
    domain::{config::Config, workspace::Workspace},
    support::lock::Lock,
};

use crate::{
    agreement, base_images, files, moto,
    ports::{self, Ports, RegistryPorts},
    prerequisites,
    process::{self, Started},
    quote, registry, service, settings, sync,
};

/// The running stack whose directory is `dir`, for tools outside this binary (tests).
pub async fn running(dir: &Path) -> Result<Ports> {
    Stack { dir: dir.to_path_buf(), settings: settings::Ports::default() }.attach().await
}

/// The name of a part of the stack: `moto`, or `sync`/`registry` with the account they
/// serve (`sync-111111111111`) unless it is moto's own. Each has `<name>.pid` and `<name>.log`.
fn part_name(kind: &str, account: Option<&str>) -> String {
    match account {
        None => kind.to_string(),
        Some(account) => format!("{kind}-{account}"),
    }
}

pub struct Stack {
    dir: PathBuf,
    settings: settings::Ports,
}

/// How long a part may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Stack {
    pub fn new(ws: &Workspace) -> Stack {
        Stack {
            dir: ws.local_stack.clone().unwrap_or_else(|| ws.target_dir().join("local")),
            settings: settings::ports(&ws.config).unwrap_or_default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `export` lines another shell evaluates to reach the stack at `ports`
    /// (`eval "$(cargo xtask local env)"`), each value quoted for the shell.
    pub fn env_exports(&self, ports: &Ports, region: &str) -> Result<String> {
        let dir = quote::text(&self.dir, "the local stack's directory")?;
        let mut text = String::new();
        for (key, value) in ports.env(region).into_iter().chain([("XTASK_LOCAL_STACK", dir.to_string())]) {
            text += &format!("export {key}={}\n", quote::shell(&value));
        }
        Ok(text)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// One `up` or `down` at a time: a second waits for the first, then finds its work done.
    async fn lock(&self) -> Result<Lock> {
        Lock::acquire(&self.file("lock"), "another `cargo xtask local up` or `down` of this stack").await
    }

    /// The ports of the stack last started here: `None` when none was, an error when the
    /// file that records them is not readable as such.
    fn ports(&self) -> Result<Option<Ports>> {
        read_json(&self.file("ports.json"))
    }

    /// The process `up` started for `part`, from its pidfile.
    fn part(&self, part: &str) -> Result<Option<Started>> {
        read_json(&self.file(&format!("{part}.pid"))).context(
            "stop the process it named by hand if it still runs (see `cargo xtask local status`), then remove the file",
        )
    }

    /// Which parts answer at `ports`: the AWS API, and per account the sync and the
    /// registry itself (behind the sync's front).
    pub async fn health(ports: &Ports) -> Health {
        let mut parts = vec![("moto".to_string(), http::answers(&format!("{}/moto-api/", ports.moto_url())).await)];
        for (account, registry) in ports.registries() {
            let sync = http::answers(&format!("{}/healthz", registry.sync_url())).await;
            let backend = http::answers(&format!("http://127.0.0.1:{}/v2/", registry.registry_backend)).await;
            parts.push((part_name("sync", account), sync));
            parts.push((part_name("registry", account), backend));
        }
        Health { parts }
    }

    /// The running stack's ports, or an error that says how to start it.
    pub async fn attach(&self) -> Result<Ports> {
        let ports = self.ports()?.with_context(|| {
            format!(
                "the local stack is not running (nothing in {}); start it with `cargo xtask local up`",
                self.dir.display()
            )
        })?;
        let health = Stack::health(&ports).await;
        if !health.all() {
            bail!(
                "the local stack is not running ({}); start it with `cargo xtask local up`",
                health.missing().join(", ")
            );
        }
        Ok(ports)
    }

    /// Starts every part that is not running, or reuses a healthy stack; then makes any
    /// missing base image. Idempotent. Every account a stage of `ws` names on the stack
    /// gets its registry.
    pub async fn up(&self, ws: &Workspace, debian_mirror: &str) -> Result<Ports> {
        let started = Instant::now();
        // The registry is pushed to by a Docker daemon, and the base images live in one:
        // without a daemon nothing is started (nor a lock taken).
        let docker = xtask_release::clients::docker::connect().await?;
        let _one_at_a_time = self.lock().await?;
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        // Everything it needs from the machine, at once, before anything starts.
        // The stand-in base images the daemon needs (none where it pulls the official ones).
        let needed = base_images::needed(&ws.config, &docker).await?;
        let work = prerequisites::Work {
            debian_image: base_images::must_make_debian(&needed, &docker).await,
            moto: moto::must_install(ws, &self.dir),
        };
        prerequisites::ensure(&ws.sh, work, &self.file("apt-get.log"))?;
        let wanted: Vec<&str> =
            ws.config.stages.values().filter(|s| settings::serves(s)).filter_map(ports::other_account).collect();
        // The ports the stack had, so that its parts and their data are found again.
        let mut ports = match self.ports() {
            Ok(Some(ports)) => ports,
            Ok(None) => self.pick_ports(&wanted)?,
            Err(err) => {
                eprintln!("{err:#}; stopping the parts its pidfiles name and picking new ports");
                self.stop()?;
                self.pick_ports(&wanted)?
            }
        };
        for account in &wanted {
            if !ports.accounts.contains_key(*account) {
                ports.accounts.insert(account.to_string(), self.pick_registry_ports()?);
            }
        }
        let health = Stack::health(&ports).await;
        if health.all() {
            eprintln!("local stack already running (AWS API {}, registry {})", ports.moto_url(), ports.registry_host());
        } else {
            // A stack that is down whole may restart on new ports; one that partly runs keeps its own.
            if health.none() && !self.ports_free(&ports) {
                ports = self.pick_ports(&ports.accounts.keys().map(String::as_str).collect::<Vec<_>>())?;
            }
            let restarted = self.start(ws, &ports, &health).await?;
            eprintln!(
                "local stack up in {:.1}s (started {}): AWS API {}, registry {}",
                started.elapsed().as_secs_f64(),
                restarted.join(", "),
                ports.moto_url(),
                ports.registry_host()
            );
        }
        base_images::ensure(ws, &docker, &self.dir, debian_mirror, &needed).await?;
        Ok(ports)
    }

    /// New free ports for the stack and the registries of `accounts`, recorded. Each
    /// listener is held until all are picked, so no two parts get the same port.
    fn pick_ports(&self, accounts: &[&str]) -> Result<Ports> {
        let held = [
            listen("AWS API", "moto-port", self.settings.moto_port)?,
            listen("registry", "registry-port", self.settings.registry_port)?,
            listen("registry's backend", "", None)?,
            listen("sync", "sync-port", self.settings.sync_port)?,
        ];
        let port = |i: usize| held[i].local_addr().map(|a| a.port());
        let mut ports = Ports {
            moto: port(0)?,
            registry: port(1)?,
            registry_backend: port(2)?,
            sync: port(3)?,
            accounts: BTreeMap::new(),
        };
        for account in accounts {
            ports.accounts.insert(account.to_string(), self.pick_registry_ports()?);
        }
        write_json(&self.file("ports.json"), &ports)?;
        Ok(ports)
    }

    /// Free ports for another account's registry (never configured: the first account's are).
    fn pick_registry_ports(&self) -> Result<RegistryPorts> {
        let held = [listen("registry", "", None)?, listen("registry", "", None)?, listen("sync", "", None)?];
        let port = |i: usize| held[i].local_addr().map(|a| a.port());
        Ok(RegistryPorts { registry: port(0)?, registry_backend: port(1)?, sync: port(2)? })
    }

    fn ports_free(&self, ports: &Ports) -> bool {
        let registries = ports.registries().flat_map(|(_, r)| [r.registry, r.registry_backend, r.sync]);
        std::iter::once(ports.moto).chain(registries).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
    }

    /// Starts the parts that do not answer, in order; returns their names. The AWS API
    /// comes back with its recorded state, each registry with its storage.
    async fn start(&self, ws: &Workspace, ports: &Ports, health: &Health) -> Result<Vec<String>> {
        write_json(&self.file("ports.json"), ports)?;
        let region = ws.config.stage(settings::LOCAL_STAGE)?.region.clone().unwrap_or_default();
        let mut started = vec![];
        let aws_restarted = !health.is_up("moto");
        if aws_restarted {
            self.stop_part("moto")?;
            let moto = moto::start(ws, &self.dir, ports.moto, &self.file("moto.log"))?;
            self.record("moto", &moto)?;
            wait_until(&format!("{}/moto-api/", ports.moto_url()), &moto, &self.file("moto.log")).await?;
            let restored = moto::Restored::read(&self.dir)?;
            let old = moto::retire_old_recording(&self.dir)?;
            for line in restored.line().into_iter().chain(old) {
                eprintln!("{line}");
            }
            started.push("AWS API".to_string());
        }
        for (account, registry_ports) in ports.registries() {
            let sync = part_name("sync", account);
            if !health.is_up(&sync) {
                self.stop_part(&sync)?;
                let log = self.file(&format!("{sync}.log"));
                let process = sync::start(ws, ports.moto, &registry_ports, &region, account, &log)?;
                self.record(&sync, &process)?;
                wait_until(&format!("{}/healthz", registry_ports.sync_url()), &process, &log).await?;
                started.push(sync);
            }
            let registry = part_name("registry", account);
            if !health.is_up(&registry) {
                self.stop_part(&registry)?;
                // The registry accepts exactly the credentials the account's emulated ECR hands out.
                let ecr = aws_sdk_ecr::Client::new(&ports.sdk_config_in(&region, account).await);
                let auth = xtask_release::clients::ecr::authorization(&ecr).await?;
                let log = self.file(&format!("{registry}.log"));
                let process = registry::start(ws, &self.file(&registry), &registry_ports, &auth, &log)?;
                self.record(&registry, &process)?;
                let backend = format!("http://127.0.0.1:{}/v2/", registry_ports.registry_backend);
                wait_until(&backend, &process, &log).await?;
                started.push(registry);
            }
        }
        // What the registries hold against what the AWS API came back with.
        if aws_restarted {
            for (account, _) in ports.registries() {
                let registry = part_name("registry", account);
                match agreement::check(ports, &region, account).await {
                    Ok(found) => found.line(&registry).into_iter().for_each(|line| eprintln!("{line}")),
                    Err(err) => eprintln!("{registry}: cannot check it against ECR: {err:#}"),
                }
            }
        }
        Ok(started)
    }

    fn record(&self, part: &str, started: &Started) -> Result<()> {
        write_json(&self.file(&format!("{part}.pid")), started)
    }

    /// Stops `part` if its pidfile names a process that still runs; removes the pidfile.
    fn stop_part(&self, part: &str) -> Result<Option<Started>> {
        let Some(started) = self.part(part)? else { return Ok(None) };
        let alive = started.is_alive();
        if alive {
            started.stop(Duration::from_secs(5))?;
        }
        let pidfile = self.file(&format!("{part}.pid"));
        std::fs::remove_file(&pidfile).with_context(|| format!("cannot remove {}", pidfile.display()))?;
        Ok(alive.then_some(started))
    }

    /// The parts a pidfile names, in the order they stop: registries, syncs, the AWS API.
    fn recorded_parts(&self) -> Vec<String> {
        let mut parts: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".pid").map(str::to_string))
            .collect();
        let rank = |p: &str| ["registry", "sync", "moto"].iter().position(|k| p.starts_with(k)).unwrap_or(0);
        parts.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
        parts
    }

    /// Stops every part a pidfile names (and nothing else); returns what was running.
    fn stop(&self) -> Result<Vec<Started>> {
        let mut stopped = vec![];
        for part in self.recorded_parts() {
            stopped.extend(self.stop_part(&part)?);
        }
        Ok(stopped)
    }

    /// Stops what `up` started (and nothing else). Its data (the registries' storage, the
    /// AWS API's recorded state) stays for the next `up`, unless `purge`.
    pub async fn down(&self, purge: bool) -> Result<()> {
        let _one_at_a_time = self.lock().await?;
        // The deployed services' containers first (without a daemon there are none to stop).
        if let Ok(docker) = xtask_release::clients::docker::connect().await {
            let services = service::stop_all(&docker, &self.dir).await?;
            if !services.is_empty() {
                eprintln!("stopped the service containers {}", services.join(", "));
            }
        }
        let stopped = self.stop()?;
        if stopped.is_empty() {
            eprintln!("local stack was not running");
        } else {
            let names: Vec<String> = stopped.iter().map(|s| format!("{} (pid {})", s.program, s.pid)).collect();
            eprintln!("stopped {}", names.join(", "));
        }
        if purge {
            let data = std::fs::read_dir(&self.dir).into_iter().flatten().flatten().filter(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                ["registry", "bootstrapped", "deployed-"].iter().any(|p| name.starts_with(p) && !name.ends_with(".log"))
                    || moto::is_state(&name)
                    || name == "ports.json"
            });
            for entry in data {
                let path = entry.path();
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                match removed {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err).with_context(|| format!("cannot remove {}", path.display())),
                }
            }
            eprintln!("removed the stack's data (registry storage, AWS API state)");
        }
        Ok(())
    }

    /// A report of what runs where.
    pub async fn status(&self, config: &Config) -> Result<String> {
        let mut out = String::new();
        let ports = match self.ports() {
            Ok(ports) => ports,
            Err(err) => {
                out += &format!(
                    "error      {err:#}; restart the stack: `cargo xtask local down && cargo xtask local up`\n"
                );
                None
            }
        };
        let health = match &ports {
            Some(ports) => Stack::health(ports).await,
            None => Health { parts: ["moto", "sync", "registry"].map(|p| (p.to_string(), false)).to_vec() },
        };
        for (part, up) in &health.parts {
            let url = ports.as_ref().and_then(|ports| {
                if part == "moto" {
                    return Some(ports.moto_url());
                }
                let (kind, account) = part.split_once('-').map_or((part.as_str(), None), |(k, a)| (k, Some(a)));
                let registry = ports.registry_of(account).ok()?;
                Some(if kind == "sync" { registry.sync_url() } else { format!("http://{}", registry.registry_host()) })
            });
            let owner = match self.part(part) {
                Ok(Some(s)) if s.is_alive() => format!("pid {}", s.pid),
                Ok(_) => String::new(),
                Err(err) => format!("{err:#}"),
            };
            let state = if *up { "running" } else { "not running" };
            let name = if part == "moto" { "aws-api" } else { part.as_str() };
            out += &format!("{name:<10} {state:<12} {:<28} {owner}\n", url.unwrap_or_default());
        }
        if health.is_up("moto") {
            let state = match (moto::Restored::read(&self.dir), moto::save_error(&self.dir)) {
                (_, Some(error)) => {
                    format!("NOT SAVED   saving it failed ({error}): a restart loses the changes since")
                }
                (Ok(moto::Restored::State { accounts, .. }), None) => {
                    format!("restored    at start ({accounts} accounts), saved after each change")
                }
                (Ok(moto::Restored::Nothing), None) => "saved       after each change (empty at start)".to_string(),
                (Ok(lost @ moto::Restored::Lost { .. }), None) => lost.line().unwrap_or_default(),
                (Err(err), None) => format!("unknown     {err:#}"),
            };
            out += &format!("aws-state  {state}\n");
        }
        if ports.is_some() && !health.all() {
            out += "to fix     `cargo xtask local up` starts what is down; the registry's storage and the AWS API's state are kept\n";
        }
        if let Ok(docker) = xtask_release::clients::docker::connect().await {
            for listed in service::containers(&docker, &self.dir).await.unwrap_or_default() {
                let state = if listed.running { "running" } else { "stopped" };
                out += &format!(
                    "{:<10} {state:<12} {:<28} {} ({})\n",
                    "service", listed.url, listed.service, listed.container
                );
            }
        }
        for (name, state) in base_images::states(config).await {
            out += &format!("{:<10} {state:<12} {name}\n", "image");
        }
        out += &format!("logs       {}\n", self.dir.display());
        Ok(out)
    }

    /// Has `bootstrap` run for `stage` with these settings against the AWS API that runs
    /// now? The API keeps its state in memory, so its repositories are asked too.
    pub async fn is_bootstrapped(
        &self,
        ws: &Workspace,
        stage: &xtask_release::domain::config::Stage,
        ecr: &aws_sdk_ecr::Client,
    ) -> Result<bool> {
        let marker = std::fs::read_to_string(self.bootstrap_marker(stage)).unwrap_or_default();
        if marker != settings_hash(ws)? {
            return Ok(false);
        }
        for image in &ws.config.images {
            if !xtask_release::clients::ecr::repository_exists(ecr, &image.repository).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn mark_bootstrapped(&self, ws: &Workspace, stage: &xtask_release::domain::config::Stage) -> Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let marker = self.bootstrap_marker(stage);
        std::fs::write(&marker, settings_hash(ws)?).with_context(|| format!("cannot write {}", marker.display()))
    }

    /// What the last deploy that rolled out left in the service stack `stack`: the image
    /// each container uses and the stack's outputs.
    pub fn deployed(&self, stack: &str) -> Result<Option<Deployed>> {
        read_json(&self.file(&format!("deployed-{stack}.json")))
    }

    pub fn record_deployed(&self, stack: &str, deployed: &Deployed) -> Result<()> {
        write_json(&self.file(&format!("deployed-{stack}.json")), deployed)
    }

    pub fn forget_deployed(&self, stack: &str) -> Result<()> {
        let path = self.file(&format!("deployed-{stack}.json"));
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    fn bootstrap_marker(&self, stage: &xtask_release::domain::config::Stage) -> PathBuf {
        self.file(&format!("bootstrapped-{}", stage.name))
    }
}

/// A service stack as a deploy left it on the local stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// Per image name, the reference its container uses.
    pub images: BTreeMap<String, String>,
    /// The stack's outputs.
    pub outputs: BTreeMap<String, String>,
}

/// Which parts of a stack answer, by part name (`moto`, `sync`, `registry-111111111111`…).
pub struct Health {
    parts: Vec<(String, bool)>,
}

impl Health {
    pub fn all(&self) -> bool {
        self.parts.iter().all(|(_, up)| *up)
    }
    fn none(&self) -> bool {
        !self.parts.iter().any(|(_, up)| *up)
    }
    fn is_up(&self, part: &str) -> bool {
        self.parts.iter().any(|(name, up)| name == part && *up)
    }
    fn missing(&self) -> Vec<String> {
        self.parts
            .iter()
            .filter(|(_, up)| !up)
            .map(|(name, _)| if name == "moto" { "AWS API down".to_string() } else { format!("{name} down") })
            .collect()
    }
}

/// A hash of the workspace settings the registry stack is made from.
fn settings_hash(ws: &Workspace) -> Result<String> {
    use sha2::Digest;
    let manifest = ws.root.join("Cargo.toml");
    let settings = std::fs::read(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    Ok(format!("{:x}", sha2::Sha256::digest(settings))[..16].to_string())
}

/// A listener on the configured port if it is free, else on one the system has free now.
fn listen(what: &str, key: &str, configured: Option<u16>) -> Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", configured.unwrap_or(0))).map_err(|err| {
        anyhow::anyhow!(
            "port {} for the local {what} is taken ({err}); stop whatever holds it, or change or remove `{key}` under [workspace.metadata.xtask.local]",
            configured.unwrap_or(0)
        )
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_slice(&bytes).map(Some).with_context(|| format!("{} is corrupt", path.display()))
}

/// Writes whole or not at all (see [`files::write_whole`]).
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    files::write_whole(path, &serde_json::to_vec_pretty(value)?)
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
            bail!(
                "{what} exited before it answered at {url}; its log ({}) ends with:\n{}",
                log.display(),
                process::log_tail(log, 15)
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_record_is_an_error_not_an_empty_stack() {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let stack = Stack { dir: dir.path().to_path_buf(), settings: settings::Ports::default() };
        assert!(stack.ports().unwrap().is_none());
        std::fs::write(stack.file("ports.json"), "{\"moto\": 1, ").unwrap();
        let err = format!("{:#}", stack.ports().unwrap_err());
        assert!(err.contains("ports.json is corrupt"), "{err}");
        std::fs::write(stack.file("moto.pid"), "garbage").unwrap();
        let err = format!("{:#}", stack.stop().unwrap_err());
        assert!(err.contains("moto.pid is corrupt"), "{err}");
    }

    #[test]
    fn records_written_side_by_side_never_fail_and_one_stays_whole() {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let path = dir.path().join("ports.json");
        let writers: Vec<_> = (0..4u16)
            .map(|writer| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for round in 0..200u16 {
                        let ports = Ports {
                            moto: writer,
                            registry: round,
                            registry_backend: 0,
                            sync: 0,
                            accounts: BTreeMap::new(),
                        };
                        write_json(&path, &ports).unwrap_or_else(|err| panic!("writer {writer}: {err:#}"));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let ports: Ports = read_json(&path).unwrap().unwrap();
        assert_eq!(ports.registry, 199, "{ports:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("ports.json")]);
    }

    #[test]
    fn env_exports_come_back_whole_through_sh() {
        let sh = xshell::Shell::new().unwrap();
        let tmp = sh.create_temp_dir().unwrap();
        let dir = tmp.path().join(r#"a b'c"d$HOME`e`"#);
        let stack = Stack { dir: dir.clone(), settings: settings::Ports::default() };
        let ports = Ports { moto: 4566, registry: 1, registry_backend: 2, sync: 3, accounts: BTreeMap::new() };
        let script =
            stack.env_exports(&ports, "eu-west-1").unwrap() + r#"printf '%s|%s' "$XTASK_LOCAL_STACK" "$AWS_REGION""#;
        let out = xshell::cmd!(sh, "sh -c {script}").read().unwrap();
        assert_eq!(out, format!("{}|eu-west-1", dir.display()));
    }

    #[test]
    fn unset_ports_are_picked_free_and_a_taken_one_is_named() {
        let held = listen("AWS API", "moto-port", None).unwrap();
        let a = held.local_addr().unwrap().port();
        let err = listen("AWS API", "moto-port", Some(a)).unwrap_err().to_string();
        assert!(err.contains(&format!("port {a} for the local AWS API is taken")), "{err}");
        drop(held);
        assert_eq!(listen("AWS API", "moto-port", Some(a)).unwrap().local_addr().unwrap().port(), a);
    }
}
