//! The SQLite backend, in Broker's file layout, so that a store file Zeek wrote opens here and
//! the other way round:
//!
//! ```sql
//! create table if not exists meta(key text primary key, value text);
//! create table if not exists store(key blob primary key, value blob, expiry integer);
//! ```
//!
//! Keys and values are Broker's bin v1 encoding (`broker-wire`); the expiry is nanoseconds
//! since the epoch, or NULL. The options are Broker's: `path` (required), `synchronous`
//! (`off`/`normal`/`full`/`extra`), `journal_mode` (`delete`/`wal`), `failure_mode`
//! (`fail`/`delete`: what to do with a database that fails to open or fails the integrity
//! check) and `integrity_check` (a boolean). Unlike Broker, a store opened without
//! `synchronous` and `journal_mode` uses WAL with `synchronous=normal`, and writes are grouped
//! into transactions that [`Backend::flush`] commits — fast, and safe against a crash of the
//! process (an operating-system crash can lose the last commits, as `normal` documents).
//!
//! Nothing about a file that is not ours is changed: a file that is not a SQLite database, a
//! database with other tables than Broker's, or a corrupt one gives
//! [`BackendError::Failure`] with the reason (only `failure_mode=delete` removes a corrupt
//! database, as in Broker).
//!
//! ```
//! use broker_backend::Backend;
//! use broker_backend_sqlite::{SqliteBackend, SqliteOptions};
//! use broker_data::Data;
//!
//! let dir = std::env::temp_dir().join(format!("sqlite-doc-{}", std::process::id()));
//! let path = dir.join("store.sqlite");
//! let mut b = SqliteBackend::open(&SqliteOptions::new(&path)).unwrap();
//! b.put(&"k".into(), &Data::Count(1), None).unwrap();
//! b.flush().unwrap();
//! drop(b);
//! let mut b = SqliteBackend::open(&SqliteOptions::new(&path)).unwrap();
//! assert_eq!(b.get(&"k".into()).unwrap(), Some(Data::Count(1)));
//! # std::fs::remove_dir_all(dir).unwrap();
//! ```

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use broker_backend::{Backend, BackendError, Result};
use broker_data::{Data, Timestamp};
use broker_wire::{decode_data, encode_data, encoded_data_len, Limits};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// No syncs.
    Off,
    /// Sync at checkpoints (with WAL): safe against process crashes.
    Normal,
    /// Sync at every commit.
    Full,
    /// Like full, and the directory too.
    Extra,
}

/// SQLite's journal mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// A rollback journal, deleted after each transaction (SQLite's default).
    Delete,
    /// A write-ahead log.
    Wal,
}

/// What to do with a database that cannot be opened or fails the integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Report `backend_failure` (the default).
    Fail,
    /// Delete the file and start empty (Broker's `DELETE`).
    Delete,
}

/// How to open a store file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file (its directory is created when missing).
    pub path: PathBuf,
    /// `PRAGMA synchronous` (default: normal).
    pub synchronous: Synchronous,
    /// `PRAGMA journal_mode` (default: WAL).
    pub journal_mode: JournalMode,
    /// What to do with a broken database.
    pub failure_mode: FailureMode,
    /// Run `PRAGMA integrity_check` when opening.
    pub integrity_check: bool,
}

