//! JetStream as transport: deduplication by event id, order, and outages.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use medledger_api::platform::Platform;
use medledger_commands::codec::Metadata;
use medledger_commands::identity;
use medledger_commands::relay::Publisher;
use medledger_commands::store::{AppendRequest, ExpectedVersion, NewEvent};
use medledger_domain::identity::ClientKind;
use medledger_projections::bus::nats::{NatsBus, NatsConfig};
use medledger_projections::bus::Bus;
use medledger_tests::{system_clock, Backend, NatsStream, OPERATOR_PASSWORD};
use serde_json::json;

async fn stream_messages(url: &str, stream: &str) -> u64 {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn republished_events_are_deduplicated_and_delivered_in_order() {
    medledger_tests::init_logs();
    let Some(n) = NatsStream::create().await else { return };
    let backend = Backend::sqlite();
    let store = backend.store().await;
    for i in 0..20u64 {
        let e = NewEvent::new(
            "TestHappened",
            1,
            json!({"n": i}),
            json!({"client": "system"}),
            Utc::now(),
        );
        store
            .append(AppendRequest::stream(
                format!("t-{}", i % 4),
                ExpectedVersion::Any,
                vec![e],
            ))
            .await
            .unwrap();
    }
    let events = store.read_all(0, 100).await.unwrap();
    let bus = NatsBus::connect(NatsConfig {
        url: n.url.clone(),
        stream: n.stream.clone(),
        subject_prefix: n.prefix.clone(),
    })
    .await
    .unwrap();
    let mut sub = bus.subscribe("order-check").await.unwrap();
    bus.publish(&events[..12]).await.unwrap();
    // The relay restarts and publishes everything again: nothing doubles.
    bus.publish(&events).await.unwrap();
    assert_eq!(stream_messages(&n.url, &n.stream).await, 20);
    assert!(bus.subject_for(&events[0]).ends_with(".unknown.TestHappened"));

    let mut got = Vec::new();
    while got.len() < 20 {
        let d = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        got.extend(d.events.iter().map(|e| e.global_position));
        d.ack().await;
    }
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    n.cleanup().await;
}

/// A private nats-server on a free port, so the test can stop and restart it.
struct OwnNats {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnNats {
    fn start(port: u16, dir: tempfile::TempDir) -> OwnNats {
        let bin = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .spawn()
            .expect("nats-server runs");
        OwnNats { child, port, dir }
    }

    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.dir)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_succeed_while_nats_is_down_and_the_relay_catches_up() {
    medledger_tests::init_logs();
    // Needs the shared NATS only to decide whether NATS tests run here.
    let Some(_shared) = NatsStream::create().await else {
        return;
    };
    let nats = OwnNats::start(free_port(), tempfile::tempdir().unwrap());
    let url = format!("nats://127.0.0.1:{}", nats.port);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let backend = Backend::sqlite();
    let mut config = backend.config(&medledger_commands::crypto::MasterKey::generate());
    config.nats_url = Some(url.clone());
    config.nats_stream = "OUTAGE".into();
    config.nats_subject_prefix = "outage".into();
    let mut platform = Platform::open(&config, system_clock()).await.unwrap();
    platform.start().await.unwrap();
    identity::bootstrap_operator(&platform.app, Some(OPERATOR_PASSWORD.into()))
        .await
        .unwrap();
    let relayed = |p: &Platform| {
        let store = p.app.store.clone();
        async move {
            store
                .checkpoint(medledger_commands::relay::RELAY_CHECKPOINT)
                .await
                .unwrap()
        }
    };
    for _ in 0..100 {
        if relayed(&platform).await == platform.app.store.head_position().await.unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stream_messages(&url, "OUTAGE").await,
        platform.app.store.head_position().await.unwrap()
    );

    let (port, dir) = nats.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        identity::login(
            &platform.app,
            "operator",
            OPERATOR_PASSWORD.into(),
            ClientKind::Pc,
            &Metadata::system(),
        )
        .await
        .expect("commands succeed without the bus");
    }
    assert!(!platform.bus.healthy().await);
    let head = platform.app.store.head_position().await.unwrap();
    // Projections keep up by reading the store while the bus is away.
    assert!(
        platform
            .runner
            .status()
            .wait_for("audit_log", head, Duration::from_secs(20))
            .await
    );
    assert!(relayed(&platform).await < head);

    let nats = OwnNats::start(port, dir);
    let mut caught_up = false;
    for _ in 0..300 {
        if relayed(&platform).await == head {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the relay published what it missed");
    assert_eq!(stream_messages(&url, "OUTAGE").await, head);
    platform.shutdown().await;
    let _ = Arc::new(nats.stop());
}
