//! Data stores on real endpoints: every operation at a master, a clone on another endpoint over
//! loopback (replication, writes through the clone, put_unique, events, expiry, the proxy and
//! its descriptor), `master_exists`, stale data after the master goes away and resynchronization
//! when it returns, and a master process killed mid-flight whose SQLite file keeps every
//! acknowledged write.
#![allow(unsafe_code)] // poll(2) through libc, to test `StoreProxy::fd`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker::data::{set, table, vector, Data};
use broker::{
    BackendOptions, BackendType, CloneOptions, Configuration, Endpoint, ErrorCode, StatusEvent,
    Store,
};

const WAIT: Duration = Duration::from_secs(10);

fn endpoint() -> Endpoint {
    Endpoint::new(Configuration {
        disable_ssl: true,
        ..Configuration::default()
    })
    .unwrap()
}

fn memory_master(ep: &Endpoint, name: &str) -> Store {
    ep.attach_master(name, BackendType::Memory, BackendOptions::new())
        .unwrap()
}

/// Polls `f` until it returns true (stores are eventually consistent across endpoints).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

fn expect_error(s: &broker::StatusSubscriber, code: ErrorCode) -> String {
    let end = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < end {
        if let Some(ev) = s.get_timeout(Duration::from_millis(100)) {
            if let StatusEvent::Error {
                code: c, message, ..
            } = &ev
            {
                if *c == code {
                    return message.clone();
                }
            }
            seen.push(ev);
        }
    }
    panic!("no {code} error; saw {seen:?}");
}

fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

#[test]
fn every_operation_at_a_master() {
    let ep = endpoint();
    let errors = ep.make_status_subscriber(false).unwrap();
    let s = memory_master(&ep, "ops");
    assert!(s.is_master());
    s.put("k", 1u64, None);
    assert_eq!(s.get("k").unwrap(), Data::Count(1));
    assert_eq!(s.get("nope").unwrap_err().code, ErrorCode::NoSuchKey);
    assert!(s.exists("k").unwrap());
    assert!(!s.exists("nope").unwrap());
    assert!(s.put_unique("u", "first", None).unwrap());
    assert!(!s.put_unique("u", "second", None).unwrap());
    assert_eq!(s.get("u").unwrap(), Data::from("first"));
    s.increment("k", 41u64, None);
    s.decrement("k", 2u64, None);
    assert_eq!(s.get("k").unwrap(), Data::Count(40));
    s.increment("i", -5i64, None);
    s.increment("r", 0.5, None);
    s.increment(
        "span",
        broker::data::Timespan::from_nanos(1_000_000_000),
        None,
    );
    s.append("text", "ab", None);
    s.append("text", "cd", None);
    assert_eq!(s.get("text").unwrap(), Data::from("abcd"));
    assert_eq!(s.get("i").unwrap(), Data::Integer(-5));
    assert_eq!(s.get("r").unwrap(), Data::Real(0.5));
    s.insert_into("set", 1u64, None);
    s.insert_into("set", 2u64, None);
    s.remove_from("set", 1u64, None);
    assert_eq!(s.get("set").unwrap(), set![2u64]);
    s.insert_into_at("table", "a", 1u64, None);
    s.insert_into_at("table", "b", 2u64, None);
    s.remove_from("table", "a", None);
    assert_eq!(s.get("table").unwrap(), table! {"b" => 2u64});
    assert_eq!(
        s.get_index_from_value("table", "b").unwrap(),
        Data::Count(2)
    );
    assert_eq!(
        s.get_index_from_value("table", "zz").unwrap_err().code,
        ErrorCode::NoSuchKey
    );
    assert_eq!(
        s.get_index_from_value("set", 2u64).unwrap(),
        Data::Boolean(true)
    );
    s.push("vec", 1u64, None);
    s.push("vec", 3u64, None);
    s.insert_into_at("vec", 1u64, 2u64, None);
    assert_eq!(s.get("vec").unwrap(), vector![1u64, 2u64, 3u64]);
    assert_eq!(s.get_index_from_value("vec", 2u64).unwrap(), Data::Count(3));
    s.pop("vec", None);
    assert_eq!(s.get("vec").unwrap(), vector![1u64, 2u64]);
    // Wrong types: type_clash reported, nothing changed.
    s.increment("text", 1u64, None);
    assert!(expect_error(&errors, ErrorCode::TypeClash).contains("text"));
    s.append("k", "x", None);
    expect_error(&errors, ErrorCode::TypeClash);
    assert_eq!(s.get("text").unwrap(), Data::from("abcd"));
    assert_eq!(s.get("k").unwrap(), Data::Count(40));
    s.decrement("absent", 1u64, None);
    expect_error(&errors, ErrorCode::NoSuchKey);
    assert!(!s.exists("absent").unwrap());
    s.erase("k");
    assert!(!s.exists("k").unwrap());
    let keys = s.keys().unwrap();
    assert_eq!(
        keys,
        set!["i", "r", "set", "span", "table", "text", "u", "vec"]
    );
    s.clear();
    assert_eq!(s.keys().unwrap(), set![]);
    // One master per name: attaching it again gives the same store (as in Broker).
    let again = ep.attach_master("ops", BackendType::Memory, BackendOptions::new());
    assert_eq!(again.unwrap().frontend_id(), s.frontend_id());
}

