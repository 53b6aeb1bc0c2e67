//! A real S3-compatible object store for tests: moto's server (`moto[server]` from PyPI,
//! installed by `scripts/test`), started per test on a free loopback port and stopped when
//! dropped, with a fresh bucket. Without moto a test skips, or fails with `CI=true`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use medledger_api::config::Config;
use medledger_commands::blobs::{BlobLocation, BlobStore};
use uuid::Uuid;

/// A running moto server (killed on drop).
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    /// Starts `moto_server` (or `python3 -m moto.server`) on a free loopback port and waits
    /// until it answers.
    pub async fn start() -> Option<MotoServer> {
        let mut last_error = String::from("not started");
        for program in [vec!["moto_server"], vec!["python3", "-m", "moto.server"]] {
            let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
                Ok(a) => a.port(),
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let spawned = Command::new(program[0])
                .args(&program[1..])
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    last_error = format!("{}: {e}", program.join(" "));
                    continue;
                }
            };
            let mut server = MotoServer {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            match server.wait_until_ready().await {
                Ok(()) => return Some(server),
                Err(e) => last_error = format!("{}: {e}", program.join(" ")),
            }
        }
        crate::unavailable("moto_server (pip install 'moto[server]')", &last_error);
        None
    }

    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            if http.get(format!("{}/moto-api/", self.endpoint)).send().await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err("did not answer within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("moto answers");
        assert!(r.status().is_success(), "creating bucket {name}: {}", r.status());
    }

    /// The object store options pointing at this server (what `AWS_*` would say in production).
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", "medledger-test"),
            ("aws_secret_access_key", "medledger-test-secret"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh bucket on its own moto server.
pub struct S3Bucket {
    pub server: MotoServer,
    pub bucket: String,
}

impl S3Bucket {
    pub async fn create() -> Option<S3Bucket> {
        let server = MotoServer::start().await?;
        let bucket = format!("medledger-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        server.create_bucket(&bucket).await;
        Some(S3Bucket { server, bucket })
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// A blob store on this bucket under `prefix`.
    pub fn store(&self, prefix: &str) -> BlobStore {
        BlobStore::open(&BlobLocation::parse(&self.url(prefix)).unwrap(), &self.server.options()).unwrap()
    }

    /// Points a platform configuration's blobs at this bucket under `prefix`.
    pub fn apply(&self, config: &mut Config, prefix: &str) {
        config.blob_store = Some(self.url(prefix));
        config.blob_store_options = self.server.options();
    }

    /// Every key in the bucket (through the S3 API, not through [`BlobStore`]).
    pub async fn keys(&self) -> Vec<String> {
        let body = reqwest::Client::new()
            .get(format!(
                "{}/{}?list-type=2&max-keys=1000",
                self.server.endpoint, self.bucket
            ))
            .send()
            .await
            .expect("moto answers")
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}
