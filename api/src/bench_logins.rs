//! `medledger bench-logins`: how other endpoints fare while a burst of
//! password logins (or a password-guessing attack) arrives.
//!
//! Starts the embedded platform on a free loopback port, then measures
//! `GET /api/v1/me` latency at a steady rate, first alone and then while
//! logins arrive at `--logins-per-second` (failed attempts against unknown
//! login names: every one still costs a full argon2id verification).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use medledger_commands::clock::SystemClock;

use crate::config::Config;
use crate::server::{self, HttpOptions};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchLoginsArgs {
    /// Login attempts per second during the load phase.
    #[arg(long, default_value_t = 50)]
    pub logins_per_second: u32,
    /// Probe requests per second (GET /api/v1/me).
    #[arg(long, default_value_t = 20)]
    pub probes_per_second: u32,
    /// Seconds per phase.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
}

const PASSWORD: &str = "Bench-Pass-2026!";

pub async fn run(args: BenchLoginsArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("medledger-bench-logins-{}", uuid::Uuid::new_v4()));
    let result = measure(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(args: &BenchLoginsArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "medledger bench-logins — {cores} CPUs; embedded store; {} s per phase",
        args.seconds
    );
    let running = server::start(
        &Config::embedded(dir),
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
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"login": "operator", "password": PASSWORD, "client": "pc"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("login failed: {login}"))?
        .to_string();

    let quiet = probe(&http, &base, &token, args, None).await?;
    let loaded = probe(&http, &base, &token, args, Some(args.logins_per_second)).await?;
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>8}",
        "GET /api/v1/me", "p50 ms", "p99 ms", "max ms", "n"
    );
    for (name, (h, _)) in [("alone", &quiet), ("during login burst", &loaded)] {
        println!(
            "{:<34} {:>10.2} {:>10.2} {:>10.2} {:>8}",
            name,
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            h.len()
        );
    }
    if let Some(l) = &loaded.1 {
        println!(
            "{:<34} {:>10.2} {:>10.2} {:>10.2} {:>8}",
            "POST /auth/login (failed attempts)",
            l.value_at_quantile(0.5) as f64 / 1000.0,
            l.value_at_quantile(0.99) as f64 / 1000.0,
            l.max() as f64 / 1000.0,
            l.len()
        );
        println!(
            "login attempts answered: {} in {} s ({:.1}/s offered {})",
            l.len(),
            args.seconds,
            l.len() as f64 / args.seconds as f64,
            args.logins_per_second
        );
    }
    running.stop().await?;
    Ok(())
}

type Phase = (Histogram<u64>, Option<Histogram<u64>>);

/// Probe `/me` at a steady rate for one phase, optionally under login load.
async fn probe(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    args: &BenchLoginsArgs,
    logins_per_second: Option<u32>,
) -> anyhow::Result<Phase> {
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let load = logins_per_second.map(|rate| {
        let http = http.clone();
        let url = format!("{base}/api/v1/auth/login");
        tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            let mut inflight = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                tick.tick().await;
                n += 1;
                let http = http.clone();
                let url = url.clone();
                inflight.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let _ = http
                        .post(url)
                        .json(&serde_json::json!({"login": format!("guess{n}"), "password": "Guess-Pass-1", "client": "pc"}))
                        .send()
                        .await;
                    started.elapsed()
                }));
            }
            for t in inflight {
                if let Ok(d) = t.await {
                    let _ = hist.record(d.as_micros() as u64);
                }
            }
            hist
        })
    });
    let mut hist = Histogram::<u64>::new(3)?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.probes_per_second as f64));
    while Instant::now() < until {
        tick.tick().await;
        let started = Instant::now();
        let r = http.get(format!("{base}/api/v1/me")).bearer_auth(token).send().await?;
        anyhow::ensure!(r.status().is_success(), "probe failed: {}", r.status());
        hist.record(started.elapsed().as_micros() as u64)?;
    }
    let logins = match load {
        Some(t) => Some(t.await?),
        None => None,
    };
    Ok((hist, logins))
}
