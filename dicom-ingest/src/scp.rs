//! The DICOM C-STORE SCP: modalities and PACS push instances to us over DIMSE.
//!
//! [`serve`] accepts TCP connections and runs each association in its own task. Only the calling
//! AE titles listed in [`ScpConfig::calling_aes`] may associate (and only when they call our AE
//! title); each one is bound to the hospital whose studies receive what it sends. Accepted: the
//! Verification SOP class and every (non-retired) storage SOP class, in the uncompressed and
//! encapsulated transfer syntaxes of [`TRANSFER_SYNTAXES`].
//!
//! For every C-STORE the data set is reassembled from its P-DATA fragments and put, exactly as
//! received, behind a 128-byte preamble, `DICM` and a file meta group we write — the only bytes
//! that are ours — and the Part-10 object goes through [`ingest`] like a STOW-RS part. C-ECHO
//! answers success.
//!
//! It never re-encodes a data set, never holds more than [`MAX_OBJECT_BYTES`] of one, and never
//! lets a broken or hostile peer affect another association or the listener: protocol errors
//! abort that one association; refused instances get a DIMSE failure status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_ul::association::server::{AccessControl, DefaultNegotiation, ServerAssociationOptions};
use dicom_ul::association::Association;
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValue, PDataValueType, PresentationContextNegotiated,
    PresentationContextResultReason, UserIdentity, MINIMUM_PDU_SIZE,
};
use dicom_ul::Pdu;
use medledger_commands::blobs::BlobStore;
use medledger_commands::codec::Metadata;
use medledger_commands::App;
use medledger_domain::identity::{ClientKind, Tenant};
use medledger_domain::imaging::study::Arrival;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::generate::{write_header, DataSet};
use crate::ingest::{ingest, IngestError, Outcome};
use crate::parse::MAX_OBJECT_BYTES;

/// Who we are on the DICOM network and who may send to us.
#[derive(Clone)]
pub struct ScpConfig {
    /// Our AE title; an association calling another title is rejected.
    pub ae_title: String,
    /// Calling AE title → the hospital whose studies receive what it sends. An unknown calling
    /// AE is rejected at association.
    pub calling_aes: HashMap<String, Tenant>,
    /// Largest PDU we accept (announced at association; at least 1 KiB).
    pub max_pdu_length: u32,
    /// The hospitals' registered DICOM peers (their calling AE titles), consulted before
    /// every association, so a peer registered or removed takes effect at the next one.
    /// Added to `calling_aes` (which win on a clash).
    pub peers: Option<PeerRegistry>,
}

/// Reads the registered calling AE titles and their hospitals.
pub type PeerRegistry =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = HashMap<String, Tenant>> + Send>> + Send + Sync>;

impl std::fmt::Debug for ScpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScpConfig")
            .field("ae_title", &self.ae_title)
            .field("calling_aes", &self.calling_aes)
            .field("max_pdu_length", &self.max_pdu_length)
            .field("peers", &self.peers.is_some())
            .finish()
    }
}

/// Implementation Class UID written into the file meta group of objects received over DIMSE.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.233355811105831461257810518003484039466";
const IMPLEMENTATION_VERSION_NAME: &str = "MEDLEDGER";

/// Transfer syntaxes accepted, the proposer's preference deciding among them. Deflated explicit
/// VR little endian is not here: the parser refuses data sets compressed as a whole, so
/// accepting it would only turn every such instance into a failure instead of letting the
/// sender fall back to an uncompressed syntax.
pub const TRANSFER_SYNTAXES: &[&str] = &[
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
    uids::JPEG_BASELINE8_BIT,
    uids::JPEG_EXTENDED12_BIT,
    uids::JPEG_LOSSLESS_SV1,
    uids::JPEGLS_LOSSLESS,
    uids::JPEGLS_NEAR_LOSSLESS,
    uids::JPEG2000_LOSSLESS,
    uids::JPEG2000,
    uids::RLE_LOSSLESS,
];

