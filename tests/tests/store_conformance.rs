//! The event store contract, run against SQLite and PostgreSQL alike.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use medledger_commands::store::{AppendRequest, EventStore, ExpectedVersion, Guard, NewEvent, StoreError};
use medledger_tests::Backend;
use serde_json::json;

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "TestHappened",
        1,
        json!({"n": n}),
        json!({"client": "system"}),
        Utc::now(),
    )
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

medledger_tests::on_both_backends!(
    a_stale_expected_version_is_a_conflict_and_writes_nothing,
    a_multi_stream_append_commits_together_or_not_at_all,
    a_stream_reads_back_in_version_order,
    appending_the_same_event_ids_again_returns_the_first_result,
    a_guard_refuses_a_second_owner_in_the_same_transaction,
    readers_never_skip_or_reorder_under_concurrent_writers,
    group_commit_keeps_each_request_all_or_nothing,
    bad_requests_are_refused_without_writing,
    bulk_inserts_keep_every_row_of_any_batch_size,
    an_abandoned_transaction_writes_nothing_and_blocks_nobody,
    an_open_read_model_transaction_holds_back_no_append,
);

async fn a_stale_expected_version_is_a_conflict_and_writes_nothing(b: &Backend) {
    let store = b.store().await;
    let r = store
        .append(AppendRequest::stream(
            "order-1",
            ExpectedVersion::NoStream,
            events(0..2),
        ))
        .await
        .unwrap();
    assert_eq!((r.first_position, r.last_position), (1, 2));
    assert_eq!(r.stream_versions, vec![("order-1".to_string(), 2)]);

    let stale = store
        .append(AppendRequest::stream(
            "order-1",
            ExpectedVersion::Exact(1),
            events(2..3),
        ))
        .await;
    assert!(
        matches!(stale, Err(StoreError::WrongExpectedVersion { actual: 2, .. })),
        "{stale:?}"
    );
    let again = store
        .append(AppendRequest::stream(
            "order-1",
            ExpectedVersion::NoStream,
            events(2..3),
        ))
        .await;
    assert!(matches!(again, Err(StoreError::WrongExpectedVersion { .. })));
    assert_eq!(store.head_position().await.unwrap(), 2);
    assert_eq!(store.read_stream("order-1", 0).await.unwrap().len(), 2);

    let ok = store
        .append(AppendRequest::stream(
            "order-1",
            ExpectedVersion::Exact(2),
            events(2..3),
        ))
        .await
        .unwrap();
    assert_eq!(ok.last_position, 3);
    let any = store
        .append(AppendRequest::stream("order-1", ExpectedVersion::Any, events(3..4)))
        .await
        .unwrap();
    assert_eq!(any.stream_versions[0].1, 4);
}

async fn a_multi_stream_append_commits_together_or_not_at_all(b: &Backend) {
    let store = b.store().await;
    store
        .append(AppendRequest::stream("b-1", ExpectedVersion::NoStream, events(0..1)))
        .await
        .unwrap();
    // The second stream's expectation is wrong: neither stream may change.
    let refused = store
        .append(
            AppendRequest::stream("a-1", ExpectedVersion::NoStream, events(1..3)).and_stream(
                "b-1",
                ExpectedVersion::NoStream,
                events(3..4),
            ),
        )
        .await;
    assert!(refused.is_err());
    assert!(store.read_stream("a-1", 0).await.unwrap().is_empty());
    assert_eq!(store.head_position().await.unwrap(), 1);

    let r = store
        .append(
            AppendRequest::stream("a-1", ExpectedVersion::NoStream, events(1..3)).and_stream(
                "b-1",
                ExpectedVersion::Exact(1),
                events(3..4),
            ),
        )
        .await
        .unwrap();
    assert_eq!((r.first_position, r.last_position), (2, 4));
    let all = store.read_all(0, 100).await.unwrap();
    let streams: Vec<_> = all.iter().map(|e| (e.stream_id.as_str(), e.stream_version)).collect();
    assert_eq!(streams, vec![("b-1", 1), ("a-1", 1), ("a-1", 2), ("b-1", 2)]);
}

