//! The async API, driven from the caller's own (single-threaded) runtime: listening, peering,
//! publishing with backpressure, receiving through the `Stream`, unpeering, shutting down.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use broker::{Configuration, Endpoint, StatusCode, StatusEvent};
use broker_data::Data;
use futures_core::Stream;

async fn next(sub: &mut broker::Subscriber) -> Option<broker::DataMessage> {
    poll_fn(|cx| Pin::new(&mut *sub).poll_next(cx)).await
}

#[test]
fn the_async_api_works_from_another_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, b) = (
            Endpoint::new(Configuration::default()).unwrap(),
            Endpoint::new(Configuration::default()).unwrap(),
        );
        let statuses = a.make_status_subscriber(true).unwrap();
        let port = b.listen_async("127.0.0.1", 0).await.unwrap();
        let mut sub = b.make_subscriber(&["/async"], Some(100_000)).unwrap();
        assert_eq!(
            a.peer_async("127.0.0.1", port, None).await.unwrap(),
            b.node_id()
        );
        for i in 0..10_000u64 {
            a.publish_async("/async", Data::Count(i)).await.unwrap();
        }
        a.publish_batch_async((10_000..10_010u64).map(|i| ("/async", Data::Count(i))))
            .await
            .unwrap();
        for i in 0..10_010u64 {
            let m = tokio::time::timeout(Duration::from_secs(10), next(&mut sub))
                .await
                .expect("in time")
                .expect("open");
            assert_eq!(*m.data, Data::Count(i));
        }
        assert!(a.unpeer_async("127.0.0.1", port).await.unwrap());
        let removed = statuses
            .poll()
            .into_iter()
            .chain(std::iter::from_fn(|| {
                statuses.get_timeout(Duration::from_secs(5))
            }))
            .any(|e| {
                matches!(
                    e,
                    StatusEvent::Status {
                        code: StatusCode::PeerRemoved,
                        ..
                    }
                )
            });
        assert!(removed);
        b.shutdown_async().await;
        // After shutdown the stream ends.
        assert!(tokio::time::timeout(Duration::from_secs(5), next(&mut sub))
            .await
            .expect("ends")
            .is_none());
        a.shutdown_async().await;
    });
}

/// A subscriber polled as an async `Stream` takes the same low-latency path as a blocking
/// `get`: with nothing queued, it reads its endpoint's sockets itself while it waits (as the
/// metrics' `read_while_waiting` shows), and messages sent one at a time arrive in order. With
/// the fast paths off (a whole test run with BROKER_FAST_PATHS=false) it never reads.
#[test]
fn a_stream_reads_sockets_itself_while_it_waits() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = (
        Endpoint::new(Configuration::default()).unwrap(),
        Endpoint::new(Configuration::default()).unwrap(),
    );
    let mut sub = b.make_subscriber(&["/lone"], None).unwrap();
    let port = b.listen("127.0.0.1", 0).unwrap();
    a.peer("127.0.0.1", port, None).unwrap();
    // Whether the stream spins (and so reads) is adaptive: on a machine so busy that a yield
    // takes longer than the spin, it sleeps at once. A few rounds give it the chance.
    for round in 0..3u64 {
        let first = round * 2_000;
        let sender = {
            let a = a.clone();
            std::thread::spawn(move || {
                for i in first..first + 2_000 {
                    std::thread::sleep(Duration::from_micros(30));
                    a.publish("/lone", Data::Count(i)).unwrap();
                }
            })
        };
        rt.block_on(async {
            for i in first..first + 2_000 {
                let m = tokio::time::timeout(Duration::from_secs(10), next(&mut sub))
                    .await
                    .expect("in time")
                    .expect("open");
                assert_eq!(*m.data, Data::Count(i));
            }
        });
        sender.join().unwrap();
        if !b.fast_paths() || b.metrics().unwrap().read_while_waiting > 0 {
            break;
        }
    }
    let read = b.metrics().unwrap().read_while_waiting;
    if b.fast_paths() {
        assert!(read > 0, "the stream never read a socket itself");
    } else {
        assert_eq!(read, 0);
    }
}