/// Every non-retired storage SOP class of the standard dictionary (1.2.840.10008.5.1.4.1.1.*).
/// dicom-ul negotiates against an explicit list (its only alternative, promiscuous mode, would
/// also accept query/retrieve and anything else proposed).
const STORAGE_SOP_CLASSES: &[&str] = &[
    uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_INTRA_ORAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_INTRA_ORAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::ENCAPSULATED_PDF_STORAGE,
    uids::ENCAPSULATED_CDA_STORAGE,
    uids::ENCAPSULATED_STL_STORAGE,
    uids::ENCAPSULATED_OBJ_STORAGE,
    uids::ENCAPSULATED_MTL_STORAGE,
    uids::GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::SEGMENTED_VOLUME_RENDERING_VOLUMETRIC_PRESENTATION_STATE_STORAGE,
    uids::MULTIPLE_VOLUME_RENDERING_VOLUMETRIC_PRESENTATION_STATE_STORAGE,
    uids::VARIABLE_MODALITY_LUT_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::COLOR_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::PSEUDO_COLOR_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::BLENDING_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::XAXRF_GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
    uids::GRAYSCALE_PLANAR_MPR_VOLUMETRIC_PRESENTATION_STATE_STORAGE,
    uids::COMPOSITING_PLANAR_MPR_VOLUMETRIC_PRESENTATION_STATE_STORAGE,
    uids::ADVANCED_BLENDING_PRESENTATION_STATE_STORAGE,
    uids::VOLUME_RENDERING_VOLUMETRIC_PRESENTATION_STATE_STORAGE,
    uids::X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE,
    uids::ENHANCED_XA_IMAGE_STORAGE,
    uids::X_RAY_RADIOFLUOROSCOPIC_IMAGE_STORAGE,
    uids::ENHANCED_XRF_IMAGE_STORAGE,
    uids::POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_PET_IMAGE_STORAGE,
    uids::X_RAY3_D_ANGIOGRAPHIC_IMAGE_STORAGE,
    uids::X_RAY3_D_CRANIOFACIAL_IMAGE_STORAGE,
    uids::BREAST_TOMOSYNTHESIS_IMAGE_STORAGE,
    uids::BREAST_PROJECTION_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::BREAST_PROJECTION_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::ENHANCED_PET_IMAGE_STORAGE,
    uids::BASIC_STRUCTURED_DISPLAY_STORAGE,
    uids::INTRAVASCULAR_OPTICAL_COHERENCE_TOMOGRAPHY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::INTRAVASCULAR_OPTICAL_COHERENCE_TOMOGRAPHY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::CT_IMAGE_STORAGE,
    uids::ENHANCED_CT_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE,
    uids::CT_IMAGE_STORAGE_FOR_PROCESSING,
    uids::ENHANCED_CT_IMAGE_STORAGE_FOR_PROCESSING,
    uids::LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE_FOR_PROCESSING,
    uids::NUCLEAR_MEDICINE_IMAGE_STORAGE,
    uids::CT_DEFINED_PROCEDURE_PROTOCOL_STORAGE,
    uids::CT_PERFORMED_PROCEDURE_PROTOCOL_STORAGE,
    uids::PROTOCOL_APPROVAL_STORAGE,
    uids::XA_DEFINED_PROCEDURE_PROTOCOL_STORAGE,
    uids::XA_PERFORMED_PROCEDURE_PROTOCOL_STORAGE,
    uids::INVENTORY_STORAGE,
    uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
    uids::PARAMETRIC_MAP_STORAGE,
    uids::MR_IMAGE_STORAGE,
    uids::ENHANCED_MR_IMAGE_STORAGE,
    uids::MR_SPECTROSCOPY_STORAGE,
    uids::ENHANCED_MR_COLOR_IMAGE_STORAGE,
    uids::LEGACY_CONVERTED_ENHANCED_MR_IMAGE_STORAGE,
    uids::RT_IMAGE_STORAGE,
    uids::RT_PHYSICIAN_INTENT_STORAGE,
    uids::RT_SEGMENT_ANNOTATION_STORAGE,
    uids::RT_RADIATION_SET_STORAGE,
    uids::C_ARM_PHOTON_ELECTRON_RADIATION_STORAGE,
    uids::TOMOTHERAPEUTIC_RADIATION_STORAGE,
    uids::ROBOTIC_ARM_RADIATION_STORAGE,
    uids::RT_RADIATION_RECORD_SET_STORAGE,
    uids::RT_RADIATION_SALVAGE_RECORD_STORAGE,
    uids::TOMOTHERAPEUTIC_RADIATION_RECORD_STORAGE,
    uids::C_ARM_PHOTON_ELECTRON_RADIATION_RECORD_STORAGE,
    uids::RT_DOSE_STORAGE,
    uids::ROBOTIC_RADIATION_RECORD_STORAGE,
    uids::RT_RADIATION_SET_DELIVERY_INSTRUCTION_STORAGE,
    uids::RT_TREATMENT_PREPARATION_STORAGE,
    uids::ENHANCED_RT_IMAGE_STORAGE,
    uids::ENHANCED_CONTINUOUS_RT_IMAGE_STORAGE,
    uids::RT_PATIENT_POSITION_ACQUISITION_INSTRUCTION_STORAGE,
    uids::RT_STRUCTURE_SET_STORAGE,
    uids::RT_BEAMS_TREATMENT_RECORD_STORAGE,
    uids::RT_PLAN_STORAGE,
    uids::RT_BRACHY_TREATMENT_RECORD_STORAGE,
    uids::RT_TREATMENT_SUMMARY_RECORD_STORAGE,
    uids::RT_ION_PLAN_STORAGE,
    uids::RT_ION_BEAMS_TREATMENT_RECORD_STORAGE,
    uids::DICOSCT_IMAGE_STORAGE,
    uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DICOS_THREAT_DETECTION_REPORT_STORAGE,
    uids::DICOS2DAIT_STORAGE,
    uids::DICOS3DAIT_STORAGE,
    uids::DICOS_QUADRUPOLE_RESONANCE_STORAGE,
    uids::ULTRASOUND_IMAGE_STORAGE,
    uids::ENHANCED_US_VOLUME_STORAGE,
    uids::PHOTOACOUSTIC_IMAGE_STORAGE,
    uids::EDDY_CURRENT_IMAGE_STORAGE,
    uids::EDDY_CURRENT_MULTI_FRAME_IMAGE_STORAGE,
    uids::THERMOGRAPHY_IMAGE_STORAGE,
    uids::THERMOGRAPHY_MULTI_FRAME_IMAGE_STORAGE,
    uids::ULTRASOUND_WAVEFORM_STORAGE,
    uids::RAW_DATA_STORAGE,
    uids::SPATIAL_REGISTRATION_STORAGE,
    uids::SPATIAL_FIDUCIALS_STORAGE,
    uids::DEFORMABLE_SPATIAL_REGISTRATION_STORAGE,
    uids::SEGMENTATION_STORAGE,
    uids::SURFACE_SEGMENTATION_STORAGE,
    uids::TRACTOGRAPHY_RESULTS_STORAGE,
    uids::LABEL_MAP_SEGMENTATION_STORAGE,
    uids::HEIGHT_MAP_SEGMENTATION_STORAGE,
    uids::REAL_WORLD_VALUE_MAPPING_STORAGE,
    uids::SURFACE_SCAN_MESH_STORAGE,
    uids::SURFACE_SCAN_POINT_CLOUD_STORAGE,
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_SINGLE_BIT_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE,
    uids::VL_ENDOSCOPIC_IMAGE_STORAGE,
    uids::VIDEO_ENDOSCOPIC_IMAGE_STORAGE,
    uids::VL_MICROSCOPIC_IMAGE_STORAGE,
    uids::VIDEO_MICROSCOPIC_IMAGE_STORAGE,
    uids::VL_SLIDE_COORDINATES_MICROSCOPIC_IMAGE_STORAGE,
    uids::VL_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::VIDEO_PHOTOGRAPHIC_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY8_BIT_IMAGE_STORAGE,
    uids::OPHTHALMIC_PHOTOGRAPHY16_BIT_IMAGE_STORAGE,
    uids::STEREOMETRIC_RELATIONSHIP_STORAGE,
    uids::OPHTHALMIC_TOMOGRAPHY_IMAGE_STORAGE,
    uids::WIDE_FIELD_OPHTHALMIC_PHOTOGRAPHY_STEREOGRAPHIC_PROJECTION_IMAGE_STORAGE,
    uids::WIDE_FIELD_OPHTHALMIC_PHOTOGRAPHY3_D_COORDINATES_IMAGE_STORAGE,
    uids::OPHTHALMIC_OPTICAL_COHERENCE_TOMOGRAPHY_EN_FACE_IMAGE_STORAGE,
    uids::OPHTHALMIC_OPTICAL_COHERENCE_TOMOGRAPHY_BSCAN_VOLUME_ANALYSIS_STORAGE,
    uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE,
    uids::DERMOSCOPIC_PHOTOGRAPHY_IMAGE_STORAGE,
    uids::CONFOCAL_MICROSCOPY_IMAGE_STORAGE,
    uids::CONFOCAL_MICROSCOPY_TILED_PYRAMIDAL_IMAGE_STORAGE,
    uids::LENSOMETRY_MEASUREMENTS_STORAGE,
    uids::AUTOREFRACTION_MEASUREMENTS_STORAGE,
    uids::KERATOMETRY_MEASUREMENTS_STORAGE,
    uids::SUBJECTIVE_REFRACTION_MEASUREMENTS_STORAGE,
    uids::VISUAL_ACUITY_MEASUREMENTS_STORAGE,
    uids::SPECTACLE_PRESCRIPTION_REPORT_STORAGE,
    uids::OPHTHALMIC_AXIAL_MEASUREMENTS_STORAGE,
    uids::INTRAOCULAR_LENS_CALCULATIONS_STORAGE,
    uids::MACULAR_GRID_THICKNESS_AND_VOLUME_REPORT_STORAGE,
    uids::OPHTHALMIC_VISUAL_FIELD_STATIC_PERIMETRY_MEASUREMENTS_STORAGE,
    uids::OPHTHALMIC_THICKNESS_MAP_STORAGE,
    uids::CORNEAL_TOPOGRAPHY_MAP_STORAGE,
    uids::BASIC_TEXT_SR_STORAGE,
    uids::ENHANCED_SR_STORAGE,
    uids::COMPREHENSIVE_SR_STORAGE,
    uids::COMPREHENSIVE3_DSR_STORAGE,
    uids::EXTENSIBLE_SR_STORAGE,
    uids::PROCEDURE_LOG_STORAGE,
    uids::MAMMOGRAPHY_CADSR_STORAGE,
    uids::KEY_OBJECT_SELECTION_DOCUMENT_STORAGE,
    uids::CHEST_CADSR_STORAGE,
    uids::X_RAY_RADIATION_DOSE_SR_STORAGE,
    uids::RADIOPHARMACEUTICAL_RADIATION_DOSE_SR_STORAGE,
    uids::COLON_CADSR_STORAGE,
    uids::IMPLANTATION_PLAN_SR_STORAGE,
    uids::ACQUISITION_CONTEXT_SR_STORAGE,
    uids::SIMPLIFIED_ADULT_ECHO_SR_STORAGE,
    uids::PATIENT_RADIATION_DOSE_SR_STORAGE,
    uids::PLANNED_IMAGING_AGENT_ADMINISTRATION_SR_STORAGE,
    uids::PERFORMED_IMAGING_AGENT_ADMINISTRATION_SR_STORAGE,
    uids::ENHANCED_X_RAY_RADIATION_DOSE_SR_STORAGE,
    uids::WAVEFORM_ANNOTATION_SR_STORAGE,
    uids::TWELVE_LEAD_ECG_WAVEFORM_STORAGE,
    uids::GENERAL_ECG_WAVEFORM_STORAGE,
    uids::AMBULATORY_ECG_WAVEFORM_STORAGE,
    uids::GENERAL32BIT_ECG_WAVEFORM_STORAGE,
    uids::WAVEFORM_PRESENTATION_STATE_STORAGE,
    uids::WAVEFORM_ACQUISITION_PRESENTATION_STATE_STORAGE,
    uids::HEMODYNAMIC_WAVEFORM_STORAGE,
    uids::CARDIAC_ELECTROPHYSIOLOGY_WAVEFORM_STORAGE,
    uids::BASIC_VOICE_AUDIO_WAVEFORM_STORAGE,
    uids::GENERAL_AUDIO_WAVEFORM_STORAGE,
    uids::ARTERIAL_PULSE_WAVEFORM_STORAGE,
    uids::RESPIRATORY_WAVEFORM_STORAGE,
    uids::MULTICHANNEL_RESPIRATORY_WAVEFORM_STORAGE,
    uids::ROUTINE_SCALP_ELECTROENCEPHALOGRAM_WAVEFORM_STORAGE,
    uids::ELECTROMYOGRAM_WAVEFORM_STORAGE,
    uids::ELECTROOCULOGRAM_WAVEFORM_STORAGE,
    uids::SLEEP_ELECTROENCEPHALOGRAM_WAVEFORM_STORAGE,
    uids::BODY_POSITION_WAVEFORM_STORAGE,
    uids::CONTENT_ASSESSMENT_RESULTS_STORAGE,
    uids::MICROSCOPY_BULK_SIMPLE_ANNOTATIONS_STORAGE,
];

