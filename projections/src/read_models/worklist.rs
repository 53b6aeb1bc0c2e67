//! The worklist (检查列表): one row per study of a hospital, for the study
//! list doctors work from — patient, modality, body part, description,
//! study time, status, counts and size — with keyword search over patient
//! name, patient ID and accession number.
//!
//! Patient fields are decrypted copies for search; when the patient is
//! forgotten they are erased here too, and a rebuild cannot bring them back
//! (the log only holds ciphertext whose key is gone).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::{decode, metadata_of};
use medledger_commands::db::{Arg, Db, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::administration::AdministrationEvent;
use medledger_domain::imaging::study::StudyEvent;
use serde::Serialize;
use uuid::Uuid;

use super::{opt_uuid_at, runs, uuid_at, Run};
use crate::runner::{Projection, ProjectionError};

pub struct Worklist;

pub const NAME: &str = "worklist";

#[async_trait]
impl Projection for Worklist {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        2
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "InstanceStored",
            "InstanceDuplicateIgnored",
            "InstanceConflictRecorded",
            "StudyDeleted",
            "StudyRestored",
            "StudyArchived",
            "StudyRetrieved",
            "StudyObjectsErased",
            "SubjectForgotten",
            // The report moves the study's status (see `reports::worklist_status`).
            "ReportPreliminarySubmitted",
            "ReportSentBack",
            "ReportReviewed",
            "ReportAmendmentStarted",
            "ReportPrinted",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_worklist"]
    }

    /// Stored instances are written a run at a time, one upsert per study:
    /// per instance, each arrival would update its study's row again.
    async fn apply_batch(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        for run in runs(events, |e| e.event_type == "InstanceStored") {
            match run {
                Run::Bulk(stored) => self.stored(tx, stored).await?,
                Run::One(e) => self.apply(tx, e).await?,
            }
        }
        Ok(())
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type == "SubjectForgotten" {
            if let AdministrationEvent::SubjectForgotten { subject_id, .. } = decode(e)? {
                tx.execute(
                    "UPDATE rm_worklist SET patient_id = NULL, patient_name = NULL, patient_birth_date = NULL, \
                     patient_erased = TRUE, search_text = LOWER(COALESCE(accession_number, '')) WHERE patient_subject = $1",
                    &args![subject_id],
                )
                .await?;
            }
            return Ok(());
        }
        if e.event_type.starts_with("Report") {
            match super::reports::worklist_status(e) {
                Some((study_key, status, Some(printed_at))) => {
                    tx.execute(
                        "UPDATE rm_worklist SET status = $2, printed_at = $3 WHERE study_key = $1",
                        &args![study_key, status, printed_at],
                    )
                    .await?;
                }
                Some((study_key, status, None)) => {
                    tx.execute(
                        "UPDATE rm_worklist SET status = $2 WHERE study_key = $1",
                        &args![study_key, status],
                    )
                    .await?;
                }
                None => {}
            }
            return Ok(());
        }
        let study_key = e.stream_id.strip_prefix("study-").unwrap_or(&e.stream_id).to_string();
        match decode::<StudyEvent>(e)? {
            StudyEvent::InstanceStored { .. } => self.stored(tx, std::slice::from_ref(e)).await?,
            StudyEvent::InstanceDuplicateIgnored { .. } => {
                tx.execute(
                    "UPDATE rm_worklist SET duplicates = duplicates + 1 WHERE study_key = $1",
                    &args![study_key],
                )
                .await?;
            }
            StudyEvent::InstanceConflictRecorded { .. } => {
                tx.execute(
                    "UPDATE rm_worklist SET conflicts = conflicts + 1 WHERE study_key = $1",
                    &args![study_key],
                )
                .await?;
            }
            other => {
                let set = match other {
                    StudyEvent::StudyDeleted { .. } => "deleted = TRUE",
                    StudyEvent::StudyRestored { .. } => "deleted = FALSE",
                    StudyEvent::StudyArchived { .. } => "storage_tier = 'archived'",
                    StudyEvent::StudyRetrieved { .. } => "storage_tier = 'online'",
                    StudyEvent::StudyObjectsErased { .. } => "objects_erased = TRUE",
                    _ => return Ok(()),
                };
                tx.execute(
                    &format!("UPDATE rm_worklist SET {set}, updated_at = $2 WHERE study_key = $1"),
                    &args![study_key, e.recorded_at],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A study's arrivals in one run: the first one's row, with the run's totals.
struct StudyArrivals {
    row: Vec<Arg>,
    instances: i64,
    bytes: i64,
    updated_at: DateTime<Utc>,
    body_part: Option<String>,
    description: Option<String>,
    /// Modalities in arrival order (the first goes in the insert).
    modalities: Vec<String>,
}

/// Merge `$2` (one modality, maybe empty) into a comma-separated list `{list}`.
fn merged_modalities(list: &str, new: &str) -> String {
    format!(
        "CASE WHEN {new} = '' THEN {list} WHEN {list} = '' THEN {new} \
         WHEN (',' || {list} || ',') LIKE ('%,' || {new} || ',%') THEN {list} \
         ELSE {list} || ',' || {new} END"
    )
}

impl Worklist {
    /// Stored instances in log order: one upsert per study (the first
    /// arrival's patient and study fields, the run's count, size and last
    /// update), then any further modality of a study.
    async fn stored(&self, tx: &mut DbTx, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let mut studies: Vec<StudyArrivals> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        for e in events {
            let StudyEvent::InstanceStored {
                hospital_id,
                study_instance_uid,
                patient,
                attributes: a,
                object,
                ..
            } = decode::<StudyEvent>(e)?
            else {
                continue;
            };
            let study_key = e.stream_id.strip_prefix("study-").unwrap_or(&e.stream_id).to_string();
            let modality = a.modality.clone().unwrap_or_default();
            if let Some(&i) = index.get(&study_key) {
                let s = &mut studies[i];
                s.instances += 1;
                s.bytes += object.size as i64;
                s.updated_at = e.recorded_at;
                s.body_part = s.body_part.take().or(a.body_part);
                s.description = s.description.take().or(a.study_description);
                if !modality.is_empty() && !s.modalities.contains(&modality) {
                    s.modalities.push(modality);
                }
                continue;
            }
            let alliance = metadata_of(e).and_then(|m| m.tenant.alliance_id);
            let patient_id = patient.patient_id.value().map(str::to_string);
            let name = patient.name.as_ref().and_then(|n| n.value()).map(str::to_string);
            let birth = patient.birth_date.as_ref().and_then(|b| b.value()).map(str::to_string);
            let erased = patient.patient_id.is_erased();
            let search = [name.as_deref(), patient_id.as_deref(), a.accession_number.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            let datetime = sortable_datetime(a.study_date.as_deref(), a.study_time.as_deref());
            let row = vec![
                Arg::from(&study_key),
                Arg::from(hospital_id),
                Arg::from(alliance),
                Arg::from(&study_instance_uid),
                Arg::from(patient.patient_id.subject()),
                Arg::from(patient_id),
                Arg::from(name),
                Arg::from(patient.sex.clone()),
                Arg::from(birth),
                Arg::from(erased),
                Arg::from(a.study_date.clone()),
                Arg::from(a.study_time.clone()),
                Arg::from(datetime),
                Arg::from(a.accession_number.clone()),
                Arg::from(a.referring_physician.clone()),
                Arg::from(a.institution.clone()),
                Arg::from(e.recorded_at),
                Arg::from(search),
            ];
            index.insert(study_key, studies.len());
            studies.push(StudyArrivals {
                row,
                instances: 1,
                bytes: object.size as i64,
                updated_at: e.recorded_at,
                body_part: a.body_part,
                description: a.study_description,
                modalities: if modality.is_empty() { vec![] } else { vec![modality] },
            });
        }
        let mut args = Vec::with_capacity(studies.len() * 24);
        for s in &studies {
            args.extend(s.row.iter().cloned());
            args.extend([
                Arg::from(s.body_part.clone()),
                Arg::from(s.description.clone()),
                Arg::I64(s.instances),
                Arg::I64(s.bytes),
                Arg::from(s.updated_at),
                Arg::from(s.modalities.first().cloned().unwrap_or_default()),
            ]);
        }
        tx.insert_rows(
            "INSERT INTO rm_worklist (study_key, hospital_id, alliance_id, study_instance_uid, patient_subject, patient_id, \
             patient_name, patient_sex, patient_birth_date, patient_erased, study_date, study_time, study_datetime, \
             accession_number, referring_physician, institution, received_at, search_text, body_part, study_description, \
             instance_count, size_bytes, updated_at, modalities)",
            24,
            &args,
            &format!(
                "ON CONFLICT (study_key) DO UPDATE SET \
                 instance_count = rm_worklist.instance_count + excluded.instance_count, \
                 size_bytes = rm_worklist.size_bytes + excluded.size_bytes, \
                 updated_at = excluded.updated_at, \
                 modalities = {}, \
                 body_part = COALESCE(rm_worklist.body_part, excluded.body_part), \
                 study_description = COALESCE(rm_worklist.study_description, excluded.study_description)",
                merged_modalities("rm_worklist.modalities", "excluded.modalities")
            ),
        )
        .await?;
        // A study whose run brought more than one modality (rare: one per series).
        for s in studies.iter().filter(|s| s.modalities.len() > 1) {
            for m in &s.modalities[1..] {
                tx.execute(
                    &format!(
                        "UPDATE rm_worklist SET modalities = {} WHERE study_key = $1",
                        merged_modalities("modalities", "$2")
                    ),
                    &[s.row[0].clone(), Arg::from(m)],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// `YYYYMMDDHHMMSS` from DICOM DA and TM (missing parts as zeros), so rows sort as text.
pub fn sortable_datetime(date: Option<&str>, time: Option<&str>) -> String {
    let digits = |s: Option<&str>, n: usize| {
        let d: String = s.unwrap_or("").chars().filter(char::is_ascii_digit).take(n).collect();
        format!("{d:0<n$}")
    };
    format!("{}{}", digits(date, 8), digits(time, 6))
}

#[derive(Clone, Debug, Default)]
pub struct WorklistFilter {
    /// Scope: a hospital's studies, or an alliance's (remote diagnosis).
    pub hospital_id: Option<Uuid>,
    pub alliance_id: Option<Uuid>,
    /// Study date range (DICOM DA, inclusive).
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub modality: Option<String>,
    pub status: Option<String>,
    /// Keyword: part of the patient name, patient ID or accession number.
    pub query: Option<String>,
    /// Newest study first (default) or oldest first.
    pub ascending: bool,
    /// List the soft-deleted studies instead of the others (administrators).
    pub deleted: bool,
    pub cursor: Option<String>,
    pub limit: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorklistRow {
    pub study_instance_uid: String,
    pub hospital_id: Uuid,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_sex: Option<String>,
    /// Whole years at the study date, from the birth date.
    pub patient_age: Option<u32>,
    pub patient_erased: bool,
    pub modalities: Vec<String>,
    pub body_part: Option<String>,
    pub study_description: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician: Option<String>,
    pub institution: Option<String>,
    pub status: String,
    /// When the study's report was last printed.
    pub printed_at: Option<DateTime<Utc>>,
    pub instance_count: i64,
    pub size_bytes: i64,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Soft-deleted by an administrator (only listed when asked for).
    pub deleted: bool,
    /// `online` or `archived` (retrieve before viewing).
    pub storage_tier: String,
    #[serde(skip)]
    pub alliance_id: Option<Uuid>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorklistPage {
    pub items: Vec<WorklistRow>,
    pub next_cursor: Option<String>,
}

fn age(birth: Option<&str>, study: Option<&str>) -> Option<u32> {
    let parse = |s: &str| -> Option<(u32, u32, u32)> {
        let d: String = s.chars().filter(char::is_ascii_digit).collect();
        if d.len() != 8 {
            return None;
        }
        Some((d[..4].parse().ok()?, d[4..6].parse().ok()?, d[6..].parse().ok()?))
    };
    let (by, bm, bd) = parse(birth?)?;
    let (sy, sm, sd) = parse(study?)?;
    let years = sy.checked_sub(by)?;
    Some(if (sm, sd) < (bm, bd) {
        years.checked_sub(1)?
    } else {
        years
    })
}

fn like_escape(q: &str) -> String {
    q.to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The columns every worklist query selects, in [`decode_row`]'s order.
const ROW_COLUMNS: &str = "study_key, study_instance_uid, hospital_id, alliance_id, patient_id, patient_name, \
     patient_sex, patient_birth_date, patient_erased, modalities, body_part, study_description, study_date, study_time, \
     accession_number, referring_physician, institution, status, instance_count, size_bytes, received_at, updated_at, \
     study_datetime, deleted, storage_tier, printed_at";

/// One worklist row (and the raw birth date) from [`ROW_COLUMNS`].
fn decode_row(r: &medledger_commands::db::DbRow) -> Result<(WorklistRow, Option<String>), sqlx::Error> {
    let birth: Option<String> = r.get(7)?;
    let study_date: Option<String> = r.get(12)?;
    let modalities: String = r.get(9)?;
    let row = WorklistRow {
        study_instance_uid: r.get(1)?,
        hospital_id: uuid_at(r, 2)?,
        alliance_id: opt_uuid_at(r, 3)?,
        patient_id: r.get(4)?,
        patient_name: r.get(5)?,
        patient_sex: r.get(6)?,
        patient_age: age(birth.as_deref(), study_date.as_deref()),
        patient_erased: r.get(8)?,
        modalities: modalities
            .split(',')
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect(),
        body_part: r.get(10)?,
        study_description: r.get(11)?,
        study_date,
        study_time: r.get(13)?,
        accession_number: r.get(14)?,
        referring_physician: r.get(15)?,
        institution: r.get(16)?,
        status: r.get(17)?,
        printed_at: r.opt_time(25)?,
        instance_count: r.get(18)?,
        size_bytes: r.get(19)?,
        received_at: r.time(20)?,
        updated_at: r.time(21)?,
        deleted: r.get(23)?,
        storage_tier: r.get(24)?,
    };
    Ok((row, birth))
}

/// At most this many studies found by a keyword's trigram index are fetched one by one and
/// sorted (SQLite); a keyword found in more is searched along the time index instead.
pub const KEYWORD_CANDIDATES: usize = 2_000;

/// A page of the worklist, newest (or oldest) study first, keyset-paginated.
pub async fn list(db: &Db, f: &WorklistFilter) -> Result<WorklistPage, ProjectionError> {
    list_with_keyword_candidates(db, f, KEYWORD_CANDIDATES).await
}

/// [`list`], with the number of keyword candidates fetched one by one set (for tests of
/// both ways of searching; PostgreSQL ignores it).
///
/// On SQLite a keyword of three characters or more is looked up in the FTS5 trigram index
/// first. When it finds at most `candidates` studies (in any hospital), those are fetched by
/// rowid, filtered and sorted: a patient ID, an accession number or a name costs what it
/// finds, not the hospital's size. Walking the hospital's time index and testing each study
/// against the index's answer, as the planner otherwise chooses, read every study of the
/// hospital when fewer than a page matched (a Patient ID search took 20 ms at 100,000
/// studies, growing with them). A keyword found in more studies than that is common enough
/// that walking the time index with the `LIKE` alone finds a page soon, and its trigram
/// lookup is skipped.
pub async fn list_with_keyword_candidates(
    db: &Db,
    f: &WorklistFilter,
    candidates: usize,
) -> Result<WorklistPage, ProjectionError> {
    let query = f.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let found = match query {
        Some(q) => trigram_candidates(db, q, candidates).await?,
        None => None,
    };
    // Fetched by rowid: no index may drive the search instead.
    let table = if found.is_some() {
        "rm_worklist NOT INDEXED"
    } else {
        "rm_worklist"
    };
    let mut sql = format!("SELECT {ROW_COLUMNS} FROM {table} WHERE deleted = $1");
    let mut args: Vec<Arg> = vec![f.deleted.into()];
    let mut cond = |sql: &mut String, clause: &str, values: Vec<Arg>| {
        let mut clause = clause.to_string();
        for v in values {
            args.push(v);
            clause = clause.replacen('?', &format!("${}", args.len()), 1);
        }
        sql.push_str(&clause);
    };
    if let Some(h) = f.hospital_id {
        cond(&mut sql, " AND hospital_id = ?", vec![h.into()]);
    }
    if let Some(a) = f.alliance_id {
        cond(&mut sql, " AND alliance_id = ?", vec![a.into()]);
    }
    if let Some(d) = &f.date_from {
        cond(&mut sql, " AND study_date >= ?", vec![d.into()]);
    }
    if let Some(d) = &f.date_to {
        cond(&mut sql, " AND study_date <= ?", vec![d.into()]);
    }
    if let Some(m) = &f.modality {
        cond(
            &mut sql,
            " AND (',' || modalities || ',') LIKE ? ESCAPE '\\'",
            vec![format!("%,{},%", like_escape(m).to_uppercase()).into()],
        );
    }
    if let Some(s) = &f.status {
        cond(&mut sql, " AND status = ?", vec![s.into()]);
    }
    if let Some(q) = query {
        // SQLite: the trigram index's candidates, if few (above); PostgreSQL's trigram GIN
        // index serves the LIKE itself. The LIKE stays as the exact test.
        if let Some(rowids) = &found {
            cond(&mut sql, CANDIDATE_ROWIDS, vec![rowids.into()]);
        }
        cond(
            &mut sql,
            " AND search_text LIKE ? ESCAPE '\\'",
            vec![format!("%{}%", like_escape(q)).into()],
        );
    }
    let (cmp, order) = if f.ascending { (">", "ASC") } else { ("<", "DESC") };
    if let Some((when, key)) = f.cursor.as_deref().and_then(|c| c.split_once('|')) {
        cond(
            &mut sql,
            &format!(" AND (study_datetime {cmp} ? OR (study_datetime = ? AND study_key {cmp} ?))"),
            vec![when.into(), when.into(), key.into()],
        );
    }
    let limit = f.limit.clamp(1, 200);
    cond(
        &mut sql,
        &format!(" ORDER BY study_datetime {order}, study_key {order} LIMIT ?"),
        vec![(limit as i64 + 1).into()],
    );
    let rows = db.fetch_all(&sql, &args).await?;
    let mut items = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    for r in &rows {
        let (row, _) = decode_row(r)?;
        keys.push((r.get::<String>(22)?, r.get::<String>(0)?));
        items.push(row);
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        keys.get(limit as usize - 1).map(|(when, key)| format!("{when}|{key}"))
    } else {
        None
    };
    Ok(WorklistPage { items, next_cursor })
}

/// The condition that keeps a search to [`trigram_candidates`] (their JSON array bound).
const CANDIDATE_ROWIDS: &str = " AND rowid IN (SELECT value FROM json_each(?))";

/// The studies whose search text (lower-cased patient name, Patient ID and accession number)
/// holds `literal`, by the FTS5 trigram index (SQLite): their rowids as a JSON array when at
/// most `cap` studies of any hospital hold it. `None` when more do, when `literal` is shorter
/// than three characters (no trigram), or on PostgreSQL, whose trigram GIN indexes serve the
/// `LIKE`s themselves.
async fn trigram_candidates(db: &Db, literal: &str, cap: usize) -> Result<Option<String>, ProjectionError> {
    if db.is_postgres() || literal.chars().count() < 3 {
        return Ok(None);
    }
    let rows = db
        .fetch_all(
            "SELECT rowid FROM rm_worklist_fts WHERE rm_worklist_fts MATCH $1 LIMIT $2",
            &[
                format!("\"{}\"", literal.to_lowercase().replace('"', "\"\"")).into(),
                (cap as i64 + 1).into(),
            ],
        )
        .await?;
    if rows.len() > cap {
        return Ok(None);
    }
    let rowids = rows
        .iter()
        .map(|r| r.get::<i64>(0).map(|id| id.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(format!("[{}]", rowids.join(","))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_times_sort_as_text_and_ages_count_whole_years() {
        assert_eq!(
            sortable_datetime(Some("20261128"), Some("083015.123")),
            "20261128083015"
        );
        assert_eq!(sortable_datetime(Some("20261128"), None), "20261128000000");
        assert_eq!(sortable_datetime(None, None), "00000000000000");
        assert_eq!(age(Some("19800615"), Some("20260614")), Some(45));
        assert_eq!(age(Some("19800615"), Some("20260615")), Some(46));
        assert_eq!(age(Some("garbage"), Some("20260615")), None);
        assert_eq!(age(Some("20300101"), Some("20260615")), None);
    }
}

/// QIDO-RS study-level matching (PS3.18 §8.3.4 on the attributes the
/// worklist holds). All given keys must match.
#[derive(Clone, Debug, Default)]
pub struct StudyQuery {
    pub hospital_id: Uuid,
    pub study_instance_uids: Vec<String>,
    pub patient_id: Option<String>,
    /// DICOM wildcards `*` and `?`, case-insensitive.
    pub patient_name: Option<String>,
    /// Inclusive DA bounds (`YYYYMMDD`).
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub modality: Option<String>,
    pub accession_number: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// A study as QIDO-RS answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyMatch {
    pub row: WorklistRow,
    pub patient_birth_date: Option<String>,
}

/// DICOM wildcard matching as a LIKE pattern (other LIKE characters escaped).
pub fn dicom_wildcard(value: &str) -> String {
    let mut out = String::new();
    for c in value.to_lowercase().chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

pub async fn match_studies(db: &Db, q: &StudyQuery) -> Result<Vec<StudyMatch>, ProjectionError> {
    match_studies_with_keyword_candidates(db, q, KEYWORD_CANDIDATES).await
}

/// [`match_studies`], with the number of candidates a patient name fetches one by one set
/// (for tests of both ways of matching; PostgreSQL ignores it).
pub async fn match_studies_with_keyword_candidates(
    db: &Db,
    q: &StudyQuery,
    candidates: usize,
) -> Result<Vec<StudyMatch>, ProjectionError> {
    // A selective key (study UIDs, Patient ID, accession number) must drive the search.
    // SQLite's planner, without statistics, prefers walking the time index to avoid
    // sorting, and so read all 100,000 studies to find one patient's (p99 250 ms):
    // name the index there. (PostgreSQL plans from its own statistics.) A patient name
    // alone is looked up by its longest run without wildcards in the trigram index, as a
    // worklist keyword is (`list_with_keyword_candidates`): `Zhang^San` walked the whole
    // time index.
    let by_key = !q.study_instance_uids.is_empty() || q.patient_id.is_some() || q.accession_number.is_some();
    let found = match q.patient_name.as_deref() {
        Some(name) if !by_key => {
            let literal = name
                .split(['*', '?'])
                .max_by_key(|run| run.chars().count())
                .unwrap_or_default();
            trigram_candidates(db, literal, candidates).await?
        }
        _ => None,
    };
    let index = match (db.is_postgres(), &q.patient_id, &q.accession_number) {
        _ if !q.study_instance_uids.is_empty() => "",
        (false, Some(_), _) => " INDEXED BY rm_worklist_patient_id",
        (false, None, Some(_)) => " INDEXED BY rm_worklist_accession",
        _ if found.is_some() => " NOT INDEXED",
        _ => "",
    };
    let mut sql = format!("SELECT {ROW_COLUMNS} FROM rm_worklist{index} WHERE hospital_id = $1 AND deleted = FALSE");
    let mut args: Vec<Arg> = vec![q.hospital_id.into()];
    let mut push = |sql: &mut String, clause: &str, v: Arg| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    if !q.study_instance_uids.is_empty() {
        // By primary key (`<hospital>.<Study Instance UID>`), not a scan.
        sql.push_str(" AND study_key IN (");
        for (i, uid) in q.study_instance_uids.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push(&mut sql, "?", format!("{}.{uid}", q.hospital_id).into());
        }
        sql.push(')');
    }
    if let Some(v) = &q.patient_id {
        push(&mut sql, " AND patient_id = ?", v.into());
    }
    if let Some(v) = &q.patient_name {
        if let Some(rowids) = &found {
            push(&mut sql, CANDIDATE_ROWIDS, rowids.into());
        }
        push(
            &mut sql,
            " AND LOWER(patient_name) LIKE ? ESCAPE '\\'",
            dicom_wildcard(v).into(),
        );
    }
    if let Some(v) = &q.date_from {
        push(&mut sql, " AND study_date >= ?", v.into());
    }
    if let Some(v) = &q.date_to {
        push(&mut sql, " AND study_date <= ?", v.into());
    }
    if let Some(v) = &q.modality {
        push(
            &mut sql,
            " AND (',' || modalities || ',') LIKE ? ESCAPE '\\'",
            format!("%,{},%", like_escape(v).to_uppercase()).into(),
        );
    }
    if let Some(v) = &q.accession_number {
        push(&mut sql, " AND accession_number = ?", v.into());
    }
    push(
        &mut sql,
        " ORDER BY study_datetime DESC, study_key DESC LIMIT ?",
        (q.limit.clamp(1, 1000) as i64).into(),
    );
    push(&mut sql, " OFFSET ?", (q.offset as i64).into());
    let rows = db.fetch_all(&sql, &args).await?;
    rows.iter()
        .map(|r| {
            let (row, patient_birth_date) = decode_row(r)?;
            Ok(StudyMatch {
                row,
                patient_birth_date,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

/// The (hospital, Study Instance UID) of every study of a patient subject.
pub async fn studies_of_subject(db: &Db, subject: Uuid) -> Result<Vec<(Uuid, String)>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT hospital_id, study_instance_uid FROM rm_worklist WHERE patient_subject = $1 ORDER BY study_key",
            &args![subject],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((uuid_at(r, 0)?, r.get(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(ProjectionError::from)
}

/// One study's worklist row (and the raw birth date), deleted or not.
pub async fn get_study(
    db: &Db,
    hospital_id: Uuid,
    study_instance_uid: &str,
) -> Result<Option<(WorklistRow, Option<String>)>, ProjectionError> {
    let row = db
        .fetch_optional(
            &format!("SELECT {ROW_COLUMNS} FROM rm_worklist WHERE hospital_id = $1 AND study_instance_uid = $2"),
            &args![hospital_id, study_instance_uid.to_string()],
        )
        .await?;
    Ok(row.as_ref().map(decode_row).transpose()?)
}