impl SqliteOptions {
    /// The defaults for a file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::Normal,
            journal_mode: JournalMode::Wal,
            failure_mode: FailureMode::Fail,
            integrity_check: false,
        }
    }

    /// Reads Broker's backend options: `path` (a string), `synchronous`, `journal_mode`,
    /// `failure_mode` (strings or Zeek enum values such as `Broker::SQLITE_SYNCHRONOUS_NORMAL`),
    /// `integrity_check` (a boolean).
    pub fn from_broker(options: &BTreeMap<String, Data>) -> Result<Self> {
        let path = match options.get("path") {
            Some(Data::String(s)) => PathBuf::from(
                std::str::from_utf8(s)
                    .map_err(|_| failure("option 'path' is not UTF-8".to_owned()))?,
            ),
            Some(_) => return Err(failure("option 'path' is not a string".to_owned())),
            None => {
                return Err(failure(
                    "the SQLite backend needs the option 'path'".to_owned(),
                ))
            }
        };
        let mut o = SqliteOptions::new(path);
        if let Some(v) = enum_option(options, "synchronous", "Broker::SQLITE_SYNCHRONOUS_")? {
            o.synchronous = match v.as_str() {
                "OFF" => Synchronous::Off,
                "NORMAL" => Synchronous::Normal,
                "FULL" => Synchronous::Full,
                "EXTRA" => Synchronous::Extra,
                _ => return Err(failure(format!("unknown synchronous setting {v:?}"))),
            };
        }
        if let Some(v) = enum_option(options, "journal_mode", "Broker::SQLITE_JOURNAL_MODE_")? {
            o.journal_mode = match v.as_str() {
                "DELETE" => JournalMode::Delete,
                "WAL" => JournalMode::Wal,
                _ => return Err(failure(format!("unknown journal mode {v:?}"))),
            };
        }
        if let Some(v) = enum_option(options, "failure_mode", "Broker::SQLITE_FAILURE_MODE_")? {
            o.failure_mode = match v.as_str() {
                "FAIL" => FailureMode::Fail,
                "DELETE" => FailureMode::Delete,
                _ => return Err(failure(format!("unknown failure mode {v:?}"))),
            };
        }
        match options.get("integrity_check") {
            None => {}
            Some(Data::Boolean(b)) => o.integrity_check = *b,
            Some(_) => {
                return Err(failure(
                    "option 'integrity_check' is not a boolean".to_owned(),
                ))
            }
        }
        Ok(o)
    }
}

fn enum_option(
    options: &BTreeMap<String, Data>,
    name: &str,
    prefix: &str,
) -> Result<Option<String>> {
    let text = match options.get(name) {
        None => return Ok(None),
        Some(Data::String(s)) => String::from_utf8_lossy(s).into_owned(),
        Some(Data::EnumValue(e)) => e.name().unwrap_or_default().to_owned(),
        Some(other) => {
            return Err(failure(format!(
                "option '{name}' is a {}, not a string or enum value",
                other.data_type().name()
            )))
        }
    };
    let upper = text.to_ascii_uppercase();
    let prefix = prefix.to_ascii_uppercase();
    Ok(Some(
        upper.strip_prefix(&prefix).unwrap_or(&upper).to_owned(),
    ))
}

fn failure(message: String) -> BackendError {
    BackendError::Failure(message)
}

fn sql(context: &str) -> impl Fn(rusqlite::Error) -> BackendError + '_ {
    move |e| failure(format!("{context}: {e}"))
}

/// A store in a SQLite file.
pub struct SqliteBackend {
    conn: Connection,
    path: PathBuf,
    in_transaction: bool,
    limits: Limits,
    buf: Vec<u8>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish()
    }
}

const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether `path` holds something that is not an SQLite database (never touched then).
fn check_header(path: &Path) -> Result<()> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failure(format!("cannot open {}: {e}", path.display()))),
    };
    let mut head = Vec::with_capacity(16);
    (&mut f)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
    if head.is_empty() || head.as_slice() == HEADER {
        Ok(())
    } else {
        Err(failure(format!(
            "{} is not a SQLite database; refusing to touch it",
            path.display()
        )))
    }
}

