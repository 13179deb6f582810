//! Shared test scaffolding: run the real binary, make git fixtures, reach the local stack.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use xshell::{Shell, TempDir, cmd};

/// The workspace this test binary belongs to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The result of running `cargo xtask ...` (the built binary), printed in full on failure.
pub struct Run {
    pub what: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        self.output.status.success()
    }
    fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert!(self.success(), "expected success\n{}", self.report());
        self.stdout()
    }
    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn fails(&self) -> String {
        assert!(!self.success(), "expected failure\n{}", self.report());
        self.stderr()
    }
}

/// Runs the xtask binary with `args` in `dir`.
pub fn xtask(dir: &Path, args: &[&str]) -> Run {
    xtask_env(dir, args, &[])
}

/// Runs the xtask binary with `args` in `dir`, with `env` set. Every run uses this
/// workspace's local stack (`XTASK_LOCAL_STACK`) unless `env` names another.
pub fn xtask_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).current_dir(dir).env("CI", "true").env("XTASK_LOCAL_STACK", stack_dir());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("cannot run the xtask binary");
    Run { what: format!("(in {}) cargo xtask {}", dir.display(), args.join(" ")), output }
}

/// Starts the xtask binary with `args` in `dir` (as `xtask_env` runs it, `env` set), its
/// stderr going to `stderr`.
pub fn spawn_xtask(dir: &Path, args: &[&str], env: &[(&str, &str)], stderr: &Path) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).current_dir(dir).env("CI", "true").env("XTASK_LOCAL_STACK", stack_dir());
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("cannot run the xtask binary")
}

/// A throwaway git repository holding a minimal xtask workspace.
pub struct Fixture {
    pub sh: Shell,
    dir: TempDir,
    /// The repository's directory inside `dir`, when not `dir` itself.
    subdir: Option<&'static str>,
}

pub const FIXTURE_CARGO_TOML: &str = r#"[workspace]
members = []

[workspace.metadata.xtask]
project = "fixture"

[[workspace.metadata.xtask.images]]
name = "svc"
context = "svc"
dockerfile = "svc/Dockerfile"
repository = "fixture/svc"
port = 8080
"#;

impl Fixture {
    /// A repository with one commit of a fixture workspace.
    pub fn new() -> Fixture {
        Fixture::with_settings(FIXTURE_CARGO_TOML)
    }

    /// A fixture whose image goes to ECR repository `repository`.
    pub fn with_repository(repository: &str) -> Fixture {
        Fixture::with_settings(&FIXTURE_CARGO_TOML.replace("\"fixture/svc\"", &format!("\"{repository}\"")))
    }

    pub fn with_settings(cargo_toml: &str) -> Fixture {
        let fixture = Fixture::empty();
        // Two fixtures made in the same second would otherwise share their first commit.
        fixture.write("Cargo.toml", &format!("{cargo_toml}\n# {}\n", unique("fixture")));
        fixture.write(".gitignore", "/target\n*.ignored\n");
        fixture.write("svc/Dockerfile", "FROM scratch\nCOPY . /srv/\n");
        fixture.write("svc/data.txt", "one\n");
        fixture.commit("initial");
        fixture
    }

    /// `git init` only: no commits.
    pub fn empty() -> Fixture {
        let sh = Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        sh.change_dir(dir.path());
        cmd!(sh, "git init -q -b main").quiet().run().unwrap();
        cmd!(sh, "git config user.email test@example.com").quiet().run().unwrap();
        cmd!(sh, "git config user.name Test").quiet().run().unwrap();
        Fixture { sh, dir, subdir: None }
    }

    pub fn path(&self) -> PathBuf {
        match self.subdir {
            Some(sub) => self.dir.path().join(sub),
            None => self.dir.path().to_path_buf(),
        }
    }

    pub fn write(&self, path: &str, contents: &str) {
        self.sh.write_file(self.path().join(path), contents).unwrap();
    }

    pub fn append(&self, path: &str, contents: &str) {
        let old = std::fs::read_to_string(self.path().join(path)).unwrap_or_default();
        self.write(path, &format!("{old}{contents}"));
    }

    pub fn commit(&self, message: &str) -> String {
        let sh = &self.sh;
        cmd!(sh, "git add -A").quiet().run().unwrap();
        cmd!(sh, "git commit -q --allow-empty -m {message}").quiet().run().unwrap();
        self.head()
    }

