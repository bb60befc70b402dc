//! The RocksDB backend: a store in a RocksDB directory, for stores that must persist and grow.
//!
//! Layout (ours; C++ Broker no longer has a RocksDB backend): the marker `m:format` →
//! `broker-rs-store-v1`; entries under `d` + the key's bin v1 encoding, holding a flag byte
//! (`0`: no expiry, `1`: an expiry follows as 8 big-endian bytes of nanoseconds since the epoch)
//! and the value's bin v1 encoding. Writes between two [`Backend::flush`]es go to RocksDB's
//! write-ahead log as one batch (reads see them before), so a crash of the process loses
//! nothing flushed; the log is not fsynced, so an operating-system crash can lose the last
//! batches, as with SQLite's `synchronous=normal`.
//!
//! A directory that is not ours — a RocksDB database without the marker, or any other
//! non-empty directory — is refused with [`BackendError::Failure`] and left as it was.
//!
//! ```
//! use broker_backend::Backend;
//! use broker_backend_rocksdb::RocksDbBackend;
//! use broker_data::Data;
//!
//! let dir = std::env::temp_dir().join(format!("rocksdb-doc-{}", std::process::id()));
//! let mut b = RocksDbBackend::open(&dir).unwrap();
//! b.put(&"k".into(), &Data::Count(1), None).unwrap();
//! drop(b);
//! let mut b = RocksDbBackend::open(&dir).unwrap();
//! assert_eq!(b.get(&"k".into()).unwrap(), Some(Data::Count(1)));
//! # drop(b);
//! # std::fs::remove_dir_all(dir).unwrap();
//! ```

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use broker_backend::{Backend, BackendError, Result};
use broker_data::{Data, Timestamp};
use broker_wire::{decode_data, encode_data, encoded_data_len, Limits};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, DB};

const MARKER_KEY: &[u8] = b"m:format";
const MARKER: &[u8] = b"broker-rs-store-v1";
const DATA: u8 = b'd';

fn failure(message: String) -> BackendError {
    BackendError::Failure(message)
}

/// A store in a RocksDB directory.
pub struct RocksDbBackend {
    db: DB,
    path: PathBuf,
    limits: Limits,
    key: Vec<u8>,
    dirty: bool,
    /// Writes not yet handed to RocksDB (one batch per flush), and what they change, so that
    /// reads see them.
    batch: WriteBatch,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Pending writes beyond which a batch is written without waiting for the flush.
const MAX_BATCH: usize = 65_536;

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("path", &self.path)
            .finish()
    }
}

fn encode_key(key: &Data, out: &mut Vec<u8>) {
    out.clear();
    out.push(DATA);
    match key {
        Data::Real(x) if *x == 0.0 => encode_data(&Data::Real(0.0), out),
        Data::Real(x) if x.is_nan() => encode_data(&Data::Real(f64::NAN), out),
        _ => {
            out.reserve(encoded_data_len(key));
            encode_data(key, out)
        }
    }
}

fn encode_value(value: &Data, expiry: Option<Timestamp>) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + encoded_data_len(value));
    match expiry {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            v.extend_from_slice(&t.as_nanos().to_be_bytes());
        }
    }
    encode_data(value, &mut v);
    v
}

