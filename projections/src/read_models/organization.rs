//! The organization tree as administrators browse it: alliances, their
//! hospitals (profile, QR code URL, logo), departments and roles.
//!
//! Only for display and listing: whether an actor may act on a unit is
//! decided by `commands::authorization` and the aggregates, never here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medledger_commands::args;
use medledger_commands::codec::decode;
use medledger_commands::db::{Db, DbRow, DbTx};
use medledger_commands::store::RecordedEvent;
use medledger_domain::event::DomainEvent;
use medledger_domain::organization::alliance::AllianceEvent;
use medledger_domain::organization::department::DepartmentEvent;
use medledger_domain::organization::hospital::HospitalEvent;
use medledger_domain::organization::role::RoleEvent;
use medledger_domain::organization::Permission;
use serde::Serialize;
use uuid::Uuid;

use super::{json_at, uuid_at};
use crate::runner::{Projection, ProjectionError};

pub struct Organization;

pub const NAME: &str = "organization";

#[async_trait]
impl Projection for Organization {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        1
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "AllianceCreated",
            "HospitalRegistered",
            "HospitalProfileUpdated",
            "HospitalLogoChanged",
            "DepartmentCreated",
            "DepartmentUpdated",
            "RoleDefined",
            "RolePermissionsChanged",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["rm_alliances", "rm_hospitals", "rm_departments", "rm_roles"]
    }

    async fn apply(&self, tx: &mut DbTx, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let t = e.event_type.as_str();
        if is_of::<AllianceEvent>(t) {
            apply_alliance(tx, e, decode(e)?).await?;
        } else if is_of::<HospitalEvent>(t) {
            apply_hospital(tx, e, decode(e)?).await?;
        } else if is_of::<DepartmentEvent>(t) {
            apply_department(tx, e, decode(e)?).await?;
        } else if is_of::<RoleEvent>(t) {
            apply_role(tx, e, decode(e)?).await?;
        }
        Ok(())
    }
}

fn is_of<E: DomainEvent>(event_type: &str) -> bool {
    E::catalog().iter().any(|i| i.event_type == event_type)
}