    /// `git rev-parse HEAD`: the oracle for what a tag must be.
    pub fn head(&self) -> String {
        let sh = &self.sh;
        cmd!(sh, "git rev-parse HEAD").read().unwrap()
    }

    pub fn xtask(&self, args: &[&str]) -> Run {
        xtask(&self.path(), args)
    }

    pub fn xtask_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        xtask_env(&self.path(), args, env)
    }
}

/// Does a Docker daemon answer? It must: a missing daemon fails the test, unless
/// `XTASK_SKIP_DOCKER_TESTS=1` asks to skip such tests (each then prints why).
pub fn docker_or_skip(test: &str) -> bool {
    let sh = Shell::new().unwrap();
    let format = "{{.Server.APIVersion}}";
    let answers = cmd!(sh, "docker version --format {format}").quiet().ignore_stderr().read().is_ok();
    if !answers {
        let skip = std::env::var("XTASK_SKIP_DOCKER_TESTS").is_ok_and(|v| v == "1");
        assert!(
            skip,
            "{test}: no Docker daemon answers (start dockerd or set DOCKER_HOST; XTASK_SKIP_DOCKER_TESTS=1 skips)"
        );
        eprintln!("SKIPPED {test}: no Docker daemon answers and XTASK_SKIP_DOCKER_TESTS=1");
    }
    answers
}

/// The local stack the tests share: `XTASK_LOCAL_STACK` (set by `cargo xtask test`), else
/// this workspace's own. Its ports are whatever it picked when it started.
pub fn stack_dir() -> PathBuf {
    match std::env::var_os("XTASK_LOCAL_STACK") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target/local"),
    }
}

/// Where the running local stack answers.
pub async fn local_ports() -> xtask_local_stack::Ports {
    xtask_local_stack::running(&stack_dir()).await.unwrap()
}

/// Brings the workspace's local stack up once per test run (reusing a running one), with
/// the fixtures' signing keys made: the first command of a stage on a fresh stack makes its
/// keys and says so, a line no test should see or not depending on which test ran first.
pub fn local_stack() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        xtask(&workspace_root(), &["local", "up"]).ok();
        let config = xtask_release::domain::config::Config::parse(
            &workspace_root(),
            FIXTURE_CARGO_TOML,
            &xtask_local_stack::settings::IMPLICIT,
        )
        .unwrap();
        let stage = config.stage(xtask_local_stack::settings::LOCAL_STAGE).unwrap();
        let aliases = xtask_local_stack::signing_keys::aliases(&config, stage);
        assert!(!aliases.is_empty(), "the fixture's local stage signs");
        runtime().block_on(async {
            let region = stage.region.clone().unwrap();
            let kms = aws_sdk_kms::Client::new(&local_ports().await.sdk_config(&region).await);
            xtask_local_stack::signing_keys::ensure(&kms, &aliases).await.unwrap();
        });
    });
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{nanos:x}")
}

/// What a spawned command has written to its log so far (`spawn_xtask`'s `stderr`).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `/version` at `url`: what the running service says it is.
pub fn version_at(url: &str) -> serde_json::Value {
    let response = runtime()
        .block_on(xtask_release::clients::http::Client::new().get(&format!("{url}/version"), &[]))
        .unwrap_or_else(|err| panic!("{url}/version: {err:#}"));
    assert!(response.status.is_success(), "{url}/version: {}", response.status);
    serde_json::from_slice(&response.body).unwrap()
}

/// A tokio runtime for a test's SDK and bollard calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The local stack's ECR API, as the `local` stage reaches it.
pub async fn local_ecr() -> aws_sdk_ecr::Client {
    let ws = xtask_release::domain::workspace::Workspace::at(&workspace_root(), &xtask_local_stack::settings::IMPLICIT)
        .unwrap();
    let region = ws.config.stage(xtask_local_stack::settings::LOCAL_STAGE).unwrap().region.clone().unwrap();
    aws_sdk_ecr::Client::new(&local_ports().await.sdk_config(&region).await)
}

/// The digest of `repository:tag` in ECR, if the tag is there.
pub async fn ecr_digest(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str) -> Option<String> {
    xtask_release::clients::ecr::image_by_tag(ecr, repository, tag)
        .await
        .unwrap()
        .and_then(|d| d.image_digest().map(str::to_owned))
}

