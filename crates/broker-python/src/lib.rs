//! Python bindings of broker-rs: the native module `broker._broker` behind `import broker`.
//!
//! The package (`python/broker`) re-exports everything from here, so Broker's Python scripts
//! run unchanged: `Endpoint`, subscribers, publishers, statuses, stores, `Count`, `Port`,
//! `Topic`, `zeek.Event` and the conversions of Broker's documentation (see [`convert`]).
//! Build the wheel with `maturin build --release` in this directory, or install it with
//! `pip install ./crates/broker-python`.
//!
//! Blocking calls (`get`, `peer`, store reads, `await_idle`, …) release the interpreter while
//! they wait, and waits of subscribers and stores look for signals every 50 ms, so Ctrl-C
//! interrupts them.

#![forbid(unsafe_code)]

// Named only so that the portable wheel can enable its `vendored` feature (see Cargo.toml).
use openssl as _;

mod config;
mod convert;
mod endpoint;
mod publisher;
mod status;
mod store;
mod subscriber;
mod topic;
mod values;
mod wait;
mod zeek;

use pyo3::prelude::*;

/// The current time as a timezone-aware `datetime` (UTC).
#[pyfunction]
fn now(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    convert::now(py)
}

/// Whether a peer speaking Broker protocol `version` can peer with this module's endpoints
/// (`broker.Version.compatible`).
#[pyfunction]
fn compatible(version: u32) -> bool {
    version == PROTOCOL
}

/// Broker's protocol version that the wire codec speaks.
const PROTOCOL: u32 = 1;

#[pymodule]
fn _broker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(now, m)?)?;
    m.add_class::<convert::Count>()?;
    m.add_class::<convert::Port>()?;
    m.add_class::<convert::Enum>()?;
    m.add_class::<convert::PyData>()?;
    m.add_class::<values::PyAddress>()?;
    m.add_class::<values::PySubnet>()?;
    m.add_class::<values::PyTimespan>()?;
    m.add_class::<values::PyTimestamp>()?;
    m.add_class::<values::PySet>()?;
    m.add_class::<values::PyTable>()?;
    m.add_class::<values::PyVector>()?;
    // Broker's `Data.Type.None`, another name of `Nil` (a keyword in Rust's way here).
    let data_type = py.get_type::<values::PyDataType>();
    data_type.setattr("None", values::PyDataType::Nil)?;
    m.add_class::<topic::Topic>()?;
    m.add_class::<status::SC>()?;
    m.add_class::<status::EC>()?;
    m.add_class::<status::PeerStatus>()?;
    m.add_class::<status::PeerFlags>()?;
    m.add_class::<status::NetworkInfo>()?;
    m.add_class::<status::EndpointInfo>()?;
    m.add_class::<status::PeerInfo>()?;
    m.add_class::<status::Status>()?;
    m.add_class::<status::Error>()?;
    m.add_class::<config::BrokerOptions>()?;
    m.add_class::<config::Configuration>()?;
    m.add_class::<endpoint::Endpoint>()?;
    m.add_class::<subscriber::Subscriber>()?;
    m.add_class::<subscriber::StatusSubscriber>()?;
    m.add_class::<publisher::Publisher>()?;
    m.add_class::<store::Backend>()?;
    m.add_class::<store::Frontend>()?;
    m.add_class::<status::APIFlags>()?;
    m.add_class::<store::Store>()?;

    let zeek = PyModule::new(py, "zeek")?;
    zeek.add_class::<zeek::Event>()?;
    m.add_submodule(&zeek)?;

    let version = PyModule::new(py, "Version")?;
    let v = env!("CARGO_PKG_VERSION");
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    version.add("MAJOR", parts.next().unwrap_or(0))?;
    version.add("MINOR", parts.next().unwrap_or(0))?;
    version.add("PATCH", parts.next().unwrap_or(0))?;
    version.add("PROTOCOL", PROTOCOL)?;
    version.add("STRING", v)?;
    version.add_function(wrap_pyfunction!(compatible, &version)?)?;
    m.add_submodule(&version)?;
    Ok(())
}
