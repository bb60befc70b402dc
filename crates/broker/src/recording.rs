//! Recording what an endpoint does, as Broker 1.4–2.2 did: `broker.recording-directory`.
//!
//! The core owns a [`Recorder`] when the option is set and tells it, as they happen, every
//! topic a local subscriber or store subscribes to, every peer whose handshake completed, and
//! every message this endpoint publishes (data from its publishers and WebSocket clients,
//! commands from its stores). The recorder keeps the generator file's bytes in a buffer and
//! hands full buffers (and the text lines) to a thread of its own that writes the files, so the
//! core never waits for the disk unless the disk is far behind (then the channel, bounded,
//! pushes back: nothing is dropped). Without the option there is no recorder and the core's
//! cost is one `Option` check per published run.
//!
//! The directory holds `id.txt`, `peers.txt`, `topics.txt`, `messages.dat` and `broker.conf`,
//! byte for byte as Broker writes them (see `docs/protocol.md`, "Generator files"). Unlike
//! Broker, which deletes the whole directory first, we only replace these five files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use broker_data::Data;
use broker_wire::{Command, EndpointId, GeneratorWriter, Topic};

use crate::{Configuration, Error, ErrorCode};

/// Bytes of generator file gathered before they go to the writer thread.
const CHUNK: usize = 64 * 1024;

/// Chunks that may wait for the writer thread before the core gives it its buffer anyway
/// (and so waits when the disk is far behind).
const CHUNKS_IN_FLIGHT: usize = 16;

/// A buffer this large is handed over even if the channel is full: the core then waits.
const MAX_BUFFER: usize = CHUNK * CHUNKS_IN_FLIGHT;

/// Counters the recorder shares with the endpoint's metrics.
#[derive(Debug, Default)]
pub(crate) struct RecordingStats {
    /// Entries written to `messages.dat`.
    pub(crate) recorded: AtomicU64,
    /// Entries or lines that could not be recorded (a write failed, or a store command that
    /// the file's version cannot hold): each is also logged.
    pub(crate) errors: AtomicU64,
}

enum Job {
    Messages(Vec<u8>),
    Topic(String),
    Peer(String),
    /// The cap was reached: close `messages.dat`.
    CloseMessages,
}

/// The recording of one endpoint (see the module's documentation).
pub(crate) struct Recorder {
    writer: Option<GeneratorWriter>,
    /// Bytes taken from the writer that the writer thread had no room for yet.
    held: Vec<u8>,
    /// Entries `messages.dat` may still take (`broker.output-generator-file-cap`).
    remaining: u64,
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<RecordingStats>,
    /// When bytes last went to the writer thread: at least once a second, so that a node
    /// killed without shutting down loses at most a second of its recording.
    shipped_at: Instant,
    /// The directory, claimed for this endpoint (declared last: released after the join).
    _claim: Release,
}

/// Directories that endpoints of this process record into: two endpoints writing the same
/// files would make both recordings garbage.
static OPEN: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Releases a claimed directory when dropped (also when opening failed halfway).
struct Release(Option<PathBuf>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            OPEN.lock().unwrap_or_else(|e| e.into_inner()).remove(&p);
        }
    }
}

/// The longest the recorder keeps bytes before it hands them to the writer thread.
const SHIP_EVERY: Duration = Duration::from_secs(1);

fn open_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorCode::CannotOpenFile,
        format!("cannot record into {}: {e}", path.display()),
    )
}

/// `broker.conf` as Broker's `pretty_print` of its configuration writes it: the options a
/// recording's reader needs (`broker.forward`, read by the cluster benchmark) and the others
/// of the `broker` group, in CAF's syntax.
fn broker_conf(config: &Configuration) -> String {
    let dir = config
        .recording_directory
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "broker {{\n  disable_ssl = {}\n  forward = {}\n  recording-directory = {:?}\n  ttl = {}\n}}\n",
        config.disable_ssl, config.forward, dir, config.ttl
    )
}

impl Recorder {
    /// Opens the recording directory (creating it) and its files, and starts the writer.
    pub(crate) fn open(
        dir: &Path,
        id: EndpointId,
        config: &Configuration,
        stats: Arc<RecordingStats>,
    ) -> Result<Recorder, Error> {
        std::fs::create_dir_all(dir).map_err(|e| open_error(dir, e))?;
        let claimed = std::fs::canonicalize(dir).map_err(|e| open_error(dir, e))?;
        {
            let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
            if !open.insert(claimed.clone()) {
                return Err(Error::new(
                    ErrorCode::CannotOpenFile,
                    format!(
                        "cannot record into {}: another endpoint of this process records there",
                        dir.display()
                    ),
                ));
            }
        }
        let release = Release(Some(claimed));
        let path = |name: &str| -> PathBuf { dir.join(name) };
        let write = |name: &str, text: &str| {
            std::fs::write(path(name), text).map_err(|e| open_error(&path(name), e))
        };
        write("broker.conf", &broker_conf(config))?;
        write("id.txt", &format!("{id}\n"))?;
        let create = |name: &str| File::create(path(name)).map_err(|e| open_error(&path(name), e));
        let topics = BufWriter::new(create("topics.txt")?);
        let peers = BufWriter::new(create("peers.txt")?);
        let messages = create("messages.dat")?;
        let (tx, rx) = sync_channel::<Job>(CHUNKS_IN_FLIGHT);
        let thread_stats = stats.clone();
        let dir_name = dir.display().to_string();
        let thread = std::thread::Builder::new()
            .name("broker-recorder".into())
            .spawn(move || write_files(rx, topics, peers, messages, thread_stats, dir_name))
            .map_err(|e| open_error(dir, e))?;
        let cap = config.output_generator_file_cap;
        let mut recorder = Recorder {
            _claim: release,
            writer: Some(GeneratorWriter::new(broker_wire::GENERATOR_VERSION)),
            held: Vec::new(),
            remaining: cap,
            tx: Some(tx),
            thread: Some(thread),
            stats,
            shipped_at: Instant::now(),
        };
        // The header goes out at once, so that even an endpoint that publishes nothing leaves
        // a valid (empty) generator file.
        recorder.ship(true);
        if cap == 0 {
            recorder.close_messages();
        }
        Ok(recorder)
    }

