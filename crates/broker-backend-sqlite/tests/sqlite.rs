//! The SQLite backend: the conformance suite, Broker's file layout both ways with C++ Broker 1.4
//! (a file it wrote, recorded in `tests/data`; the ignored tests, which `cargo xtask ci` runs,
//! use the installed `python3-broker`), and files that are not ours (refused, never changed).

use std::path::{Path, PathBuf};
use std::process::Command;

use broker_backend::{Backend, BackendError};
use broker_backend_sqlite::{FailureMode, JournalMode, SqliteBackend, SqliteOptions};
use broker_data::Data;

fn temp(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("broker-sqlite-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn conformance() {
    let dir = temp("conformance");
    let n = std::cell::Cell::new(0);
    let last = std::cell::RefCell::new(PathBuf::new());
    broker_backend::conformance::run_persistent(
        || {
            n.set(n.get() + 1);
            let p = dir.join(format!("s{}.sqlite", n.get()));
            *last.borrow_mut() = p.clone();
            SqliteBackend::open(&SqliteOptions::new(p)).unwrap()
        },
        || SqliteBackend::open(&SqliteOptions::new(last.borrow().clone())).unwrap(),
    );
    // And with Broker's own defaults for the pragmas (rollback journal, full sync).
    let mut o = SqliteOptions::new(dir.join("delete.sqlite"));
    o.journal_mode = JournalMode::Delete;
    broker_backend::conformance::run(|| {
        let _ = std::fs::remove_file(&o.path);
        SqliteBackend::open(&o).unwrap()
    });
    std::fs::remove_dir_all(dir).unwrap();
}

fn broker14_script(name: &str) -> String {
    let wire = concat!(env!("CARGO_MANIFEST_DIR"), "/../broker-wire/tests/support/");
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/");
    match name {
        "broker14_store.py" => format!("{wire}{name}"),
        _ => format!("{here}{name}"),
    }
}

fn python(script: &str, path: &Path) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg(broker14_script(script))
        .arg(path)
        .output()
        .expect("/usr/bin/python3 runs (cargo xtask install puts python3-broker there)");
    assert!(
        out.status.success(),
        "Broker 1.4 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A store file that C++ Broker 1.4 wrote (`broker14_store.py`), recorded in `tests/data` so
/// that this runs without Broker installed; the ignored test below writes a new one.
#[test]
fn a_store_file_written_by_broker_1_4_opens_here() {
    let dir = temp("from-broker");
    let path = dir.join("zeek.sqlite");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/broker14_store.sqlite"
        ),
        &path,
    )
    .unwrap();
    opens_here(&dir, &path);
}

#[test]
#[ignore = "needs C++ Broker 1.4 (python3-broker: cargo xtask install); cargo xtask ci runs it"]
fn a_store_file_written_by_the_installed_broker_1_4_opens_here() {
    let dir = temp("from-live-broker");
    let path = dir.join("zeek.sqlite");
    python("broker14_store.py", &path);
    opens_here(&dir, &path);
}

