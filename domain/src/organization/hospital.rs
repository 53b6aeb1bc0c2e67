//! The hospital aggregate (stream `hospital-<id>`): a member of an alliance,
//! with its profile, logo and the URL its QR code encodes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::values::{HospitalCode, Name, TimeZone};
use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum HospitalEvent {
    HospitalRegistered {
        hospital_id: Uuid,
        alliance_id: Uuid,
        name: Name,
        code: HospitalCode,
        #[serde(default)]
        address: String,
        time_zone: TimeZone,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registered_by: Option<Uuid>,
    },
    HospitalProfileUpdated {
        hospital_id: Uuid,
        name: Name,
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qr_url: Option<String>,
    },
    HospitalLogoChanged {
        hospital_id: Uuid,
        blob_key: String,
        content_type: String,
        size: u64,
        sha256: String,
        width: u32,
        height: u32,
    },
}

crate::event_catalog!(
    HospitalEvent,
    "organization",
    [
        HospitalRegistered = 1,
        HospitalProfileUpdated = 1,
        HospitalLogoChanged = 1
    ]
);

#[derive(Clone, Debug, PartialEq)]
pub enum HospitalCommand {
    Register {
        hospital_id: Uuid,
        alliance_id: Uuid,
        name: Name,
        code: HospitalCode,
        address: String,
        time_zone: TimeZone,
    },
    UpdateProfile {
        name: Name,
        address: String,
        qr_url: Option<String>,
    },
    ChangeLogo {
        blob_key: String,
        content_type: String,
        size: u64,
        sha256: String,
        width: u32,
        height: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HospitalError {
    #[error("the hospital already exists")]
    AlreadyExists,
    #[error("no such hospital")]
    NotFound,
    #[error("an address has at most 200 characters")]
    AddressTooLong,
    #[error("the QR code URL must be an http(s) URL of at most 500 characters")]
    BadQrUrl,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HospitalProfile {
    pub id: Uuid,
    pub alliance_id: Uuid,
    pub name: Name,
    pub code: HospitalCode,
    pub address: String,
    pub time_zone: TimeZone,
    pub qr_url: Option<String>,
    pub logo: Option<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HospitalState {
    pub hospital: Option<HospitalProfile>,
}

pub struct Hospital;

fn check_address(a: &str) -> Result<String, HospitalError> {
    let a = a.trim();
    if a.chars().count() > 200 {
        return Err(HospitalError::AddressTooLong);
    }
    Ok(a.to_string())
}

impl Decider for Hospital {
    type State = HospitalState;
    type Command = HospitalCommand;
    type Event = HospitalEvent;
    type Error = HospitalError;

    fn decide(s: &HospitalState, c: HospitalCommand, ctx: &Ctx) -> Result<Vec<HospitalEvent>, HospitalError> {
        match c {
            HospitalCommand::Register {
                hospital_id,
                alliance_id,
                name,
                code,
                address,
                time_zone,
            } => {
                if s.hospital.is_some() {
                    return Err(HospitalError::AlreadyExists);
                }
                Ok(vec![HospitalEvent::HospitalRegistered {
                    hospital_id,
                    alliance_id,
                    name,
                    code,
                    address: check_address(&address)?,
                    time_zone,
                    registered_by: ctx.actor,
                }])
            }
            HospitalCommand::UpdateProfile { name, address, qr_url } => {
                let h = s.hospital.as_ref().ok_or(HospitalError::NotFound)?;
                if let Some(u) = &qr_url {
                    let ok = (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 500;
                    if !ok || u.chars().any(char::is_whitespace) {
                        return Err(HospitalError::BadQrUrl);
                    }
                }
                Ok(vec![HospitalEvent::HospitalProfileUpdated {
                    hospital_id: h.id,
                    name,
                    address: check_address(&address)?,
                    qr_url,
                }])
            }
            HospitalCommand::ChangeLogo {
                blob_key,
                content_type,
                size,
                sha256,
                width,
                height,
            } => {
                let h = s.hospital.as_ref().ok_or(HospitalError::NotFound)?;
                Ok(vec![HospitalEvent::HospitalLogoChanged {
                    hospital_id: h.id,
                    blob_key,
                    content_type,
                    size,
                    sha256,
                    width,
                    height,
                }])
            }
        }
    }

    fn evolve(mut s: HospitalState, e: &HospitalEvent) -> HospitalState {
        match e {
            HospitalEvent::HospitalRegistered {
                hospital_id,
                alliance_id,
                name,
                code,
                address,
                time_zone,
                ..
            } => {
                s.hospital = Some(HospitalProfile {
                    id: *hospital_id,
                    alliance_id: *alliance_id,
                    name: name.clone(),
                    code: code.clone(),
                    address: address.clone(),
                    time_zone: *time_zone,
                    qr_url: None,
                    logo: None,
                })
            }
            HospitalEvent::HospitalProfileUpdated {
                name, address, qr_url, ..
            } => {
                if let Some(h) = s.hospital.as_mut() {
                    h.name = name.clone();
                    h.address = address.clone();
                    h.qr_url = qr_url.clone();
                }
            }
            HospitalEvent::HospitalLogoChanged {
                blob_key, content_type, ..
            } => {
                if let Some(h) = s.hospital.as_mut() {
                    h.logo = Some((blob_key.clone(), content_type.clone()));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    fn registered() -> HospitalEvent {
        HospitalEvent::HospitalRegistered {
            hospital_id: Uuid::from_u128(2),
            alliance_id: Uuid::from_u128(1),
            name: Name::parse("瑞金医院").unwrap(),
            code: HospitalCode::parse("RJ").unwrap(),
            address: "上海市黄浦区瑞金二路197号".into(),
            time_zone: TimeZone::DEFAULT,
            registered_by: None,
        }
    }

    #[test]
    fn a_profile_update_checks_the_qr_url() {
        let ctx = Ctx::at(chrono::Utc::now());
        let update = |url: &str| HospitalCommand::UpdateProfile {
            name: Name::parse("瑞金医院").unwrap(),
            address: "x".into(),
            qr_url: Some(url.into()),
        };
        given::<Hospital>(&[registered()])
            .when(update("javascript:alert(1)"), &ctx)
            .then_error(HospitalError::BadQrUrl);
        given::<Hospital>(&[])
            .when(update("https://rj.example/"), &ctx)
            .then_error(HospitalError::NotFound);
        assert!(given::<Hospital>(&[registered()])
            .when(update("https://rj.example/scan"), &ctx)
            .outcome()
            .is_ok());
    }
}