#[test]
fn expiry_removes_entries_at_their_time() {
    let ep = endpoint();
    let s = memory_master(&ep, "expiry");
    s.put("short", 1u64, Some(Duration::from_millis(200)));
    s.put("long", 1u64, secs(3600));
    s.put("moved", 1u64, Some(Duration::from_millis(200)));
    s.put("moved", 2u64, None); // A put without expiry keeps the entry.
    assert!(s.exists("short").unwrap());
    eventually("the entry to expire", || !s.exists("short").unwrap());
    assert!(s.exists("long").unwrap());
    // A marker that expires after the time "moved" would have: once it is gone, that time has
    // passed (expiries are handled in time order), and "moved" must still be there.
    s.put("marker", 1u64, Some(Duration::from_millis(250)));
    eventually("the marker to expire", || !s.exists("marker").unwrap());
    assert_eq!(s.get("moved").unwrap(), Data::Count(2));
}

#[test]
fn a_clone_follows_its_master_and_writes_through_it() {
    let (a, b) = (endpoint(), endpoint());
    let master = memory_master(&a, "shared");
    master.put("before", 1u64, None);
    let port = a.listen("127.0.0.1", 0).unwrap();
    b.peer("127.0.0.1", port, None).unwrap();
    let clone = b.attach_clone("shared", CloneOptions::default()).unwrap();
    assert!(!clone.is_master());
    // The snapshot at attach time.
    assert_eq!(clone.get("before").unwrap(), Data::Count(1));
    // Master writes reach the clone.
    master.put("m", "from master", None);
    eventually("the master's put", || clone.get("m").is_ok());
    // Clone writes go through the master and come back.
    clone.put("c", 2u64, None);
    clone.increment("counter", 5u64, None);
    eventually("the clone's put at the master", || master.get("c").is_ok());
    eventually("the clone's put back at the clone", || {
        clone.get("c").is_ok()
    });
    eventually("the increment", || {
        clone.get("counter").ok() == Some(Data::Count(5))
    });
    assert!(clone.put_unique("unique", 1u64, None).unwrap());
    assert!(!clone.put_unique("unique", 2u64, None).unwrap());
    assert_eq!(master.get("unique").unwrap(), Data::Count(1));
    // Expiry at the master reaches the clone.
    master.put("temp", 1u64, Some(Duration::from_millis(300)));
    eventually("the temporary entry", || clone.exists("temp").unwrap());
    eventually("its expiry at the clone", || !clone.exists("temp").unwrap());
    clone.erase("m");
    eventually("the erase", || !master.exists("m").unwrap());
    assert!(clone.await_idle(WAIT));
    assert!(master.await_idle(WAIT));
    assert_eq!(master.keys().unwrap(), clone.keys().unwrap());
    // A second master of the name, anywhere reachable, is refused.
    let err = b
        .attach_master("shared", BackendType::Memory, BackendOptions::new())
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::MasterExists);
}

