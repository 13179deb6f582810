//! Row 3: `build` of a big generated context beside `DOCKER_BUILDKIT=0 docker build`
//! of the same directory, with the peak RSS of both clients, and `tar -c | cat` of the
//! tree as the floor. Run for a 100 MiB context and the big one, to show whether our
//! memory stays flat. Beside them, for the big context: 3b, our first BuildKit build vs
//! `docker buildx build`'s (both send the context over a BuildKit session); 3c, the build
//! after one file changed, ours vs buildx's, and vs our first.
//!
//! Each round really builds: a file unique to the round is written into the context
//! first (so no builder finds the `COPY` in a cache), and the images and BuildKit
//! cache records (the cached copy of the context among them) a client's builds made are
//! removed before the next client builds.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use super::{
    Bench, Row,
    fixture::{Fixture, Image},
    measure::{self, Stats, Stdout},
    tree::{self, MIB, Made, Spec},
};

/// Files in a 1 GiB context; other sizes scale it (about 21 KiB a file).
const FILES_PER_GIB: u64 = 50_000;
const SMALL_MIB: u64 = 100;

pub fn rows(b: &Bench<'_>, big_mib: u64) -> Result<Vec<Row>> {
    let data = b.dir.join("data");
    std::fs::create_dir_all(&data)?;
    let sizes = [SMALL_MIB, big_mib];
    let spec = |mib: u64| Spec { files: FILES_PER_GIB * mib / 1024, bytes: mib * MIB, seed: 3 };
    let dir = |mib: u64| data.join(format!("ctx-{mib}m"));
    let missing: u64 =
        sizes.iter().filter(|&&mib| !dir(mib).with_extension("done").exists()).map(|&mib| mib * MIB).sum();
    check_space(&b.ws.sh, &data, missing, big_mib * MIB)?;

    let mut made = vec![];
    for mib in sizes {
        eprintln!("bench: build: generating a {mib} MiB context in {} (reused if it is there)", dir(mib).display());
        made.push(tree::ensure(&dir(mib), spec(mib))?);
    }
    let names: Vec<String> = sizes.iter().map(|mib| format!("ctx{mib}")).collect();
    let contexts: Vec<String> = sizes.iter().map(|mib| format!("ctx-{mib}m")).collect();
    let images: Vec<Image> =
        names.iter().zip(&contexts).map(|(name, context)| Image { name, context, repository: "bench/build" }).collect();
    let fixture = Fixture::workspace(&b.dir.join("build"), &images)?;
    fixture.write(".gitignore", "/target\n/ctx-*/\n")?;
    let commit = fixture.commit("contexts to build")?;
    // A context must be inside its workspace: the generated ones are moved in for the row
    // (ignored by git) and back out after it, where the next run finds them.
    let _moved = MovedIn::new(sizes.iter().map(|&mib| (dir(mib), fixture.dir.join(format!("ctx-{mib}m")))).collect())?;
    let dir = |mib: u64| fixture.dir.join(format!("ctx-{mib}m"));

    let mut rows = vec![];
    let mut rss = vec![];
    for ((mib, made), name) in sizes.into_iter().zip(made).zip(&names) {
        let big = mib == big_mib;
        let (row, peak, buildkit) = row(b, &fixture.sh, name, &dir(mib), made, &format!("bench/build:{commit}"), big)?;
        rows.push(row);
        rows.extend(buildkit);
        rss.push((mib, peak));
    }
    let [(small, small_rss), (big, big_rss)] = rss[..] else { unreachable!("two sizes") };
    rows.iter_mut().rfind(|r| r.id == "3").expect("two rows").also.push(format!(
        "ours' peak RSS from {small} MiB to {big} MiB of context: {} → {} (goal: ≤ 64 MiB, flat)",
        measure::mib(small_rss),
        measure::mib(big_rss)
    ));
    Ok(rows)
}