fn opens_here(dir: &Path, path: &Path) {
    let mut b = SqliteBackend::open(&SqliteOptions::new(path)).unwrap();
    assert_eq!(b.size().unwrap(), 16);
    assert_eq!(b.get(&"c".into()).unwrap(), Some(Data::Count(1234567890)));
    assert_eq!(
        b.get(&"m".into()).unwrap(),
        Some(r#"{+1 -> "hello", +2 -> "world"}"#.parse().unwrap())
    );
    // And we can keep writing to it.
    b.put(&"new".into(), &Data::Count(1), None).unwrap();
    b.flush().unwrap();
    drop(b);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs C++ Broker 1.4 (python3-broker: cargo xtask install); cargo xtask ci runs it"]
fn a_store_file_written_here_opens_in_broker_1_4() {
    let dir = temp("to-broker");
    let path = dir.join("ours.sqlite");
    let mut b = SqliteBackend::open(&SqliteOptions::new(&path)).unwrap();
    b.put(&"count".into(), &Data::Count(42), None).unwrap();
    b.put(&"text".into(), &"hello".into(), None).unwrap();
    b.put(&"real".into(), &Data::Real(1.5), None).unwrap();
    b.flush().unwrap();
    drop(b);
    let text = python("broker14_read.py", &path);
    assert_eq!(text, "count=42\nreal=1.5\ntext=hello\n");
    std::fs::remove_dir_all(dir).unwrap();
}

fn assert_refused(result: Result<SqliteBackend, BackendError>, needle: &str) {
    match result {
        Err(BackendError::Failure(m)) => assert!(m.contains(needle), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened what it should refuse"),
    }
}

#[test]
fn files_that_are_not_ours_are_refused_and_left_unchanged() {
    let dir = temp("foreign");
    // Not a database at all.
    let text = dir.join("notes.txt");
    std::fs::write(&text, "my notes\n").unwrap();
    assert_refused(
        SqliteBackend::open(&SqliteOptions::new(&text)),
        "not a SQLite database",
    );
    assert_eq!(std::fs::read(&text).unwrap(), b"my notes\n");
    // Somebody else's SQLite database.
    let other = dir.join("other.sqlite");
    {
        let c = rusqlite_free_create(&other);
        assert!(c, "sqlite3 creates a database");
    }
    let before = std::fs::read(&other).unwrap();
    assert_refused(
        SqliteBackend::open(&SqliteOptions::new(&other)),
        "not a Broker store",
    );
    assert_eq!(std::fs::read(&other).unwrap(), before);
    // A corrupt database (SQLite's header, then garbage).
    let corrupt = dir.join("corrupt.sqlite");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&corrupt, &bytes).unwrap();
    assert_refused(SqliteBackend::open(&SqliteOptions::new(&corrupt)), "");
    assert_eq!(std::fs::read(&corrupt).unwrap(), bytes, "never overwritten");
    // ... unless the user asked for Broker's failure mode DELETE.
    let mut o = SqliteOptions::new(&corrupt);
    o.failure_mode = FailureMode::Delete;
    let mut b = SqliteBackend::open(&o).unwrap();
    assert_eq!(b.size().unwrap(), 0);
    drop(b);
    // An unwritable place: a directory inside a file.
    assert_refused(
        SqliteBackend::open(&SqliteOptions::new(text.join("sub/x.sqlite"))),
        "cannot create directory",
    );
    // A directory where the file should be.
    assert_refused(
        SqliteBackend::open(&SqliteOptions::new(&dir)),
        "is a directory",
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Creates somebody else's database: a table of its own.
fn rusqlite_free_create(path: &Path) -> bool {
    rusqlite::Connection::open(path)
        .and_then(|c| {
            c.execute_batch("create table users(name text); insert into users values('alice');")
        })
        .is_ok()
}

#[test]
fn broker_options_are_read() {
    use std::collections::BTreeMap;
    let dir = temp("options");
    let mut opts = BTreeMap::new();
    assert!(SqliteBackend::open_with(&opts).is_err(), "path is required");
    opts.insert(
        "path".to_owned(),
        Data::from(dir.join("o.sqlite").to_str().unwrap()),
    );
    opts.insert(
        "synchronous".to_owned(),
        Data::EnumValue(broker_data::EnumValue::new(
            "Broker::SQLITE_SYNCHRONOUS_FULL",
        )),
    );
    opts.insert("journal_mode".to_owned(), Data::from("delete"));
    opts.insert("integrity_check".to_owned(), Data::Boolean(true));
    let o = SqliteOptions::from_broker(&opts).unwrap();
    assert_eq!(o.journal_mode, JournalMode::Delete);
    assert!(o.integrity_check);
    SqliteBackend::open_with(&opts).unwrap();
    opts.insert("synchronous".to_owned(), Data::from("sometimes"));
    assert!(SqliteBackend::open_with(&opts).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}
