//! `medledger bench-ingest`: DICOM ingest throughput and query latency.
//!
//! Starts the platform (embedded by default; PostgreSQL + NATS JetStream with
//! `--database-url`/`--nats-url`) with its HTTP server and DICOM SCP on free loopback
//! ports, creates a hospital with a technician and a doctor, and measures:
//!
//! 1. **STOW-RS**: `--instances` synthetic CT instances (512×512, 16-bit, ≈525 KB, our own
//!    generator) sent by 4 concurrent clients, 50 instances per request;
//! 2. **C-STORE**: the same number of new instances sent by dcmtk's `storescu` with 1 and
//!    with 4 concurrent associations (skipped when `storescu` is not installed);
//! 3. **queries at scale**: `--studies` small single-instance studies are ingested directly,
//!    then worklist (`GET /api/v1/studies`, plain and keyword search) and QIDO-RS
//!    (`GET /dicomweb/studies?PatientName=…`) latency p50/p99, alone and while a STOW-RS
//!    ingest runs;
//! 4. **`/metadata`** of a 1,000-instance study.
//!
//! Instances are generated before each timed phase (files for storescu, bytes for
//! STOW-RS), so generation is not measured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use medledger_commands::clock::SystemClock;
use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use serde_json::{json, Value};

use crate::config::Config;
use crate::server::{self, DicomOptions, HttpOptions};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchIngestArgs {
    /// Instances per throughput measurement.
    #[arg(long, default_value_t = 5000)]
    pub instances: u32,
    /// Studies in the store for the query latency measurement.
    #[arg(long, default_value_t = 100_000)]
    pub studies: u32,
    /// Instances of the study whose `/metadata` is timed.
    #[arg(long, default_value_t = 1000)]
    pub metadata_instances: u32,
    /// PostgreSQL instead of the embedded SQLite store.
    #[arg(long)]
    pub database_url: Option<String>,
    /// NATS JetStream instead of the in-process bus.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Concurrent C-STORE associations, one measurement each (storescu processes).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4])]
    pub associations: Vec<usize>,
    /// Keep blobs in a folder of their own under this one (removed at the
    /// end) instead of beside the database under `TMPDIR`: to measure with the
    /// database and the blobs on different file systems.
    #[arg(long)]
    pub blob_dir: Option<PathBuf>,
}

const PASSWORD: &str = "Bench-Pass-2026!";
const BOUNDARY: &str = "medledger-bench";