impl RocksDbBackend {
    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        if path.exists() {
            if !path.is_dir() {
                return Err(failure(format!(
                    "{name} is not a directory; refusing to touch it"
                )));
            }
            let empty = std::fs::read_dir(&path)
                .map_err(|e| failure(format!("cannot read {name}: {e}")))?
                .next()
                .is_none();
            if !empty {
                if !path.join("CURRENT").exists() {
                    return Err(failure(format!(
                        "{name} is neither empty nor a RocksDB database; refusing to touch it"
                    )));
                }
                // Look without writing: is it ours?
                let db = DB::open_for_read_only(&Options::default(), &path, false)
                    .map_err(|e| failure(format!("cannot open {name}: {e}")))?;
                let marker = db
                    .get(MARKER_KEY)
                    .map_err(|e| failure(format!("cannot read {name}: {e}")))?;
                if marker.as_deref() != Some(MARKER) {
                    return Err(failure(format!(
                        "{name} is a RocksDB database but not a broker-rs store; refusing to touch it"
                    )));
                }
            }
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, &path).map_err(|e| failure(format!("cannot open {name}: {e}")))?;
        db.put(MARKER_KEY, MARKER)
            .map_err(|e| failure(format!("cannot write to {name}: {e}")))?;
        Ok(RocksDbBackend {
            db,
            path,
            limits: Limits::default(),
            key: Vec::with_capacity(64),
            dirty: false,
            batch: WriteBatch::default(),
            overlay: HashMap::new(),
        })
    }

    /// Opens with Broker-style backend options: `path` (a string, required).
    pub fn open_with(options: &BTreeMap<String, Data>) -> Result<Self> {
        match options.get("path") {
            Some(Data::String(s)) => Self::open(
                std::str::from_utf8(s).map_err(|_| failure("option 'path' is not UTF-8".into()))?,
            ),
            Some(_) => Err(failure("option 'path' is not a string".into())),
            None => Err(failure(
                "the RocksDB backend needs the option 'path'".into(),
            )),
        }
    }

    fn err(&self, what: &str, e: rocksdb::Error) -> BackendError {
        failure(format!("{}: {what}: {e}", self.path.display()))
    }

    fn decode_entry(&self, v: &[u8]) -> Result<(Data, Option<Timestamp>)> {
        let bad = || failure(format!("{}: corrupt entry", self.path.display()));
        let (expiry, rest) = match v.split_first() {
            Some((0, rest)) => (None, rest),
            Some((1, rest)) if rest.len() >= 8 => {
                let mut t = [0u8; 8];
                t.copy_from_slice(&rest[..8]);
                (
                    Some(Timestamp::from_nanos(i64::from_be_bytes(t))),
                    &rest[8..],
                )
            }
            _ => return Err(bad()),
        };
        let value = decode_data(rest, &self.limits).map_err(|_| bad())?;
        Ok((value, expiry))
    }

    fn decode_key(&self, k: &[u8]) -> Result<Data> {
        decode_data(&k[1..], &self.limits)
            .map_err(|e| failure(format!("{}: corrupt key: {e}", self.path.display())))
    }

    fn entry(&mut self, key: &Data) -> Result<Option<(Data, Option<Timestamp>)>> {
        encode_key(key, &mut self.key);
        if let Some(pending) = self.overlay.get(&self.key) {
            return match pending {
                Some(v) => self.decode_entry(v).map(Some),
                None => Ok(None),
            };
        }
        match self.db.get_pinned(&self.key) {
            Ok(Some(v)) => self.decode_entry(&v).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(self.err("get", e)),
        }
    }

    /// Queues a write of `self.key`.
    fn stage(&mut self, value: Option<Vec<u8>>) -> Result<()> {
        match &value {
            Some(v) => self.batch.put(&self.key, v),
            None => self.batch.delete(&self.key),
        }
        self.overlay.insert(self.key.clone(), value);
        if self.overlay.len() >= MAX_BATCH {
            self.commit()?;
        }
        Ok(())
    }

    /// Hands the queued writes to RocksDB (its write-ahead log) in one batch.
    fn commit(&mut self) -> Result<()> {
        if !self.overlay.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.db.write(batch).map_err(|e| self.err("write", e))?;
            self.overlay.clear();
            self.dirty = true;
        }
        Ok(())
    }

    /// Visits every entry as raw key and value bytes.
    fn scan(&self, mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        for item in self
            .db
            .iterator(IteratorMode::From(&[DATA], Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err("scan", e))?;
            if k.first() != Some(&DATA) {
                break;
            }
            f(&k, &v)?;
        }
        Ok(())
    }
}

impl Backend for RocksDbBackend {
    fn put(&mut self, key: &Data, value: &Data, expiry: Option<Timestamp>) -> Result<()> {
        encode_key(key, &mut self.key);
        self.stage(Some(encode_value(value, expiry)))
    }

    fn get(&mut self, key: &Data) -> Result<Option<Data>> {
        Ok(self.entry(key)?.map(|(v, _)| v))
    }

    fn erase(&mut self, key: &Data) -> Result<bool> {
        let existed = self.entry(key)?.is_some();
        if existed {
            self.stage(None)?;
        }
        Ok(existed)
    }

    fn clear(&mut self) -> Result<()> {
        self.commit()?;
        let mut batch = WriteBatch::default();
        self.scan(|k, _| {
            batch.delete(k);
            Ok(())
        })?;
        self.dirty = true;
        self.db.write(batch).map_err(|e| self.err("clear", e))
    }

