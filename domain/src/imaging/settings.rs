//! A hospital's imaging settings (stream `imaging-settings-<hospital_id>`): its storage plan
//! (how uploads are billed and how long they are kept) and the DICOM peers (calling AE
//! titles) allowed to send it studies.
//!
//! Rules:
//! - A storage plan names a billing unit and a resource package and keeps objects 1 to 600
//!   months; every upload-log entry is billed by the plan in force when it arrived.
//! - An AE title is 1–16 characters of the default repertoire without backslash or control
//!   characters, not all spaces (PS3.5 6.2); stored trimmed and upper-cased. A title
//!   belongs to one hospital at a time (a guard decides that across hospitals); registering
//!   it again for the same hospital only updates its description.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Ctx, Decider};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ImagingSettingsEvent {
    StoragePlanSet {
        hospital_id: Uuid,
        billing_unit: String,
        resource_package: String,
        validity_months: u32,
    },
    DicomPeerRegistered {
        hospital_id: Uuid,
        ae_title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    DicomPeerRemoved {
        hospital_id: Uuid,
        ae_title: String,
    },
}

crate::event_catalog!(
    ImagingSettingsEvent,
    "imaging",
    [StoragePlanSet = 1, DicomPeerRegistered = 1, DicomPeerRemoved = 1]
);