pub async fn run(args: BenchIngestArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.associations.iter().all(|&a| a > 0),
        "--associations: each count must be at least 1"
    );
    let dir = std::env::temp_dir().join(format!("medledger-bench-ingest-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    // A JetStream stream of its own, deleted at the end like the data folder.
    let stream = format!("BENCH_{}", uuid::Uuid::new_v4().simple());
    let blobs = args
        .blob_dir
        .as_ref()
        .map(|d| d.join(format!("medledger-bench-blobs-{}", uuid::Uuid::new_v4())));
    let result = measure(&args, &dir, blobs.as_deref(), &stream).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(b) = &blobs {
        let _ = std::fs::remove_dir_all(b);
    }
    if let Some(url) = &args.nats_url {
        let config = medledger_projections::bus::nats::NatsConfig {
            stream,
            ..medledger_projections::bus::nats::NatsConfig::new(url.clone())
        };
        let deleted = match medledger_projections::bus::nats::NatsBus::connect(config).await {
            Ok(bus) => bus.delete_stream().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = deleted {
            eprintln!("[bench-ingest] the benchmark's JetStream stream was not deleted: {e}");
        }
    }
    result
}

struct Env {
    base: String,
    http: reqwest::Client,
    tech: String,
    doctor: String,
    hospital: uuid::Uuid,
    dicom_addr: std::net::SocketAddr,
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

async fn login(http: &reqwest::Client, base: &str, login: &str) -> anyhow::Result<String> {
    let v = post(
        http,
        format!("{base}/api/v1/auth/login"),
        None,
        json!({"login": login, "password": PASSWORD, "client": "pc"}),
    )
    .await?;
    Ok(v["token"].as_str().unwrap_or_default().to_string())
}

async fn set_up(base: &str) -> anyhow::Result<(reqwest::Client, String, String, uuid::Uuid)> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let operator = login(&http, base, "operator").await?;
    let person = |login: &str| json!({"login": login, "name": login, "password": PASSWORD});
    let a = post(
        &http,
        format!("{base}/api/v1/alliances"),
        Some(&operator),
        json!({"name": "Bench alliance", "admin": person("bench.alliance")}),
    )
    .await?;
    let alliance_admin = login(&http, base, "bench.alliance").await?;
    let h = post(
        &http,
        format!(
            "{base}/api/v1/alliances/{}/hospitals",
            a["id"].as_str().unwrap_or_default()
        ),
        Some(&alliance_admin),
        json!({"name": "Bench hospital", "code": "BENCH", "admin": person("bench.admin")}),
    )
    .await?;
    let hospital: uuid::Uuid = h["id"].as_str().unwrap_or_default().parse()?;
    let admin = login(&http, base, "bench.admin").await?;
    for (user, role) in [("bench.tech", "technician"), ("bench.doctor", "doctor")] {
        post(
            &http,
            format!("{base}/api/v1/hospitals/{hospital}/users"),
            Some(&admin),
            json!({"login": user, "name": user, "password": PASSWORD, "roles": [h["roles"][role]]}),
        )
        .await?;
    }
    post(
        &http,
        format!("{base}/api/v1/hospitals/{hospital}/dicom-peers"),
        Some(&admin),
        json!({"ae_title": "BENCHSCU"}),
    )
    .await?;
    let tech = login(&http, base, "bench.tech").await?;
    let doctor = login(&http, base, "bench.doctor").await?;
    Ok((http, tech, doctor, hospital))
}

fn ct(study: u32, instance: u32, seed: u64, size: u16) -> Vec<u8> {
    synthetic_ct(&CtSpec {
        patient_index: study,
        study_index: study,
        series_index: 0,
        instance_index: instance,
        seed,
        rows: size,
        columns: size,
        ..CtSpec::default()
    })
}

fn multipart(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 100).sum());
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// STOW-RS request bodies of `n` instances (seeded `seed`), 50 per request, built before
/// anything is timed (a modality does not generate its images on our CPU).
fn stow_bodies(n: u32, seed: u64, studies_of: u32) -> Vec<Vec<u8>> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(50)
        .map(|chunk| {
            multipart(
                &chunk
                    .iter()
                    .map(|i| ct(i / studies_of, *i, seed, 512))
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// One STOW-RS request, which must store every instance.
async fn post_stow(http: &reqwest::Client, url: &str, token: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let r = http
        .post(url)
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "STOW-RS answered {}", r.status());
    Ok(())
}

/// Send `bodies` over STOW-RS with 4 concurrent clients; (seconds, bytes).
async fn stow(env: &Env, bodies: Vec<Vec<u8>>) -> anyhow::Result<(f64, u64)> {
    let bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (queue, http, url, token) = (
            queue.clone(),
            env.http.clone(),
            format!("{}/dicomweb/studies", env.base),
            env.tech.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop() else {
                    return anyhow::Ok(());
                };
                post_stow(&http, &url, &token, body).await?;
            }
        }));
    }
    for c in clients {
        c.await??;
    }
    Ok((started.elapsed().as_secs_f64(), bytes))
}