/// An association idle this long (no PDU) is aborted.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// After a failed accept (e.g. out of file descriptors), wait before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// A command set is a few hundred bytes; anything near this is not one.
const COMMAND_SET_LIMIT: usize = 64 * 1024;

/// DIMSE command fields (PS3.7 E.1).
const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
const C_CANCEL_RQ: u16 = 0x0FFF;
const RESPONSE_BIT: u16 = 0x8000;
/// Command Data Set Type meaning "no data set follows".
const NO_DATA_SET: u16 = 0x0101;

/// DIMSE statuses (PS3.4 B.2.3, PS3.7 C).
const SUCCESS: u16 = 0x0000;
const PROCESSING_FAILURE: u16 = 0x0110;
const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;
const UNRECOGNIZED_OPERATION: u16 = 0x0211;
const OUT_OF_RESOURCES: u16 = 0xA700;
const CANNOT_UNDERSTAND: u16 = 0xC000;

/// Accept associations on `listener` until `shutdown` turns true (or its sender is dropped),
/// then stop accepting and wait for open associations: each one is aborted at its next PDU
/// boundary, an instance being stored is finished and answered first.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ScpConfig>,
    app: App,
    blobs: BlobStore,
    mut shutdown: watch::Receiver<bool>,
) {
    for (calling_ae, tenant) in &config.calling_aes {
        if tenant.hospital_id.is_none() {
            tracing::warn!(
                calling_ae,
                "DICOM calling AE is not bound to a hospital; its instances will fail"
            );
        }
    }
    let scp = Arc::new(StorageScp::new(config, app, blobs));
    let for_associations = shutdown.clone();
    let mut associations = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    // Without it each DIMSE request/response pair waits on delayed ACKs.
                    if let Err(e) = socket.set_nodelay(true) {
                        tracing::warn!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    associations.spawn(scp.clone().associate(socket, peer, for_associations.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DICOM listener cannot accept");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(finished) = associations.join_next(), if !associations.is_empty() => report_panic(finished),
            _ = stopped(&mut shutdown) => break,
        }
    }
    drop(listener);
    while let Some(finished) = associations.join_next().await {
        report_panic(finished);
    }
}

/// Resolves when shutdown is asked for or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn report_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(e) = finished {
        if e.is_panic() {
            tracing::error!(error = %e, "a DICOM association task panicked");
        }
    }
}

