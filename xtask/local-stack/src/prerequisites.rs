//! What the local stack needs from this machine, checked all at once before `local up`
//! starts anything: a new machine learns in one go everything it lacks, not one package
//! per failed run. As root on Debian or Ubuntu, `local up` installs what is missing
//! itself; anyone else gets one line naming what is missing and the one command that
//! installs all of it.
//!
//! Each prerequisite is a thing to find (a program, or python3's `venv`) and the Debian
//! package that brings it. What is needed depends on what this `up` has to make
//! ([`Work`]): debootstrap only while a stand-in base image is needed (the Docker daemon
//! cannot pull the official ones) and the Debian one is missing, python3 only while
//! no `moto_server` is at hand.
//!
//! Each part still fails with its own message when its program is missing (registry.rs,
//! base_images.rs, moto.rs): a second line of defence, for what this list cannot foresee.

use std::{
    ffi::{OsStr, OsString},
    fs::File,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::process;

/// What this `local up` has to make, which decides what it needs from the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// The Debian stand-in is needed and missing from the Docker daemon: debootstrap makes it. (The
    /// Rust base image is built from it by the daemon, with nothing more from the host.)
    pub debian_image: bool,
    /// Neither PATH nor the stack's virtualenv has `moto_server`: python3 makes the
    /// virtualenv and pip installs moto into it.
    pub moto: bool,
}

/// How a prerequisite is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A program, found by [`find_program`].
    Program(&'static str),
    /// The python3 found by [`find_program`] can run `python3 -m venv`. Debian ships
    /// `ensurepip`, which `venv` needs, apart from python3, in python3-venv.
    PythonVenv,
}

/// A thing the local stack needs, and the Debian (and Ubuntu) package that brings it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prerequisite {
    pub check: Check,
    pub package: &'static str,
}

const fn program(name: &'static str, package: &'static str) -> Prerequisite {
    Prerequisite { check: Check::Program(name), package }
}

/// Everything the local stack needs from the machine to do `work`.
pub fn needed(work: Work) -> Vec<Prerequisite> {
    // Every account's registry is Debian's docker-registry (CNCF distribution).
    let mut needed = vec![program("docker-registry", "docker-registry")];
    if work.debian_image {
        needed.push(program("debootstrap", "debootstrap"));
    }
    if work.moto {
        needed.push(program("python3", "python3"));
        needed.push(Prerequisite { check: Check::PythonVenv, package: "python3-venv" });
    }
    needed
}

/// The packages that bring what of `needed` is not found on `path` (a PATH value), each
/// once, in the order of `needed`.
pub fn missing(needed: &[Prerequisite], path: &OsStr) -> Vec<&'static str> {
    let mut missing = vec![];
    for prerequisite in not_found(needed, path) {
        if !missing.contains(&prerequisite.package) {
            missing.push(prerequisite.package);
        }
    }
    missing
}

/// What of `needed` is not found on `path`.
fn not_found(needed: &[Prerequisite], path: &OsStr) -> Vec<Prerequisite> {
    needed.iter().copied().filter(|prerequisite| !is_present(prerequisite.check, path)).collect()
}

impl Check {
    /// What is looked for, for messages.
    fn describe(self) -> String {
        match self {
            Check::Program(name) => format!("`{name}`"),
            Check::PythonVenv => "python3 that can make a virtualenv (`python3 -m venv`)".to_string(),
        }
    }
}

fn is_present(check: Check, path: &OsStr) -> bool {
    match check {
        Check::Program(name) => find_program(name, path).is_some(),
        Check::PythonVenv => find_program("python3", path).is_some_and(|python| can_make_venv(&python)),
    }
}

/// The executable file `name` in the first directory of `path` (a PATH value) that has
/// one, as a shell would find it; in-process, without spawning `which`. Empty entries
/// (the current directory) are skipped: the stack never runs a program from there.
pub fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