/// storescu `files` with `associations` concurrent processes; seconds.
fn storescu(env: &Env, files: &[PathBuf], associations: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut children = Vec::new();
    for chunk in files.chunks(files.len().div_ceil(associations)) {
        let mut cmd = std::process::Command::new("storescu");
        // dcmtk leaves Nagle's algorithm on unless TCP_NODELAY is set: each C-STORE
        // then stalls on a delayed ACK (storescu → dcmtk's own storescp measures
        // ~22 instances/s without it, ~800/s with it on both ends).
        cmd.env("TCP_NODELAY", "1")
            .args(["-aet", "BENCHSCU", "-aec", "MEDLEDGER", "-xs"])
            .arg(env.dicom_addr.ip().to_string())
            .arg(env.dicom_addr.port().to_string())
            .args(chunk)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        children.push(cmd.spawn()?);
    }
    for c in children {
        let out = c.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "storescu failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

fn write_files(dir: &Path, n: u32, seed: u64) -> anyhow::Result<(Vec<PathBuf>, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut bytes = 0;
    for i in 0..n {
        let b = ct(i / 100, i, seed, 512);
        bytes += b.len() as u64;
        let p = dir.join(format!("{i:06}.dcm"));
        std::fs::write(&p, b)?;
        files.push(p);
    }
    Ok((files, bytes))
}

async fn latency(env: &Env, paths: &[String], rounds: usize) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    for round in 0..rounds {
        let path = &paths[round % paths.len()];
        let started = Instant::now();
        let r = env
            .http
            .get(format!("{}{path}", env.base))
            .bearer_auth(&env.doctor)
            .send()
            .await?;
        let status = r.status();
        let _ = r.bytes().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}");
        h.record(started.elapsed().as_micros() as u64)?;
    }
    Ok(h)
}