/// Creates an ECR repository on the local stack.
pub async fn create_repository(ecr: &aws_sdk_ecr::Client, name: &str, immutable: bool) {
    let mutability = if immutable {
        aws_sdk_ecr::types::ImageTagMutability::Immutable
    } else {
        aws_sdk_ecr::types::ImageTagMutability::Mutable
    };
    ecr.create_repository().repository_name(name).image_tag_mutability(mutability).send().await.unwrap();
}

/// Calls a JSON-protocol AWS API of the local stack directly (moto does not check
/// signatures; the credential scope routes the call): an independent view of what
/// CloudFormation made, with no SDK of the tool's in between.
/// The access key `key` names the account the call acts in (`testing`: moto's own).
async fn moto_json_as(key: &str, service: &str, target: &str, body: serde_json::Value) -> serde_json::Value {
    let url = format!("{}/", local_ports().await.moto_url());
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let client = xtask_release::clients::http::Client::new().with_credentials(&url, scope).unwrap();
    let response = client
        .send(
            hyper::Method::POST,
            &url,
            &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)],
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap();
    assert!(response.status.is_success(), "{target}: {} {}", response.status, String::from_utf8_lossy(&response.body));
    serde_json::from_slice(&response.body).unwrap()
}

/// The container images of the task definitions stack `stack` holds now.
pub async fn stack_task_images(stack: &str) -> Vec<String> {
    stack_task_images_as("testing", stack).await
}

/// `stack_task_images` of a stack in `account`, acting there as the tool does (a role assumed in it).
pub async fn stack_task_images_in(account: &str, stack: &str) -> Vec<String> {
    use aws_sdk_ecr::config::ProvideCredentials;
    let sdk = local_ports().await.sdk_config_in("us-east-1", Some(account)).await;
    let credentials = sdk.credentials_provider().unwrap().provide_credentials().await.unwrap();
    stack_task_images_as(credentials.access_key_id(), stack).await
}

async fn stack_task_images_as(key: &str, stack: &str) -> Vec<String> {
    let resources =
        moto_query_as(key, "cloudformation", &[("Action", "DescribeStackResources"), ("StackName", stack)]).await;
    let mut images = vec![];
    for arn in resources
        .split("<member>")
        .filter(|r| r.contains("<ResourceType>AWS::ECS::TaskDefinition</ResourceType>"))
        .filter_map(|r| between(r, "<PhysicalResourceId>", "</PhysicalResourceId>"))
    {
        let def = moto_json_as(
            key,
            "ecs",
            "AmazonEC2ContainerServiceV20141113.DescribeTaskDefinition",
            serde_json::json!({ "taskDefinition": arn }),
        )
        .await;
        for container in def["taskDefinition"]["containerDefinitions"].as_array().unwrap() {
            // moto keeps CloudFormation's key casing for a task definition it made on a stack update.
            let image = container.get("image").or_else(|| container.get("Image"));
            images.push(image.and_then(|i| i.as_str()).unwrap().to_string());
        }
    }
    images
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    Some(&text[from..from + text[from..].find(end)?])
}