impl SqliteBackend {
    /// Opens (or creates) the store file.
    pub fn open(options: &SqliteOptions) -> Result<Self> {
        let path = &options.path;
        if path.is_dir() {
            return Err(failure(format!("{} is a directory", path.display())));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| failure(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        check_header(path)?;
        match Self::open_checked(options) {
            Ok(b) => Ok(b),
            Err(e) if options.failure_mode == FailureMode::Delete && path.exists() => {
                // Broker's failure mode DELETE: start over, but only with a SQLite file.
                std::fs::remove_file(path)
                    .map_err(|r| failure(format!("{e}; and cannot delete it: {r}")))?;
                for suffix in ["-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                Self::open_checked(options)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens with Broker's backend options (see [`SqliteOptions::from_broker`]).
    pub fn open_with(options: &BTreeMap<String, Data>) -> Result<Self> {
        Self::open(&SqliteOptions::from_broker(options)?)
    }

    fn open_checked(options: &SqliteOptions) -> Result<Self> {
        let path = &options.path;
        let name = path.display().to_string();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| failure(format!("cannot open {name}: {e}")))?;
        if options.integrity_check {
            let verdict: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .map_err(sql(&name))?;
            if verdict != "ok" {
                return Err(failure(format!(
                    "{name} failed the integrity check: {verdict}"
                )));
            }
        }
        // Look before writing anything: a database with other tables is not ours.
        let mut tables: HashMap<String, Vec<String>> = HashMap::new();
        {
            let mut stmt = conn
                .prepare("select name from sqlite_master where type = 'table'")
                .map_err(sql(&name))?;
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .map_err(sql(&name))?
                .collect::<std::result::Result<_, _>>()
                .map_err(sql(&name))?;
            for t in names {
                let mut cols = conn
                    .prepare(&format!(
                        "select name from pragma_table_info('{}')",
                        t.replace('\'', "''")
                    ))
                    .map_err(sql(&name))?;
                let c: Vec<String> = cols
                    .query_map([], |r| r.get(0))
                    .map_err(sql(&name))?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(sql(&name))?;
                tables.insert(t, c);
            }
        }
        if !tables.is_empty() {
            let ours = tables.len() == 2
                && tables.get("meta").is_some_and(|c| c == &["key", "value"])
                && tables
                    .get("store")
                    .is_some_and(|c| c == &["key", "value", "expiry"]);
            if !ours {
                let mut found: Vec<&String> = tables.keys().collect();
                found.sort();
                return Err(failure(format!(
                    "{name} is not a Broker store (it has tables {found:?}); refusing to touch it"
                )));
            }
        }
        let journal = match options.journal_mode {
            JournalMode::Delete => "DELETE",
            JournalMode::Wal => "WAL",
        };
        let _: String = conn
            .query_row(&format!("PRAGMA journal_mode={journal}"), [], |r| r.get(0))
            .map_err(sql(&name))?;
        let sync = match options.synchronous {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync};
             create table if not exists meta(key text primary key, value text);
             create table if not exists store(key blob primary key, value blob, expiry integer);"
        ))
        .map_err(sql(&name))?;
        conn.execute(
            "replace into meta(key, value) values('broker_version', ?1)",
            params![env!("CARGO_PKG_VERSION")],
        )
        .map_err(|e| failure(format!("cannot write to {name}: {e}")))?;
        Ok(SqliteBackend {
            conn,
            path: path.clone(),
            in_transaction: false,
            limits: Limits::default(),
            buf: Vec::with_capacity(64),
        })
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN").map_err(sql("begin"))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn decode(&self, blob: &[u8]) -> Result<Data> {
        decode_data(blob, &self.limits)
            .map_err(|e| failure(format!("{}: undecodable entry: {e}", self.path.display())))
    }
}

/// The key's blob: bin v1, with -0.0 and NaN in one form (they compare equal, so they are one
/// key).
fn encode_key(key: &Data, buf: &mut Vec<u8>) {
    buf.clear();
    match key {
        Data::Real(x) if *x == 0.0 => encode_data(&Data::Real(0.0), buf),
        Data::Real(x) if x.is_nan() => encode_data(&Data::Real(f64::NAN), buf),
        _ => {
            buf.reserve(encoded_data_len(key));
            encode_data(key, buf)
        }
    }
}

fn blob(v: &Data) -> Vec<u8> {
    let mut b = Vec::with_capacity(encoded_data_len(v));
    encode_data(v, &mut b);
    b
}

impl Backend for SqliteBackend {
    fn put(&mut self, key: &Data, value: &Data, expiry: Option<Timestamp>) -> Result<()> {
        self.begin()?;
        let mut kb = std::mem::take(&mut self.buf);
        encode_key(key, &mut kb);
        let r = self
            .conn
            .prepare_cached("replace into store(key, value, expiry) values(?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![kb, blob(value), expiry.map(|t| t.as_nanos())]));
        self.buf = kb;
        r.map(|_| ()).map_err(sql("put"))
    }

    fn get(&mut self, key: &Data) -> Result<Option<Data>> {
        encode_key(key, &mut self.buf);
        let v: Option<Vec<u8>> = self
            .conn
            .prepare_cached("select value from store where key = ?1")
            .and_then(|mut s| s.query_row(params![self.buf], |r| r.get(0)).optional())
            .map_err(sql("get"))?;
        v.map(|b| self.decode(&b)).transpose()
    }

    fn exists(&mut self, key: &Data) -> Result<bool> {
        encode_key(key, &mut self.buf);
        self.conn
            .prepare_cached("select 1 from store where key = ?1")
            .and_then(|mut s| s.exists(params![self.buf]))
            .map_err(sql("exists"))
    }

    fn erase(&mut self, key: &Data) -> Result<bool> {
        self.begin()?;
        encode_key(key, &mut self.buf);
        self.conn
            .prepare_cached("delete from store where key = ?1")
            .and_then(|mut s| s.execute(params![self.buf]))
            .map(|n| n > 0)
            .map_err(sql("erase"))
    }

    fn clear(&mut self) -> Result<()> {
        self.begin()?;
        self.conn
            .execute("delete from store", [])
            .map(|_| ())
            .map_err(sql("clear"))
    }

    fn expire(&mut self, key: &Data, now: Timestamp) -> Result<bool> {
        self.begin()?;
        encode_key(key, &mut self.buf);
        self.conn
            .prepare_cached("delete from store where key = ?1 and expiry <= ?2")
            .and_then(|mut s| s.execute(params![self.buf, now.as_nanos()]))
            .map(|n| n > 0)
            .map_err(sql("expire"))
    }

    fn keys(&mut self) -> Result<Vec<Data>> {
        let blobs: Vec<Vec<u8>> = {
            let mut s = self
                .conn
                .prepare_cached("select key from store")
                .map_err(sql("keys"))?;
            let rows = s.query_map([], |r| r.get(0)).map_err(sql("keys"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(sql("keys"))?
        };
        let mut keys = blobs
            .iter()
            .map(|b| self.decode(b))
            .collect::<Result<Vec<_>>>()?;
        keys.sort_unstable();
        Ok(keys)
    }

    fn size(&mut self) -> Result<u64> {
        self.conn
            .query_row("select count(*) from store", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(sql("size"))
    }

    fn snapshot(&mut self) -> Result<BTreeMap<Data, Data>> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut s = self
                .conn
                .prepare_cached("select key, value from store")
                .map_err(sql("snapshot"))?;
            let rows = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql("snapshot"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(sql("snapshot"))?
        };
        rows.iter()
            .map(|(k, v)| Ok((self.decode(k)?, self.decode(v)?)))
            .collect()
    }

    fn expiries(&mut self) -> Result<Vec<(Data, Timestamp)>> {
        let rows: Vec<(Vec<u8>, i64)> = {
            let mut s = self
                .conn
                .prepare_cached("select key, expiry from store where expiry is not null")
                .map_err(sql("expiries"))?;
            let rows = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql("expiries"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(sql("expiries"))?
        };
        let mut out = rows
            .iter()
            .map(|(k, t)| Ok((self.decode(k)?, Timestamp::from_nanos(*t))))
            .collect::<Result<Vec<_>>>()?;
        out.sort_unstable();
        Ok(out)
    }

    fn flush(&mut self) -> Result<()> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT").map_err(sql("commit"))?;
            self.in_transaction = false;
        }
        Ok(())
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