/// Per ingest phase (`medledger_ingest_phase_seconds`, from `/metrics`): (sum, count).
async fn phase_totals(env: &Env) -> anyhow::Result<std::collections::BTreeMap<String, (f64, f64)>> {
    let text = env
        .http
        .get(format!("{}/metrics", env.base))
        .send()
        .await?
        .text()
        .await?;
    let mut totals = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for line in text.lines() {
        // Group commits: batch size and commit time, as two more "phases".
        for (metric, name) in [
            ("medledger_append_batch_requests_", "appends per commit"),
            ("medledger_append_commit_seconds_", "commit"),
            ("medledger_append_writer_wait_seconds_", "writer wait"),
            ("medledger_append_sync_seconds_", "commit statement"),
        ] {
            if let Some(rest) = line.strip_prefix(metric) {
                let value = line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
                let entry = totals.entry(name.to_string()).or_default();
                if rest.starts_with("sum") {
                    entry.0 = value;
                } else if rest.starts_with("count") {
                    entry.1 = value;
                }
            }
        }
        // Who held the one SQLite writer, and waited for it: "writer held by …" (sum, uses).
        for (metric, what) in [
            ("medledger_sqlite_writer_held_seconds_", "writer held by"),
            ("medledger_sqlite_writer_wait_seconds_", "writer awaited by"),
        ] {
            let Some((stat, by)) = line
                .strip_prefix(metric)
                .and_then(|rest| rest.split_once("{by=\""))
                .map(|(stat, rest)| (stat, rest.split('"').next().unwrap_or_default()))
            else {
                continue;
            };
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            let entry = totals.entry(format!("{what} {by}")).or_default();
            match stat {
                "sum" => entry.0 = value,
                "count" => entry.1 = value,
                _ => {}
            }
        }
        // Time each read model held the writer (sum only: the share of the run).
        if let Some(rest) = line.strip_prefix("medledger_projection_apply_seconds_sum{projection=\"") {
            let name = rest.split('"').next().unwrap_or_default();
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            totals.entry(format!("projection {name}")).or_default().0 = value;
            continue;
        }
        let Some(rest) = line.strip_prefix("medledger_ingest_phase_seconds_") else {
            continue;
        };
        let (Some((kind, labels)), Some(value)) = (
            rest.split_once("{phase=\"")
                .map(|(k, r)| (k, r.split('"').next().unwrap_or_default())),
            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let entry = totals.entry(labels.to_string()).or_default();
        match kind {
            "sum" => entry.0 = value,
            "count" => entry.1 = value,
            _ => {}
        }
    }
    Ok(totals)
}

/// The mean time per instance each ingest phase took between two readings.
fn print_phases(
    before: &std::collections::BTreeMap<String, (f64, f64)>,
    after: &std::collections::BTreeMap<String, (f64, f64)>,
) {
    let parts: Vec<String> = ["inspect", "blob", "record", "visible"]
        .iter()
        .filter_map(|phase| {
            let (s1, c1) = after.get(*phase)?;
            let (s0, c0) = before.get(*phase).copied().unwrap_or_default();
            (c1 > &c0).then(|| format!("{phase} {:.2} ms", (s1 - s0) * 1000.0 / (c1 - c0)))
        })
        .collect();
    if !parts.is_empty() {
        println!(
            "  {:<44} {} (visible: per STOW-RS request, waiting for the read models)",
            "  mean per instance inside the server",
            parts.join(", ")
        );
    }
    let mean = |name: &str| {
        let (s1, c1) = after.get(name).copied().unwrap_or_default();
        let (s0, c0) = before.get(name).copied().unwrap_or_default();
        (c1 > c0).then(|| (s1 - s0) / (c1 - c0))
    };
    let busy: Vec<String> = after
        .iter()
        .filter_map(|(name, (s1, _))| {
            let name = name.strip_prefix("projection ")?;
            let s0 = before.get(&format!("projection {name}")).map(|t| t.0).unwrap_or(0.0);
            (s1 - s0 > 0.05).then(|| format!("{name} {:.1} s", s1 - s0))
        })
        .collect();
    if !busy.is_empty() {
        println!("  {:<44} {}", "  read-model transactions (total)", busy.join(", "));
    }
    // The SQLite writer's users: total time held and waited for, and uses, per user.
    let users: Vec<String> = after
        .iter()
        .filter_map(|(name, (s1, c1))| {
            let by = name.strip_prefix("writer held by ")?;
            let (s0, c0) = before.get(name).copied().unwrap_or_default();
            let waited = after
                .get(&format!("writer awaited by {by}"))
                .map(|t| t.0)
                .unwrap_or(0.0)
                - before
                    .get(&format!("writer awaited by {by}"))
                    .map(|t| t.0)
                    .unwrap_or(0.0);
            (c1 > &c0).then(|| {
                format!(
                    "{by} {:.1} s held, {waited:.1} s waiting, {} uses",
                    s1 - s0,
                    (c1 - c0) as u64
                )
            })
        })
        .collect();
    if !users.is_empty() {
        println!("  {:<44} {}", "  SQLite writer (total)", users.join("; "));
    }
    if let (Some(batch), Some(commit)) = (mean("appends per commit"), mean("commit")) {
        let parts: Vec<String> = [
            mean("writer wait").map(|w| format!("{:.2} ms of it waiting for the writing connection", w * 1000.0)),
            mean("commit statement").map(|s| format!("{:.2} ms in COMMIT, which syncs the log", s * 1000.0)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let wait = if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        };
        println!(
            "  {:<44} {batch:.1} appends per group commit, {:.2} ms per commit{wait}",
            "  event store",
            commit * 1000.0
        );
    }
}

/// CPU time this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn row(name: &str, h: &Histogram<u64>) {
    println!(
        "  {name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  (n={})",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.len()
    );
}

async fn measure(args: &BenchIngestArgs, dir: &Path, blobs: Option<&Path>, stream: &str) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut config = Config::embedded(dir.join("data"));
    if let Some(b) = blobs {
        std::fs::create_dir_all(b)?;
        config.blob_store = Some(b.display().to_string());
    }
    config.database_url = args.database_url.clone();
    config.nats_url = args.nats_url.clone();
    if args.nats_url.is_some() {
        config.nats_stream = stream.to_string();
        config.nats_subject_prefix = format!("bench{}", uuid::Uuid::new_v4().simple());
    }
    let deployment = match (&args.database_url, &args.nats_url) {
        (Some(_), Some(_)) => "PostgreSQL + NATS JetStream",
        (Some(_), None) => "PostgreSQL + in-process bus",
        _ => "embedded (SQLite + in-process bus)",
    };
    let blobs_at = blobs
        .map(|b| format!("; blobs under {}", b.display()))
        .unwrap_or_default();
    println!(
        "medledger bench-ingest — {cores} CPUs; {deployment}; {} instances per path{blobs_at}",
        args.instances
    );
    let running = server::start(
        &config,
        HttpOptions {
            addr: "127.0.0.1:0".parse()?,
            public_url: "http://127.0.0.1".into(),
            bootstrap_password: Some(PASSWORD.into()),
            stop_on_signal: false,
        },
        Arc::new(SystemClock),
    )
    .await?;
    let base = format!("http://{}", running.addr);
    let (http, tech, doctor, hospital) = set_up(&base).await?;
    let (stop_dicom, dicom_stopped) = tokio::sync::watch::channel(false);
    let (dicom_addr, dicom_task) = server::start_dicom(
        &running.app,
        &running.blobs,
        &DicomOptions {
            addr: "127.0.0.1:0".parse()?,
            ae_title: "MEDLEDGER".into(),
            calling_aes: vec![],
        },
        dicom_stopped,
    )
    .await?;
    let env = Env {
        base,
        http,
        tech,
        doctor,
        hospital,
        dicom_addr,
    };
    let n = args.instances;

    println!("\ningest ({n} instances of ≈525 KB each)");
    let before = phase_totals(&env).await?;
    let bodies = stow_bodies(n, 1, 100);
    let cpu = cpu_seconds();
    let (secs, bytes) = stow(&env, bodies).await?;
    let cpu = cpu_seconds() - cpu;
    println!(
        "  {:<44} {:>7.0} instances/s  {:>6.0} MB/s  ({secs:.1} s; CPU {:.0}% of {cores} cores, {:.2} ms per instance, clients included)",
        "STOW-RS, 4 clients × 50 per request",
        n as f64 / secs,
        bytes as f64 / 1e6 / secs,
        cpu / secs / cores.max(1) as f64 * 100.0,
        cpu * 1000.0 / n as f64
    );
    print_phases(&before, &phase_totals(&env).await?);
    if std::process::Command::new("storescu").arg("--version").output().is_ok() {
        for (associations, seed) in args.associations.iter().copied().zip(2u64..) {
            let (files, bytes) = write_files(&dir.join(format!("scu{seed}")), n, seed)?;
            let before = phase_totals(&env).await?;
            let cpu = cpu_seconds();
            let secs = storescu(&env, &files, associations)?;
            let cpu = cpu_seconds() - cpu;
            println!(
                "  {:<44} {:>7.0} instances/s  {:>6.0} MB/s  ({secs:.1} s; server CPU {:.0}% of {cores} cores, {:.2} ms per instance)",
                format!("C-STORE (storescu), {associations} association(s)"),
                n as f64 / secs,
                bytes as f64 / 1e6 / secs,
                cpu / secs / cores.max(1) as f64 * 100.0,
                cpu * 1000.0 / n as f64
            );
            // The files stay until the run ends: on ext4 without a journal, creating
            // a file skips over inodes freed in the last minutes, one by one, so files
            // deleted here would slow the next path's every arrival (seen: a sixth
            // of the CPU in `recently_deleted`).
            print_phases(&before, &phase_totals(&env).await?);
        }
    } else {
        println!("  C-STORE: storescu (dcmtk) is not installed; skipped");
    }

    // /metadata of one large study (`--metadata-instances 0`: not measured).
    if args.metadata_instances > 0 {
        let m = args.metadata_instances;
        let study_bodies: Vec<Vec<u8>> = (0..m)
            .collect::<Vec<_>>()
            .chunks(100)
            .map(|c| multipart(&c.iter().map(|i| ct(999_999, *i, 9, 64)).collect::<Vec<_>>()))
            .collect();
        for body in study_bodies {
            post_stow(&env.http, &format!("{}/dicomweb/studies", env.base), &env.tech, body).await?;
        }
        let big_study = CtSpec {
            patient_index: 999_999,
            study_index: 999_999,
            seed: 9,
            ..CtSpec::default()
        }
        .study_instance_uid();
        let head = running.app.store.head_position().await?;
        let meta_path = format!("/dicomweb/studies/{big_study}/metadata");
        let _ = latency(&env, &[format!("{meta_path}?min_position={head}")], 1).await?;
        let h = latency(&env, &[meta_path], 20).await?;
        println!("\n/metadata of a {m}-instance study (from the database)");
        row("GET …/metadata", &h);
    }

    // Many studies, then query latency alone and during an ingest.
    let target = args.studies;
    let existing = n * 3 / 100 + 1;
    let to_add = target.saturating_sub(existing);
    let started = Instant::now();
    let meta = {
        let mut m = medledger_commands::codec::Metadata::system();
        m.tenant = medledger_domain::identity::Tenant {
            alliance_id: None,
            hospital_id: Some(env.hospital),
        };
        m
    };
    let tenant = meta.tenant;
    let app = running.app.clone();
    let blobs = running.blobs.clone();
    // How long each arrival took: a stall of the store's writer (a truncating
    // checkpoint, say) shows as the slowest ones.
    let took = std::sync::Mutex::new(Histogram::<u64>::new(3)?);
    futures::StreamExt::for_each_concurrent(futures::stream::iter(0..to_add), 32, |i| {
        let (app, blobs, meta, took) = (app.clone(), blobs.clone(), meta.clone(), &took);
        async move {
            let bytes = ct(1_000_000 + i, 0, 11, 8);
            let arrived = Instant::now();
            let ingested = medledger_dicom_ingest::ingest::ingest(
                &app,
                &blobs,
                &tenant,
                bytes.into(),
                medledger_domain::imaging::study::Arrival::FolderImport,
                &meta,
            )
            .await;
            let _ = took
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(arrived.elapsed().as_micros() as u64);
            if let Err(e) = ingested {
                tracing::warn!(error = %e, "ingest failed");
            }
        }
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\nqueries over {target} studies ({to_add} small studies added in {secs:.0} s, {:.0}/s)",
        to_add as f64 / secs
    );
    let took = took.into_inner().unwrap_or_else(|p| p.into_inner());
    if !took.is_empty() {
        row("an arrival while loading (32 at a time)", &took);
        println!(
            "  {:<44} slowest {:>7.2} ms  ({} over 1 s)",
            "",
            took.max() as f64 / 1000.0,
            took.count_between(1_000_001, u64::MAX)
        );
    }
    let head = running.app.store.head_position().await?;
    let _ = latency(&env, &[format!("/api/v1/studies?min_position={head}")], 1).await?;
    // PostgreSQL plans from statistics that autovacuum keeps; right after a bulk load
    // (or where autovacuum is off) they say the table is empty and every filtered list
    // sorts the whole table. Analyze as autovacuum would after this many changes.
    let db = running.app.store.read_models();
    if db.is_postgres() {
        db.execute("ANALYZE", &[]).await?;
    }
    let worklist = vec![
        "/api/v1/studies?limit=50".to_string(),
        "/api/v1/studies?limit=50&order=asc".to_string(),
        "/api/v1/studies?limit=50&modality=CT&from=20240101".to_string(),
    ];
    let search = vec![
        "/api/v1/studies?q=P0100123".to_string(),
        "/api/v1/studies?q=patient1000".to_string(),
    ];
    let qido = vec![
        "/dicomweb/studies?PatientName=Synthetic*&limit=50".to_string(),
        // One patient by name: found through the trigram index, not by walking the time index.
        "/dicomweb/studies?PatientName=Synthetic%5EPatient1050123".to_string(),
        "/dicomweb/studies?PatientID=P01000077".to_string(),
        "/dicomweb/studies?StudyDate=20240101-20241231&limit=50".to_string(),
    ];
    let sets = [
        ("worklist page", &worklist),
        ("worklist keyword search", &search),
        ("QIDO-RS studies", &qido),
    ];
    for (name, paths) in sets {
        row(&format!("{name}, alone"), &latency(&env, paths, 200).await?);
    }
    // The same while a STOW-RS ingest runs.
    let ingest_env = Env {
        base: env.base.clone(),
        http: env.http.clone(),
        tech: env.tech.clone(),
        doctor: env.doctor.clone(),
        hospital: env.hospital,
        dicom_addr: env.dicom_addr,
    };
    let bodies = stow_bodies(1000, 21, 100);
    let during = tokio::spawn(async move { stow(&ingest_env, bodies).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, paths) in sets {
        row(&format!("{name}, during ingest"), &latency(&env, paths, 200).await?);
    }
    let _ = during.await?;

    let _ = stop_dicom.send(true);
    let _ = dicom_task.await;
    running.stop().await?;
    Ok(())
}
