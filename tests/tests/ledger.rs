//! Tamper evidence, upcasting and crypto-shredding, on both backends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use medledger_commands::codec::{EventCodec, Metadata, Upcasters};
use medledger_commands::crypto::{KeyStore, MasterKey};
use medledger_commands::relay::{Relay, RELAY_CHECKPOINT};
use medledger_commands::store::hashing::event_hash;
use medledger_commands::store::{AppendRequest, EventStore, ExpectedVersion, NewEvent};
use medledger_commands::verify::{verify, Failure};
use medledger_domain::identity::account::AccountEvent;
use medledger_domain::identity::{AccountRole, LoginName, Tenant};
use medledger_domain::organization::TimeZone;
use medledger_domain::pii::PersonalData;
use medledger_projections::bus::in_process::InProcessBus;
use medledger_tests::Backend;
use serde_json::json;
use uuid::Uuid;

medledger_tests::on_both_backends!(
    changing_one_byte_of_a_payload_is_named_by_verify,
    a_rewritten_hash_is_caught_by_the_global_seal,
    a_v1_event_is_read_as_v2_while_history_stays_as_written,
    forgetting_a_subject_erases_its_data_but_not_the_ledger,
    the_first_seals_of_a_subject_share_one_key_and_forgetting_stops_every_node,
    one_by_one_traffic_is_sealed_now_and_then_and_everything_published_at_stop,
);

async fn fill(store: &Arc<dyn EventStore>) {
    for i in 0..10u64 {
        store.append(test_event(i)).await.unwrap();
    }
}

fn test_event(i: u64) -> AppendRequest {
    let e = NewEvent::new(
        "TestHappened",
        1,
        json!({"n": i, "note": "ok"}),
        json!({"client": "system"}),
        Utc::now(),
    );
    AppendRequest::stream(format!("thing-{}", i % 3), ExpectedVersion::Any, vec![e])
}