/// Calls a query-protocol AWS API (XML answers) of the local stack directly.
pub async fn moto_query_as(key: &str, service: &str, params: &[(&str, &str)]) -> String {
    let url = format!("{}/", local_ports().await.moto_url());
    let scope = format!(
        "AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let body: Vec<String> =
        params.iter().map(|(k, v)| format!("{k}={v}")).chain(["Version=2010-05-15".to_string()]).collect();
    let response = xtask_release::clients::http::Client::new()
        .with_credentials(&url, scope)
        .unwrap()
        .send(
            hyper::Method::POST,
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.join("&").into(),
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&response.body).into_owned();
    assert!(response.status.is_success(), "{service} {params:?}: {} {text}", response.status);
    text
}

/// A fresh clone of this workspace's HEAD, on its `main` branch, sharing infra's installed packages.
pub fn clone_workspace() -> Fixture {
    let sh = Shell::new().unwrap();
    let dir = sh.create_temp_dir().unwrap();
    let root = workspace_root();
    let target = dir.path().join("ws");
    cmd!(sh, "git clone -q {root} {target}").quiet().run().unwrap();
    sh.change_dir(&target);
    cmd!(sh, "git config user.email test@example.com").quiet().run().unwrap();
    cmd!(sh, "git config user.name Test").quiet().run().unwrap();
    // The clone's commits are main's, whatever branch this workspace is on: its pushes take
    // the main channel (main's repositories), as CI's on main do.
    cmd!(sh, "git checkout -q -B main").quiet().run().unwrap();
    let modules = root.join("infra/node_modules");
    assert!(modules.exists(), "run `npm ci` in infra/ first (cargo xtask test does)");
    std::os::unix::fs::symlink(&modules, target.join("infra/node_modules")).unwrap();
    Fixture { sh, dir, subdir: Some("ws") }
}

/// The workspace's `local` stage as CI leaves it: bootstrapped, by this test unless an earlier
/// one did (moto can fail to update the bootstrap stack of a state it replayed).
pub fn bootstrap_local(repo: &Fixture) {
    // One test at a time checks and bootstraps: two would both find it missing.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bootstrapped = runtime().block_on(async {
        let ecr = local_ecr().await;
        let mut found = true;
        for repository in ["hello/app", "hello/worker"] {
            found &= xtask_release::clients::ecr::image_by_tag(&ecr, repository, "absent").await.is_ok();
        }
        found
    });
    if !bootstrapped {
        repo.xtask(&["bootstrap", "--stage", "local", "--yes"]).ok();
    }
}

/// A second Docker daemon on its own socket and data root, as on another CI runner (the
/// local stack's private dockerd); stopped (and its state removed) on drop. Needs root.
pub struct SecondDaemon {
    daemon: xtask_local_stack::dockerd::PrivateDaemon,
    pub host: String,
}

impl SecondDaemon {
    pub fn start() -> SecondDaemon {
        // Short: the daemon's sockets live below it (a socket path holds at most 107 bytes).
        let daemon =
            xtask_local_stack::dockerd::PrivateDaemon::unix("xtask-dd-").unwrap_or_else(|err| panic!("{err:#}"));
        SecondDaemon { host: daemon.host.clone(), daemon }
    }