async fn apply_alliance(tx: &mut DbTx, e: &RecordedEvent, event: AllianceEvent) -> Result<(), sqlx::Error> {
    match event {
        AllianceEvent::AllianceCreated { alliance_id, name, .. } => {
            tx.execute(
                "INSERT INTO rm_alliances (alliance_id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (alliance_id) DO NOTHING",
                &args![alliance_id, name.as_str(), e.recorded_at],
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_hospital(tx: &mut DbTx, e: &RecordedEvent, event: HospitalEvent) -> Result<(), sqlx::Error> {
    match event {
        HospitalEvent::HospitalRegistered {
            hospital_id,
            alliance_id,
            name,
            code,
            address,
            time_zone,
            ..
        } => {
            tx.execute(
                "INSERT INTO rm_hospitals (hospital_id, alliance_id, name, code, address, time_zone, registered_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hospital_id) DO NOTHING",
                &args![
                    hospital_id,
                    alliance_id,
                    name.as_str(),
                    code.as_str(),
                    address,
                    String::from(time_zone),
                    e.recorded_at
                ],
            )
            .await?;
        }
        HospitalEvent::HospitalProfileUpdated {
            hospital_id,
            name,
            address,
            qr_url,
        } => {
            tx.execute(
                "UPDATE rm_hospitals SET name = $2, address = $3, qr_url = $4 WHERE hospital_id = $1",
                &args![hospital_id, name.as_str(), address, qr_url],
            )
            .await?;
        }
        HospitalEvent::HospitalLogoChanged {
            hospital_id,
            blob_key,
            content_type,
            sha256,
            ..
        } => {
            tx.execute(
                "UPDATE rm_hospitals SET logo_blob_key = $2, logo_content_type = $3, logo_sha256 = $4 \
                 WHERE hospital_id = $1",
                &args![hospital_id, blob_key, content_type, sha256],
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_department(tx: &mut DbTx, e: &RecordedEvent, event: DepartmentEvent) -> Result<(), sqlx::Error> {
    match event {
        DepartmentEvent::DepartmentCreated {
            department_id,
            hospital_id,
            name,
            phone,
        } => {
            tx.execute(
                "INSERT INTO rm_departments (department_id, hospital_id, name, phone, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (department_id) DO NOTHING",
                &args![department_id, hospital_id, name.as_str(), phone, e.recorded_at],
            )
            .await?;
        }
        DepartmentEvent::DepartmentUpdated {
            department_id,
            name,
            phone,
        } => {
            tx.execute(
                "UPDATE rm_departments SET name = $2, phone = $3 WHERE department_id = $1",
                &args![department_id, name.as_str(), phone],
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_role(tx: &mut DbTx, e: &RecordedEvent, event: RoleEvent) -> Result<(), sqlx::Error> {
    match event {
        RoleEvent::RoleDefined {
            role_id,
            hospital_id,
            name,
            permissions,
            builtin,
        } => {
            tx.execute(
                "INSERT INTO rm_roles (role_id, hospital_id, name, permissions, builtin, defined_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (role_id) DO NOTHING",
                &args![
                    role_id,
                    hospital_id,
                    name.as_str(),
                    permissions_json(permissions),
                    builtin,
                    e.recorded_at
                ],
            )
            .await?;
        }
        RoleEvent::RolePermissionsChanged {
            role_id, permissions, ..
        } => {
            tx.execute(
                "UPDATE rm_roles SET permissions = $2 WHERE role_id = $1",
                &args![role_id, permissions_json(permissions)],
            )
            .await?;
        }
    }
    Ok(())
}

/// Permission names as a JSON array, sorted by name.
fn permissions_json(permissions: impl IntoIterator<Item = Permission>) -> String {
    let mut names: Vec<&str> = permissions.into_iter().map(Permission::name).collect();
    names.sort_unstable();
    names.dedup();
    serde_json::to_string(&names).expect("strings serialize")
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AllianceView {
    pub alliance_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HospitalLogo {
    pub blob_key: String,
    pub content_type: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HospitalView {
    pub hospital_id: Uuid,
    pub alliance_id: Uuid,
    pub name: String,
    pub code: String,
    pub address: String,
    /// IANA name, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    pub qr_url: Option<String>,
    pub logo: Option<HospitalLogo>,
    pub registered_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DepartmentView {
    pub department_id: Uuid,
    pub hospital_id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RoleView {
    pub role_id: Uuid,
    pub hospital_id: Uuid,
    pub name: String,
    /// Permission names (`report.review`, …), sorted.
    pub permissions: Vec<String>,
    pub builtin: bool,
    pub defined_at: DateTime<Utc>,
}

/// Every alliance, or only `only` (an alliance administrator's own), by name.
pub async fn list_alliances(db: &Db, only: Option<Uuid>) -> Result<Vec<AllianceView>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT alliance_id, name, created_at FROM rm_alliances \
             WHERE ($1 IS NULL OR alliance_id = $1) ORDER BY name, alliance_id",
            &args![only],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AllianceView {
                alliance_id: uuid_at(r, 0)?,
                name: r.get(1)?,
                created_at: r.time(2)?,
            })
        })
        .collect()
}

const HOSPITAL_COLUMNS: &str = "hospital_id, alliance_id, name, code, address, time_zone, qr_url, \
     logo_blob_key, logo_content_type, logo_sha256, registered_at";

fn hospital(r: &DbRow) -> Result<HospitalView, sqlx::Error> {
    let logo = match (
        r.get::<Option<String>>(7)?,
        r.get::<Option<String>>(8)?,
        r.get::<Option<String>>(9)?,
    ) {
        (Some(blob_key), Some(content_type), Some(sha256)) => Some(HospitalLogo {
            blob_key,
            content_type,
            sha256,
        }),
        _ => None,
    };
    Ok(HospitalView {
        hospital_id: uuid_at(r, 0)?,
        alliance_id: uuid_at(r, 1)?,
        name: r.get(2)?,
        code: r.get(3)?,
        address: r.get(4)?,
        time_zone: r.get(5)?,
        qr_url: r.get(6)?,
        logo,
        registered_at: r.time(10)?,
    })
}

/// Hospitals, optionally of one alliance and/or only one hospital, by name.
pub async fn list_hospitals(
    db: &Db,
    alliance_id: Option<Uuid>,
    only: Option<Uuid>,
) -> Result<Vec<HospitalView>, ProjectionError> {
    let rows = db
        .fetch_all(
            &format!(
                "SELECT {HOSPITAL_COLUMNS} FROM rm_hospitals \
                 WHERE ($1 IS NULL OR alliance_id = $1) AND ($2 IS NULL OR hospital_id = $2) \
                 ORDER BY name, hospital_id"
            ),
            &args![alliance_id, only],
        )
        .await?;
    Ok(rows.iter().map(hospital).collect::<Result<_, _>>()?)
}

pub async fn get_hospital(db: &Db, hospital_id: Uuid) -> Result<Option<HospitalView>, ProjectionError> {
    let row = db
        .fetch_optional(
            &format!("SELECT {HOSPITAL_COLUMNS} FROM rm_hospitals WHERE hospital_id = $1"),
            &args![hospital_id],
        )
        .await?;
    Ok(row.as_ref().map(hospital).transpose()?)
}

/// A hospital's departments, by name.
pub async fn list_departments(db: &Db, hospital_id: Uuid) -> Result<Vec<DepartmentView>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT department_id, hospital_id, name, phone, created_at FROM rm_departments \
             WHERE hospital_id = $1 ORDER BY name, department_id",
            &args![hospital_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DepartmentView {
                department_id: uuid_at(r, 0)?,
                hospital_id: uuid_at(r, 1)?,
                name: r.get(2)?,
                phone: r.get(3)?,
                created_at: r.time(4)?,
            })
        })
        .collect()
}

/// A hospital's roles, by name.
pub async fn list_roles(db: &Db, hospital_id: Uuid) -> Result<Vec<RoleView>, ProjectionError> {
    let rows = db
        .fetch_all(
            "SELECT role_id, hospital_id, name, permissions, builtin, defined_at FROM rm_roles \
             WHERE hospital_id = $1 ORDER BY name, role_id",
            &args![hospital_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RoleView {
                role_id: uuid_at(r, 0)?,
                hospital_id: uuid_at(r, 1)?,
                name: r.get(2)?,
                permissions: json_at(r, 3)?,
                builtin: r.get(4)?,
                defined_at: r.time(5)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projection_listens_to_every_organization_event() {
        let wanted: Vec<&str> = [
            AllianceEvent::catalog(),
            HospitalEvent::catalog(),
            DepartmentEvent::catalog(),
            RoleEvent::catalog(),
        ]
        .concat()
        .iter()
        .map(|i| i.event_type)
        .collect();
        assert_eq!(Organization.event_types(), wanted.as_slice());
    }

    #[test]
    fn permissions_are_stored_sorted_by_name() {
        let json = permissions_json([Permission::StudyView, Permission::AdminUsers, Permission::ReportReview]);
        assert_eq!(json, r#"["admin.users","report.review","study.view"]"#);
    }
}