    fn expire(&mut self, key: &Data, now: Timestamp) -> Result<bool> {
        match self.entry(key)? {
            Some((_, Some(at))) if at <= now => {
                self.stage(None)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn keys(&mut self) -> Result<Vec<Data>> {
        self.commit()?;
        let mut keys = Vec::new();
        self.scan(|k, _| {
            keys.push(self.decode_key(k)?);
            Ok(())
        })?;
        keys.sort_unstable();
        Ok(keys)
    }

    fn size(&mut self) -> Result<u64> {
        self.commit()?;
        let mut n = 0;
        self.scan(|_, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    fn snapshot(&mut self) -> Result<BTreeMap<Data, Data>> {
        self.commit()?;
        let mut out = BTreeMap::new();
        self.scan(|k, v| {
            out.insert(self.decode_key(k)?, self.decode_entry(v)?.0);
            Ok(())
        })?;
        Ok(out)
    }

    fn expiries(&mut self) -> Result<Vec<(Data, Timestamp)>> {
        self.commit()?;
        let mut out = Vec::new();
        self.scan(|k, v| {
            if let (_, Some(at)) = self.decode_entry(v)? {
                out.push((self.decode_key(k)?, at));
            }
            Ok(())
        })?;
        out.sort_unstable();
        Ok(out)
    }

    fn flush(&mut self) -> Result<()> {
        self.commit()?;
        // Every write is already in the log (in the operating system's hands): nothing to do
        // for a process crash, and no fsync per batch (as SQLite's synchronous=normal).
        if std::mem::take(&mut self.dirty) {
            self.db.flush_wal(false).map_err(|e| self.err("flush", e))?;
        }
        Ok(())
    }
}

impl Drop for RocksDbBackend {
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("broker-rocksdb-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn conformance() {
        let dirs = std::cell::RefCell::new(Vec::new());
        let last = std::cell::RefCell::new(None::<PathBuf>);
        broker_backend::conformance::run_persistent(
            || {
                let d = temp("persist");
                *last.borrow_mut() = Some(d.clone());
                dirs.borrow_mut().push(d.clone());
                RocksDbBackend::open(&d).unwrap()
            },
            || RocksDbBackend::open(last.borrow().as_ref().unwrap()).unwrap(),
        );
        for d in dirs.into_inner() {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn foreign_directories_are_refused_and_left_alone() {
        // A directory with a user's file.
        let d = temp("foreign");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("notes.txt"), b"mine").unwrap();
        let e = RocksDbBackend::open(&d).unwrap_err();
        assert!(
            matches!(&e, BackendError::Failure(m) if m.contains("refusing")),
            "{e}"
        );
        assert_eq!(std::fs::read(d.join("notes.txt")).unwrap(), b"mine");
        // A RocksDB database that is not a store.
        let other = temp("other-db");
        {
            let mut o = Options::default();
            o.create_if_missing(true);
            let db = DB::open(&o, &other).unwrap();
            db.put(b"their", b"data").unwrap();
        }
        let e = RocksDbBackend::open(&other).unwrap_err();
        assert!(
            matches!(&e, BackendError::Failure(m) if m.contains("not a broker-rs store")),
            "{e}"
        );
        let db = DB::open_for_read_only(&Options::default(), &other, false).unwrap();
        assert_eq!(db.get(b"their").unwrap().as_deref(), Some(&b"data"[..]));
        assert_eq!(db.get(MARKER_KEY).unwrap(), None, "nothing written");
        drop(db);
        // A corrupt database: RocksDB's files, garbled.
        let corrupt = temp("corrupt");
        std::fs::create_dir_all(&corrupt).unwrap();
        std::fs::write(corrupt.join("CURRENT"), b"MANIFEST-000042\n").unwrap();
        std::fs::write(corrupt.join("MANIFEST-000042"), b"\x00garbage\xff").unwrap();
        let e = RocksDbBackend::open(&corrupt).unwrap_err();
        assert!(
            matches!(&e, BackendError::Failure(m) if m.contains("cannot open")),
            "{e}"
        );
        assert_eq!(
            std::fs::read(corrupt.join("MANIFEST-000042")).unwrap(),
            b"\x00garbage\xff"
        );
        let _ = std::fs::remove_dir_all(&corrupt);
        // A file where a directory should be.
        let f = temp("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(RocksDbBackend::open(&f).is_err());
        for p in [d, other] {
            let _ = std::fs::remove_dir_all(p);
        }
        let _ = std::fs::remove_file(f);
    }
}
