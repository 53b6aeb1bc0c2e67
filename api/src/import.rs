//! `medledger import PATH --hospital H`: a folder of DICOM files (a CD's content, a PACS
//! export, DICOMDIR or not) into one hospital, through the same ingest as STOW-RS and
//! C-STORE: each file is validated, kept byte for byte and recorded in its study;
//! duplicates are counted, conflicts kept aside, refused files listed with their reason.
//!
//! Files are walked recursively (symbolic links not followed); a `DICOMDIR` index and
//! other non-DICOM files are refused as `not_dicom` and listed, never fatal. A few files
//! are ingested at once so their appends share commits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use medledger_commands::codec::Metadata;
use medledger_dicom_ingest::ingest::{ingest, IngestError, Outcome};
use medledger_domain::identity::{ClientKind, Tenant};
use medledger_domain::imaging::study::Arrival;
use medledger_domain::organization::hospital::Hospital;
use uuid::Uuid;

use medledger_commands::blobs::BlobStore;
use medledger_commands::App;

/// Files ingested concurrently.
const PARALLEL: usize = 4;
/// Files larger than this are refused without reading them (the parser's own cap).
const MAX_FILE: u64 = medledger_dicom_ingest::parse::MAX_OBJECT_BYTES as u64;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub files: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub bytes: u64,
    /// Refusal code → files refused with it.
    pub refused: BTreeMap<String, Vec<PathBuf>>,
}

impl ImportSummary {
    pub fn refused_count(&self) -> u64 {
        self.refused.values().map(|v| v.len() as u64).sum()
    }
}

/// Every regular file under `root` (or `root` itself), in a stable order.
pub fn files_under(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name() {
        let entry = entry?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// Import every file under `root` into `hospital_id`; `progress` shows a bar when true.
pub async fn import(
    app: &App,
    blobs: &BlobStore,
    root: &Path,
    hospital_id: Uuid,
    progress: bool,
) -> anyhow::Result<ImportSummary> {
    let (state, _) = app.load::<Hospital>(&format!("hospital-{hospital_id}")).await?;
    let hospital = state
        .hospital
        .ok_or_else(|| anyhow::anyhow!("no hospital {hospital_id}"))?;
    let tenant = Tenant {
        alliance_id: Some(hospital.alliance_id),
        hospital_id: Some(hospital.id),
    };
    let mut metadata = Metadata::system();
    metadata.client = ClientKind::Api;
    metadata.tenant = tenant;
    metadata.user_agent = Some("medledger import".into());

    let files = files_under(root)?;
    let bar = if progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = ImportSummary {
        files: files.len() as u64,
        ..Default::default()
    };
    let metadata = &metadata;
    let tenant = &tenant;
    let mut results = futures::stream::iter(files)
        .map(|path| async move {
            let outcome = match tokio::fs::metadata(&path).await {
                Ok(m) if m.len() > MAX_FILE => Err("too_large".to_string()),
                Ok(_) => match tokio::fs::read(&path).await {
                    Ok(bytes) => {
                        let size = bytes.len() as u64;
                        match ingest(app, blobs, tenant, bytes.into(), Arrival::FolderImport, metadata).await {
                            Ok(done) => Ok((done.outcome, size)),
                            Err(IngestError::Rejected(r)) => Err(r.code.to_string()),
                            Err(IngestError::Failed(e)) => Err(e.classify().1.to_string()),
                        }
                    }
                    Err(_) => Err("unreadable".to_string()),
                },
                Err(_) => Err("unreadable".to_string()),
            };
            (path, outcome)
        })
        .buffer_unordered(PARALLEL);
    while let Some((path, outcome)) = results.next().await {
        match outcome {
            Ok((Outcome::Stored, size)) => {
                summary.stored += 1;
                summary.bytes += size;
            }
            Ok((Outcome::Duplicate, _)) => summary.duplicates += 1,
            Ok((Outcome::Conflict, _)) => summary.conflicts += 1,
            Err(code) => summary.refused.entry(code).or_default().push(path),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for list in summary.refused.values_mut() {
        list.sort();
    }
    Ok(summary)
}

/// The summary as the command prints it.
pub fn report(summary: &ImportSummary) -> String {
    let mut out = format!(
        "{} files: {} stored ({:.1} MB), {} duplicates, {} conflicts kept aside, {} refused\n",
        summary.files,
        summary.stored,
        summary.bytes as f64 / 1e6,
        summary.duplicates,
        summary.conflicts,
        summary.refused_count()
    );
    for (code, files) in &summary.refused {
        out.push_str(&format!("  refused ({code}): {}\n", files.len()));
        for f in files.iter().take(5) {
            out.push_str(&format!("    {}\n", f.display()));
        }
        if files.len() > 5 {
            out.push_str(&format!("    … and {} more\n", files.len() - 5));
        }
    }
    out
}