/// Association policy: our AE title must be called, by a calling AE we know.
struct KnownModalities(Arc<std::sync::RwLock<HashMap<String, Tenant>>>);

impl AccessControl for KnownModalities {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title != this_ae_title {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let known = self.0.read().map(|m| m.contains_key(calling_ae_title)).unwrap_or(false);
        if !known {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

struct StorageScp {
    config: Arc<ScpConfig>,
    /// Calling AE → hospital: the configured ones and the registered peers.
    known: Arc<std::sync::RwLock<HashMap<String, Tenant>>>,
    options: ServerAssociationOptions<'static, KnownModalities, DefaultNegotiation>,
    app: App,
    blobs: BlobStore,
}

impl StorageScp {
    fn new(config: Arc<ScpConfig>, app: App, blobs: BlobStore) -> Self {
        let known = Arc::new(std::sync::RwLock::new(config.calling_aes.clone()));
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(KnownModalities(known.clone()))
            .ae_title(config.ae_title.trim().to_owned())
            .max_pdu_length(config.max_pdu_length.max(MINIMUM_PDU_SIZE))
            .read_timeout(IDLE_TIMEOUT)
            .write_timeout(WRITE_TIMEOUT)
            .with_abstract_syntax(uids::VERIFICATION);
        for sop_class in STORAGE_SOP_CLASSES {
            options = options.with_abstract_syntax(*sop_class);
        }
        for transfer_syntax in TRANSFER_SYNTAXES {
            options = options.with_transfer_syntax(*transfer_syntax);
        }
        StorageScp {
            config,
            known,
            options,
            app,
            blobs,
        }
    }

    /// One association, from negotiation to release or abort.
    async fn associate(self: Arc<Self>, socket: TcpStream, peer: SocketAddr, mut shutdown: watch::Receiver<bool>) {
        if let Some(registry) = &self.config.peers {
            let mut known = registry().await;
            known.extend(self.config.calling_aes.clone());
            if let Ok(mut current) = self.known.write() {
                *current = known;
            }
        }
        let mut association = match self.options.establish_async(socket).await {
            Ok(association) => association,
            Err(e) => {
                tracing::info!(%peer, error = %e, "DICOM association not established");
                return;
            }
        };
        let calling_ae = association.peer_ae_title().to_owned();
        let tenant = self.known.read().ok().and_then(|m| m.get(&calling_ae).copied());
        let Some(tenant) = tenant else {
            let _ = association.abort().await; // unreachable: access control checked it
            return;
        };
        let metadata = Metadata {
            client: ClientKind::Dicom,
            actor: None,
            tenant,
            ip: Some(peer.ip().to_string()),
            user_agent: Some(format!("dicom:{calling_ae}")),
            ..Metadata::system()
        };
        let contexts = association.presentation_contexts().to_vec();
        let mut incoming = Reassembly::new(&calling_ae, MAX_OBJECT_BYTES);
        tracing::debug!(%peer, calling_ae, "DICOM association established");
        loop {
            let received = tokio::select! {
                pdu = association.receive() => Some(pdu),
                _ = stopped(&mut shutdown) => None,
            };
            let Some(received) = received else {
                let _ = association.abort().await;
                return;
            };
            match received {
                Ok(Pdu::PData { data }) => {
                    for fragment in data {
                        let message = match incoming.push(fragment, &contexts) {
                            Ok(Some(message)) => message,
                            Ok(None) => continue,
                            Err(problem) => {
                                tracing::warn!(%peer, calling_ae, problem, "DIMSE protocol error; aborting");
                                let _ = association.abort().await;
                                return;
                            }
                        };
                        let Some(reply) = self.answer(message, &tenant, &metadata).await else {
                            continue;
                        };
                        if let Err(e) = association.send(&reply).await {
                            tracing::info!(%peer, calling_ae, error = %e, "cannot answer; association dropped");
                            return;
                        }
                    }
                }
                Ok(Pdu::ReleaseRQ) => {
                    let _ = association.send(&Pdu::ReleaseRP).await;
                    tracing::debug!(%peer, calling_ae, "DICOM association released");
                    return;
                }
                Ok(Pdu::AbortRQ { source }) => {
                    tracing::info!(%peer, calling_ae, ?source, "DICOM association aborted by peer");
                    return;
                }
                Ok(other) => {
                    tracing::warn!(%peer, calling_ae, pdu = %other.short_description(), "unexpected PDU; aborting");
                    let _ = association.abort().await;
                    return;
                }
                Err(e) => {
                    tracing::info!(%peer, calling_ae, error = %e, "DICOM association ended");
                    let _ = association.abort().await;
                    return;
                }
            }
        }
    }

    /// The response to a complete DIMSE message, if it takes one.
    async fn answer(&self, message: Message, tenant: &Tenant, metadata: &Metadata) -> Option<Pdu> {
        let Message { context, command, body } = message;
        let (field, status, comment) = match command.field {
            C_ECHO_RQ => (C_ECHO_RSP, SUCCESS, None),
            C_STORE_RQ => {
                let (status, comment) = match body {
                    Body::Object(bytes) => {
                        let result = ingest(
                            &self.app,
                            &self.blobs,
                            tenant,
                            Bytes::from(bytes),
                            Arrival::CStore,
                            metadata,
                        )
                        .await;
                        if let Err(e) = &result {
                            tracing::warn!(
                                calling_ae = metadata.user_agent.as_deref(),
                                sop_instance_uid = command.sop_instance_uid,
                                error = %e,
                                "C-STORE refused"
                            );
                        }
                        store_status(result.as_ref().map(|done| done.outcome))
                    }
                    Body::TooLarge => (
                        OUT_OF_RESOURCES,
                        Some(format!("data set exceeds {MAX_OBJECT_BYTES} bytes")),
                    ),
                    Body::None | Body::Ignored => (
                        CANNOT_UNDERSTAND,
                        Some("C-STORE-RQ needs a data set and valid Affected SOP UIDs".to_owned()),
                    ),
                };
                (C_STORE_RSP, status, comment)
            }
            C_CANCEL_RQ => return None,
            field if field & RESPONSE_BIT == 0 => (
                field | RESPONSE_BIT,
                UNRECOGNIZED_OPERATION,
                Some("only C-STORE and C-ECHO are provided".to_owned()),
            ),
            _ => return None, // a response sent to us: nothing to answer
        };
        Some(Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: response(field, &command, status, comment.as_deref()),
            }],
        })
    }
}