/// A regular file (after symlinks) that someone may execute.
fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Can `python` make a virtualenv with pip? It imports `venv` and `ensurepip`: a Debian
/// python3 without python3-venv lacks the latter, and `python3 -m venv` then fails.
fn can_make_venv(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import ensurepip, venv"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The PATH the prerequisites are looked for on: `sh`'s, then the `sbin` directories it
/// leaves out. Debian puts debootstrap in `/usr/sbin`, which a user's PATH often lacks: a
/// debootstrap installed there is not missing (making the base image needs root anyway,
/// and root's PATH has it).
fn search_path(sh: &Shell) -> OsString {
    let path = sh.var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for sbin in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        if !dirs.iter().any(|dir| dir == Path::new(sbin)) {
            dirs.push(PathBuf::from(sbin));
        }
    }
    std::env::join_paths(dirs).unwrap_or(path)
}

/// The program `name` where the prerequisites check finds it, so that a part runs what
/// the check found (debootstrap in `/usr/sbin` though PATH leaves it out).
pub fn locate(sh: &Shell, name: &str) -> Option<PathBuf> {
    find_program(name, &search_path(sh))
}

/// What `local up` does about the packages `missing`.
#[derive(Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Nothing is missing.
    Nothing,
    /// Root on Debian or Ubuntu, with apt-get: install these packages.
    Install(Vec<&'static str>),
    /// Anyone else: fail with this line, which says what is missing and how to install it.
    Fail(String),
}

/// Decides what to do about `missing`, for the user `euid` on the system `os_release`
/// describes (the text of os-release(5); empty when unknown), where `apt_get` says
/// whether apt-get is on PATH.
pub fn remedy(euid: u32, os_release: &str, apt_get: bool, missing: &[&'static str]) -> Remedy {
    if missing.is_empty() {
        return Remedy::Nothing;
    }
    let debian = apt_get && is_debian_like(os_release);
    if debian && euid == 0 {
        return Remedy::Install(missing.to_vec());
    }
    let list = missing.join(", ");
    let packages = missing.join(" ");
    let (which, them) = if missing.len() == 1 { ("which is", "it") } else { ("which are", "them") };
    Remedy::Fail(if debian {
        let sudo = if euid == 0 { "" } else { "sudo " };
        format!("the local stack needs {list}, {which} missing; install {them} with: {sudo}apt-get install {packages}")
    } else {
        format!(
            "the local stack needs {list} (Debian's package names), {which} missing; install {them} or this system's equivalents (on Debian or Ubuntu: sudo apt-get install {packages})"
        )
    })
}

/// Is this Debian or a system made from it (Ubuntu and its own)? The `ID` or `ID_LIKE` of
/// os-release(5) names debian or ubuntu.
pub fn is_debian_like(os_release: &str) -> bool {
    ["ID", "ID_LIKE"]
        .into_iter()
        .filter_map(|key| os_release_value(os_release, key))
        .any(|ids| ids.split_whitespace().any(|id| id == "debian" || id == "ubuntu"))
}

/// The value of `key` in os-release(5) text, without its quotes.
fn os_release_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let value = text.lines().find_map(|line| line.trim().strip_prefix(key)?.strip_prefix('='))?.trim();
    let unquoted = ['"', '\''].into_iter().find_map(|q| value.strip_prefix(q)?.strip_suffix(q));
    Some(unquoted.unwrap_or(value))
}

/// This system's os-release(5) text: `/etc/os-release`, else `/usr/lib/os-release`; empty
/// when neither is readable.
fn os_release() -> String {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default()
}

