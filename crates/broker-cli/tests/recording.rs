//! Recording a live cluster and replaying it with `broker bench cluster`: a Zeek-like cluster
//! of real endpoints (manager, logger, proxy, two workers; Zeek's topics and peerings, events,
//! logs and a store) records itself; the recordings hold what each node did, the generated
//! configuration expects what the live run delivered, and the replay (in one process and as
//! processes) delivers exactly that again. Also: a recording C++ Broker 2.0 made of a real Zeek
//! cluster gives Broker's own generated configuration, byte for byte, and replays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use broker::{BackendOptions, BackendType, CloneOptions, Configuration, Endpoint, MessageCounter};
use broker_data::zeek::{Event, LogWrite, Message};
use broker_data::{Data, EnumValue};
use broker_wire::GeneratorStats;

const BROKER: &str = env!("CARGO_BIN_EXE_broker");
const WAIT: Duration = Duration::from_secs(20);

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("broker-rec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Node {
    name: &'static str,
    ep: Endpoint,
    port: u16,
    counter: MessageCounter,
}

fn node(dir: &Path, name: &'static str, topics: &[&str]) -> Node {
    // Zeek clusters run with Broker::forward_messages = F.
    let mut c = Configuration {
        disable_ssl: true,
        forward: false,
        ..Configuration::default()
    };
    c.set(
        "broker.recording-directory",
        dir.join(name).to_str().unwrap(),
    )
    .unwrap();
    let ep = Endpoint::new(c).unwrap();
    let mut all: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    all.push(format!("zeek/cluster/node/{name}/"));
    all.push(format!("zeek/cluster/nodeid/{}/", ep.node_id()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let counter = ep.make_counter(&refs).unwrap();
    let port = ep.listen("127.0.0.1", 0).unwrap();
    Node {
        name,
        ep,
        port,
        counter,
    }
}

fn event(name: &str, i: u64) -> Data {
    Message::from(Event::new(
        name,
        vec![Data::Count(i), Data::from("10.0.0.1")],
    ))
    .into()
}

fn log_write(stream: &str, i: u64) -> Data {
    Message::from(LogWrite {
        stream_id: EnumValue::new(stream),
        writer_id: EnumValue::new("Log::WRITER_ASCII"),
        path: "conn".into(),
        serial_data: format!("record {i}").into_bytes().into(),
    })
    .into()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BROKER).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON line's `"complete":true` and the per-node received counts.
fn check_replay(stdout: &str) -> BTreeMap<String, u64> {
    let json = stdout
        .lines()
        .find(|l| l.starts_with("{\"bench\":\"cluster\""))
        .unwrap_or_else(|| panic!("no JSON line in {stdout}"));
    assert!(json.contains("\"complete\":true"), "{json}");
    let mut out = BTreeMap::new();
    for part in json.split("{\"name\":\"").skip(1) {
        let name = part.split('"').next().unwrap().to_owned();
        let received: u64 = part
            .split("\"received\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        out.insert(name, received);
    }
    out
}

#[test]
fn a_recorded_zeek_cluster_replays_with_the_counts_it_delivered() {
    let dir = scratch("zeek");
    let manager = node(&dir, "manager", &["zeek/cluster/manager"]);
    let logger = node(&dir, "logger", &["zeek/logs/"]);
    let proxy = node(&dir, "proxy", &["zeek/cluster/proxy"]);
    let w1 = node(&dir, "worker-1", &["zeek/cluster/worker"]);
    let w2 = node(&dir, "worker-2", &["zeek/cluster/worker"]);
    let master = manager
        .ep
        .attach_master(
            "known/hosts",
            BackendType::Memory,
            BackendOptions::default(),
        )
        .unwrap();
    let clones: Vec<_> = [&w1, &w2]
        .iter()
        .map(|w| {
            w.ep.attach_clone("known/hosts", CloneOptions::default())
                .unwrap()
        })
        .collect();
    // Zeek's peerings: workers to manager, logger and proxy; proxy to manager and logger;
    // manager to logger.
    let peer = |a: &Node, b: &Node| {
        a.ep.peer("127.0.0.1", b.port, None).unwrap();
    };
    for w in [&w1, &w2] {
        peer(w, &manager);
        peer(w, &logger);
        peer(w, &proxy);
    }
    peer(&proxy, &manager);
    peer(&proxy, &logger);
    peer(&manager, &logger);
    for (a, b) in [
        (&w1, "zeek/cluster/manager"),
        (&manager, "zeek/cluster/worker"),
    ] {
        let end = Instant::now() + WAIT;
        while !a
            .ep
            .peer_subscriptions()
            .unwrap()
            .iter()
            .any(|t| t.as_str() == b)
        {
            assert!(Instant::now() < end, "{} never learned of {b}", a.name);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Traffic: workers send events to the manager and logs to the logger; the manager
    // broadcasts to the workers and talks to the proxy; the proxy logs; workers fill the store.
    const N: u64 = 40;
    for (k, w) in [&w1, &w2].into_iter().enumerate() {
        for i in 0..N {
            w.ep.publish("zeek/cluster/manager", event("Known::host_found", i))
                .unwrap();
            w.ep.publish("zeek/logs/Conn::LOG", log_write("Conn::LOG", i))
                .unwrap();
        }
        for i in 0..5u64 {
            clones[k].put(format!("10.0.{k}.{i}"), Data::Count(i), None);
        }
    }
    for i in 0..N / 2 {
        manager
            .ep
            .publish("zeek/cluster/worker", event("Cluster::hello", i))
            .unwrap();
        manager
            .ep
            .publish("zeek/cluster/node/proxy/", event("Intel::insert", i))
            .unwrap();
        proxy
            .ep
            .publish("zeek/logs/Intel::LOG", log_write("Intel::LOG", i))
            .unwrap();
    }
    let end = Instant::now() + WAIT;
    let keys = || match master.keys() {
        Ok(Data::Set(s)) => s.len(),
        _ => 0,
    };
    while keys() < 10 {
        assert!(Instant::now() < end, "the master never got every put");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(manager.counter.wait_for(2 * N, WAIT) >= 2 * N);
    assert_eq!(logger.counter.wait_for(2 * N + N / 2, WAIT), 2 * N + N / 2);
    assert_eq!(proxy.counter.wait_for(N / 2, WAIT), N / 2);
    // What the logger and the proxy (no store traffic) received, by sender, for comparing
    // with the configuration generated from the recordings.
    let by_name = |n: &Node| -> BTreeMap<String, u64> {
        let names: BTreeMap<_, _> = [&manager, &logger, &proxy, &w1, &w2]
            .iter()
            .map(|x| (x.ep.node_id(), x.name.to_owned()))
            .collect();
        n.counter
            .by_sender()
            .into_iter()
            .map(|(id, c)| (names[&id].clone(), c.total()))
            .collect()
    };
    let live_logger = by_name(&logger);
    let live_proxy = by_name(&proxy);
    let ids: BTreeMap<&str, String> = [&manager, &logger, &proxy, &w1, &w2]
        .iter()
        .map(|x| (x.name, x.ep.node_id().to_string()))
        .collect();
    drop(clones);
    drop(master);
    for n in [manager, logger, proxy, w1, w2] {
        n.ep.shutdown();
    }

    // The recordings: Broker's five files, with what each node did.
    let names = ["logger", "manager", "proxy", "worker-1", "worker-2"];
    for name in names {
        let d = dir.join(name);
        assert_eq!(lines(&d.join("id.txt")), [ids[name].clone()], "{name}");
        let conf = std::fs::read_to_string(d.join("broker.conf")).unwrap();
        assert!(conf.contains("forward = false"), "{conf}");
        let topics = lines(&d.join("topics.txt"));
        assert!(
            topics.contains(&format!("zeek/cluster/node/{name}/")),
            "{name}: {topics:?}"
        );
    }
    let w1_peers = lines(&dir.join("worker-1/peers.txt"));
    let mut want: Vec<String> = ["manager", "logger", "proxy"]
        .iter()
        .map(|n| ids[n].clone())
        .collect();
    want.sort();
    let mut got = w1_peers.clone();
    got.sort();
    assert_eq!(got, want, "worker-1's peers");
    assert!(
        lines(&dir.join("manager/topics.txt")).contains(&"known/hosts/<$>/data/master".to_owned())
    );
    let stats = |name: &str| {
        GeneratorStats::of(&std::fs::read(dir.join(name).join("messages.dat")).unwrap()).unwrap()
    };
    let w = stats("worker-1");
    assert_eq!(w.version, 2);
    assert_eq!(w.data_entries, 2 * N);
    assert!(
        w.command_entries >= 5,
        "the clone's puts and channel: {w:?}"
    );
    assert_eq!(w.by_topic["zeek/cluster/manager"], N);
    assert!(stats("manager").command_entries > 0, "the master's updates");
    assert_eq!(stats("proxy").data_entries, N / 2);
    assert_eq!(stats("logger").entries(), 0);

    // The generated configuration expects what the live run delivered.
    let dirs: Vec<String> = names
        .iter()
        .map(|n| dir.join(n).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["bench", "cluster", "--generate-config"];
    args.extend(dirs.iter().map(String::as_str));
    let (ok, config, err) = run(&args);
    assert!(ok, "{err}");
    let section = |node: &str| -> String {
        let start = config.find(&format!("  {node} {{")).unwrap();
        config[start..].split("\n  }").next().unwrap().to_owned()
    };
    for (node, live) in [("logger", &live_logger), ("proxy", &live_proxy)] {
        let s = section(node);
        for (from, n) in live {
            assert!(
                s.contains(&format!("      {from} = {n}\n")),
                "{node} from {from} = {n}: {s}"
            );
        }
    }
    assert!(
        section("logger").contains("id = <local:logger>"),
        "{config}"
    );
    std::fs::write(dir.join("cluster.conf"), &config).unwrap();

    // The replay delivers exactly that, in one process and as processes.
    let mut args = vec!["bench", "cluster", "--timeout", "60"];
    args.extend(dirs.iter().map(String::as_str));
    let (ok, out, err) = run(&args);
    assert!(ok, "{out}\n{err}");
    let received = check_replay(&out);
    assert_eq!(received["logger"], live_logger.values().sum::<u64>());
    let conf_path = dir.join("cluster.conf");
    let (ok, out, err) = run(&[
        "bench",
        "cluster",
        "--processes",
        "--repeat",
        "2",
        "--timeout",
        "60",
        "-c",
        conf_path.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    // Each file replayed twice: twice the messages at every node.
    let twice: BTreeMap<String, u64> = received.iter().map(|(k, v)| (k.clone(), 2 * v)).collect();
    assert_eq!(check_replay(&out), twice);
    assert!(out.contains("\"mode\":\"processes\""), "{out}");
    // `BROKER_KEEP_RECORDING=DIR` keeps the recording there (for `broker bench cluster`).
    if let Some(keep) = std::env::var_os("BROKER_KEEP_RECORDING") {
        let keep = PathBuf::from(keep);
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for name in names {
            let to = keep.join(name);
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(dir.join(name)).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
            }
        }
        eprintln!("the recording is in {}", keep.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cap_ends_the_recording_and_the_files_stay_valid() {
    let dir = scratch("cap");
    let mut c = Configuration {
        disable_ssl: true,
        ..Configuration::default()
    };
    c.apply_env([
        (
            "BROKER_RECORDING_DIRECTORY".to_owned(),
            dir.to_string_lossy().into_owned(),
        ),
        (
            "BROKER_OUTPUT_GENERATOR_FILE_CAP".to_owned(),
            "7".to_owned(),
        ),
    ])
    .unwrap();
    let ep = Endpoint::new(c).unwrap();
    ep.publish_batch((0..20u64).map(|i| ("/cap", i))).unwrap();
    ep.publish("/cap/late", "after the cap").unwrap();
    let end = Instant::now() + WAIT;
    while ep.metrics().unwrap().recorded < 7 {
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(5));
    }
    ep.shutdown();
    let s = GeneratorStats::of(&std::fs::read(dir.join("messages.dat")).unwrap()).unwrap();
    assert_eq!(s.entries(), 7);
    assert_eq!(s.by_topic.keys().collect::<Vec<_>>(), ["/cap"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_directory_that_cannot_be_made_is_an_error_at_start() {
    let file = scratch("notadir").join("file");
    std::fs::write(&file, "x").unwrap();
    let c = Configuration {
        recording_directory: Some(file.join("sub")),
        ..Configuration::default()
    };
    let Err(e) = Endpoint::new(c) else {
        panic!("an endpoint recording into a file's subdirectory started");
    };
    assert!(e.to_string().contains("cannot record into"), "{e}");
}

/// The configuration with the manager expecting one message more from the worker than it
/// gets.
fn config_with_wrong_count(config: &str) -> String {
    let from = "  manager {\n    id = <tcp://127.0.0.1:8000>\n    num-inputs = 12\n    inputs-by-node {\n      logger = 4\n      proxy = 4\n      worker = 4\n";
    assert!(config.contains(from), "{config}");
    config.replace(
        from,
        &from
            .replace("num-inputs = 12", "num-inputs = 13")
            .replace("worker = 4", "worker = 5"),
    )
}

/// Broker's fan-out benchmark: every subscriber gets every message; one JSON line.
#[test]
fn fan_out_delivers_every_message_to_every_subscriber() {
    let (ok, out, err) = run(&[
        "bench",
        "fan-out",
        "-p",
        "3",
        "-m",
        "500",
        "-s",
        "100",
        "--disable-ssl",
    ]);
    assert!(ok, "{out}\n{err}");
    let json = out.lines().find(|l| l.starts_with('{')).unwrap();
    assert!(
        json.starts_with(
            "{\"bench\":\"fan-out\",\"subscribers\":3,\"messages\":500,\"payload\":100,"
        ),
        "{json}"
    );
}

/// Broker's own test recording: four nodes of a Zeek cluster (DNS traffic, 2020), with the
/// configuration Broker's `generate-config` printed for it.
#[test]
fn a_recording_by_cpp_broker_generates_brokers_configuration_and_replays() {
    let zip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/zeek-dns-traffic-recording.zip");
    let dir = scratch("dns");
    match Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&dir)
        .status()
    {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("skipped: `unzip` is not installed (cargo xtask ci installs it)");
            return;
        }
    }
    let rec = dir.join("zeek-dns-traffic-recording");
    let expected = std::fs::read_to_string(rec.join("expected-tpl.conf"))
        .unwrap()
        .replace("%(path)s", rec.to_str().unwrap());
    let dirs: Vec<String> = ["worker", "proxy", "manager", "logger"]
        .iter()
        .map(|n| rec.join(n).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["bench", "cluster", "--generate-config"];
    args.extend(dirs.iter().map(String::as_str));
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert_eq!(out, expected);
    let conf = dir.join("cluster.conf");
    std::fs::write(&conf, &out).unwrap();
    let (ok, out, err) = run(&["bench", "cluster", "-c", conf.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    let received = check_replay(&out);
    assert_eq!(received["logger"], 194);
    assert_eq!(received["worker"], 19);
    // A count that cannot be met: an error with the counts at the timeout, not a hang.
    let wrong = config_with_wrong_count(&std::fs::read_to_string(&conf).unwrap());
    let wrong_conf = dir.join("wrong.conf");
    std::fs::write(&wrong_conf, wrong).unwrap();
    let started = Instant::now();
    let (ok, out, err) = run(&[
        "bench",
        "cluster",
        "--timeout",
        "3",
        "-c",
        wrong_conf.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("the run timed out")
            && err.contains("manager expected 5 from worker, received 4"),
        "{err}"
    );
    assert!(out.contains("\"complete\":false"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let (ok, out, _) = run(&[
        "bench",
        "cluster",
        "--dump-stats",
        "-c",
        conf.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(
        out.contains("├── entries: 42\n|   ├── data-entries: 33\n|   └── command-entries: 9"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
