//! `medledger`: serve, migrate, verify, replay, forget-subject, import, bench.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use medledger_api::config::{Config, ServeConfig};
use medledger_api::platform::{open_store, Platform};
use medledger_api::{bench, bench_ingest, bench_logins, server, telemetry};
use medledger_commands::clock::SystemClock;
use medledger_commands::codec::Metadata;

/// Ingest allocates and frees a half-megabyte buffer per instance on every
/// worker thread; glibc's allocator spent about a tenth of the CPU there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "medledger",
    version,
    about = "MedLedger: an event-sourced platform for medical imaging networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform (embedded default with no flags).
    Serve(ServeConfig),
    /// Apply database migrations and exit.
    Migrate(Config),
    /// Check every hash chain and seal; exit non-zero naming the first bad event.
    Verify(Config),
    /// Rebuild read models from the log.
    Replay {
        #[command(flatten)]
        config: Config,
        /// Only this projection (default: all).
        #[arg(long)]
        projection: Option<String>,
    },
    /// Destroy a data subject's key: their personal data becomes unreadable.
    ForgetSubject {
        subject_id: uuid::Uuid,
        #[arg(long, default_value = "erasure request")]
        reason: String,
        #[command(flatten)]
        config: Config,
    },
    /// Import a folder of DICOM files (recursively) into a hospital.
    Import {
        /// A folder (or one file).
        path: std::path::PathBuf,
        /// The receiving hospital's id.
        #[arg(long)]
        hospital: uuid::Uuid,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        config: Config,
    },
    /// Measure append, projection and replay throughput.
    Bench(bench::BenchArgs),
    /// Measure other endpoints' latency while a burst of logins arrives.
    BenchLogins(bench_logins::BenchLoginsArgs),
    /// Measure DICOM ingest throughput (STOW-RS, C-STORE) and query latency at scale.
    BenchIngest(bench_ingest::BenchIngestArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(s) => s.log_format.clone(),
        _ => "pretty".into(),
    };
    telemetry::init(&format);
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(s) => {
            let options = server::HttpOptions {
                addr: s.http_addr,
                public_url: s.public_url.clone(),
                bootstrap_password: s.bootstrap_password.clone(),
                stop_on_signal: true,
            };
            let running = server::start(&s.platform, options, Arc::new(SystemClock)).await?;
            let (dicom_stop, dicom_stopped) = tokio::sync::watch::channel(false);
            let dicom = server::DicomOptions {
                addr: s.dicom_addr,
                ae_title: s.dicom_ae_title.clone(),
                calling_aes: s.dicom_calling_aes.clone(),
            };
            let (dicom_addr, dicom_task) =
                server::start_dicom(&running.app, &running.blobs, &dicom, dicom_stopped).await?;
            if let Some(pw) = &running.operator_password {
                println!("Created the platform operator account.");
                println!("  login:    operator");
                println!("  password: {pw}");
                println!("This password is shown once; change it after logging in.");
            }
            println!("MedLedger listening on http://{}", running.addr);
            println!("DICOM SCP {} listening on {dicom_addr}", dicom.ae_title);
            tracing::info!(addr = %running.addr, %dicom_addr, "serving");
            running.wait().await?;
            let _ = dicom_stop.send(true);
            let _ = dicom_task.await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(c) => {
            open_store(&c).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(c) => {
            let store = open_store(&c).await?;
            let report = medledger_commands::verify::verify(store.as_ref()).await?;
            match report.failure {
                None => {
                    println!(
                        "ok: {} events in {} streams, {} seals verified",
                        report.events, report.streams, report.seals
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(f) => {
                    println!("TAMPERED: {f}");
                    println!("({} events verified before it)", report.events);
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Replay { config, projection } => {
            let platform = Platform::open(&config, Arc::new(SystemClock)).await?;
            platform.runner.prepare().await?;
            let names: Vec<String> = match projection {
                Some(p) => vec![p],
                None => platform.runner.status().names().iter().map(|s| s.to_string()).collect(),
            };
            for name in names {
                let started = std::time::Instant::now();
                let n = platform.runner.rebuild(&name).await?;
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "rebuilt {name}: {n} events in {secs:.2} s ({:.0} events/s)",
                    n as f64 / secs.max(1e-9)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ForgetSubject {
            subject_id,
            reason,
            config,
        } => {
            let platform = Platform::open(&config, Arc::new(SystemClock)).await?;
            let position = medledger_commands::administration::forget_subject(
                &platform.app,
                subject_id,
                &reason,
                &Metadata::system(),
            )
            .await?;
            println!("subject {subject_id} forgotten (event position {position}); its key is destroyed");
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            path,
            hospital,
            quiet,
            config,
        } => {
            let platform = Platform::open(&config, Arc::new(SystemClock)).await?;
            let summary =
                medledger_api::import::import(&platform.app, &platform.blobs, &path, hospital, !quiet).await?;
            print!("{}", medledger_api::import::report(&summary));
            platform.shutdown().await;
            Ok(if summary.refused_count() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Bench(args) => {
            bench::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchLogins(args) => {
            bench_logins::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchIngest(args) => {
            bench_ingest::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