/// Checks everything `work` needs at once. As root on Debian or Ubuntu, installs what is
/// missing (apt-get's output is appended to `log`) and checks again; anyone else gets one
/// error line naming what is missing and the command that installs it all.
pub fn ensure(sh: &Shell, work: Work, log: &Path) -> Result<()> {
    let needed = needed(work);
    let path = search_path(sh);
    let missing = missing(&needed, &path);
    // SAFETY: geteuid(2) takes nothing and always succeeds.
    let euid = unsafe { libc::geteuid() };
    let apt_get = find_program("apt-get", &path).is_some();
    match remedy(euid, &os_release(), apt_get, &missing) {
        Remedy::Nothing => Ok(()),
        Remedy::Fail(line) => bail!("{line}"),
        Remedy::Install(packages) => {
            install(sh, &packages, log)?;
            let still: Vec<String> = not_found(&needed, &path).iter().map(|p| p.check.describe()).collect();
            if !still.is_empty() {
                bail!(
                    "apt-get installed {}, yet the local stack still finds no {} on {}; put it on PATH",
                    packages.join(" "),
                    still.join(", no "),
                    path.to_string_lossy()
                );
            }
            Ok(())
        }
    }
}

/// Installs `packages` with apt-get, non-interactively, its output appended to `log`.
///
/// `apt-get update` runs first, always: a fresh machine (a new VM, a container) often has
/// no package lists at all, and stale ones name versions the mirror no longer has; this
/// runs once per machine, so the seconds it costs matter less than a second failed try.
fn install(sh: &Shell, packages: &[&str], log: &Path) -> Result<()> {
    // Waits for a dpkg lock held by another apt (unattended-upgrades on a fresh machine)
    // rather than failing at once.
    let install = cmd!(sh, "apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 {packages...}");
    eprintln!(
        "local stack: installing what it needs: {install} (after apt-get update -q; output in {})",
        log.display()
    );
    // A failed update (one unreachable source) need not fail the install: its own error says more.
    if let Err(err) = apt_get(cmd!(sh, "apt-get update -q"), log) {
        eprintln!("{err:#}; installing from the package lists there are");
    }
    apt_get(install, log)
}