/// As in Broker: attaching a name again on the same endpoint gives the store already there
/// (whatever backend the second call names), a clone beside a local master is refused with
/// `no_such_master`, and a name whose handles are all gone can be attached anew.
#[test]
fn attaching_a_name_twice_gives_the_same_store() {
    let ep = endpoint();
    let first = memory_master(&ep, "twice");
    let path = std::env::temp_dir().join(format!("never-opened-{}.sqlite", std::process::id()));
    let mut options = BackendOptions::new();
    options.insert("path".into(), Data::from(path.to_str().unwrap()));
    let second = ep
        .attach_master("twice", BackendType::Sqlite, options)
        .unwrap();
    assert_eq!(first.frontend_id(), second.frontend_id());
    assert!(!path.exists(), "the second call opens no backend");
    first.put("k", 1u64, None);
    assert_eq!(second.get("k").unwrap(), Data::Count(1));
    let err = ep
        .attach_clone("twice", CloneOptions::default())
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NoSuchMaster);

    let (c1, c2) = (
        ep.attach_clone("other", CloneOptions::default()).unwrap(),
        ep.attach_clone("other", CloneOptions::default()).unwrap(),
    );
    assert_eq!(c1.frontend_id(), c2.frontend_id());
    assert!(!c1.is_master());

    let id = first.frontend_id();
    drop((first, second));
    eventually("the dropped master to detach", || {
        ep.attach_master("twice", BackendType::Memory, BackendOptions::new())
            .is_ok_and(|s| s.frontend_id() != id)
    });
}

/// A clone attached the moment its master appeared elsewhere: its first request can reach the
/// clone's endpoint before the master's subscription does and go to nobody. It asks again when
/// the subscription arrives, not at its next resync (an hour here, so a clone that waited for
/// it would fail the test; with Broker's 10 s, Broker's own Python suite saw 10 s stalls).
#[test]
fn a_clone_attached_right_after_its_master_finds_it_at_once() {
    let options = CloneOptions {
        resync_interval: Duration::from_secs(3600),
        ..CloneOptions::default()
    };
    for i in 0..20 {
        let (a, b) = (endpoint(), endpoint());
        let port = a.listen("127.0.0.1", 0).unwrap();
        b.peer("127.0.0.1", port, None).unwrap();
        let master = memory_master(&a, "late");
        let clone = b.attach_clone("late", options).unwrap();
        clone.put("k", i as u64, None);
        eventually(
            &format!("iteration {i}: the clone's write at the master"),
            || master.get("k").ok() == Some(Data::Count(i as u64)),
        );
    }
}

#[test]
fn store_events_follow_every_change() {
    let (a, b) = (endpoint(), endpoint());
    let events = a
        .make_subscriber(&["<$>/local/data/store-events/"], Some(1024))
        .unwrap();
    let clone_events = b
        .make_subscriber(&["<$>/local/data/store-events/ev"], Some(1024))
        .unwrap();
    let master = memory_master(&a, "ev");
    let port = a.listen("127.0.0.1", 0).unwrap();
    b.peer("127.0.0.1", port, None).unwrap();
    let clone = b.attach_clone("ev", CloneOptions::default()).unwrap();
    assert!(clone.await_idle(WAIT));
    master.put("k", 1u64, None);
    master.put("k", 2u64, None);
    master.erase("k");
    master.put("t", 1u64, Some(Duration::from_millis(100)));
    let kinds = |sub: &broker::Subscriber| {
        let mut kinds = Vec::new();
        let end = Instant::now() + WAIT;
        while kinds.len() < 5 && Instant::now() < end {
            for m in sub.get_n(16, Some(Duration::from_millis(100))) {
                assert_eq!(m.topic.as_str(), "<$>/local/data/store-events/ev");
                let Data::Vector(v) = &*m.data else {
                    panic!("{:?}", m.data)
                };
                assert_eq!(v[1], Data::from("ev"));
                kinds.push(v[0].to_string());
            }
        }
        kinds
    };
    assert_eq!(
        kinds(&events),
        ["insert", "update", "erase", "insert", "expire"]
    );
    assert_eq!(
        kinds(&clone_events),
        ["insert", "update", "erase", "insert", "expire"]
    );
    // Events stay local: a catch-all subscriber on a third endpoint sees none of them.
    let c = endpoint();
    c.peer("127.0.0.1", port, None).unwrap();
    let all = c.make_subscriber(&[""], Some(64)).unwrap();
    eventually("C's subscription to reach A", || {
        a.peer_subscriptions()
            .unwrap()
            .iter()
            .any(|t| t.as_str().is_empty())
    });
    master.put("x", 1u64, None);
    assert!(master.await_idle(WAIT));
    // A sentinel published after the put: once it is at C, anything sent before it is too.
    a.publish("/sentinel", Data::Count(1)).unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|t: &String| t == "/sentinel") {
        let m = all.get_timeout(WAIT).expect("the sentinel arrives");
        seen.push(m.topic.as_str().to_owned());
    }
    assert!(seen.iter().all(|t| !t.starts_with("<$>/local")), "{seen:?}");
}

