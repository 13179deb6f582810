//! Throwaway git repositories under target/bench holding workspaces for the bench.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use xtask_release::domain::workspace::Workspace;

pub struct Fixture {
    pub dir: PathBuf,
    pub sh: Shell,
}

/// One `[[workspace.metadata.xtask.images]]` entry of a fixture.
pub struct Image<'a> {
    pub name: &'a str,
    /// Relative to the fixture root; holds its Dockerfile.
    pub context: &'a str,
    pub repository: &'a str,
}

impl Fixture {
    /// An empty repository in `dir` (replacing whatever was there).
    pub fn init(dir: &Path) -> Result<Fixture> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let sh = Shell::new()?;
        sh.change_dir(dir);
        cmd!(sh, "git init -q -b main").quiet().run()?;
        cmd!(sh, "git config user.email bench@example.com").quiet().run()?;
        cmd!(sh, "git config user.name bench").quiet().run()?;
        Ok(Fixture { dir: dir.to_path_buf(), sh })
    }

    /// A workspace whose settings list `images` (run it with `Bench::ours`, which points it
    /// at the running local stack).
    pub fn workspace(dir: &Path, images: &[Image]) -> Result<Fixture> {
        let fixture = Fixture::init(dir)?;
        let mut toml = "[workspace]\nmembers = []\n\n[workspace.metadata.xtask]\nproject = \"bench\"\n".to_string();
        for image in images {
            let Image { name, context, repository } = image;
            toml += &format!(
                "\n[[workspace.metadata.xtask.images]]\nname = \"{name}\"\ncontext = \"{context}\"\n\
                 dockerfile = \"{context}/Dockerfile\"\nrepository = \"{repository}\"\nport = 8080\n"
            );
        }
        fixture.write("Cargo.toml", &toml)?;
        fixture.write(".gitignore", "/target\n")?;
        fixture.write("README.md", "A workspace made by `cargo xtask bench`.\n")?;
        Ok(fixture)
    }

    /// A copy of `ws`'s work tree (tracked and untracked files, not ignored ones) as one
    /// commit, with infra/'s installed packages linked in: the project as a clone of
    /// its next commit would have it.
    pub fn snapshot(ws: &Workspace, dir: &Path) -> Result<Fixture> {
        let modules = ws.root.join("infra/node_modules");
        if !modules.join(".bin/cdk").exists() {
            bail!("infra/node_modules has no cdk; run `npm ci` in infra/ first (`cargo xtask test` does)");
        }
        let fixture = Fixture::init(dir)?;
        let sh = &ws.sh;
        let files = cmd!(sh, "git ls-files -z --cached --others --exclude-standard").quiet().read()?;
        for rel in files.split('\0').filter(|f| !f.is_empty()) {
            let (from, to) = (ws.root.join(rel), dir.join(rel));
            let Ok(meta) = from.symlink_metadata() else { continue }; // deleted, not yet staged
            std::fs::create_dir_all(to.parent().expect("a file has a parent"))?;
            if meta.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            } else {
                std::fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
            }
        }
        std::os::unix::fs::symlink(&modules, dir.join("infra/node_modules"))?;
        fixture.commit("snapshot of the work tree")?;
        Ok(fixture)
    }

    pub fn write(&self, rel: &str, contents: &str) -> Result<()> {
        let path = self.dir.join(rel);
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Commits everything; returns the new commit's SHA.
    pub fn commit(&self, message: &str) -> Result<String> {
        let sh = &self.sh;
        cmd!(sh, "git add -A").quiet().run()?;
        cmd!(sh, "git -c commit.gpgsign=false commit -q --allow-empty -m {message}").quiet().run()?;
        Ok(cmd!(sh, "git rev-parse HEAD").quiet().read()?)
    }
}