    /// A daemon on a loopback TCP port that takes only TLS clients with a certificate of a
    /// CA made here; `certs()` is the directory to give as DOCKER_CERT_PATH.
    pub fn start_tls() -> SecondDaemon {
        let dir = xtask_local_stack::dockerd::private_dir("xtask-tls-").unwrap_or_else(|err| panic!("{err:#}"));
        std::fs::create_dir_all(dir.join("client")).unwrap();
        let sh = Shell::new().unwrap();
        sh.change_dir(&dir);
        let quiet = |c: xshell::Cmd<'_>| c.quiet().ignore_stdout().ignore_stderr().run().unwrap();
        quiet(cmd!(
            sh,
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=xtask-test-ca"
        ));
        sh.write_file("server.ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
        sh.write_file("client.ext", "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, key, cert) in
            [("server", "server-key.pem", "server-cert.pem"), ("client", "client/key.pem", "client/cert.pem")]
        {
            let subject = format!("/CN={name}");
            let ext = format!("{name}.ext");
            quiet(cmd!(sh, "openssl req -newkey rsa:2048 -nodes -keyout {key} -out {name}.csr -subj {subject}"));
            quiet(cmd!(
                sh,
                "openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out {cert} -days 1 -extfile {ext}"
            ));
        }
        sh.copy_file("ca.pem", "client/ca.pem").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("tcp://127.0.0.1:{port}");
        let tls =
            ["--tlsverify", "--tlscacert", "ca.pem", "--tlscert", "server-cert.pem", "--tlskey", "server-key.pem"];
        let tls: Vec<String> = tls
            .iter()
            .map(|a| if a.ends_with(".pem") { dir.join(a).display().to_string() } else { a.to_string() })
            .collect();
        let daemon =
            xtask_local_stack::dockerd::PrivateDaemon::start(dir, host, &tls).unwrap_or_else(|err| panic!("{err:#}"));
        SecondDaemon { host: daemon.host.clone(), daemon }
    }

    /// DOCKER_CERT_PATH for a daemon from `start_tls`.
    pub fn certs(&self) -> PathBuf {
        self.daemon.dir().join("client")
    }
}

/// An OpenSSH server on a loopback port that lets root in with a key made here, and an `ssh`
/// on `path()` that uses that key: `DOCKER_HOST=ssh://root@127.0.0.1:PORT` reaches this
/// machine's default Docker daemon through `docker system dial-stdio`, as from a laptop.
pub struct SshServer {
    child: std::process::Child,
    dir: PathBuf,
    pub port: u16,
}

impl SshServer {
    pub fn start() -> SshServer {
        // Its keys let anyone in as root: a directory only this user can enter.
        let dir = xtask_local_stack::dockerd::private_dir("xtask-ssh-").unwrap_or_else(|err| panic!("{err:#}"));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation directory
        let sh = Shell::new().unwrap();
        sh.change_dir(&dir);
        for key in ["host_key", "client_key"] {
            cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -f {key}").quiet().run().unwrap();
        }
        sh.copy_file("client_key.pub", "authorized_keys").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.display();
        sh.write_file(
            "sshd_config",
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile {d}/sshd.pid\nStrictModes no\nPermitRootLogin prohibit-password\nUsePAM no\n"
            ),
        )
        .unwrap();
        sh.write_file(
            "ssh_config",
            format!(
                "Host *\n  IdentityFile {d}/client_key\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            ),
        )
        .unwrap();
        let ssh = dir.join("bin/ssh");
        std::fs::write(&ssh, format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n")).unwrap();
        std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .spawn()
            .expect("cannot start sshd (install openssh-server)");
        let server = SshServer { child, dir, port };
        let started = std::time::Instant::now();
        let target = "root@127.0.0.1";
        let port = port.to_string();
        while cmd!(sh, "{ssh} -p {port} {target} true").quiet().ignore_stdout().ignore_stderr().run().is_err() {
            let log = std::fs::read_to_string(server.dir.join("sshd.log")).unwrap_or_default();
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "sshd did not let the test in:\n{log}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        server
    }

    /// A PATH whose `ssh` uses this server's key.
    pub fn path(&self) -> String {
        format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default())
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the pid of the sshd this helper started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Watches every process's command line and environment for `secrets` while a command
/// runs (sampled every 5 ms).
pub struct SecretWatch {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<String>, usize)>,
}

impl SecretWatch {
    pub fn start(secrets: &[String]) -> SecretWatch {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, secrets) = (done.clone(), secrets.to_vec());
        let handle = std::thread::spawn(move || {
            let (mut leaks, mut samples) = (vec![], 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                samples += 1;
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    for file in ["cmdline", "environ"] {
                        if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                            let text = String::from_utf8_lossy(&bytes);
                            if secrets.iter().any(|s| text.contains(s.as_str())) {
                                leaks.push(format!("{}/{file}: {}", entry.path().display(), text.replace('\0', " ")));
                            }
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            (leaks, samples)
        });
        SecretWatch { done, handle }
    }

    /// Stops watching; returns where a secret was seen, and how many samples were taken.
    pub fn finish(self) -> (Vec<String>, usize) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Files below `dirs` (logs, records, configs; not image data or build output) that hold
/// any of `secrets`.
pub fn files_holding(dirs: &[PathBuf], secrets: &[String]) -> Vec<String> {
    let mut found = vec![];
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            // Image layers, base-image rootfs, compiled code and packages hold no logs.
            if ["data", "base", "debug", "release", "node_modules", "venv", ".git"].contains(&name) {
                continue;
            }
            stack.extend(std::fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else if meta.is_file() && meta.len() < 64 * 1024 * 1024 {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
            if secrets.iter().any(|s| text.contains(s.as_str())) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// The secrets a local run handles: the registry password and the stack's AWS secret key.
pub fn local_secrets() -> Vec<String> {
    let password = runtime()
        .block_on(async { xtask_release::clients::ecr::authorization(&local_ecr().await).await.unwrap().password });
    vec![password, xtask_local_stack::LOCAL_SECRET_KEY.to_string()]
}

/// The second emulated account of the local stack: the `local-prod` stage's.
pub const PROD_ACCOUNT: &str = "111111111111";

/// The local stack's ECR API in `account`, reached as the tool reaches it (a role assumed there).
pub async fn local_ecr_in(account: &str) -> aws_sdk_ecr::Client {
    aws_sdk_ecr::Client::new(&local_ports().await.sdk_config_in("us-east-1", Some(account)).await)
}

/// A fixture workspace whose image goes to `repository`, with a `local-prod` stage that
/// takes its images from `local`; the repository exists, immutable, in both accounts, and
/// its pull-request one (`pr/<repository>`) in `local`'s, which builds.
pub fn promotion_fixture(repository: &str) -> Fixture {
    let stage = format!(
        "\n[workspace.metadata.xtask.stages.local-prod]\nlocal-stack = true\nregion = \"us-east-1\"\naccount = \"{PROD_ACCOUNT}\"\npromote-from = \"local\"\n"
    );
    let settings = FIXTURE_CARGO_TOML.replace("\"fixture/svc\"", &format!("\"{repository}\"")) + &stage;
    let fixture = Fixture::with_settings(&settings);
    runtime().block_on(async {
        let ecr = local_ecr().await;
        create_repository(&ecr, repository, true).await;
        create_repository(&ecr, &format!("pr/{repository}"), true).await;
        create_repository(&local_ecr_in(PROD_ACCOUNT).await, repository, true).await;
    });
    fixture
}

/// The manifest ECR holds for `repository:tag`: body, media type and digest.
pub async fn ecr_manifest(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str) -> (String, String, String) {
    let m = xtask_release::clients::ecr::manifest(ecr, repository, tag).await.unwrap();
    (m.body, m.media_type, m.digest)
}

/// Waits until `done` holds, polling it; fails the test, naming `what`, after `limit`.
/// What a test synchronises on is an event it can see, never a guess at how long it takes.
#[track_caller]
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Is the advisory lock (flock(2)) on `path` held by another process?
pub fn lock_held(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else { return false };
    // SAFETY: flock(2) on a descriptor this function owns for the length of the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        // SAFETY: as above; the probe gives the lock straight back.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Is a process whose command line is exactly `argv` running on this machine (in a
/// container too: they share the host's process table)?
pub fn process_running(argv: &[&str]) -> bool {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| cmdline == want))
}

/// Has the process `pid` ended (gone, or a zombie waiting to be reaped)?
pub fn process_ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S ...`: the state follows the command's closing parenthesis.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// A workspace's `target/` as xtask sees it (it honours CARGO_TARGET_DIR).
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Asserts the human-facing `text` against the snapshot `name` (`tests/it/snapshots/`),
/// with what differs from run to run replaced: SHAs, digests, times, ports, temporary paths,
/// the tests' unique repository names, durations and sizes. A changed message shows as a
/// snapshot diff to review (`cargo insta review`, or `INSTA_UPDATE=always` and `git diff`).
#[track_caller]
pub fn assert_output(name: &str, text: &str) {
    let filters = vec![
        // What another machine, network or emulator run answers differently.
        (r"check the network: .*", "check the network: [the daemon's answer]"),
        (r"(~/\.aws/credentials): .*", "$1: [the credential chain's answer]"),
        (r"(Service[0-9A-F]{8})-[0-9A-Z]+", "$1-[ID]"),
        (r"\b\d{12}\.dkr\.ecr", "[ACCOUNT].dkr.ecr"),
        (r"inputs-[0-9a-f]{64}", "inputs-[KEY]"),
        (r"buildcache-[0-9a-f]{64}", "buildcache-[KEY]"),
        (r"sha256:[0-9a-f]{64}", "[DIGEST]"),
        (r"sha256:[0-9a-f]{7,63}(…|\.\.\.)?", "[DIGEST]"),
        (r"\b[0-9a-f]{40}\b", "[SHA]"),
        (r"\b[0-9a-f]{12}\b", "[SHORT-SHA]"),
        (r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
        (r"\b\d{8}T\d{6}Z", "[TIME]"),
        (r"(127\.0\.0\.1|localhost):\d+", "$1:[PORT]"),
        (r"/tmp/[^\s:)`'\]]+", "[TMP]"),
        (r"\b(it[/-][a-z-]+?)-[0-9a-f]{12,}\b", "$1-[ID]"),
        (r"\b\d+(\.\d+)?\s?(ms|s)\b", "[DURATION]"),
        (r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[SIZE]"),
    ];
    insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, text);
    });
}

/// Is the program on PATH? CI installs every one the tests use; elsewhere a test says
/// what it skips.
pub fn tool_or_skip(program: &str, test: &str) -> bool {
    let found = Shell::new().unwrap().cmd(program).arg("--help").quiet().ignore_stdout().ignore_stderr().run().is_ok();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{program} is missing: CI must install it (see .ci/run)");
        eprintln!("skipping {test}: {program} is not installed");
    }
    found
}