    fn send(&mut self, job: Job) {
        if let Some(tx) = &self.tx {
            if tx.send(job).is_err() {
                // The writer thread ended (it only does on a panic, which it does not have).
                self.tx = None;
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Hands the buffered bytes to the writer thread when there are enough (or `force`).
    fn ship(&mut self, force: bool) {
        let Some(w) = &mut self.writer else {
            return;
        };
        let n = self.held.len() + w.buffered();
        if n == 0 || (!force && n < CHUNK) {
            return;
        }
        let Some(tx) = &self.tx else {
            return;
        };
        self.shipped_at = Instant::now();
        let mut bytes = std::mem::take(&mut self.held);
        bytes.extend_from_slice(&w.take());
        match tx.try_send(Job::Messages(bytes)) {
            Ok(()) => {}
            Err(TrySendError::Full(Job::Messages(bytes))) if n < MAX_BUFFER && !force => {
                // The disk is behind: keep gathering rather than wait.
                self.held = bytes;
            }
            Err(TrySendError::Full(job)) => self.send(job),
            Err(TrySendError::Disconnected(_)) => {
                self.tx = None;
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn close_messages(&mut self) {
        self.ship(true);
        self.writer = None;
        self.send(Job::CloseMessages);
    }

    /// Counts `n` entries against the cap; closes the file when it is reached.
    fn count(&mut self, n: u64) {
        self.stats.recorded.fetch_add(n, Ordering::Relaxed);
        self.remaining = self.remaining.saturating_sub(n);
        if self.remaining == 0 {
            tracing::debug!("reached the recording cap, closing messages.dat");
            self.close_messages();
        } else {
            let due = self.shipped_at.elapsed() >= SHIP_EVERY;
            self.ship(due);
        }
    }

    /// Records data values this endpoint published on `topic`.
    pub(crate) fn data<'a>(&mut self, topic: &Topic, values: impl IntoIterator<Item = &'a Data>) {
        let Some(w) = &mut self.writer else {
            return;
        };
        let room = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        match w.write_data_run(topic, values.into_iter().take(room)) {
            Ok(0) => {}
            Ok(n) => self.count(n as u64),
            Err(e) => self.failed(&e),
        }
    }

    /// Records a store command this endpoint published on `topic`.
    pub(crate) fn command(&mut self, topic: &Topic, command: &Command) {
        let Some(w) = &mut self.writer else {
            return;
        };
        match w.write_command(topic, command) {
            Ok(()) => self.count(1),
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&self, e: &dyn std::fmt::Display) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "cannot record a message");
    }

    /// Records a topic a local subscriber or store subscribed to (Broker does not
    /// de-duplicate).
    pub(crate) fn subscription(&mut self, topic: &Topic) {
        self.send(Job::Topic(topic.as_str().to_owned()));
    }

    /// The recording's counters.
    pub(crate) fn stats(&self) -> &RecordingStats {
        &self.stats
    }

    /// Records a peer whose handshake completed.
    pub(crate) fn peer(&mut self, id: EndpointId) {
        self.send(Job::Peer(id.to_string()));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.ship(true);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_files(
    rx: std::sync::mpsc::Receiver<Job>,
    mut topics: BufWriter<File>,
    mut peers: BufWriter<File>,
    messages: File,
    stats: Arc<RecordingStats>,
    dir: String,
) {
    let mut messages = Some(messages);
    let fail = |what: &str, e: std::io::Error| {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(directory = %dir, file = what, error = %e, "recording: write failed");
    };
    for job in rx {
        match job {
            Job::Messages(bytes) => {
                if let Some(f) = &mut messages {
                    if let Err(e) = f.write_all(&bytes) {
                        fail("messages.dat", e);
                        messages = None;
                    }
                }
            }
            // Lines go out at once, as Broker flushes them.
            Job::Topic(t) => {
                if let Err(e) = writeln!(topics, "{t}").and_then(|()| topics.flush()) {
                    fail("topics.txt", e);
                }
            }
            Job::Peer(p) => {
                if let Err(e) = writeln!(peers, "{p}").and_then(|()| peers.flush()) {
                    fail("peers.txt", e);
                }
            }
            Job::CloseMessages => {
                if let Some(f) = messages.take() {
                    if let Err(e) = f.sync_all() {
                        fail("messages.dat", e);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Configuration, Endpoint};

    #[test]
    fn one_directory_records_one_endpoint_at_a_time() {
        let dir = std::env::temp_dir().join(format!("broker-rec-claim-{}", std::process::id()));
        let config = Configuration {
            recording_directory: Some(dir.clone()),
            ..Configuration::default()
        };
        let first = Endpoint::new(config.clone()).unwrap();
        let Err(e) = Endpoint::new(config.clone()) else {
            panic!("two endpoints recorded into one directory");
        };
        assert!(e.to_string().contains("another endpoint"), "{e}");
        first.shutdown();
        drop(first);
        let again = Endpoint::new(config).unwrap();
        again.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