/// One size: the row of ours vs the classic builder, ours' median peak RSS, and with
/// `buildkit` the rows of ours vs `docker buildx build` (first build, and after one change).
fn row(
    b: &Bench<'_>,
    sh: &Shell,
    name: &str,
    context: &Path,
    made: Made,
    ours_image: &str,
    buildkit: bool,
) -> Result<(Row, f64, Vec<Row>)> {
    let exe = &b.exe;
    // Longest a command may take before the bench stops it and fails.
    let limit = Duration::from_secs(300 + 2 * made.bytes / MIB);
    let classic_image = format!("bench-classic/{name}:latest");
    let buildx_image = format!("bench-buildx/{name}:latest");
    if buildkit && cmd!(sh, "docker buildx version").quiet().ignore_stdout().ignore_stderr().run().is_err() {
        bail!("the docker CLI has no buildx plugin, which row 3b compares with; install docker-buildx");
    }
    let change = |what: &str| -> Result<()> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        Ok(std::fs::write(context.join(what), format!("{nanos}\n"))?)
    };
    let runs = b.rounds(&format!("row 3, build of {}", measure::mib(made.bytes as f64)), || {
        change(ROUND_FILE)?;
        let cache = build_cache(sh)?;
        let ours_cmd = || b.ours(cmd!(sh, "{exe} build --stage local --image {name}"));
        let ours = measure::run("cargo xtask build", ours_cmd(), Stdout::Keep, &b.log("build-ours"), limit)?;
        let mut buildkit_runs = None;
        if buildkit {
            change(CHANGED_FILE)?;
            let ours_again =
                measure::run("cargo xtask build", ours_cmd(), Stdout::Keep, &b.log("build-ours-2"), limit)?;
            rmi(sh, ours_image)?;
            prune_since(sh, &cache)?;
            let cache = build_cache(sh)?;
            let buildx = || cmd!(sh, "docker buildx build -q -t {buildx_image} {context}");
            let first = measure::run("docker buildx build", buildx(), Stdout::Keep, &b.log("build-buildx"), limit)?;
            change(CHANGED_FILE)?;
            let again = measure::run("docker buildx build", buildx(), Stdout::Keep, &b.log("build-buildx-2"), limit)?;
            rmi(sh, &buildx_image)?;
            prune_since(sh, &cache)?;
            std::fs::remove_file(context.join(CHANGED_FILE))?;
            buildkit_runs = Some((ours_again.secs, first.secs, again.secs));
        } else {
            rmi(sh, ours_image)?;
            prune_since(sh, &cache)?;
        }
        let classic = cmd!(sh, "docker build -q -t {classic_image} {context}").env("DOCKER_BUILDKIT", "0");
        let classic = measure::run("docker build", classic, Stdout::Keep, &b.log("build-classic"), limit)?;
        rmi(sh, &classic_image)?;
        let floor =
            measure::run("tar -c", cmd!(sh, "tar -c -f - -C {context} ."), Stdout::Drain, &b.log("build-tar"), limit)?;
        std::fs::remove_file(context.join(ROUND_FILE))?;
        if floor.stdout_bytes < made.bytes {
            bail!(
                "`tar -c` of {} gave {} bytes, fewer than the {} in its files",
                context.display(),
                floor.stdout_bytes,
                made.bytes
            );
        }
        Ok((ours, classic, floor, buildkit_runs))
    })?;
    type Round = (measure::Sample, measure::Sample, measure::Sample, Option<(f64, f64, f64)>);
    let series = |pick: fn(&Round) -> f64| -> Vec<f64> { runs.iter().map(pick).collect() };
    let ours_rss = Stats::of(&series(|r| r.0.peak_rss as f64));
    let row = Row {
        id: "3".into(),
        what: format!("`build` of a generated context: {}, {} files", measure::mib(made.bytes as f64), made.files),
        baseline: "`DOCKER_BUILDKIT=0 docker build`".into(),
        ours: series(|r| r.0.secs),
        theirs: series(|r| r.1.secs),
        also: vec![
            format!("peak RSS of ours: {} (goal: ≤ 64 MiB)", ours_rss.show(measure::mib)),
            format!("of the docker CLI: {}", Stats::of(&series(|r| r.1.peak_rss as f64)).show(measure::mib)),
            format!("floor `tar -c | cat`: {}", Stats::of(&series(|r| r.2.secs)).show(measure::secs)),
        ],
    };
    let mut buildkit_rows = vec![];
    if buildkit {
        let pick =
            |f: fn(&(f64, f64, f64)) -> f64| -> Vec<f64> { runs.iter().filter_map(|r| r.3.as_ref()).map(f).collect() };
        let size = format!("{}, {} files", measure::mib(made.bytes as f64), made.files);
        let ours_first = Stats::of(&series(|r| r.0.secs));
        let ours_second = Stats::of(&pick(|r| r.0));
        buildkit_rows.push(Row {
            id: "3b".into(),
            what: format!("first BuildKit build of the generated context ({size})"),
            baseline: "`docker buildx build` (the same session protocol)".into(),
            ours: series(|r| r.0.secs),
            theirs: pick(|r| r.1),
            also: vec![],
        });
        buildkit_rows.push(Row {
            id: "3c".into(),
            what: format!("the build after one file of it changed ({size})"),
            baseline: "`docker buildx build` after the same change".into(),
            ours: pick(|r| r.0),
            theirs: pick(|r| r.2),
            also: vec![format!(
                "ours after the change / ours first: {:.2} (goal ≤ 0.1; the COPY of the whole context is rebuilt, only the changed file is sent)",
                ours_second.median / ours_first.median
            )],
        });
    }
    Ok((row, ours_rss.median, buildkit_rows))
}