#[test]
fn the_proxy_answers_through_a_pollable_mailbox() {
    let ep = endpoint();
    let s = memory_master(&ep, "proxy");
    s.put("foo", 42u64, None);
    let proxy = s.proxy().unwrap();
    let ids = [
        proxy.get("foo"),
        proxy.exists("foo"),
        proxy.keys(),
        proxy.get("missing"),
        proxy.put_unique("foo", 1u64, None),
    ];
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "increasing ids: {ids:?}"
    );
    let mut p = libc::pollfd {
        fd: proxy.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, with its length.
    let n = unsafe { libc::poll(&mut p, 1, 10_000) };
    assert_eq!(n, 1, "the descriptor is readable once a response waits");
    let mut got = Vec::new();
    while got.len() < ids.len() {
        got.extend(proxy.receive_n(8, Some(WAIT)));
    }
    got.sort_by_key(|r| r.id);
    assert_eq!(got[0].answer, Ok(Data::Count(42)));
    assert_eq!(got[1].answer, Ok(Data::Boolean(true)));
    assert_eq!(got[2].answer, Ok(set!["foo"]));
    assert_eq!(
        got[3].answer.as_ref().unwrap_err().code,
        ErrorCode::NoSuchKey
    );
    assert_eq!(got[4].answer, Ok(Data::Boolean(false)));
    assert_eq!(proxy.available(), 0);
    // SAFETY: as above; a zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    assert_eq!(n, 0, "not readable when empty");
}

#[test]
fn async_reads() {
    let ep = endpoint();
    let s = memory_master(&ep, "async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        s.put_async("a", 1u64, None).await.unwrap();
        assert_eq!(s.get_async("a").await.unwrap(), Data::Count(1));
        assert!(s.exists_async("a").await.unwrap());
        assert_eq!(s.keys_async().await.unwrap(), set!["a"]);
        assert!(s.put_unique_async("b", 2u64, None).await.unwrap());
        assert!(s.await_idle_async(WAIT).await);
    });
}

#[test]
fn a_clone_without_its_master_goes_stale_and_resynchronizes() {
    let dir = broker_e2e::temp_dir("stale");
    let path = dir.join("master.sqlite");
    let options = || {
        let mut o = BackendOptions::new();
        o.insert("path".into(), Data::from(path.to_str().unwrap()));
        o
    };
    let a = endpoint();
    let master = a
        .attach_master("st", BackendType::Sqlite, options())
        .unwrap();
    master.put("k", 1u64, None);
    let port = a.listen("127.0.0.1", 0).unwrap();
    let b = endpoint();
    b.peer("127.0.0.1", port, Some(Duration::from_millis(100)))
        .unwrap();
    let clone = b
        .attach_clone(
            "st",
            CloneOptions {
                resync_interval: Duration::from_millis(200),
                stale_interval: Some(Duration::from_millis(500)),
                mutation_buffer_interval: None,
            },
        )
        .unwrap();
    assert_eq!(clone.get("k").unwrap(), Data::Count(1));
    // The master's endpoint goes away.
    assert!(master.await_idle(WAIT));
    drop(master);
    a.shutdown();
    drop(a);
    // Still served from the copy until the stale interval passes, then stale_data.
    assert_eq!(clone.get("k").unwrap(), Data::Count(1));
    eventually("stale data", || {
        clone.get("k").err().map(|e| e.code) == Some(ErrorCode::StaleData)
    });
    // Writes made meanwhile wait for the master.
    clone.put("while-away", 1u64, None);
    // The master comes back on the same port with its file; the clone re-dials and resyncs.
    let a2 = endpoint();
    let master = a2
        .attach_master("st", BackendType::Sqlite, options())
        .unwrap();
    a2.listen("127.0.0.1", port).unwrap();
    eventually("resynchronization", || {
        clone.get("k").ok() == Some(Data::Count(1))
    });
    eventually("the buffered write at the master", || {
        master.get("while-away").ok() == Some(Data::Count(1))
    });
    std::fs::remove_dir_all(dir).unwrap();
}

