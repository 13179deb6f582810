//! The build context as a tar stream, written while it is sent.
//!
//! A thread walks the context and runs `tar::Builder` into a writer that cuts the archive into
//! 64 KiB chunks and hands them over a bounded channel of 8; the receiving end is the `Stream`
//! given to bollard. Memory is bounded by the channel (about 600 KiB), whatever the context's
//! size. The thread starts on the first poll, stops when the receiver is dropped, and turns a
//! failure (with the path that failed) into an error item, so the build request fails instead
//! of sending a truncated archive.

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures_util::Stream;
use tar::{EntryType, Header};
use tokio::sync::mpsc;

use super::{DockerfileSource, EntryKind, Inner, beneath, walk};

const CHUNK: usize = 64 * 1024;
const DEPTH: usize = 8;

/// The stream returned by `BuildContext::stream`.
pub struct TarStream {
    pending: Option<Arc<Inner>>,
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
}

impl TarStream {
    pub fn new(inner: Arc<Inner>) -> TarStream {
        TarStream { pending: Some(inner), rx: None }
    }
}

impl Stream for TarStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(inner) = self.pending.take() {
            let (tx, rx) = mpsc::channel(DEPTH);
            self.rx = Some(rx);
            let spawned = std::thread::Builder::new().name("build-context".into()).spawn(move || produce(&inner, tx));
            if let Err(e) = spawned {
                self.rx = None;
                return Poll::Ready(Some(Err(io::Error::new(
                    e.kind(),
                    format!("cannot start the thread that writes the build context: {e}"),
                ))));
            }
        }
        match self.rx.as_mut() {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

/// The producer thread: the whole archive, or an error item after what was sent.
fn produce(inner: &Inner, tx: mpsc::Sender<io::Result<Bytes>>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = ChunkSender { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        write_tar(inner, &mut out)?;
        out.send()
    }));
    let error = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => io::Error::other("the thread writing the build context panicked; this is a bug in xtask"),
    };
    // Fails only if the receiver is gone, and then nobody needs the error.
    let _ = tx.blocking_send(Err(error));
}

/// Cuts what it is given into `CHUNK`-sized `Bytes` and blocks while the channel is full.
struct ChunkSender {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "the build context is no longer being read (the request ended)")
        })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Passes writes through until blown; then refuses them. `tar::Builder` finishes the archive
/// when dropped, which must not happen after an error: a truncated context would look whole.
struct Fuse<W> {
    inner: W,
    blown: bool,
}

impl<W: Write> Write for Fuse<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.blown {
            return Err(io::Error::other("the build context archive was abandoned after an error"));
        }
        self.inner.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole build context as a tar archive to `out`.
pub fn write_tar<W: Write>(inner: &Inner, out: W) -> io::Result<()> {
    let mut builder = tar::Builder::new(Fuse { inner: out, blown: false });
    let result = append_all(inner, &mut builder).and_then(|()| builder.finish());
    if result.is_err() {
        builder.get_mut().blown = true;
    }
    result
}

fn append_all<W: Write>(inner: &Inner, builder: &mut tar::Builder<W>) -> io::Result<()> {
    let outside = match &inner.dockerfile {
        DockerfileSource::Outside { name, content } => Some((name.as_str(), content.as_slice())),
        DockerfileSource::Inside { .. } => None,
    };
    let outside_name = outside.map(|(name, _)| name);
    // The first path sent for each multiply-linked inode: later ones become hard links.
    let mut first_links: HashMap<(u64, u64), String> = HashMap::new();
    let mut saw_dockerignore = false;
    walk::walk(&inner.root, &inner.matcher, &mut |node| {
        let mut header = new_header(node.kind, node.mode, node.mtime);
        match node.kind {
            EntryKind::Dir => builder.append_data(&mut header, &node.rel, io::empty()),
            EntryKind::Symlink => {
                let target = node.target.as_deref().unwrap_or_default().as_encoded_bytes();
                append_link(builder, &mut header, &node.rel, target)
            }
            EntryKind::File if node.rel == ".dockerignore" && outside_name.is_some() => {
                // Like the CLI: name the added Dockerfile in .dockerignore, so that the daemon
                // drops it from the context after reading it.
                saw_dockerignore = true;
                let name = outside_name.unwrap_or_default();
                let mut content = Vec::new();
                beneath::open(&inner.root, &node.rel, listed(&node)?)?.read_to_end(&mut content)?;
                content.extend_from_slice(format!("\n{name}\n").as_bytes());
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, &node.rel, content.as_slice())
            }
            EntryKind::File => {
                if let Some(inode) = node.inode {
                    if let Some(first) = first_links.get(&inode) {
                        let mut link = new_header(EntryKind::File, node.mode, node.mtime);
                        link.set_entry_type(EntryType::Link);
                        return append_link(builder, &mut link, &node.rel, first.as_bytes());
                    }
                    first_links.insert(inode, node.rel.clone());
                }
                let file = beneath::open(&inner.root, &node.rel, listed(&node)?)?;
                header.set_size(node.size);
                builder.append_data(&mut header, &node.rel, file)
            }
        }
        .map_err(|e| with_path(e, &node.abs))
    })?;
    if let Some((name, content)) = outside {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut header = new_header(EntryKind::File, 0o600, now);
        header.set_size(content.len() as u64);
        builder.append_data(&mut header, name, content)?;
        if !saw_dockerignore {
            let content = format!(".dockerignore\n{name}\n");
            let mut header = new_header(EntryKind::File, 0o600, now);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, ".dockerignore", content.as_bytes())?;
        }
    }
    Ok(())
}

/// A header as Docker's client writes it: owner 0:0, no user or group names.
fn new_header(kind: EntryKind, mode: u32, mtime: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(match kind {
        EntryKind::File => EntryType::Regular,
        EntryKind::Dir => EntryType::Directory,
        EntryKind::Symlink => EntryType::Symlink,
    });
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(0);
    header
}

/// Appends a symbolic or hard link with its target byte for byte (`Builder::append_link`
/// would normalise it as a path), using a GNU long-link entry when it is over 100 bytes.
fn append_link<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut Header,
    path: &str,
    target: &[u8],
) -> io::Result<()> {
    let slot = header.as_old().linkname.len();
    if target.len() > slot {
        let mut long = Header::new_gnu();
        long.set_entry_type(EntryType::GNULongLink);
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_uid(0);
        long.set_gid(0);
        long.set_mtime(0);
        long.set_size(target.len() as u64 + 1);
        long.set_cksum();
        builder.append(&long, target.chain(&[0u8][..]))?;
        header.set_link_name_literal(&target[..slot])?;
    } else {
        header.set_link_name_literal(target)?;
    }
    builder.append_data(header, path, io::empty())
}

/// What the walk listed of a regular file.
fn listed(node: &walk::Node) -> io::Result<beneath::Listed> {
    node.listed.ok_or_else(|| io::Error::other(format!("{} was listed without its identity", node.abs.display())))
}

/// Errors from `tar` itself (a name it cannot encode) do not say which file; these do.
fn with_path(error: io::Error, path: &Path) -> io::Error {
    let display = path.display().to_string();
    if error.to_string().contains(&display) {
        error
    } else {
        io::Error::new(error.kind(), format!("cannot add {display} to the build context: {error}"))
    }
}