/// The C-STORE status for an ingest result (as STOW-RS maps the same cases).
fn store_status(result: Result<Outcome, &IngestError>) -> (u16, Option<String>) {
    match result {
        Ok(Outcome::Stored | Outcome::Duplicate) => (SUCCESS, None),
        Ok(Outcome::Conflict) => (
            DUPLICATE_SOP_INSTANCE,
            Some("a different object was already received under this SOP Instance UID".to_owned()),
        ),
        Err(IngestError::Rejected(r)) if r.code == "too_large" => (OUT_OF_RESOURCES, Some(r.to_string())),
        Err(IngestError::Rejected(r)) => (CANNOT_UNDERSTAND, Some(r.to_string())),
        Err(IngestError::Failed(e)) => match e.classify() {
            (_, code @ "instance_in_other_study") => (DUPLICATE_SOP_INSTANCE, Some(code.to_owned())),
            (_, code) => (PROCESSING_FAILURE, Some(code.to_owned())),
        },
    }
}

/// A complete DIMSE message: its command and what arrived after it.
#[derive(Debug)]
struct Message {
    context: u8,
    command: Command,
    body: Body,
}

#[derive(Debug, PartialEq)]
enum Body {
    /// The command said no data set follows.
    None,
    /// A C-STORE data set behind our Part-10 prefix, ready for ingest.
    Object(Vec<u8>),
    /// A C-STORE data set over the limit: its fragments were dropped as they came.
    TooLarge,
    /// A data set we do not keep (not a C-STORE, or one with unusable UIDs).
    Ignored,
}

/// Reassembles DIMSE messages from P-DATA fragments, one message at a time (no asynchronous
/// operations are negotiated).
struct Reassembly {
    calling_ae: String,
    /// Largest Part-10 object (prefix + data set) held.
    limit: usize,
    state: State,
}

enum State {
    Idle,
    Command { context: u8, bytes: Vec<u8> },
    DataSet { context: u8, command: Command, body: Body },
}

impl Reassembly {
    fn new(calling_ae: &str, limit: usize) -> Self {
        Reassembly {
            calling_ae: calling_ae.to_owned(),
            limit,
            state: State::Idle,
        }
    }

    /// Take one fragment; a message is returned when its last fragment arrives. An error is a
    /// protocol violation that ends the association.
    fn push(
        &mut self,
        fragment: PDataValue,
        contexts: &[PresentationContextNegotiated],
    ) -> Result<Option<Message>, &'static str> {
        let id = fragment.presentation_context_id;
        let context = contexts
            .iter()
            .find(|pc| pc.id == id && pc.reason == PresentationContextResultReason::Acceptance)
            .ok_or("P-DATA on a presentation context that was not accepted")?;
        let state = std::mem::replace(&mut self.state, State::Idle);
        match (state, fragment.value_type) {
            (State::Idle, PDataValueType::Command) => self.command(id, fragment.data, fragment.is_last, context),
            (State::Command { context: c, mut bytes }, PDataValueType::Command) if c == id => {
                if bytes.len() + fragment.data.len() > COMMAND_SET_LIMIT {
                    return Err("command set too large");
                }
                bytes.extend_from_slice(&fragment.data);
                self.command(id, bytes, fragment.is_last, context)
            }
            (
                State::DataSet {
                    context: c,
                    command,
                    mut body,
                },
                PDataValueType::Data,
            ) if c == id => {
                if let Body::Object(object) = &mut body {
                    if object.len() + fragment.data.len() > self.limit {
                        body = Body::TooLarge; // frees what was held
                    } else {
                        object.extend_from_slice(&fragment.data);
                    }
                }
                if fragment.is_last {
                    return Ok(Some(Message {
                        context: id,
                        command,
                        body,
                    }));
                }
                self.state = State::DataSet {
                    context: id,
                    command,
                    body,
                };
                Ok(None)
            }
            _ => Err("P-DATA fragment out of order"),
        }
    }

    fn command(
        &mut self,
        id: u8,
        bytes: Vec<u8>,
        is_last: bool,
        context: &PresentationContextNegotiated,
    ) -> Result<Option<Message>, &'static str> {
        if bytes.len() > COMMAND_SET_LIMIT {
            return Err("command set too large");
        }
        if !is_last {
            self.state = State::Command { context: id, bytes };
            return Ok(None);
        }
        let command = Command::parse(&bytes)?;
        if !command.has_data_set {
            return Ok(Some(Message {
                context: id,
                command,
                body: Body::None,
            }));
        }
        let body = if command.field == C_STORE_RQ && is_uid(&command.sop_class_uid) && is_uid(&command.sop_instance_uid)
        {
            Body::Object(part10_prefix(
                &command.sop_class_uid,
                &command.sop_instance_uid,
                trim(&context.transfer_syntax),
                &self.calling_ae,
            ))
        } else {
            Body::Ignored
        };
        self.state = State::DataSet {
            context: id,
            command,
            body,
        };
        Ok(None)
    }
}

/// What we read from a request's command set.
#[derive(Debug, Clone, PartialEq)]
struct Command {
    field: u16,
    message_id: u16,
    sop_class_uid: String,
    sop_instance_uid: String,
    has_data_set: bool,
}

impl Command {
    fn parse(bytes: &[u8]) -> Result<Command, &'static str> {
        let (mut field, mut message_id, mut data_set_type) = (None, None, None);
        let (mut sop_class_uid, mut sop_instance_uid) = (String::new(), String::new());
        for (tag, value) in command_elements(bytes)? {
            match tag {
                tags::COMMAND_FIELD => field = Some(us(value)?),
                tags::MESSAGE_ID => message_id = Some(us(value)?),
                tags::COMMAND_DATA_SET_TYPE => data_set_type = Some(us(value)?),
                tags::AFFECTED_SOP_CLASS_UID => sop_class_uid = trim(&String::from_utf8_lossy(value)).to_owned(),
                tags::AFFECTED_SOP_INSTANCE_UID => sop_instance_uid = trim(&String::from_utf8_lossy(value)).to_owned(),
                _ => {}
            }
        }
        Ok(Command {
            field: field.ok_or("command set without Command Field")?,
            // Responses carry Message ID Being Responded To instead; they are never answered.
            message_id: message_id.unwrap_or(0),
            sop_class_uid,
            sop_instance_uid,
            has_data_set: data_set_type.ok_or("command set without Command Data Set Type")? != NO_DATA_SET,
        })
    }
}