async fn a_stream_reads_back_in_version_order(b: &Backend) {
    let store = b.store().await;
    for i in 0..5u64 {
        store
            .append(AppendRequest::stream(
                "s-1",
                ExpectedVersion::Any,
                events(i * 3..i * 3 + 3),
            ))
            .await
            .unwrap();
        store
            .append(AppendRequest::stream("other-1", ExpectedVersion::Any, events(100..101)))
            .await
            .unwrap();
    }
    let read = store.read_stream("s-1", 0).await.unwrap();
    let versions: Vec<u64> = read.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=15).collect::<Vec<_>>());
    let ns: Vec<u64> = read.iter().map(|e| e.payload["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (0..15).collect::<Vec<_>>());
    assert_eq!(store.read_stream("s-1", 13).await.unwrap().len(), 2);
    assert!(store.read_stream("missing-1", 0).await.unwrap().is_empty());
    // The head of a stream: its first events only, in version order.
    let head = store.read_stream_head("s-1", 2).await.unwrap();
    assert_eq!(head.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(head[0].payload["n"], 0);
    assert_eq!(store.read_stream_head("s-1", 100).await.unwrap().len(), 15);
    assert!(store.read_stream_head("missing-1", 1).await.unwrap().is_empty());
}

async fn appending_the_same_event_ids_again_returns_the_first_result(b: &Backend) {
    let store = b.store().await;
    let request = AppendRequest::stream("pay-1", ExpectedVersion::NoStream, events(0..3));
    let first = store.append(request.clone()).await.unwrap();
    store
        .append(AppendRequest::stream("pay-1", ExpectedVersion::Any, events(3..4)))
        .await
        .unwrap();
    // A retried request (same ids, now-stale expectation) is a no-op with the first result.
    let second = store.append(request.clone()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(store.head_position().await.unwrap(), 4);

    // Mixing a known id with new ones is refused, not half-applied.
    let mut mixed = events(5..7);
    mixed[0].event_id = request.streams[0].events[0].event_id;
    let refused = store
        .append(AppendRequest::stream("pay-1", ExpectedVersion::Any, mixed))
        .await;
    assert!(matches!(refused, Err(StoreError::DuplicateEventMismatch(_))));
    assert_eq!(store.head_position().await.unwrap(), 4);
}

async fn a_guard_refuses_a_second_owner_in_the_same_transaction(b: &Backend) {
    let store = b.store().await;
    let claim = |owner: &str| Guard::Claim {
        scope: "login".into(),
        key: "dr.wang".into(),
        owner: owner.into(),
    };
    store
        .append(
            AppendRequest::stream("account-1", ExpectedVersion::NoStream, events(0..1)).with_guard(claim("account-1")),
        )
        .await
        .unwrap();
    let taken = store
        .append(
            AppendRequest::stream("account-2", ExpectedVersion::NoStream, events(1..2)).with_guard(claim("account-2")),
        )
        .await;
    assert!(matches!(taken, Err(StoreError::GuardTaken { .. })), "{taken:?}");
    assert!(store.read_stream("account-2", 0).await.unwrap().is_empty());
    assert_eq!(
        store.guard_owner("login", "dr.wang").await.unwrap().as_deref(),
        Some("account-1")
    );

    // The owner may claim again; a release frees the key for others.
    store
        .append(
            AppendRequest::stream("account-1", ExpectedVersion::Any, events(2..3))
                .with_guard(claim("account-1"))
                .with_guard(Guard::Release {
                    scope: "login".into(),
                    key: "dr.wang".into(),
                }),
        )
        .await
        .unwrap();
    assert_eq!(store.guard_owner("login", "dr.wang").await.unwrap(), None);
    store
        .append(
            AppendRequest::stream("account-2", ExpectedVersion::NoStream, events(3..4)).with_guard(claim("account-2")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.guard_owner("login", "dr.wang").await.unwrap().as_deref(),
        Some("account-2")
    );

    // Two requests racing for one key in the same group commit: exactly one wins.
    let race = |owner: &'static str| {
        let store = store.clone();
        async move {
            store
                .append(
                    AppendRequest::stream(format!("{owner}-x"), ExpectedVersion::NoStream, events(9..10)).with_guard(
                        Guard::Claim {
                            scope: "login".into(),
                            key: "dr.li".into(),
                            owner: owner.into(),
                        },
                    ),
                )
                .await
        }
    };
    let (x, y) = tokio::join!(race("alpha"), race("beta"));
    assert!(x.is_ok() != y.is_ok(), "exactly one claim must win: {x:?} {y:?}");
}

/// Many writers append concurrently (on PostgreSQL through two store
/// instances, i.e. two independent connection pools and group-commit
/// writers, as two processes would); a reader follows `read_all` the whole
/// time. It must see every event exactly once, in the order a final read
/// reports, with dense positions.
async fn readers_never_skip_or_reorder_under_concurrent_writers(b: &Backend) {
    let stores: Vec<Arc<dyn EventStore>> = match b {
        Backend::Sqlite(_) => vec![b.store().await],
        Backend::Postgres(_) => vec![b.store().await, b.store().await],
    };
    const WRITERS: usize = 16;
    const APPENDS: u64 = 150;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = stores[0].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let batch = store.read_all(cursor, 97).await.unwrap();
                if batch.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                for e in batch {
                    cursor = e.global_position;
                    seen.push((e.global_position, e.event_id));
                }
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = stores[w % stores.len()].clone();
        writers.push(tokio::spawn(async move {
            for i in 0..APPENDS {
                let size = 1 + (i % 3);
                store
                    .append(AppendRequest::stream(
                        format!("w-{w}"),
                        ExpectedVersion::Exact(if i == 0 { 0 } else { (0..i).map(|j| 1 + j % 3).sum() }),
                        events(0..size),
                    ))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let total: u64 = (0..APPENDS).map(|j| 1 + j % 3).sum::<u64>() * WRITERS as u64;
    assert_eq!(
        seen.len() as u64,
        total,
        "the follower saw a different number of events"
    );
    let positions: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        positions,
        (1..=total).collect::<Vec<_>>(),
        "positions must be dense and in order"
    );
    let ids: HashSet<_> = seen.iter().map(|s| s.1).collect();
    assert_eq!(ids.len() as u64, total, "an event was seen twice");
    let mut final_read = Vec::new();
    let mut cursor = 0;
    loop {
        let batch = stores[0].read_all(cursor, 1000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        cursor = batch.last().unwrap().global_position;
        final_read.extend(batch.into_iter().map(|e| (e.global_position, e.event_id)));
    }
    assert_eq!(seen, final_read, "the order observed while writing changed afterwards");
    for w in 0..WRITERS {
        let versions: Vec<u64> = stores[0]
            .read_stream(&format!("w-{w}"), 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    }
}

async fn group_commit_keeps_each_request_all_or_nothing(b: &Backend) {
    let store = b.store().await;
    store
        .append(AppendRequest::stream(
            "shared-1",
            ExpectedVersion::NoStream,
            events(0..1),
        ))
        .await
        .unwrap();
    // 40 requests race with the same expectation: exactly one may win; the
    // rest conflict and leave nothing behind, even though they commit in
    // shared transactions.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        AppendRequest::stream("shared-1", ExpectedVersion::Exact(1), events(i..i + 2)).and_stream(
                            format!("side-{i}"),
                            ExpectedVersion::NoStream,
                            events(0..1),
                        ),
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.read_stream("shared-1", 0).await.unwrap().len(), 3);
    assert_eq!(store.head_position().await.unwrap(), 4);
}

async fn bad_requests_are_refused_without_writing(b: &Backend) {
    let store = b.store().await;
    for bad in [
        AppendRequest::stream("nocategory", ExpectedVersion::Any, events(0..1)),
        AppendRequest::stream("Upper-1", ExpectedVersion::Any, events(0..1)),
        AppendRequest::stream("empty-1", ExpectedVersion::Any, vec![]),
        AppendRequest::stream("twice-1", ExpectedVersion::Any, events(0..1)).and_stream(
            "twice-1",
            ExpectedVersion::Any,
            events(1..2),
        ),
    ] {
        let r = store.append(bad).await;
        assert!(matches!(r, Err(StoreError::InvalidRequest(_))), "{r:?}");
    }
    let mut dup = events(0..2);
    dup[1].event_id = dup[0].event_id;
    assert!(store
        .append(AppendRequest::stream("dup-1", ExpectedVersion::Any, dup))
        .await
        .is_err());
    assert_eq!(store.head_position().await.unwrap(), 0);
}

/// `DbTx::insert_rows` (the read models' bulk writes) sends any number of
/// rows in power-of-two chunks; every row lands once, conflicts are left to
/// the statement's tail, and values that are not whole rows are an error.
async fn bulk_inserts_keep_every_row_of_any_batch_size(b: &Backend) {
    use medledger_commands::db::Arg;
    let db = b.store().await.db();
    let table = format!("bulk_{}", uuid::Uuid::new_v4().simple());
    db.execute(
        &format!("CREATE TABLE {table} (k BIGINT PRIMARY KEY, label TEXT, extra TEXT)"),
        &[],
    )
    .await
    .unwrap();
    let head = format!("INSERT INTO {table} (k, label, extra)");
    let mut next = 0i64;
    for n in [1usize, 2, 3, 255, 256, 257, 300, 1000] {
        let mut tx = db.begin().await.unwrap();
        let args: Vec<Arg> = (next..next + n as i64)
            .flat_map(|k| [Arg::I64(k), Arg::from(format!("row {k}")), Arg::Null])
            .collect();
        let inserted = tx
            .insert_rows(&head, 3, &args, "ON CONFLICT (k) DO NOTHING")
            .await
            .unwrap();
        assert_eq!(inserted, n as u64, "{n} rows");
        // The same rows again: the tail decides (nothing new).
        let again = tx
            .insert_rows(&head, 3, &args, "ON CONFLICT (k) DO NOTHING")
            .await
            .unwrap();
        assert_eq!(again, 0);
        tx.commit().await.unwrap();
        next += n as i64;
    }
    let row = db
        .fetch_optional(&format!("SELECT COUNT(*), COUNT(DISTINCT k), MAX(k) FROM {table}"), &[])
        .await
        .unwrap()
        .unwrap();
    let (count, distinct, max): (i64, i64, i64) = (row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap());
    assert_eq!((count, distinct, max), (next, next, next - 1));
    let label: String = db
        .fetch_optional(&format!("SELECT label FROM {table} WHERE k = 777"), &[])
        .await
        .unwrap()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(label, "row 777");

    let mut tx = db.begin().await.unwrap();
    let ragged = tx.insert_rows(&head, 3, &[Arg::I64(-1), Arg::Null], "").await;
    assert!(ragged.is_err(), "two values are not a row of three");
    drop(tx);
    db.execute(&format!("DROP TABLE {table}"), &[]).await.unwrap();
}

/// A read-model transaction dropped uncommitted (its task failed or was cancelled)
/// is rolled back: none of its writes stay, and the next writer — an append, a
/// statement, another transaction — goes ahead at once.
async fn an_abandoned_transaction_writes_nothing_and_blocks_nobody(b: &Backend) {
    let store = b.store().await;
    let db = store.db();
    let table = format!("abandoned_{}", uuid::Uuid::new_v4().simple());
    db.execute(&format!("CREATE TABLE {table} (k BIGINT PRIMARY KEY)"), &[])
        .await
        .unwrap();
    let insert = format!("INSERT INTO {table} (k) VALUES ($1)");
    for k in 0..3i64 {
        let mut tx = db.begin().await.unwrap();
        tx.execute(&insert, &[k.into()]).await.unwrap();
        drop(tx);
        // A task cancelled mid-transaction, as a dropped request is.
        let db2 = db.clone();
        let insert2 = insert.clone();
        let cancelled = tokio::spawn(async move {
            let mut tx = db2.begin().await.unwrap();
            tx.execute(&insert2, &[(100 + k).into()]).await.unwrap();
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancelled.abort();
        let _ = cancelled.await;
    }
    let next = async {
        store
            .append(AppendRequest::stream(
                "after-abandon",
                ExpectedVersion::NoStream,
                events(0..1),
            ))
            .await
            .unwrap();
        db.execute(&insert, &[7i64.into()]).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.execute(&insert, &[8i64.into()]).await.unwrap();
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("writers went ahead after the abandoned transactions");
    let rows: Vec<i64> = db
        .fetch_all(&format!("SELECT k FROM {table} ORDER BY k"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
    assert_eq!(rows, vec![7, 8], "only the committed rows");
    db.execute(&format!("DROP TABLE {table}"), &[]).await.unwrap();
}

/// Read models are applied beside the log, not in its way (on SQLite they have a
/// file and a writer of their own): while a read-model transaction is open and
/// has written, appends commit and read back, and the transaction's rows show
/// only once it commits.
async fn an_open_read_model_transaction_holds_back_no_append(b: &Backend) {
    let store = b.store().await;
    let models = store.read_models();
    let table = format!("beside_{}", uuid::Uuid::new_v4().simple());
    models
        .execute(&format!("CREATE TABLE {table} (k BIGINT PRIMARY KEY)"), &[])
        .await
        .unwrap();
    let mut tx = models.begin().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} (k) VALUES (1)"), &[])
        .await
        .unwrap();
    for n in 0..3u64 {
        let appended = tokio::time::timeout(
            Duration::from_secs(5),
            store.append(AppendRequest::stream(
                "beside-models",
                ExpectedVersion::from_loaded(n),
                events(n..n + 1),
            )),
        )
        .await
        .expect("an append went ahead while a read-model transaction was open")
        .unwrap();
        assert_eq!(appended.last_position, store.head_position().await.unwrap());
    }
    assert_eq!(store.read_stream("beside-models", 0).await.unwrap().len(), 3);
    let count = format!("SELECT COUNT(*) FROM {table}");
    let rows = |db: medledger_commands::db::Db| {
        let count = count.clone();
        async move {
            db.fetch_optional(&count, &[])
                .await
                .unwrap()
                .unwrap()
                .get::<i64>(0)
                .unwrap()
        }
    };
    assert_eq!(rows(models.clone()).await, 0, "not committed yet");
    tx.commit().await.unwrap();
    assert_eq!(rows(models.clone()).await, 1);
    models.execute(&format!("DROP TABLE {table}"), &[]).await.unwrap();
}

/// The group-commit writer keeps a PostgreSQL connection of its own. When that
/// connection is cut (a restart, a failover, `pg_terminate_backend`), the next
/// append still succeeds on a new one, and nothing is appended twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_postgres_event_writer_reconnects_when_its_connection_is_cut() {
    medledger_tests::init_logs();
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let store = backend.store().await;
    store
        .append(AppendRequest::stream("cut-1", ExpectedVersion::NoStream, events(0..2)))
        .await
        .unwrap();
    let medledger_commands::db::Db::Postgres(pool) = store.db() else {
        unreachable!()
    };
    // Every other session on this test database: the pool's and the writer's.
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the writer's session was there to cut");
    let retry = NewEvent::new(
        "TestHappened",
        1,
        json!({"n": 2}),
        json!({"client": "system"}),
        Utc::now(),
    );
    let r = store
        .append(AppendRequest::stream(
            "cut-1",
            ExpectedVersion::Exact(2),
            vec![retry.clone()],
        ))
        .await
        .expect("appended on a new connection");
    assert_eq!((r.first_position, r.last_position), (3, 3));
    // The same event again is answered with the first result, not appended again.
    let again = store
        .append(AppendRequest::stream("cut-1", ExpectedVersion::Any, vec![retry]))
        .await
        .unwrap();
    assert_eq!(again.last_position, 3);
    assert_eq!(store.head_position().await.unwrap(), 3);
    assert_eq!(store.read_stream("cut-1", 0).await.unwrap().len(), 3);
}

/// Under sustained appends with readers always at work, SQLite's write-ahead log
/// must still start over: the log is only reset when a writer begins while no
/// reader reads from it, a moment that sustained ingest may never give (a
/// benchmark run grew it to 8 GB). Past its limit the checkpointer waits for the
/// readers and empties it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_log_stays_bounded_while_readers_never_stop() {
    use medledger_commands::store::sqlite::SqliteEventStore;
    use std::sync::atomic::{AtomicBool, Ordering};

    const LIMIT: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medledger.db");
    let store = Arc::new(SqliteEventStore::open_with_wal_limit(&path, LIMIT).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    store.read_all(0, 200).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let wal = dir.path().join("medledger.db-wal");
    let padding = "x".repeat(16 * 1024);
    let mut largest_late = 0u64;
    let rounds = 80u64;
    for round in 0..rounds {
        let batch = (0..8)
            .map(|i| {
                NewEvent::new(
                    "TestHappened",
                    1,
                    json!({"n": round * 8 + i, "padding": padding}),
                    json!({"client": "system"}),
                    Utc::now(),
                )
            })
            .collect();
        store
            .append(AppendRequest::stream(
                format!("wal-{round}"),
                ExpectedVersion::NoStream,
                batch,
            ))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        if round >= rounds / 2 {
            largest_late = largest_late.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0, "the readers kept reading");
    }
    // About 10 MB were appended in 3 to 4 s; between two checkpoint rounds
    // (500 ms) the log grows by about 1.5 MB past its limit at most.
    assert!(
        largest_late <= 4 * LIMIT,
        "the log grew to {largest_late} bytes with a limit of {LIMIT}"
    );
}