/// Written into the context before each round, with content unique to the round.
const ROUND_FILE: &str = "bench-round";
/// The one file changed between a first build and the next (rows 3b, 3c).
const CHANGED_FILE: &str = "bench-changed";

/// Directories moved to where a row needs them, moved back when dropped.
struct MovedIn(Vec<(PathBuf, PathBuf)>);

impl MovedIn {
    fn new(pairs: Vec<(PathBuf, PathBuf)>) -> Result<MovedIn> {
        let mut moved = MovedIn(Vec::new());
        for (from, to) in pairs {
            std::fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
            moved.0.push((from, to));
        }
        Ok(moved)
    }
}

impl Drop for MovedIn {
    fn drop(&mut self) {
        for (home, here) in &self.0 {
            if let Err(e) = std::fs::rename(here, home) {
                eprintln!("bench: cannot move {} back to {}: {e}", here.display(), home.display());
            }
        }
    }
}

/// Removes the BuildKit cache records made since `before` was listed.
fn prune_since(sh: &Shell, before: &HashSet<String>) -> Result<()> {
    for id in build_cache(sh)?.difference(before) {
        let filter = format!("id={id}");
        cmd!(sh, "docker builder prune --all --force --filter {filter}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .with_context(|| format!("cannot remove build cache record {id}"))?;
    }
    Ok(())
}

/// Ids of the daemon's BuildKit cache records.
fn build_cache(sh: &Shell) -> Result<HashSet<String>> {
    let format = "{{json .BuildCache}}";
    let out = cmd!(sh, "docker system df -v --format {format}").quiet().read()?;
    let records: serde_json::Value = serde_json::from_str(&out).context("`docker system df` printed no JSON")?;
    let records = records.as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(records.iter().filter_map(|r| r["ID"].as_str().map(str::to_owned)).collect())
}

fn rmi(sh: &Shell, image: &str) -> Result<()> {
    cmd!(sh, "docker rmi {image}").quiet().ignore_stdout().run().with_context(|| format!("cannot remove image {image}"))
}

/// Room for the contexts still to generate here, and for the daemon's copy of the
/// big context and its image (the classic builder unpacks the context it receives).
fn check_space(sh: &Shell, data: &Path, generate: u64, big: u64) -> Result<()> {
    let format = "{{.DockerRootDir}}";
    let docker_root = cmd!(sh, "docker info --format {format}").quiet().read()?;
    let daemon = 2 * big + 2 * 1024 * MIB;
    let (data_fs, data_free) = free(sh, data)?;
    match free(sh, Path::new(&docker_root)) {
        Ok((fs, _)) if fs == data_fs => need(data, data_free, generate + daemon),
        Ok((_, free)) => need(data, data_free, generate).and(need(Path::new(&docker_root), free, daemon)),
        // The daemon's directory may not be visible from here: count it on ours.
        Err(_) => need(data, data_free, generate + daemon),
    }
}

fn need(dir: &Path, free: u64, bytes: u64) -> Result<()> {
    if free < bytes {
        bail!(
            "{} has {} free but row 3 needs about {}; free some space or pass a smaller --size-mib",
            dir.display(),
            measure::mib(free as f64),
            measure::mib(bytes as f64)
        );
    }
    Ok(())
}

/// The mount point of `dir`'s filesystem and its free bytes (`df -Pk`).
fn free(sh: &Shell, dir: &Path) -> Result<(String, u64)> {
    let out = cmd!(sh, "df -Pk {dir}").quiet().read()?;
    let fields: Vec<&str> = out.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    match fields[..] {
        [_, _, _, available, _, ref mount] => {
            Ok((mount.to_string(), available.parse::<u64>().context("df printed no free space")? * 1024))
        }
        _ => bail!("cannot read `df -Pk {}`: {out}", dir.display()),
    }
}
