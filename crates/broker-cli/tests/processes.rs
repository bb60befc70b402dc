//! The `broker` binary in separate processes over loopback: a node, subscribers and
//! publishers, values in the literal syntax, stdin input, and a clean Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BROKER: &str = env!("CARGO_BIN_EXE_broker");
const WAIT: Duration = Duration::from_secs(20);

/// A child process that is killed when the test ends, with its stdout lines on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(BROKER)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out: ChildStdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx }
    }

    /// The next line that contains `needle`.
    fn expect(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no line containing {needle:?}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node() -> (Proc, String) {
    node_with(&[])
}

fn node_with(extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["node", "--port", "0"];
    args.extend_from_slice(extra);
    let node = Proc::spawn(&args);
    let line = node.expect("listening on");
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    (node, addr)
}

fn publish(addr: &str, args: &[&str]) {
    let status = Command::new(BROKER)
        .arg("publish")
        .args(args)
        .args(["--peer", addr])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn publisher_node_and_subscriber_in_three_processes() {
    let (node, addr) = node();
    let sub = Proc::spawn(&["subscribe", "/t", "--peer", &addr]);
    node.expect("peer_added");
    publish(
        &addr,
        &[
            "/t/x",
            "42",
            "+42",
            r#""a b""#,
            "(1.2.3.4, 80/tcp)",
            "{1, 2}",
        ],
    );
    // Broker's text format: count and integer both print 42, strings raw.
    assert_eq!(sub.expect("/t/x"), "/t/x: 42");
    assert_eq!(sub.expect("/t/x"), "/t/x: 42");
    assert_eq!(sub.expect("/t/x"), "/t/x: a b");
    assert_eq!(sub.expect("/t/x"), "/t/x: (1.2.3.4, 80/tcp)");
    assert_eq!(sub.expect("/t/x"), "/t/x: {1, 2}");
}

#[test]
fn publish_reads_values_from_stdin() {
    let (node, addr) = node();
    let sub = Proc::spawn(&["subscribe", "/in", "--peer", &addr]);
    node.expect("peer_added");
    let mut p = Command::new(BROKER)
        .args(["publish", "/in", "--peer", &addr])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin
        .take()
        .unwrap()
        .write_all(b"1\n\n2ns\n\"three\"\n")
        .unwrap();
    assert!(p.wait().unwrap().success());
    assert_eq!(sub.expect("/in"), "/in: 1");
    assert_eq!(sub.expect("/in"), "/in: 2ns");
    assert_eq!(sub.expect("/in"), "/in: three");
}

#[test]
fn two_nodes_route_between_processes() {
    let (a, addr_a) = node();
    let b = Proc::spawn(&["node", "--port", "0", "--peer", &addr_a]);
    let line = b.expect("listening on");
    let addr_b = line.rsplit(' ').next().unwrap().to_owned();
    a.expect("peer_added");
    // Subscriber behind B, publisher at A: the message crosses both nodes.
    let sub = Proc::spawn(&["subscribe", "/two", "--peer", &addr_b]);
    b.expect("peer_added");
    // A learns of the subscriber (and its filter, in the same link state) through B.
    a.expect("endpoint_discovered");
    publish(&addr_a, &["/two", "7"]);
    assert_eq!(sub.expect("/two"), "/two: 7");
}

#[test]
fn bad_values_are_refused_with_the_position() {
    let out = Command::new(BROKER)
        .args(["publish", "/t", "(1, 2", "--peer", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad value") && err.contains("at byte 5"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_a_node_cleanly() {
    let (mut node, _) = node();
    let pid = node.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    node.expect("shutting down");
    let status = node.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Node, subscriber and publisher processes with the same connection flags: a value must get
/// from the publisher to the subscriber.
fn round_trip(flags: &[&str]) {
    let (node, addr) = node_with(flags);
    let mut sub_args = vec!["subscribe", "/x", "--peer", &addr];
    sub_args.extend_from_slice(flags);
    let sub = Proc::spawn(&sub_args);
    node.expect("peer_added");
    publish(&addr, &[&["/x", "1"][..], flags].concat());
    assert_eq!(sub.expect("/x"), "/x: 1");
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn processes_over_plain_tcp_anonymous_tls_and_certificates() {
    round_trip(&["--disable-ssl"]);
    round_trip(&[]);
    let dir = broker_e2e::temp_dir("cli-certs");
    let (ca, ca_key, ca_path) = broker_e2e::ca(&dir, "cli test CA");
    let (cert, key) = broker_e2e::issue(&dir, "cli", &ca, &ca_key, Some("pw"));
    let tls = [
        "--ssl-cafile",
        s(&ca_path),
        "--ssl-certificate",
        s(&cert),
        "--ssl-key",
        s(&key),
        "--ssl-passphrase",
        "pw",
    ];
    round_trip(&tls);

    // A publisher whose certificate comes from another CA is refused.
    let (node, addr) = node_with(&tls);
    let (other, other_key, other_path) = broker_e2e::ca(&dir, "other CA");
    let (mcert, mkey) = broker_e2e::issue(&dir, "mallory", &other, &other_key, None);
    let out = Command::new(BROKER)
        .args([
            "publish",
            "/x",
            "1",
            "--peer",
            &addr,
            "--ssl-cafile",
            s(&other_path),
            "--ssl-certificate",
            s(&mcert),
            "--ssl-key",
            s(&mkey),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS handshake failed"), "{err}");
    node.expect("error peer_invalid");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_file_and_environment() {
    let dir = broker_e2e::temp_dir("cli-config");
    let file = dir.join("broker.toml");
    std::fs::write(&file, "[broker]\ndisable_ssl = true\nttl = 5\n").unwrap();
    let (node, addr) = node_with(&["--config", s(&file)]);
    // The subscriber gets plain TCP from the environment, the publisher from the file.
    let mut child = Command::new(BROKER)
        .args(["subscribe", "/cfg", "--peer", &addr])
        .env("BROKER_DISABLE_SSL", "true")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let sub = Proc { child, lines: rx };
    node.expect("peer_added");
    publish(&addr, &["/cfg", "3", "--config", s(&file)]);
    assert_eq!(sub.expect("/cfg"), "/cfg: 3");
    // The environment wins over the file: TLS back on, so the plain node refuses.
    let out = Command::new(BROKER)
        .args([
            "publish",
            "/cfg",
            "4",
            "--peer",
            &addr,
            "--config",
            s(&file),
        ])
        .env("BROKER_DISABLE_SSL", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // A bad file is a clear error.
    std::fs::write(&file, "tll = 5\n").unwrap();
    let out = Command::new(BROKER)
        .args(["node", "--config", s(&file)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `broker node --subscribe` prints what arrives, as `broker-node -t` would receive it;
/// `broker publish` takes negative literals as values; a string that is not UTF-8 prints as
/// its raw bytes, as C++ Broker prints it.
#[test]
fn a_node_prints_what_it_subscribes_negative_literals_and_raw_strings() {
    use std::io::Read;
    let mut child = Command::new(BROKER)
        .args(["node", "--port", "0", "--subscribe", "/n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<u8> = Vec::new();
    let mut wait_for = |needle: &[u8]| {
        let end = std::time::Instant::now() + WAIT;
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend(chunk),
                Err(_) => panic!(
                    "no {:?} in {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
        seen.clone()
    };
    let first = wait_for(b"listening on");
    let text = String::from_utf8_lossy(&first);
    let line = text.lines().find(|l| l.contains("listening on")).unwrap();
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    publish(
        &addr,
        &["/n/x", "-5", "-1.5", "-1ns", "-inf", r#""a\xffb""#],
    );
    let all = wait_for(b"/n/x: a\xffb\n");
    let text = String::from_utf8_lossy(&all);
    let values: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("/n/x: "))
        .collect();
    assert_eq!(values, ["-5", "-1.500000", "-1ns", "-inf", "a\u{fffd}b"]);
    let _ = child.kill();
    let _ = child.wait();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens 1,000 connections that announce a frame as large as a handshake may be and send
/// 1,000 bytes of it, then never finish their handshakes.
fn unfinished_handshakes(addr: &str) -> Vec<std::net::TcpStream> {
    let mut frame = (60_000u32).to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(7u8, 1000));
    (0..1000)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect(addr).ok()?;
            let _ = s.write_all(&frame);
            Some(s)
        })
        .collect()
}

/// 1,000 unfinished handshakes keep the node's memory bounded (at most `max_handshakes` are
/// held, evicted oldest first), the node still peers and delivers for a well-behaved endpoint
/// meanwhile, and its memory does not grow with a second flood after the first closed (what
/// was freed is used again: the allocator keeps freed pages for reuse rather than returning
/// them at once).
#[test]
fn a_flood_of_unfinished_handshakes_keeps_memory_bounded_and_the_node_serving() {
    let (node, addr) = node_with(&["--disable-ssl"]);
    let pid = node.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(pid);
    let flood = unfinished_handshakes(&addr);
    std::thread::sleep(Duration::from_millis(500));
    let peak = rss_kib(pid);
    // Meanwhile a subscriber and a publisher get through and exchange a message.
    let sub = Proc::spawn(&["subscribe", "/flood", "--peer", &addr, "--disable-ssl"]);
    node.expect("peer_added");
    let publish = |i: u64| {
        let status = Command::new(BROKER)
            .args([
                "publish",
                "/flood",
                &i.to_string(),
                "--peer",
                &addr,
                "--disable-ssl",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(sub.expect("/flood"), format!("/flood: {i}"));
    };
    publish(1);
    drop(flood);
    // Two more floods: memory comes back to use, it does not grow with each (no leak).
    let mut peaks = vec![peak];
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        let again = unfinished_handshakes(&addr);
        std::thread::sleep(Duration::from_millis(500));
        peaks.push(rss_kib(pid));
        drop(again);
    }
    publish(2);
    eprintln!("node RSS: {before} KiB before, with each of three floods of 1,000 unfinished handshakes {peaks:?} KiB");
    assert!(
        peak < before + 32 * 1024,
        "1,000 unfinished handshakes grew the node from {before} to {peak} KiB"
    );
    assert!(
        peaks[2] < peaks[0].max(peaks[1]) + 4 * 1024,
        "each flood grew the node further: {peaks:?} KiB"
    );
}

/// `broker bench` runs every case end to end (small counts, plain TCP) and its JSON line
/// carries a number for each (the async-Stream and the two-publishers-two-subscribers cases
/// included), so the benchmark the performance notes rely on cannot rot.
#[test]
fn bench_runs_every_case_and_reports_each() {
    let out = Command::new(BROKER)
        .args([
            "bench",
            "--messages",
            "2000",
            "--rounds",
            "50",
            "--disable-ssl",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "bench failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    for key in [
        "tput_2proc_small_msgs",
        "pub_peak_rss_kib",
        "tput_inproc_small_msgs",
        "tput_local_small_msgs",
        "lat_2proc_p50_us",
        "node_flood_rss_peak_kib",
        "tput_stream_small_msgs",
        "lat_stream_p50_us",
        "tput_singles_small_msgs",
        "trickle_cpu_pct",
        "tput_contention_small_msgs",
        "tput_recording_off_msgs",
        "tput_recording_on_msgs",
    ] {
        let at = json
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} missing: {json}"));
        let value = &json[at + key.len() + 3..];
        assert!(
            value.starts_with(|c: char| c.is_ascii_digit()),
            "{key} is not a number: {json}"
        );
    }
}

/// A node driven over stdin (`--control`), with a persistent master: commands answer on
/// stdout, a second node subscribed through it gets what the first publishes, a bad command
/// gets a `control-error` and changes nothing, `quit` ends the node, and a restart with the
/// same `--store-dir` finds every write.
#[test]
fn a_node_under_control_publishes_writes_and_keeps_its_store() {
    let dir = broker_e2e::temp_dir("cli-control");
    let start = |dir: &std::path::Path| {
        let mut child = Command::new(BROKER)
            .args(["node", "--port", "0", "--disable-ssl", "--control"])
            .args(["--master-store", "kv", "--store-backend", "sqlite"])
            .arg("--store-dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (Proc { child, lines: rx }, stdin)
    };
    let (node, mut input) = start(&dir);
    let addr = node
        .expect("listening on")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let (sub, _) = node_with(&["--disable-ssl", "--peer", &addr, "--subscribe", "/c"]);
    sub.expect("peer_added");
    let mut say = |line: &str| writeln!(input, "{line}").unwrap();
    say("peers");
    assert_eq!(node.expect("peers "), "peers 1");
    say(r#"put kv "a key" (1, "two")"#);
    say("put kv 7 +3");
    say("erase kv 7");
    say("put kv 8 -4");
    say("await-idle kv 5");
    assert_eq!(node.expect("idle "), "idle kv true");
    say("keys kv");
    assert_eq!(node.expect("keys "), "keys kv {8, a key}");
    say("frobnicate");
    assert!(node.expect("control-error").contains("unknown command"));
    say("put nope 1 2");
    assert!(node.expect("control-error").contains("no store named"));
    say("publish /c/x (1, 2)");
    assert_eq!(sub.expect("/c/x"), "/c/x: (1, 2)");
    say("echo marker 1");
    assert_eq!(node.expect("marker"), "marker 1");
    say("quit");
    node.expect("shutting down");
    let mut node = node;
    assert!(node.child.wait().unwrap().success());
    drop(input);
    // Same directory, new process: the writes are there.
    let (again, mut input) = start(&dir);
    again.expect("listening on");
    writeln!(input, "keys kv").unwrap();
    assert_eq!(again.expect("keys "), "keys kv {8, a key}");
    drop(input); // The end of input ends the node too.
    let mut again = again;
    assert!(again.child.wait().unwrap().success());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `broker node --bus`: a bus client's publication (MessagePack) reaches a Broker peer of the
/// node as a Broker value.
#[test]
fn a_node_bridges_its_bus_to_broker_peers() {
    use std::os::unix::net::UnixStream;
    let dir = broker_e2e::temp_dir("cli-bus");
    let sock = dir.join("node-bus.sock");
    let (node, addr) = node_with(&["--disable-ssl", "--bus", sock.to_str().unwrap()]);
    node.expect("bus listening on");
    let (sub, _) = node_with(&["--disable-ssl", "--peer", &addr, "--subscribe", "zeek/"]);
    sub.expect("peer_added");
    // busrt's handshake by hand, then PUBLISH frames until the peer prints one.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut hello = [0u8; 3];
    std::io::Read::read_exact(&mut s, &mut hello).unwrap();
    s.write_all(&hello).unwrap();
    let mut ok = [0u8; 1];
    std::io::Read::read_exact(&mut s, &mut ok).unwrap();
    s.write_all(&[6, 0]).unwrap();
    s.write_all(b"sensor").unwrap();
    std::io::Read::read_exact(&mut s, &mut ok).unwrap();
    assert_eq!(ok, [1]);
    let value: broker_data::Data = "(1, \"two\", 10.0.0.1, 80/tcp)".parse().unwrap();
    let mut body = b"zeek/test\0".to_vec();
    body.extend(broker_bus::msgpack::to_vec(&value));
    let mut frame = 1u32.to_le_bytes().to_vec();
    frame.push(0x01);
    frame.extend((body.len() as u32).to_le_bytes());
    frame.extend(&body);
    let (tx, rx) = mpsc::channel();
    let printed = std::thread::spawn(move || {
        let line = sub.expect("zeek/test");
        let _ = tx.send(());
        line
    });
    for _ in 0..100 {
        s.write_all(&frame).unwrap();
        if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            break;
        }
    }
    assert_eq!(
        printed.join().unwrap(),
        "zeek/test: (1, two, 10.0.0.1, 80/tcp)"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `broker bus ARGS…`: whether it succeeded, and what it printed.
fn bus_command(args: &[&str]) -> (bool, String) {
    let out = Command::new(BROKER)
        .args(["bus"])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `broker bus serve` and the client commands against it: info, publish to a listener, send
/// (and a missing target failing), call with parameters, bench.
#[test]
fn bus_commands_against_a_bus_server() {
    let dir = broker_e2e::temp_dir("cli-bus-cmds");
    let sock = dir.join("cmds.sock");
    let path = sock.to_str().unwrap().to_owned();
    let server = Proc::spawn(&["bus", "serve", "-B", &path]);
    server.expect("bus listening on");
    let run = bus_command;
    let (ok, out) = run(&["info", &path]);
    assert!(
        ok && out.contains("info: {author -> ") && out.contains("name -> .broker"),
        "{out}"
    );
    let listener = Proc::spawn(&["bus", "listen", &path, "-n", "lis", "-t", "a/#"]);
    listener.expect("listening as lis");
    assert_eq!(
        run(&["publish", &path, "a/b", "hello"]),
        (true, "OK\n".into())
    );
    listener.expect("Publish from");
    assert_eq!(listener.expect("topic:"), "topic: a/b");
    assert_eq!(listener.expect("STR:"), "STR: hello");
    assert_eq!(
        run(&["send", &path, "lis", "direct"]),
        (true, "OK\n".into())
    );
    assert_eq!(listener.expect("STR: direct"), "STR: direct");
    assert!(
        !run(&["send", &path, "nobody", "x"]).0,
        "a missing target fails"
    );
    let (ok, out) = run(&[
        "call",
        &path,
        ".broker",
        "benchmark.test",
        "a=1",
        "b=-2",
        "c=x",
        "d=true",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out, "{a -> 1, b -> -2, c -> x, d -> T}\n");
    assert!(!run(&["call", &path, ".broker", "nope"]).0);
    let (ok, out) = run(&["bench", &path, "-i", "2000"]);
    assert!(
        ok && out.contains("send+recv.qos.no") && out.contains("rpc.call"),
        "{out}"
    );
    drop(listener);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// `broker bus serve -B ws://…` (busrt's WebSocket transport) beside a UNIX socket: the client
/// commands reach it by URL, and a `wss://` listener without `[tls]` is refused at start.
#[test]
fn bus_serve_listens_on_websocket() {
    let dir = broker_e2e::temp_dir("cli-bus-ws");
    let sock = dir.join("ws.sock");
    let path = sock.to_str().unwrap().to_owned();
    let server = Proc::spawn(&["bus", "serve", "-B", &path, "-B", "ws://127.0.0.1:0"]);
    let line = server.expect("bus listening on ws://");
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    let run = bus_command;
    let (ok, out) = run(&["info", &url]);
    assert!(ok && out.contains("name -> .broker"), "{out}");
    // A listener on the socket, a publisher over WebSocket.
    let listener = Proc::spawn(&["bus", "listen", &path, "-n", "lis", "-t", "w/#"]);
    listener.expect("listening as lis");
    assert_eq!(run(&["publish", &url, "w/x", "hi"]), (true, "OK\n".into()));
    assert_eq!(listener.expect("STR:"), "STR: hi");
    drop(listener);
    drop(server);
    let out = Command::new(BROKER)
        .args(["bus", "serve", "-B", "wss://127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a [tls] table"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}
