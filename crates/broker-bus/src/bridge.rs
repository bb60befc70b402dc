//! The bridge: a bus that is also a Broker endpoint. Bus topics under the configured
//! prefixes are Broker topics and back, payloads mapped between MessagePack and Broker's data
//! model ([`crate::msgpack`]), so that a busrt client in any language sends and receives Zeek
//! events. A payload that does not map is not dropped silently: the sender gets a message
//! saying why (`{"error": text, "topic": topic}`, MessagePack) and the bridge counts it.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_core::Stream;
use tokio::task::JoinHandle;

use crate::frame::{Kind, Qos};
use crate::server::{Bus, Error};

/// What crossed the bridge.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Bus publications published to Broker.
    pub to_broker: AtomicU64,
    /// Broker messages published on the bus.
    pub to_bus: AtomicU64,
    /// Bus publications whose payload was not a Broker value (each sender told).
    pub refused: AtomicU64,
}

/// A running bridge; dropping it stops it.
pub struct Bridge {
    tasks: Vec<JoinHandle<()>>,
    /// Its counters.
    pub stats: Arc<BridgeStats>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The bus patterns for a Broker topic prefix: `p/` → `p/#`; `p` → `p` and `p/#` (bus topics
/// match by segments, Broker's by string prefix).
pub fn bus_patterns(prefix: &str) -> Vec<String> {
    if prefix.is_empty() {
        vec!["#".to_owned()]
    } else if prefix.ends_with('/') {
        vec![format!("{prefix}#")]
    } else {
        vec![prefix.to_owned(), format!("{prefix}/#")]
    }
}

/// Bridges `bus` and `endpoint` for topics under `prefixes`, as the bus client `name`.
pub async fn bridge(
    bus: &Bus,
    endpoint: &broker::Endpoint,
    name: &str,
    prefixes: &[&str],
) -> Result<Bridge, Error> {
    let client = Arc::new(bus.register_client(name)?);
    let patterns: Vec<String> = prefixes.iter().flat_map(|p| bus_patterns(p)).collect();
    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    client.subscribe(&refs).await?;
    let mut subscriber = endpoint
        .make_subscriber(prefixes, None)
        .map_err(|e| Error {
            code: crate::frame::code::OTHER,
            message: format!("cannot subscribe the bridge at the endpoint: {e}"),
        })?;
    let stats = Arc::new(BridgeStats::default());
    // Bus → Broker.
    let to_broker = {
        let (client, ep, stats, me) = (
            client.clone(),
            endpoint.clone(),
            stats.clone(),
            name.to_owned(),
        );
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while client.recv_batch(&mut batch).await {
                for d in batch.drain(..) {
                    if d.kind() != Kind::Publish || d.sender() == me {
                        continue;
                    }
                    let topic = d.topic().unwrap_or_default();
                    match crate::msgpack::decode(d.payload()) {
                        Ok(value) => {
                            if let Err(e) = ep.publish_async(topic, value).await {
                                tracing::warn!(topic, error = %e, "bridge: cannot publish to Broker");
                                stats.refused.fetch_add(1, Ordering::Relaxed);
                                tell(&client, d.sender(), topic, &e.to_string()).await;
                            } else {
                                stats.to_broker.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                            tell(&client, d.sender(), topic, &e.to_string()).await;
                        }
                    }
                }
            }
        })
    };
    // Broker → bus.
    let to_bus = {
        let (client, stats) = (client.clone(), stats.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(m) = poll_fn(|cx| Pin::new(&mut subscriber).poll_next(cx)).await {
                buf.clear();
                crate::msgpack::encode(&m.data, &mut buf);
                if client
                    .publish(m.topic.as_str(), &buf, Qos::No)
                    .await
                    .is_err()
                {
                    break;
                }
                stats.to_bus.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    Ok(Bridge {
        tasks: vec![to_broker, to_bus],
        stats,
    })
}

/// Tells a bus client why its publication did not cross.
async fn tell(client: &crate::server::Client, to: &str, topic: &str, error: &str) {
    let text = |s: &str, out: &mut Vec<u8>| {
        crate::msgpack::encode(&broker_data::Data::String(s.into()), out);
    };
    let mut payload = vec![0x82];
    text("error", &mut payload);
    text(error, &mut payload);
    text("topic", &mut payload);
    text(topic, &mut payload);
    let _ = client.send(to, &payload, Qos::No).await;
}
