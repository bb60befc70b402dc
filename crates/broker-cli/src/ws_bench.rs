//! `broker bench`'s WebSocket case: a WebSocket client (tokio-tungstenite, in this process)
//! and a native subscriber or publisher of one endpoint, over loopback. Small Zeek events
//! (`ping(count, "x")`, some 230 bytes of JSON): into the node (client → native subscriber),
//! out of it (native publisher → client), and ping-pong round trips.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker::{Configuration, Endpoint};
use broker_data::zeek::Event;
use broker_data::Data;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<TcpStream>;

fn event(i: u64) -> Data {
    Data::from(Event::new("ping", vec![Data::Count(i), Data::from("x")]))
}

async fn connect(port: u16, topics: &str) -> Result<Ws> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/v1/messages/json"), tcp)
            .await?;
    ws.send(Message::text(topics)).await?;
    let ack = next_text(&mut ws).await?;
    if !ack.starts_with(r#"{"type":"ack""#) {
        bail!("no ack: {ack}");
    }
    Ok(ws)
}

async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await? {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(_))) | None => bail!("closed"),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(_)) => {}
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Messages per second from a client into a native subscriber of the node.
fn into_node(ep: &Endpoint, port: u16, n: u64) -> Result<f64> {
    let sub = ep.make_subscriber(&["/bench/ws"], Some(65_536))?;
    let texts: Vec<String> = (0..256)
        .map(|i| broker_json::data_message("/bench/ws", &event(i)))
        .collect();
    let rt = runtime()?;
    let mut ws = rt.block_on(connect(port, "[]"))?;
    let drain = std::thread::spawn(move || crate::bench::drain(&sub, n));
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            ws.feed(Message::text(texts[(i % 256) as usize].clone()))
                .await?;
            if i % 256 == 255 {
                ws.flush().await?;
            }
        }
        ws.flush().await?;
        Ok::<_, anyhow::Error>(())
    })?;
    let end = drain
        .join()
        .map_err(|_| anyhow::anyhow!("drain panicked"))??;
    Ok(n as f64 / end.duration_since(start).as_secs_f64())
}

/// Messages per second from a native publisher of the node to a client. A client's buffer
/// drops (`web_socket_overflow_policy`) rather than holding the endpoint back, so the
/// publisher keeps at most half a buffer ahead of what the client has received.
fn out_of_node(ep: &Endpoint, port: u16, n: u64) -> Result<f64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let rt = runtime()?;
    let mut ws = rt.block_on(connect(port, r#"["/bench/out"]"#))?;
    let received = std::sync::Arc::new(AtomicU64::new(0));
    let ahead = (Configuration::load(None)?.web_socket_buffer_size / 2).max(1) as u64;
    let publisher = {
        let (ep, received) = (ep.clone(), received.clone());
        std::thread::spawn(move || -> Result<()> {
            let mut sent = 0;
            while sent < n {
                if sent - received.load(Ordering::Acquire) >= ahead {
                    std::thread::yield_now();
                    continue;
                }
                let k = (n - sent).min(256);
                ep.publish_batch((sent..sent + k).map(|i| ("/bench/out", event(i))))?;
                sent += k;
            }
            Ok(())
        })
    };
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            next_text(&mut ws).await?;
            received.store(i + 1, Ordering::Release);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let elapsed = start.elapsed();
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Round trips: the client publishes a ping, a native subscriber of the node answers with a
/// pong that the client receives.
fn ping_pong(ep: &Endpoint, port: u16, rounds: u64) -> Result<(Duration, Duration)> {
    let pings = ep.make_subscriber(&["/bench/ping"], Some(1024))?;
    let responder = {
        let ep = ep.clone();
        std::thread::spawn(move || {
            while let Some(m) = pings.get() {
                if ep.publish("/bench/pong", (*m.data).clone()).is_err() {
                    break;
                }
            }
        })
    };
    let rt = runtime()?;
    let mut rtts = rt.block_on(async {
        let mut ws = connect(port, r#"["/bench/pong"]"#).await?;
        let mut rtts = Vec::with_capacity(rounds as usize);
        for i in 0..rounds + rounds / 10 {
            let text = broker_json::data_message("/bench/ping", &event(i));
            let t = Instant::now();
            ws.send(Message::text(text)).await?;
            let pong = next_text(&mut ws).await.context("pong lost")?;
            // The first tenth warms up.
            if i >= rounds / 10 {
                rtts.push(t.elapsed());
            }
            if !pong.contains(&format!(r#""data":{i}}}"#)) {
                bail!("pong out of order: {pong}");
            }
        }
        Ok::<_, anyhow::Error>(rtts)
    })?;
    drop(responder);
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 - 1.0) * p).round() as usize];
    Ok((pct(0.5), pct(0.99)))
}

/// The WebSocket case: (client → node msg/s, node → client msg/s, ping-pong p50, p99).
pub(crate) fn run(ep: Endpoint, n: u64, rounds: u64) -> Result<(f64, f64, Duration, Duration)> {
    let port = ep.listen_websocket("127.0.0.1", 0)?;
    let into = into_node(&ep, port, n)?;
    let out = out_of_node(&ep, port, n)?;
    let (p50, p99) = ping_pong(&ep, port, rounds)?;
    ep.shutdown();
    Ok((into, out, p50, p99))
}
