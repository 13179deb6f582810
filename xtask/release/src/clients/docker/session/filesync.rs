//! The FileSync service of a BuildKit session: BuildKit asks for a directory by name
//! (`context`, `dockerfile`) with include and exclude patterns, and this side answers with
//! fsutil's DiffCopy protocol, as buildx's and the docker CLI's sender does:
//!
//! 1. one `STAT` packet per entry, in walk order, then an empty `STAT`;
//! 2. the receiver compares the stats with its cached copy and sends `REQ` for each regular
//!    file it lacks (by the index of its `STAT`); each is answered with `DATA` packets and an
//!    empty `DATA`;
//! 3. `FIN` from the receiver is answered with `FIN`.
//!
//! So a second build after one file changed transfers that file. Memory stays flat: packets
//! go through a bounded channel, files are read in 32 KiB chunks.

use std::{
    collections::{BTreeSet, HashMap},
    io::Read,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bollard::fsutil::types::{Packet, Stat, packet::PacketType};
use bollard::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tonic::{
    Request, Response, Status, Streaming, codegen::tokio_stream::wrappers::ReceiverStream, metadata::MetadataMap,
};

use crate::domain::context::{
    EntryKind,
    beneath::{self, Listed},
    ignore::PatternMatcher,
    selected::{self, Selection, SyncEntry},
};

/// Packets in flight towards the daemon: bounds memory to about this many chunks.
const IN_FLIGHT: usize = 64;
/// The chunk size of file data (fsutil's buffer).
const CHUNK: usize = 32 * 1024;

/// Go's `os.FileMode` bits that fsutil puts in `Stat.mode`.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_STICKY: u32 = 1 << 20;

/// The directories a session offers, by the names BuildKit asks for, and what was sent.
pub struct Dirs {
    pub dirs: HashMap<String, PathBuf>,
    pub sent: Arc<Sent>,
}

/// What a session sent: file bytes and files, over all its transfers.
#[derive(Default)]
pub struct Sent {
    pub bytes: AtomicU64,
    pub files: AtomicU64,
}

#[tonic::async_trait]
impl FileSync for Dirs {
    type DiffCopyStream = ReceiverStream<Result<Packet, Status>>;
    type TarStreamStream = ReceiverStream<Result<Packet, Status>>;

    async fn diff_copy(&self, request: Request<Streaming<Packet>>) -> Result<Response<Self::DiffCopyStream>, Status> {
        let options = Options::from(request.metadata())?;
        let root = self
            .dirs
            .get(&options.dir)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no access allowed to dir {:?}", options.dir)))?;
        let selection = options.selection(&root)?;
        let (out, rx) = mpsc::channel(IN_FLIGHT);
        let files: Arc<Mutex<HashMap<u32, Wanted>>> = Arc::default();

        // The walk, on a blocking thread: stats as they are found.
        let walk_out = out.clone();
        let walk_files = files.clone();
        let walk_root = root.clone();
        tokio::task::spawn_blocking(move || {
            let mut id: u32 = 0;
            let result = selected::walk(&walk_root, &selection, &mut |entry| {
                if entry.kind == EntryKind::File
                    && entry.hardlink_of.is_none()
                    && let Some(listed) = entry.listed
                {
                    walk_files.lock().expect("file table").insert(id, Wanted { rel: entry.rel.clone(), listed });
                }
                id += 1;
                let packet =
                    Packet { r#type: PacketType::PacketStat as i32, stat: Some(stat(&entry)), id: 0, data: vec![] };
                walk_out.blocking_send(Ok(packet)).map_err(|_| std::io::Error::other("the receiver went away"))
            });
            let last = match result {
                Ok(()) => Packet { r#type: PacketType::PacketStat as i32, stat: None, id: 0, data: vec![] },
                Err(e) => {
                    Packet { r#type: PacketType::PacketErr as i32, stat: None, id: 0, data: e.to_string().into() }
                }
            };
            let _ = walk_out.blocking_send(Ok(last));
        });

        // Requests from the receiver: files to send, then the end.
        let (want_tx, want_rx) = std::sync::mpsc::channel::<(u32, Wanted)>();
        let sender_out = out.clone();
        let sent = self.sent.clone();
        tokio::task::spawn_blocking(move || send_files(&root, want_rx, sender_out, &sent));
        let mut incoming = request.into_inner();
        tokio::spawn(async move {
            while let Some(packet) = incoming.next().await {
                let Ok(packet) = packet else { break };
                match PacketType::try_from(packet.r#type) {
                    Ok(PacketType::PacketReq) => {
                        let Some(wanted) = files.lock().expect("file table").remove(&packet.id) else {
                            let _ =
                                out.send(Err(Status::invalid_argument(format!("invalid file id {}", packet.id)))).await;
                            break;
                        };
                        if want_tx.send((packet.id, wanted)).is_err() {
                            break;
                        }
                    }
                    Ok(PacketType::PacketFin) => {
                        // Every requested file is sent before the answer: the sender thread
                        // takes requests in order and ends when this side drops `want_tx`.
                        drop(want_tx);
                        let _ =
                            out.send(Ok(Packet { r#type: PacketType::PacketFin as i32, ..Default::default() })).await;
                        return;
                    }
                    Ok(PacketType::PacketErr) => break,
                    _ => {}
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("tarstream is not offered; use diffcopy"))
    }
}

/// A file the walk listed, which the receiver may ask for.
struct Wanted {
    rel: String,
    listed: Listed,
}

/// Sends each requested file as `DATA` packets and an empty one: the file the walk listed,
/// opened beneath `root` without following a link, and exactly the size listed
/// ([`beneath`]). One that vanished since the walk is sent empty, as fsutil does for one it
/// cannot open; one replaced, grown, shrunk or unreadable ends the transfer with the reason.
fn send_files(
    root: &Path,
    want: std::sync::mpsc::Receiver<(u32, Wanted)>,
    out: mpsc::Sender<Result<Packet, Status>>,
    sent: &Sent,
) {
    let data = |id: u32, data: Vec<u8>| Ok(Packet { r#type: PacketType::PacketData as i32, stat: None, id, data });
    for (id, wanted) in want {
        sent.files.fetch_add(1, Ordering::Relaxed);
        let mut file = match beneath::open(root, &wanted.rel, wanted.listed) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                let _ = out.blocking_send(Err(Status::internal(e.to_string())));
                return;
            }
        };
        if let Some(file) = &mut file {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        sent.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if out.blocking_send(data(id, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = out.blocking_send(Err(Status::internal(e.to_string())));
                        return;
                    }
                }
            }
        }
        if out.blocking_send(data(id, Vec::new())).is_err() {
            return;
        }
    }
}

/// fsutil's `Stat` of an entry: Go's file mode, owner root (the CLI maps the context's
/// owners to 0:0), times in nanoseconds.
fn stat(entry: &SyncEntry) -> Stat {
    let mut mode = entry.mode & 0o777;
    if entry.mode & 0o4000 != 0 {
        mode |= GO_MODE_SETUID;
    }
    if entry.mode & 0o2000 != 0 {
        mode |= GO_MODE_SETGID;
    }
    if entry.mode & 0o1000 != 0 {
        mode |= GO_MODE_STICKY;
    }
    match entry.kind {
        EntryKind::Dir => mode |= GO_MODE_DIR,
        EntryKind::Symlink => mode |= GO_MODE_SYMLINK,
        EntryKind::File => {}
    }
    Stat {
        path: entry.rel.clone(),
        mode,
        uid: 0,
        gid: 0,
        size: i64::try_from(entry.size).unwrap_or(i64::MAX),
        mod_time: entry.mtime_nanos,
        linkname: entry.link.clone().or_else(|| entry.hardlink_of.clone()).unwrap_or_default(),
        devmajor: 0,
        devminor: 0,
        xattrs: HashMap::new(),
    }
}

/// The request's options, from its gRPC metadata (BuildKit's `filesync` keys).
struct Options {
    dir: String,
    includes: Vec<String>,
    excludes: Vec<String>,
    /// Paths the receiver wants with the symbolic links on the way followed; they (and the
    /// links' targets) are included, as fsutil's walker adds them to the include patterns.
    follow: Vec<String>,
}

impl Options {
    fn from(metadata: &MetadataMap) -> Result<Options, Status> {
        let values = |key: &str| -> Result<Vec<String>, Status> {
            let encoded = metadata
                .get(format!("{key}-encoded").as_str())
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
            metadata
                .get_all(key)
                .iter()
                .map(|value| {
                    let text = value.to_str().map_err(|_| Status::invalid_argument(format!("{key} is not text")))?;
                    Ok(if encoded { query_unescape(text) } else { text.to_string() })
                })
                .collect()
        };
        Ok(Options {
            dir: values("dir-name")?.into_iter().next().unwrap_or_default(),
            includes: values("include-patterns")?,
            excludes: values("exclude-patterns")?,
            follow: values("followpaths")?,
        })
    }

    fn selection(&self, root: &Path) -> Result<Selection, Status> {
        let mut includes = self.includes.clone();
        if !self.follow.is_empty() {
            let mut resolved = BTreeSet::new();
            for path in &self.follow {
                follow_links(root, path, &mut resolved, 0);
            }
            includes.extend(resolved);
            includes.sort();
            includes = dedupe_paths(includes);
        }
        let compile = |patterns: &[String]| {
            PatternMatcher::new(patterns)
                .map_err(|e| Status::invalid_argument(format!("invalid pattern {:?}: {}", e.pattern, e.reason)))
        };
        Ok(Selection {
            excludes: compile(&self.excludes)?,
            includes: match includes.is_empty() {
                true => None,
                false => Some(compile(&includes)?),
            },
        })
    }
}

/// fsutil's `FollowLinks` for one path: the path, and where a symbolic link on the way leads,
/// the link and the path through its target (relative to `root`). Wildcards are kept as
/// patterns, not expanded.
fn follow_links(root: &Path, path: &str, resolved: &mut BTreeSet<String>, depth: usize) {
    if depth > 40 {
        return;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let mut current = String::new();
    for (i, part) in parts.iter().enumerate() {
        current = if current.is_empty() { part.to_string() } else { format!("{current}/{part}") };
        let rest = parts[i + 1..].join("/");
        let literal = !part.contains(['*', '?', '[']);
        let target = literal.then(|| std::fs::read_link(root.join(&current)).ok()).flatten();
        if let Some(target) = target.and_then(|t| t.to_str().map(str::to_string)) {
            if !resolved.insert(current.clone()) {
                return;
            }
            let base = match target.starts_with('/') {
                true => target,
                false => match current.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{target}"),
                    None => target,
                },
            };
            let next = if rest.is_empty() { base } else { format!("{base}/{rest}") };
            follow_links(root, &crate::domain::context::ignore::go_clean(&next), resolved, depth + 1);
            return;
        }
    }
    let cleaned = crate::domain::context::ignore::go_clean(current.trim_start_matches('/'));
    resolved.insert(if cleaned.is_empty() { ".".to_string() } else { cleaned });
}

/// fsutil's `dedupePaths` of a sorted list: a path below another is dropped; `.` means
/// everything, so no include filter at all.
fn dedupe_paths(sorted: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(sorted.len());
    for path in sorted {
        if path == "." {
            return Vec::new();
        }
        if out.last().is_some_and(|last| path.starts_with(&format!("{last}/"))) {
            continue;
        }
        out.push(path);
    }
    out
}

/// Go's `url.QueryUnescape`, which BuildKit applies to metadata marked `-encoded`.
fn query_unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_like_go() {
        assert_eq!(query_unescape("caf%C3%A9+bar%2"), "café bar%2");
        assert_eq!(query_unescape("plain"), "plain");
    }

    /// What `send_files` sends for the files `wanted`: the data by id, and the error if any.
    fn send(root: &Path, wanted: Vec<(u32, Wanted)>) -> (HashMap<u32, Vec<u8>>, Option<String>) {
        let (want_tx, want_rx) = std::sync::mpsc::channel();
        for item in wanted {
            want_tx.send(item).unwrap();
        }
        drop(want_tx);
        let (out, mut rx) = mpsc::channel(IN_FLIGHT);
        let root = root.to_path_buf();
        let sender = std::thread::spawn(move || send_files(&root, want_rx, out, &Sent::default()));
        let (mut data, mut error) = (HashMap::<u32, Vec<u8>>::new(), None);
        while let Some(packet) = rx.blocking_recv() {
            match packet {
                Ok(packet) => data.entry(packet.id).or_default().extend(packet.data),
                Err(status) => error = Some(status.message().to_string()),
            }
        }
        sender.join().unwrap();
        (data, error)
    }

    #[test]
    fn a_file_swapped_for_a_link_out_of_the_context_after_the_walk_ends_the_transfer_unsent() {
        let base = std::env::temp_dir().join(format!("xtask-filesync-swap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("ctx")).unwrap();
        std::fs::write(base.join("secret"), "content-that-must-not-be-sent\n").unwrap();
        std::fs::write(base.join("ctx/a.txt"), "first\n").unwrap();
        std::fs::write(base.join("ctx/b.txt"), "second\n").unwrap();
        let root = std::fs::canonicalize(base.join("ctx")).unwrap();
        let selection = Selection { excludes: PatternMatcher::new::<String>(&[]).unwrap(), includes: None };
        let mut wanted = vec![];
        let mut id = 0;
        selected::walk(&root, &selection, &mut |entry| {
            if let Some(listed) = entry.listed {
                wanted.push((id, Wanted { rel: entry.rel, listed }));
            }
            id += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(wanted.len(), 2);
        // Between the walk (the STAT packets) and the receiver's requests, b.txt becomes a link.
        std::fs::remove_file(root.join("b.txt")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("b.txt")).unwrap();
        let (data, error) = send(&root, wanted);
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(data.get(&0).map(Vec::as_slice), Some(&b"first\n"[..]), "a.txt is sent as listed");
        assert!(data.values().all(|d| !String::from_utf8_lossy(d).contains("content-that-must-not-be-sent")));
        let error = error.expect("the transfer ends with an error");
        assert!(error.contains("b.txt was replaced by a symbolic link"), "{error}");
    }

    #[test]
    fn stat_carries_go_file_modes() {
        let entry = |kind, mode| SyncEntry {
            rel: "a".into(),
            abs: PathBuf::from("/a"),
            kind,
            mode,
            size: 3,
            mtime_nanos: 5,
            link: None,
            hardlink_of: None,
            listed: None,
        };
        assert_eq!(stat(&entry(EntryKind::File, 0o4755)).mode, GO_MODE_SETUID | 0o755);
        assert_eq!(stat(&entry(EntryKind::Dir, 0o1777)).mode, GO_MODE_DIR | GO_MODE_STICKY | 0o777);
        assert_eq!(stat(&entry(EntryKind::Symlink, 0o777)).mode, GO_MODE_SYMLINK | 0o777);
    }
}