/// `shutdown` returns only once every store has written what it holds and closed its
/// backend, even while handles to the store live on: a process may exit right after it (the
/// chaos harness found RocksDB crashing under a node's exit, and SQLite's write-ahead log left
/// behind, when the store threads still ran).
#[test]
fn shutdown_closes_every_store_backend_before_returning() {
    let dir = broker_e2e::temp_dir("close");
    let path = dir.join("master.sqlite");
    let mut o = BackendOptions::new();
    o.insert("path".into(), Data::from(path.to_str().unwrap()));
    let ep = endpoint();
    let master = ep.attach_master("close", BackendType::Sqlite, o).unwrap();
    for i in 0..100u64 {
        master.put(i, i, None);
    }
    assert!(master.await_idle(WAIT));
    let wal = dir.join("master.sqlite-wal");
    assert!(wal.exists(), "SQLite writes ahead while the store is open");
    ep.shutdown();
    assert!(
        !wal.exists(),
        "the write-ahead log is still there: the backend was not closed"
    );
    drop(master);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The same for RocksDB, which locks its directory while open: right after `shutdown` another
/// endpoint opens it and finds every write.
#[cfg(feature = "rocksdb")]
#[test]
fn shutdown_releases_a_rocksdb_directory() {
    let dir = broker_e2e::temp_dir("close-rocks");
    let path = dir.join("master.rocksdb");
    let options = || {
        let mut o = BackendOptions::new();
        o.insert("path".into(), Data::from(path.to_str().unwrap()));
        o
    };
    let ep = endpoint();
    let master = ep
        .attach_master("rocks", BackendType::RocksDb, options())
        .unwrap();
    for i in 0..100u64 {
        master.put(i, i, None);
    }
    assert!(master.await_idle(WAIT));
    ep.shutdown();
    let again = endpoint();
    let reopened = again
        .attach_master("rocks", BackendType::RocksDb, options())
        .expect("the directory is free after shutdown");
    assert_eq!(reopened.get(99u64).unwrap(), Data::Count(99));
    drop(master);
    again.shutdown();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A child process, killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the test `name` of this binary as a child process (it does its part only when `var`
/// is set) and waits for it to print `READY <port>`.
fn child_test(name: &str, var: &str, value: &std::ffi::OsStr) -> (KillOnDrop, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(var, value)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let child = KillOnDrop(child);
    let port = loop {
        let line = lines.next().expect("the child reports READY").unwrap();
        // The test harness prints its own words before ours on the same line.
        if let Some((_, p)) = line.split_once("READY ") {
            break p.trim().parse().unwrap();
        }
    };
    (child, port)
}

/// The process killed by `a_killed_master_keeps_every_acknowledged_write` (runs only when
/// started by it).
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("BROKER_CRASH_CHILD") else {
        return;
    };
    let ep = endpoint();
    let mut o = BackendOptions::new();
    o.insert("path".into(), Data::from(path.as_str()));
    let master = ep.attach_master("crash", BackendType::Sqlite, o).unwrap();
    for i in 0..1000u64 {
        master.put(i, i * 2, None);
    }
    master.put("expires-later", 1u64, secs(3600));
    master.put("expires-soon", 1u64, Some(Duration::from_millis(500)));
    assert!(master.await_idle(WAIT));
    let port = ep.listen("127.0.0.1", 0).unwrap();
    println!("READY {port}");
    // Never outlive a parent that failed before killing us.
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        // Keep writing until killed: a torn last batch must not hurt the acknowledged ones.
        for i in 0..100u64 {
            master.put(format!("noise-{i}"), i, None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_killed_master_keeps_every_acknowledged_write() {
    let dir = broker_e2e::temp_dir("crash");
    let path = dir.join("crash.sqlite");
    let (mut child, port) = child_test("crash_child", "BROKER_CRASH_CHILD", path.as_os_str());
    // Writes through a clone in this process, acknowledged by the master.
    let ep = endpoint();
    ep.peer("127.0.0.1", port, None).unwrap();
    let clone = ep.attach_clone("crash", CloneOptions::default()).unwrap();
    for i in 0..500u64 {
        clone.put(format!("via-clone-{i}"), i, None);
    }
    assert!(
        clone.await_idle(WAIT),
        "the master acknowledged the clone's writes"
    );
    child.0.kill().unwrap(); // SIGKILL: no flush, no destructor.
    child.0.wait().unwrap();
    drop(clone);
    ep.shutdown();
    // Reopen the file as a new master.
    let ep = endpoint();
    let mut o = BackendOptions::new();
    o.insert("path".into(), Data::from(path.to_str().unwrap()));
    let master = ep.attach_master("crash", BackendType::Sqlite, o).unwrap();
    for i in 0..1000u64 {
        assert_eq!(master.get(i).unwrap(), Data::Count(i * 2), "key {i}");
    }
    for i in 0..500u64 {
        assert_eq!(
            master.get(format!("via-clone-{i}")).unwrap(),
            Data::Count(i),
            "clone write {i}"
        );
    }
    // Expiry survived the crash: the long one is still there, the short one expires.
    assert!(master.exists("expires-later").unwrap());
    eventually("the overdue entry to expire after the restart", || {
        !master.exists("expires-soon").unwrap()
    });
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_backend_files_give_backend_failure() {
    let dir = broker_e2e::temp_dir("badfiles");
    let ep = endpoint();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "keep me").unwrap();
    let mut o = BackendOptions::new();
    o.insert("path".into(), Data::from(text.to_str().unwrap()));
    let err = ep
        .attach_master("bad", BackendType::Sqlite, o.clone())
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BackendFailure);
    assert!(err.message.contains("not a SQLite database"), "{err}");
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "keep me");
    o.insert(
        "path".into(),
        Data::from(text.join("below-a-file.sqlite").to_str().unwrap()),
    );
    let err = ep.attach_master("bad", BackendType::Sqlite, o).unwrap_err();
    assert_eq!(err.code, ErrorCode::BackendFailure);
    let err = ep
        .attach_master("bad", BackendType::Sqlite, BackendOptions::new())
        .unwrap_err();
    assert!(err.message.contains("path"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The master process killed by `a_new_master_takes_over_after_the_old_one_is_killed` (runs
/// only when started by it).
#[test]
fn failover_child() {
    if std::env::var("E2E_FAILOVER_CHILD").is_err() {
        return;
    }
    let ep = endpoint();
    let master = memory_master(&ep, "fo");
    master.put("from-a", 1u64, None);
    assert!(master.await_idle(WAIT));
    let port = ep.listen("127.0.0.1", 0).unwrap();
    println!("READY {port}");
    // Never outlive a parent that failed before killing us.
    std::thread::sleep(Duration::from_secs(60));
}

/// Master on A (another process), clone on B, C peered with B. While A lives, a master on C
/// is refused; once A is killed with SIGKILL, a master for the same store on C is accepted,
/// B's clone follows it, and writes through B reach C.
#[test]
fn a_new_master_takes_over_after_the_old_one_is_killed() {
    let (mut child, port) = child_test("failover_child", "E2E_FAILOVER_CHILD", "1".as_ref());
    let (b, c) = (endpoint(), endpoint());
    b.peer("127.0.0.1", port, None).unwrap();
    let pb = b.listen("127.0.0.1", 0).unwrap();
    c.peer("127.0.0.1", pb, None).unwrap();
    let options = CloneOptions {
        resync_interval: Duration::from_millis(200),
        ..CloneOptions::default()
    };
    let clone = b.attach_clone("fo", options).unwrap();
    eventually("the snapshot from A", || {
        clone.get("from-a").ok() == Some(Data::Count(1))
    });
    eventually("C to learn of A's master", || {
        c.attach_master("fo", BackendType::Memory, BackendOptions::new())
            .is_err_and(|e| e.code == ErrorCode::MasterExists)
    });

    child.0.kill().unwrap(); // SIGKILL: A vanishes without a word.
    child.0.wait().unwrap();
    let mut master = None;
    eventually("a new master on C once A is gone", || {
        master = c
            .attach_master("fo", BackendType::Memory, BackendOptions::new())
            .ok();
        master.is_some()
    });
    let master = master.unwrap();
    master.put("from-c", 2u64, None);
    eventually("B's clone to follow the new master", || {
        clone.get("from-c").ok() == Some(Data::Count(2))
    });
    clone.put("via-b", 3u64, None);
    eventually("a write through B at C", || {
        master.get("via-b").ok() == Some(Data::Count(3))
    });
}
