//! The baseline's tool: the docker CLI as a shell script runs it, logged in to the
//! local registry through a throwaway `DOCKER_CONFIG` that is removed on drop (it
//! holds the registry password).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Cmd, Shell, cmd};

use xtask_release::clients::ecr::RegistryAuth;

pub struct DockerCli {
    config: PathBuf,
}

impl DockerCli {
    /// `docker login --password-stdin` into a new config directory `config`.
    pub fn login(sh: &Shell, config: &Path, registry: &str, auth: &RegistryAuth) -> Result<DockerCli> {
        if config.exists() {
            std::fs::remove_dir_all(config).with_context(|| format!("cannot clear {}", config.display()))?;
        }
        std::fs::create_dir_all(config).with_context(|| format!("cannot create {}", config.display()))?;
        let cli = DockerCli { config: config.to_path_buf() };
        let user = &auth.username;
        let out = cli
            .cmd(cmd!(sh, "docker login --username {user} --password-stdin {registry}"))
            .stdin(&auth.password)
            .quiet()
            .ignore_status()
            .output()
            .context("cannot run `docker login`; is the docker CLI installed?")?;
        if !out.status.success() {
            bail!("`docker login {registry}` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(cli)
    }

    /// `cmd` with this config and the classic builder (the baseline of rows 1, 2 and 3).
    pub fn cmd<'a>(&self, cmd: Cmd<'a>) -> Cmd<'a> {
        cmd.env("DOCKER_CONFIG", &self.config).env("DOCKER_BUILDKIT", "0")
    }
}

impl Drop for DockerCli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config);
    }
}