/// Events arriving one by one (a modality sending over one association) keep
/// the relay caught up after nearly every commit. A seal is a durable write:
/// the relay seals at most once a second while events come and once they have
/// stopped for a moment, not at each catch-up; and when it stops, everything it
/// published is sealed and its checkpoint saved.
async fn one_by_one_traffic_is_sealed_now_and_then_and_everything_published_at_stop(b: &Backend) {
    let store = b.store().await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(
        Relay {
            store: store.clone(),
            publisher: Arc::new(InProcessBus::new()),
            seal_every: 10_000,
        }
        .run(rx),
    );
    for i in 0..40u64 {
        store.append(test_event(i)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let head = store.head_position().await.unwrap();
    for _ in 0..250 {
        let sealed = store.seals().await.unwrap().last().map(|s| s.position).unwrap_or(0);
        if sealed == head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seals = store.seals().await.unwrap();
    assert_eq!(seals.last().map(|s| s.position), Some(head), "sealed once quiet");
    assert!(seals.len() <= 5, "{} seals for {head} events", seals.len());
    assert_eq!(store.checkpoint(RELAY_CHECKPOINT).await.unwrap(), head);

    // Stopping right after more traffic: what was published is sealed and recorded.
    for i in 40..45u64 {
        store.append(test_event(i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(true).unwrap();
    relay.await.unwrap();
    let published = store.checkpoint(RELAY_CHECKPOINT).await.unwrap();
    assert!(published > head, "the relay published the last events");
    assert_eq!(store.seals().await.unwrap().last().map(|s| s.position), Some(published));
}

async fn relay_until_sealed(store: &Arc<dyn EventStore>) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let relay = Relay {
        store: store.clone(),
        publisher: Arc::new(InProcessBus::new()),
        seal_every: 4,
    };
    let task = tokio::spawn(relay.run(rx));
    let head = store.head_position().await.unwrap();
    for _ in 0..200 {
        let sealed = store.seals().await.unwrap().last().map(|s| s.position).unwrap_or(0);
        if store.checkpoint(RELAY_CHECKPOINT).await.unwrap() == head && sealed == head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).unwrap();
    task.await.unwrap();
}

async fn changing_one_byte_of_a_payload_is_named_by_verify(b: &Backend) {
    let store = b.store().await;
    fill(&store).await;
    relay_until_sealed(&store).await;
    let report = verify(store.as_ref()).await.unwrap();
    assert_eq!(report.failure, None);
    assert_eq!((report.events, report.streams), (10, 3));
    assert!(report.seals >= 1);

    let victim = &store.read_all(6, 1).await.unwrap()[0];
    let changed = store
        .db()
        .execute(
            "UPDATE events SET payload = replace(payload, '\"ok\"', '\"ko\"') WHERE global_position = $1",
            &medledger_commands::args![7i64],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let report = verify(store.as_ref()).await.unwrap();
    assert_eq!(
        report.failure,
        Some(Failure::EventHash {
            position: 7,
            event_id: victim.event_id.to_string(),
            stream_id: victim.stream_id.clone(),
        })
    );
    assert_eq!(report.events, 6, "verification stops at the first bad event");
}

async fn a_rewritten_hash_is_caught_by_the_global_seal(b: &Backend) {
    let store = b.store().await;
    fill(&store).await;
    relay_until_sealed(&store).await;
    // Rewrite the last event of a stream *and* its hash consistently: the
    // stream's chain still holds, but the global seal no longer does.
    let raw = store.read_all_raw(9, 1).await.unwrap().remove(0);
    let forged_payload = raw.payload.replace("\"ok\"", "\"ko\"");
    let prev = store.read_stream(&raw.stream_id, 0).await.unwrap();
    let prev_hash = &prev[prev.len() - 2].hash;
    let forged_hash = event_hash(
        prev_hash,
        &raw.event_id,
        &raw.stream_id,
        raw.stream_version,
        &raw.event_type,
        raw.schema_version,
        raw.recorded_at,
        &forged_payload,
        &raw.metadata,
    );
    store
        .db()
        .execute(
            "UPDATE events SET payload = $1, hash = $2 WHERE global_position = 10",
            &medledger_commands::args![forged_payload, forged_hash],
        )
        .await
        .unwrap();
    let report = verify(store.as_ref()).await.unwrap();
    assert!(
        matches!(report.failure, Some(Failure::Seal { position: 10 })),
        "{:?}",
        report.failure
    );
}

async fn a_v1_event_is_read_as_v2_while_history_stays_as_written(b: &Backend) {
    let store = b.store().await;
    let e = NewEvent::new(
        "ExamMeasured",
        1,
        json!({"size": 12}),
        json!({"client": "system"}),
        Utc::now(),
    );
    store
        .append(AppendRequest::stream("exam-1", ExpectedVersion::NoStream, vec![e]))
        .await
        .unwrap();
    // Version 2 renamed `size` to `size_mm` and added `unit`.
    let mut upcasters = Upcasters::platform();
    upcasters.set_current("ExamMeasured", 2);
    upcasters.add_step("ExamMeasured", 1, |mut v| {
        let size = v.as_object_mut().and_then(|m| m.remove("size")).unwrap_or_default();
        json!({"size_mm": size, "unit": "mm"})
    });
    let codec = EventCodec::new(KeyStore::new(store.db(), MasterKey::generate()), upcasters);
    let read = codec.open(store.read_stream("exam-1", 0).await.unwrap()).await.unwrap();
    assert_eq!(read[0].schema_version, 2);
    assert_eq!(read[0].payload, json!({"size_mm": 12, "unit": "mm"}));
    let raw = store.read_all_raw(0, 1).await.unwrap().remove(0);
    assert_eq!((raw.schema_version, raw.payload.as_str()), (1, r#"{"size":12}"#));
    assert_eq!(verify(store.as_ref()).await.unwrap().failure, None);

    // A version with no path to the current one is an error, not a guess.
    let mut gap = Upcasters::platform();
    gap.set_current("ExamMeasured", 3);
    gap.add_step("ExamMeasured", 1, |v| v);
    let codec = EventCodec::new(KeyStore::new(store.db(), MasterKey::generate()), gap);
    assert!(codec.open(store.read_stream("exam-1", 0).await.unwrap()).await.is_err());
}

async fn forgetting_a_subject_erases_its_data_but_not_the_ledger(b: &Backend) {
    let store = b.store().await;
    let codec = EventCodec::new(KeyStore::new(store.db(), MasterKey::generate()), Upcasters::platform());
    let subject = Uuid::now_v7();
    let registered = registration(subject, "张三 Zhang San");
    let new = codec
        .prepare(&[registered], &Metadata::system(), Utc::now())
        .await
        .unwrap();
    store
        .append(AppendRequest::stream(
            format!("account-{subject}"),
            ExpectedVersion::NoStream,
            new,
        ))
        .await
        .unwrap();
    let raw = store.read_all_raw(0, 1).await.unwrap().remove(0);
    assert!(
        !raw.payload.contains("Zhang San") && !raw.payload.contains("张三"),
        "stored in clear: {}",
        raw.payload
    );
    assert!(raw.payload.contains("ciphertext"));

    let opened = codec.open(store.read_all(0, 10).await.unwrap()).await.unwrap();
    assert_eq!(opened[0].payload["display_name"]["$pii"]["value"], "张三 Zhang San");

    assert!(codec.keys().destroy(subject, Utc::now()).await.unwrap());
    assert!(
        !codec.keys().destroy(subject, Utc::now()).await.unwrap(),
        "second destroy is a no-op"
    );
    let opened = codec.open(store.read_all(0, 10).await.unwrap()).await.unwrap();
    assert_eq!(
        opened[0].payload["display_name"]["$pii"],
        json!({"subject": subject, "erased": true})
    );
    let decoded: AccountEvent = medledger_commands::codec::decode(&opened[0]).unwrap();
    let AccountEvent::AccountRegistered { display_name, .. } = decoded else {
        panic!()
    };
    assert!(display_name.is_erased());

    // The log is untouched and still verifies.
    assert_eq!(store.read_all_raw(0, 1).await.unwrap()[0].payload, raw.payload);
    assert_eq!(verify(store.as_ref()).await.unwrap().failure, None);

    // No new personal data may be stored for a forgotten subject.
    let again = registration(subject, "Zhang San");
    assert!(codec.prepare(&[again], &Metadata::system(), Utc::now()).await.is_err());
}

/// An account registration carrying `name` as the subject's personal data.
fn registration(subject: Uuid, name: &str) -> AccountEvent {
    AccountEvent::AccountRegistered {
        account_id: subject,
        login: LoginName::parse("zhang.san").unwrap(),
        display_name: PersonalData::new(subject, name),
        phone: None,
        role: AccountRole::User,
        tenant: Tenant::PLATFORM,
        department_id: None,
        title: None,
        roles: vec![],
        time_zone: TimeZone::DEFAULT,
        password_hash: "$argon2id$placeholder-hash-not-used".into(),
        registered_by: None,
    }
}

fn key_id(event: &medledger_commands::store::NewEvent) -> String {
    event.payload["display_name"]["$pii"]["key_id"]
        .as_str()
        .expect("sealed")
        .to_string()
}

/// A study's instances arrive together: the first seals of a new subject, all at
/// once, share one key. Forgetting the subject refuses new personal data at once
/// on the node that forgot, and within the sealing cache's two seconds on another
/// node, which meanwhile can only seal what nobody can read.
async fn the_first_seals_of_a_subject_share_one_key_and_forgetting_stops_every_node(b: &Backend) {
    let store = b.store().await;
    let master = MasterKey::generate();
    let here = EventCodec::new(KeyStore::new(store.db(), master.clone()), Upcasters::platform());
    let elsewhere = EventCodec::new(KeyStore::new(store.db(), master), Upcasters::platform());
    let subject = Uuid::now_v7();

    let sealed = futures::future::join_all((0..16).map(|i| {
        let codec = if i % 2 == 0 { &here } else { &elsewhere };
        async move {
            codec
                .prepare(&[registration(subject, "李四 Li Si")], &Metadata::system(), Utc::now())
                .await
                .unwrap()
                .remove(0)
        }
    }))
    .await;
    let keys: std::collections::BTreeSet<String> = sealed.iter().map(key_id).collect();
    assert_eq!(keys.len(), 1, "one key for every first seal: {keys:?}");
    let rows: i64 = store
        .db()
        .fetch_optional(
            "SELECT COUNT(*) FROM subject_keys WHERE subject_id = $1",
            &medledger_commands::args![subject],
        )
        .await
        .unwrap()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(rows, 1);

    assert!(here.keys().destroy(subject, Utc::now()).await.unwrap());
    let refused = here
        .prepare(&[registration(subject, "Li Si")], &Metadata::system(), Utc::now())
        .await;
    assert!(refused.is_err(), "refused at once where it was forgotten");

    // The other node may still hold the key for sealing: whatever it seals now is
    // unreadable, as the key itself is gone.
    if let Ok(late) = elsewhere
        .prepare(&[registration(subject, "Li Si late")], &Metadata::system(), Utc::now())
        .await
    {
        store
            .append(AppendRequest::stream(
                format!("account-{subject}"),
                ExpectedVersion::Any,
                late,
            ))
            .await
            .unwrap();
        let all = store.read_all(0, 100).await.unwrap();
        for codec in [&here, &elsewhere] {
            let opened = codec.open(all.clone()).await.unwrap();
            let last = opened.last().unwrap();
            assert_eq!(
                last.payload["display_name"]["$pii"],
                json!({"subject": subject, "erased": true})
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let refused = elsewhere
        .prepare(&[registration(subject, "Li Si")], &Metadata::system(), Utc::now())
        .await;
    assert!(refused.is_err(), "refused on every node after the cache's two seconds");
}