/// The elements of a command set (implicit VR little endian, no sequences), each length checked
/// against the bytes present; nothing is allocated for what a length claims.
fn command_elements(mut bytes: &[u8]) -> Result<Vec<(Tag, &[u8])>, &'static str> {
    let mut elements = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 8 {
            return Err("command set ends inside an element header");
        }
        let tag = Tag(
            u16::from_le_bytes([bytes[0], bytes[1]]),
            u16::from_le_bytes([bytes[2], bytes[3]]),
        );
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let rest = &bytes[8..];
        if len > rest.len() {
            return Err("command set element longer than the command set");
        }
        elements.push((tag, &rest[..len]));
        bytes = &rest[len..];
    }
    Ok(elements)
}

fn us(value: &[u8]) -> Result<u16, &'static str> {
    match value {
        [a, b] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err("command element of type US is not 2 bytes"),
    }
}

/// A response command set: implicit VR little endian, group length first.
fn response(field: u16, request: &Command, status: u16, comment: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    if !request.sop_class_uid.is_empty() {
        command_element(
            &mut body,
            tags::AFFECTED_SOP_CLASS_UID,
            &padded(&request.sop_class_uid, 0),
        );
    }
    command_element(&mut body, tags::COMMAND_FIELD, &field.to_le_bytes());
    command_element(
        &mut body,
        tags::MESSAGE_ID_BEING_RESPONDED_TO,
        &request.message_id.to_le_bytes(),
    );
    command_element(&mut body, tags::COMMAND_DATA_SET_TYPE, &NO_DATA_SET.to_le_bytes());
    command_element(&mut body, tags::STATUS, &status.to_le_bytes());
    if let Some(comment) = comment {
        // LO: at most 64 characters, no backslash or control characters.
        let comment: String = comment
            .chars()
            .map(|c| if c.is_ascii_graphic() && c != '\\' { c } else { ' ' })
            .take(64)
            .collect();
        command_element(&mut body, tags::ERROR_COMMENT, &padded(comment.trim_end(), b' '));
    }
    if !request.sop_instance_uid.is_empty() {
        command_element(
            &mut body,
            tags::AFFECTED_SOP_INSTANCE_UID,
            &padded(&request.sop_instance_uid, 0),
        );
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    let group_length = u32::try_from(body.len()).expect("a response is a few hundred bytes");
    command_element(&mut out, tags::COMMAND_GROUP_LENGTH, &group_length.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn command_element(out: &mut Vec<u8>, tag: Tag, value: &[u8]) {
    out.extend_from_slice(&tag.group().to_le_bytes());
    out.extend_from_slice(&tag.element().to_le_bytes());
    let len = u32::try_from(value.len()).expect("command values are short");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(value);
}

fn padded(value: &str, pad: u8) -> Vec<u8> {
    let mut bytes = value.as_bytes().to_vec();
    if bytes.len() % 2 == 1 {
        bytes.push(pad);
    }
    bytes
}

/// The Part-10 envelope for a data set received over DIMSE: 128-byte zero preamble, `DICM` and
/// our file meta group. The data set bytes are appended after it unchanged.
fn part10_prefix(sop_class_uid: &str, sop_instance_uid: &str, transfer_syntax_uid: &str, calling_ae: &str) -> Vec<u8> {
    let mut meta = DataSet::default();
    meta.raw(tags::FILE_META_INFORMATION_VERSION, VR::OB, vec![0x00, 0x01]);
    meta.text(tags::MEDIA_STORAGE_SOP_CLASS_UID, VR::UI, sop_class_uid);
    meta.text(tags::MEDIA_STORAGE_SOP_INSTANCE_UID, VR::UI, sop_instance_uid);
    meta.text(tags::TRANSFER_SYNTAX_UID, VR::UI, transfer_syntax_uid);
    meta.text(tags::IMPLEMENTATION_CLASS_UID, VR::UI, IMPLEMENTATION_CLASS_UID);
    meta.text(tags::IMPLEMENTATION_VERSION_NAME, VR::SH, IMPLEMENTATION_VERSION_NAME);
    meta.text(tags::SOURCE_APPLICATION_ENTITY_TITLE, VR::AE, calling_ae);
    let meta = meta.encode();
    let mut out = Vec::with_capacity(132 + 12 + meta.len() + 64 * 1024);
    out.extend_from_slice(&[0u8; 128]);
    out.extend_from_slice(b"DICM");
    let group_length = u32::try_from(meta.len()).expect("file meta group is a few hundred bytes");
    write_header(&mut out, tags::FILE_META_INFORMATION_GROUP_LENGTH, VR::UL, 4);
    out.extend_from_slice(&group_length.to_le_bytes());
    out.extend_from_slice(&meta);
    out
}

/// UIDs are padded with NUL (or, by some senders, a space); neither is part of the value.
fn trim(value: &str) -> &str {
    value.trim_matches(|c: char| c == ' ' || c == '\0')
}

/// The UID rule the parser applies to the data set, applied to the command's UIDs before they
/// go into the file meta group: at most 64 characters, digits and dots, no empty component.
fn is_uid(uid: &str) -> bool {
    uid.len() <= 64
        && uid
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{synthetic_ct, CtSpec};
    use crate::parse::{inspect, Rejection};
    use dicom_object::meta::FileMetaTable;
    use medledger_commands::{Error, Kind};

    const CALLING_AE: &str = "MODALITY1";

    fn ct() -> Vec<u8> {
        synthetic_ct(&CtSpec {
            rows: 64,
            columns: 64,
            private_tags: true,
            ..CtSpec::default()
        })
    }

    /// Where the data set starts in a Part-10 file whose meta group starts with its length.
    fn data_set_start(file: &[u8]) -> usize {
        144 + u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize
    }

    fn store_rq(message_id: u16, sop_instance_uid: &str, data_set_type: u16) -> Vec<u8> {
        let mut body = Vec::new();
        command_element(
            &mut body,
            tags::AFFECTED_SOP_CLASS_UID,
            &padded(uids::CT_IMAGE_STORAGE, 0),
        );
        command_element(&mut body, tags::COMMAND_FIELD, &C_STORE_RQ.to_le_bytes());
        command_element(&mut body, tags::MESSAGE_ID, &message_id.to_le_bytes());
        command_element(&mut body, tags::PRIORITY, &0u16.to_le_bytes());
        command_element(&mut body, tags::COMMAND_DATA_SET_TYPE, &data_set_type.to_le_bytes());
        command_element(&mut body, tags::AFFECTED_SOP_INSTANCE_UID, &padded(sop_instance_uid, 0));
        let mut out = Vec::new();
        command_element(&mut out, tags::COMMAND_GROUP_LENGTH, &(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn contexts() -> Vec<PresentationContextNegotiated> {
        vec![
            PresentationContextNegotiated {
                id: 1,
                reason: PresentationContextResultReason::Acceptance,
                transfer_syntax: format!("{}\0", uids::EXPLICIT_VR_LITTLE_ENDIAN),
                abstract_syntax: uids::CT_IMAGE_STORAGE.to_owned(),
            },
            PresentationContextNegotiated {
                id: 3,
                reason: PresentationContextResultReason::AbstractSyntaxNotSupported,
                transfer_syntax: uids::IMPLICIT_VR_LITTLE_ENDIAN.to_owned(),
                abstract_syntax: "1.2.840.10008.5.1.4.1.2.2.1".to_owned(),
            },
        ]
    }

    fn fragment(context: u8, value_type: PDataValueType, is_last: bool, data: &[u8]) -> PDataValue {
        PDataValue {
            presentation_context_id: context,
            value_type,
            is_last,
            data: data.to_vec(),
        }
    }

    fn status_of(response: &[u8]) -> u16 {
        let elements = command_elements(response).unwrap();
        let (_, value) = elements.iter().find(|(tag, _)| *tag == tags::STATUS).unwrap();
        us(value).unwrap()
    }

    #[test]
    fn received_data_set_is_kept_byte_for_byte_behind_our_meta_group() {
        let source = ct();
        let data_set = &source[data_set_start(&source)..];
        let uid = CtSpec::default().sop_instance_uid();
        let mut file = part10_prefix(
            uids::CT_IMAGE_STORAGE,
            &uid,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
            CALLING_AE,
        );
        file.extend_from_slice(data_set);

        let metadata = inspect(&file).expect("a valid Part-10 object");
        assert_eq!(metadata.sop_instance_uid, uid);
        assert_eq!(metadata.transfer_syntax_uid, uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(&file[data_set_start(&file)..], data_set, "data set changed");
        let meta = FileMetaTable::from_reader(&file[128..]).unwrap();
        assert_eq!(meta.information_version, [0, 1]);
        assert_eq!(meta.media_storage_sop_class_uid(), uids::CT_IMAGE_STORAGE);
        assert_eq!(meta.media_storage_sop_instance_uid(), uid);
        assert_eq!(meta.implementation_class_uid(), IMPLEMENTATION_CLASS_UID);
        assert_eq!(meta.implementation_version_name(), Some("MEDLEDGER"));
        assert_eq!(meta.source_application_entity_title(), Some(CALLING_AE));
    }

    #[test]
    fn fragmented_store_is_reassembled_as_sent() {
        let source = ct();
        let data_set = &source[data_set_start(&source)..];
        let uid = CtSpec::default().sop_instance_uid();
        let command = store_rq(7, &uid, 0x0000);
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        let contexts = contexts();
        let (head, tail) = command.split_at(20);
        assert!(incoming
            .push(fragment(1, PDataValueType::Command, false, head), &contexts)
            .unwrap()
            .is_none());
        assert!(incoming
            .push(fragment(1, PDataValueType::Command, true, tail), &contexts)
            .unwrap()
            .is_none());
        let chunks: Vec<&[u8]> = data_set.chunks(1000).collect();
        let mut message = None;
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            message = incoming
                .push(fragment(1, PDataValueType::Data, last, chunk), &contexts)
                .unwrap();
            assert_eq!(message.is_some(), last);
        }
        let message = message.unwrap();
        assert_eq!(message.command.message_id, 7);
        assert_eq!(message.command.sop_instance_uid, uid);
        let Body::Object(file) = message.body else {
            panic!("no object: {:?}", message.body)
        };
        assert_eq!(&file[data_set_start(&file)..], data_set);
        assert_eq!(inspect(&file).unwrap().sop_instance_uid, uid);
    }

    #[test]
    fn a_data_set_over_the_limit_is_dropped_not_held() {
        let command = store_rq(1, "1.2.3", 0x0000);
        let mut incoming = Reassembly::new(CALLING_AE, 4096);
        let contexts = contexts();
        incoming
            .push(fragment(1, PDataValueType::Command, true, &command), &contexts)
            .unwrap();
        for _ in 0..9 {
            incoming
                .push(fragment(1, PDataValueType::Data, false, &[0; 1000]), &contexts)
                .unwrap();
        }
        let message = incoming
            .push(fragment(1, PDataValueType::Data, true, &[0; 10]), &contexts)
            .unwrap()
            .unwrap();
        assert_eq!(message.body, Body::TooLarge);
    }

    #[test]
    fn out_of_order_or_foreign_fragments_are_protocol_errors() {
        let contexts = contexts();
        let command = store_rq(1, "1.2.3", 0x0000);
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        assert!(incoming
            .push(fragment(1, PDataValueType::Data, true, b"data first"), &contexts)
            .is_err());
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        assert!(incoming
            .push(fragment(3, PDataValueType::Command, true, &command), &contexts)
            .is_err());
        assert!(incoming
            .push(fragment(9, PDataValueType::Command, true, &command), &contexts)
            .is_err());
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        incoming
            .push(fragment(1, PDataValueType::Command, true, &command), &contexts)
            .unwrap();
        assert!(incoming
            .push(fragment(1, PDataValueType::Command, true, &command), &contexts)
            .is_err());
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        let huge = vec![0u8; COMMAND_SET_LIMIT / 2 + 1];
        incoming
            .push(fragment(1, PDataValueType::Command, false, &huge), &contexts)
            .unwrap();
        assert_eq!(
            incoming
                .push(fragment(1, PDataValueType::Command, false, &huge), &contexts)
                .err(),
            Some("command set too large")
        );
    }

    #[test]
    fn hostile_command_sets_are_refused_without_allocating() {
        let mut command = store_rq(1, "1.2.3", 0x0000);
        assert!(Command::parse(&command).is_ok());
        // A length claiming 4 GiB on the last element.
        let at = command.len() - 6 - 4;
        command[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Command::parse(&command).is_err());
        assert!(Command::parse(&[0x00, 0x00, 0x00]).is_err());
        assert!(Command::parse(&[]).is_err(), "no command field");
        for cut in 0..store_rq(1, "1.2.3", 0).len() {
            let _ = Command::parse(&store_rq(1, "1.2.3", 0)[..cut]);
        }
    }

    #[test]
    fn store_without_usable_uids_keeps_no_data() {
        let contexts = contexts();
        let command = store_rq(1, "not a uid", 0x0000);
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        incoming
            .push(fragment(1, PDataValueType::Command, true, &command), &contexts)
            .unwrap();
        let message = incoming
            .push(fragment(1, PDataValueType::Data, true, b"whatever"), &contexts)
            .unwrap()
            .unwrap();
        assert_eq!(message.body, Body::Ignored);
    }

    #[test]
    fn echo_needs_no_data_set() {
        let mut body = Vec::new();
        command_element(&mut body, tags::AFFECTED_SOP_CLASS_UID, &padded(uids::VERIFICATION, 0));
        command_element(&mut body, tags::COMMAND_FIELD, &C_ECHO_RQ.to_le_bytes());
        command_element(&mut body, tags::MESSAGE_ID, &5u16.to_le_bytes());
        command_element(&mut body, tags::COMMAND_DATA_SET_TYPE, &NO_DATA_SET.to_le_bytes());
        let mut incoming = Reassembly::new(CALLING_AE, MAX_OBJECT_BYTES);
        let message = incoming
            .push(fragment(1, PDataValueType::Command, true, &body), &contexts())
            .unwrap()
            .unwrap();
        assert_eq!(message.body, Body::None);
        assert_eq!(message.command.field, C_ECHO_RQ);
        let rsp = response(C_ECHO_RSP, &message.command, SUCCESS, None);
        let rsp_command = Command::parse(&rsp).unwrap();
        assert_eq!(rsp_command.field, C_ECHO_RSP);
        assert!(!rsp_command.has_data_set);
        assert_eq!(status_of(&rsp), SUCCESS);
    }

    #[test]
    fn store_response_carries_status_uids_and_a_legal_comment() {
        let request = Command::parse(&store_rq(42, "1.2.3.4", 0)).unwrap();
        let comment = "truncated: object ends \\ inside\nPixel Data ".repeat(3);
        let rsp = response(C_STORE_RSP, &request, CANNOT_UNDERSTAND, Some(&comment));
        let elements = command_elements(&rsp).unwrap();
        assert_eq!(elements[0].0, tags::COMMAND_GROUP_LENGTH);
        assert_eq!(
            u32::from_le_bytes(elements[0].1.try_into().unwrap()) as usize,
            rsp.len() - 12
        );
        let value = |tag| elements.iter().find(|(t, _)| *t == tag).unwrap().1;
        assert_eq!(us(value(tags::MESSAGE_ID_BEING_RESPONDED_TO)).unwrap(), 42);
        assert_eq!(status_of(&rsp), CANNOT_UNDERSTAND);
        assert_eq!(value(tags::AFFECTED_SOP_INSTANCE_UID), b"1.2.3.4\0");
        let comment = value(tags::ERROR_COMMENT);
        assert!(comment.len() <= 64 && comment.len() % 2 == 0);
        assert!(!comment.contains(&b'\\') && !comment.contains(&b'\n'));
        let tags_in_order: Vec<Tag> = elements.iter().map(|(t, _)| *t).collect();
        let mut sorted = tags_in_order.clone();
        sorted.sort();
        assert_eq!(tags_in_order, sorted, "elements in ascending tag order");
    }

    #[test]
    fn ingest_outcomes_map_to_c_store_statuses() {
        let rejected = |code| {
            IngestError::Rejected(Rejection {
                code,
                reason: "x".into(),
            })
        };
        let failed = |code| IngestError::Failed(Error::rejected(Kind::Conflict, code, "x"));
        let status = |r: Result<Outcome, &IngestError>| store_status(r).0;
        assert_eq!(status(Ok(Outcome::Stored)), SUCCESS);
        assert_eq!(status(Ok(Outcome::Duplicate)), SUCCESS);
        assert_eq!(status(Ok(Outcome::Conflict)), DUPLICATE_SOP_INSTANCE);
        assert_eq!(status(Err(&rejected("truncated"))), CANNOT_UNDERSTAND);
        assert_eq!(status(Err(&rejected("too_large"))), OUT_OF_RESOURCES);
        assert_eq!(status(Err(&failed("instance_in_other_study"))), DUPLICATE_SOP_INSTANCE);
        assert_eq!(status(Err(&failed("blob_store_unavailable"))), PROCESSING_FAILURE);
    }

    #[test]
    fn negotiation_lists_the_common_storage_classes() {
        for sop_class in [
            uids::CT_IMAGE_STORAGE,
            uids::MR_IMAGE_STORAGE,
            uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
            uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            uids::ULTRASOUND_IMAGE_STORAGE,
            uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            uids::ENHANCED_CT_IMAGE_STORAGE,
            uids::ENHANCED_MR_IMAGE_STORAGE,
        ] {
            assert!(STORAGE_SOP_CLASSES.contains(&sop_class), "{sop_class}");
        }
        assert!(STORAGE_SOP_CLASSES
            .iter()
            .all(|uid| uid.starts_with("1.2.840.10008.5.1.4.1.1.")));
        // dicom-ul accepts only what the registry can at least parse.
        for ts in TRANSFER_SYNTAXES {
            assert!(dicom_ul::association::server::is_supported(ts), "{ts}");
        }
    }

    #[test]
    fn only_known_calling_aes_calling_us_may_associate() {
        let known = HashMap::from([(CALLING_AE.to_owned(), Tenant::default())]);
        let policy = KnownModalities(Arc::new(std::sync::RwLock::new(known)));
        assert_eq!(policy.check_access("MEDLEDGER", CALLING_AE, "MEDLEDGER", None), Ok(()));
        assert_eq!(
            policy.check_access("MEDLEDGER", "STRANGER", "MEDLEDGER", None),
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        );
        assert_eq!(
            policy.check_access("MEDLEDGER", CALLING_AE, "OTHER", None),
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        );
    }
}