/// Runs an apt-get command with `DEBIAN_FRONTEND=noninteractive`, no stdin, and its
/// output appended to `log`; fails with the log's tail.
fn apt_get(cmd: xshell::Cmd<'_>, log: &Path) -> Result<()> {
    let shown = cmd.to_string();
    let mut command: Command = cmd.env("DEBIAN_FRONTEND", "noninteractive").into();
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); {} ends with:\n{}", log.display(), process::log_tail(log, 10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory to stand for PATH, holding an executable file for each of `programs`.
    fn fake_path(sh: &Shell, programs: &[&str]) -> xshell::TempDir {
        let dir = sh.create_temp_dir().unwrap();
        for name in programs {
            let file = dir.path().join(name);
            std::fs::write(&file, "").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    /// A fake python3 that answers the venv check as `answer` (`true` or `false`): a
    /// symlink to the system's program of that name, which ignores its arguments. A link
    /// rather than a script written here, since running a file just written can fail with
    /// ETXTBSY while another test forks.
    fn fake_python(dir: &Path, answer: &str) {
        let program = find_program(answer, &std::env::var_os("PATH").unwrap()).unwrap();
        std::os::unix::fs::symlink(program, dir.join("python3")).unwrap();
    }

    #[test]
    fn what_is_needed_follows_the_work() {
        let packages = |work| needed(work).iter().map(|p| p.package).collect::<Vec<_>>();
        assert_eq!(packages(Work::default()), ["docker-registry"]);
        assert_eq!(packages(Work { debian_image: true, moto: false }), ["docker-registry", "debootstrap"]);
        assert_eq!(
            packages(Work { debian_image: true, moto: true }),
            ["docker-registry", "debootstrap", "python3", "python3-venv"]
        );
    }

    #[test]
    fn missing_lists_the_packages_of_what_is_not_on_path() {
        let sh = Shell::new().unwrap();
        let all = needed(Work { debian_image: true, moto: true });
        let empty = fake_path(&sh, &[]);
        assert_eq!(
            missing(&all, empty.path().as_os_str()),
            ["docker-registry", "debootstrap", "python3", "python3-venv"]
        );

        // Found in any PATH entry; a file no one may execute does not count.
        let registry = fake_path(&sh, &["docker-registry"]);
        let other = fake_path(&sh, &[]);
        let debootstrap = other.path().join("debootstrap");
        std::fs::write(&debootstrap, "").unwrap();
        std::fs::set_permissions(&debootstrap, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = std::env::join_paths([other.path(), registry.path()]).unwrap();
        assert_eq!(missing(&all, &path), ["debootstrap", "python3", "python3-venv"]);
        assert_eq!(find_program("docker-registry", &path), Some(registry.path().join("docker-registry")));

        // Nothing but docker-registry is needed when the base image is there and moto at hand.
        assert!(missing(&needed(Work::default()), &path).is_empty());
    }

    #[test]
    fn a_python3_that_cannot_make_a_venv_needs_python3_venv() {
        let sh = Shell::new().unwrap();
        let moto = needed(Work { debian_image: false, moto: true });
        let without_venv = fake_path(&sh, &["docker-registry"]);
        fake_python(without_venv.path(), "false");
        assert_eq!(missing(&moto, without_venv.path().as_os_str()), ["python3-venv"]);
        let with_venv = fake_path(&sh, &["docker-registry"]);
        fake_python(with_venv.path(), "true");
        assert!(missing(&moto, with_venv.path().as_os_str()).is_empty());
    }

    #[test]
    fn os_release_names_debian_and_its_derivatives() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        let ubuntu = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n";
        let mint = "NAME=\"Linux Mint\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n";
        let fedora = "NAME=\"Fedora Linux\"\nID=fedora\nVERSION_ID=40\n";
        let quoted = "ID='debian'\n";
        assert!(is_debian_like(debian));
        assert!(is_debian_like(ubuntu));
        assert!(is_debian_like(mint));
        assert!(is_debian_like(quoted));
        assert!(!is_debian_like(fedora));
        assert!(!is_debian_like(""));
        // A word that merely contains "debian" is another system.
        assert!(!is_debian_like("ID=notdebian\n"));
        assert_eq!(os_release_value(mint, "ID"), Some("linuxmint"));
        assert_eq!(os_release_value(mint, "ID_LIKE"), Some("ubuntu debian"));
    }

    #[test]
    fn root_on_debian_installs_and_anyone_else_gets_one_line() {
        let debian = "ID=debian\n";
        let both = ["docker-registry", "debootstrap"];
        assert_eq!(remedy(0, debian, true, &[]), Remedy::Nothing);
        assert_eq!(remedy(1000, "", false, &[]), Remedy::Nothing);
        assert_eq!(remedy(0, debian, true, &both), Remedy::Install(both.to_vec()));

        let fail =
            |euid, os_release, apt_get, missing: &[&'static str]| match remedy(euid, os_release, apt_get, missing) {
                Remedy::Fail(line) => line,
                other => panic!("{other:?}"),
            };
        let user = fail(1000, debian, true, &both);
        assert_eq!(
            user,
            "the local stack needs docker-registry, debootstrap, which are missing; install them with: sudo apt-get install docker-registry debootstrap"
        );
        assert!(!user.contains('\n'));
        assert_eq!(
            fail(1000, "ID=ubuntu\n", true, &["python3-venv"]),
            "the local stack needs python3-venv, which is missing; install it with: sudo apt-get install python3-venv"
        );
        // Root elsewhere, or on a Debian without apt-get: told, not installed for.
        for (os_release, apt_get) in [("ID=fedora\n", true), (debian, false), ("", false)] {
            let line = fail(0, os_release, apt_get, &both);
            assert!(
                line.starts_with("the local stack needs docker-registry, debootstrap (Debian's package names)"),
                "{line}"
            );
            assert!(line.contains("sudo apt-get install docker-registry debootstrap"), "{line}");
            assert!(!line.contains('\n'));
        }
    }
}