#[derive(Clone, Debug, PartialEq)]
pub enum ImagingSettingsCommand {
    SetStoragePlan {
        hospital_id: Uuid,
        billing_unit: String,
        resource_package: String,
        validity_months: u32,
    },
    RegisterPeer {
        hospital_id: Uuid,
        ae_title: String,
        description: Option<String>,
    },
    RemovePeer {
        hospital_id: Uuid,
        ae_title: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImagingSettingsError {
    #[error("billing unit and resource package have 1 to 100 characters")]
    BadPlanText,
    #[error("storage validity is 1 to 600 months")]
    BadValidity,
    #[error("an AE title has 1 to 16 printable characters, no backslash")]
    BadAeTitle,
    #[error("a description has at most 200 characters")]
    DescriptionTooLong,
    #[error("no such DICOM peer")]
    UnknownPeer,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImagingSettingsState {
    pub plan: Option<(String, String, u32)>,
    /// AE title → description.
    pub peers: BTreeMap<String, Option<String>>,
}

/// The normal form of an AE title, or why it is not one.
pub fn ae_title(raw: &str) -> Result<String, ImagingSettingsError> {
    let t = raw.trim();
    let ok = !t.is_empty() && t.len() <= 16 && t.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !t.contains('\\');
    if ok {
        Ok(t.to_ascii_uppercase())
    } else {
        Err(ImagingSettingsError::BadAeTitle)
    }
}

pub struct ImagingSettings;

impl Decider for ImagingSettings {
    type State = ImagingSettingsState;
    type Command = ImagingSettingsCommand;
    type Event = ImagingSettingsEvent;
    type Error = ImagingSettingsError;

    fn decide(
        s: &ImagingSettingsState,
        c: ImagingSettingsCommand,
        _: &Ctx,
    ) -> Result<Vec<ImagingSettingsEvent>, ImagingSettingsError> {
        match c {
            ImagingSettingsCommand::SetStoragePlan {
                hospital_id,
                billing_unit,
                resource_package,
                validity_months,
            } => {
                let (unit, package) = (billing_unit.trim().to_string(), resource_package.trim().to_string());
                let text_ok = |t: &str| !t.is_empty() && t.chars().count() <= 100;
                if !text_ok(&unit) || !text_ok(&package) {
                    return Err(ImagingSettingsError::BadPlanText);
                }
                if !(1..=600).contains(&validity_months) {
                    return Err(ImagingSettingsError::BadValidity);
                }
                if s.plan.as_ref() == Some(&(unit.clone(), package.clone(), validity_months)) {
                    return Ok(vec![]);
                }
                Ok(vec![ImagingSettingsEvent::StoragePlanSet {
                    hospital_id,
                    billing_unit: unit,
                    resource_package: package,
                    validity_months,
                }])
            }
            ImagingSettingsCommand::RegisterPeer {
                hospital_id,
                ae_title: raw,
                description,
            } => {
                let ae = ae_title(&raw)?;
                let description = description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
                if description.as_ref().is_some_and(|d| d.chars().count() > 200) {
                    return Err(ImagingSettingsError::DescriptionTooLong);
                }
                if s.peers.get(&ae) == Some(&description) {
                    return Ok(vec![]);
                }
                Ok(vec![ImagingSettingsEvent::DicomPeerRegistered {
                    hospital_id,
                    ae_title: ae,
                    description,
                }])
            }
            ImagingSettingsCommand::RemovePeer {
                hospital_id,
                ae_title: raw,
            } => {
                let ae = ae_title(&raw)?;
                if !s.peers.contains_key(&ae) {
                    return Err(ImagingSettingsError::UnknownPeer);
                }
                Ok(vec![ImagingSettingsEvent::DicomPeerRemoved {
                    hospital_id,
                    ae_title: ae,
                }])
            }
        }
    }

    fn evolve(mut s: ImagingSettingsState, e: &ImagingSettingsEvent) -> ImagingSettingsState {
        match e {
            ImagingSettingsEvent::StoragePlanSet {
                billing_unit,
                resource_package,
                validity_months,
                ..
            } => s.plan = Some((billing_unit.clone(), resource_package.clone(), *validity_months)),
            ImagingSettingsEvent::DicomPeerRegistered {
                ae_title, description, ..
            } => {
                s.peers.insert(ae_title.clone(), description.clone());
            }
            ImagingSettingsEvent::DicomPeerRemoved { ae_title, .. } => {
                s.peers.remove(ae_title);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::testing::given;

    const H: Uuid = Uuid::from_u128(5);

    fn ctx() -> Ctx {
        Ctx::at(chrono::Utc::now())
    }

    fn plan(unit: &str, months: u32) -> ImagingSettingsCommand {
        ImagingSettingsCommand::SetStoragePlan {
            hospital_id: H,
            billing_unit: unit.into(),
            resource_package: "Cloud film 5 TB".into(),
            validity_months: months,
        }
    }

    #[test]
    fn a_storage_plan_is_validated_and_setting_the_same_plan_again_records_nothing() {
        let set = ImagingSettingsEvent::StoragePlanSet {
            hospital_id: H,
            billing_unit: "Radiology dept.".into(),
            resource_package: "Cloud film 5 TB".into(),
            validity_months: 60,
        };
        given::<ImagingSettings>(&[])
            .when(plan(" Radiology dept. ", 60), &ctx())
            .then(std::slice::from_ref(&set));
        given::<ImagingSettings>(std::slice::from_ref(&set))
            .when(plan("Radiology dept.", 60), &ctx())
            .then(&[]);
        given::<ImagingSettings>(&[])
            .when(plan("", 60), &ctx())
            .then_error(ImagingSettingsError::BadPlanText);
        given::<ImagingSettings>(&[])
            .when(plan("x", 0), &ctx())
            .then_error(ImagingSettingsError::BadValidity);
        given::<ImagingSettings>(&[])
            .when(plan("x", 601), &ctx())
            .then_error(ImagingSettingsError::BadValidity);
    }

    #[test]
    fn ae_titles_are_normalised_and_checked() {
        assert_eq!(ae_title(" ct_scanner1 ").as_deref(), Ok("CT_SCANNER1"));
        for bad in ["", "   ", "A\\B", "SEVENTEEN_CHARS_X", "tab\there", "中文"] {
            assert_eq!(ae_title(bad), Err(ImagingSettingsError::BadAeTitle), "{bad:?}");
        }
    }

    #[test]
    fn peers_are_registered_updated_and_removed() {
        let registered = ImagingSettingsEvent::DicomPeerRegistered {
            hospital_id: H,
            ae_title: "CT1".into(),
            description: Some("Siemens CT, room 3".into()),
        };
        let register = |d: Option<&str>| ImagingSettingsCommand::RegisterPeer {
            hospital_id: H,
            ae_title: "ct1".into(),
            description: d.map(str::to_string),
        };
        given::<ImagingSettings>(&[])
            .when(register(Some("Siemens CT, room 3")), &ctx())
            .then(std::slice::from_ref(&registered));
        given::<ImagingSettings>(std::slice::from_ref(&registered))
            .when(register(Some("Siemens CT, room 3")), &ctx())
            .then(&[]);
        let remove = ImagingSettingsCommand::RemovePeer {
            hospital_id: H,
            ae_title: "CT1".into(),
        };
        given::<ImagingSettings>(&[])
            .when(remove.clone(), &ctx())
            .then_error(ImagingSettingsError::UnknownPeer);
        given::<ImagingSettings>(&[registered])
            .when(remove, &ctx())
            .then(&[ImagingSettingsEvent::DicomPeerRemoved {
                hospital_id: H,
                ae_title: "CT1".into(),
            }]);
    }
}
