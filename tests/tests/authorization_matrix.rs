//! Every endpoint, called by the wrong people and by the right one.
//!
//! The matrix below has one row per route (method and path template) of the router, and a
//! check that it stays so: a route in the OpenAPI document or registered in
//! `api/src/http/mod.rs` that the matrix does not name fails the test, and so does a row
//! naming a route that no longer exists. Each row is one of
//! - **public**: no authentication by design (health, metrics, the OpenAPI document, login
//!   and its helpers, the printed report's QR verification); called anonymously;
//! - **any principal**: the caller's own things (`/me…`, logout, permissions); anonymous
//!   callers get 401;
//! - **guarded**: anonymous 401; principals of another hospital or alliance 404 (existence is
//!   never revealed across tenants) or 403 where the endpoint only ever acts inside the
//!   caller's own hospital and the caller lacks the permission there, or — for lists and
//!   searches of the caller's own hospital — an answer about their own tenant that names
//!   nothing of hospital H1's; principals of H1 without the permission 403; and the
//!   permitted principal gets a success.
//!
//! Refused calls write nothing (the ledger's head does not move while they run). Then the
//! permitted calls run in the table's order, which walks the workflows (a report is saved,
//! submitted, reviewed, printed and amended; a study shared, deleted, restored, archived
//! and retrieved), so each call finds what it needs.

use std::collections::{BTreeSet, HashMap};

use medledger_dicom_ingest::{synthetic_ct, CtSpec};
use medledger_domain::imaging::worklist_columns::DEFAULT_COLUMNS;
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{dicomweb, system_clock, Deployment, Reply, TestServer};
use serde_json::{json, Value};
use uuid::Uuid;

medledger_tests::on_both_deployments!(
    every_endpoint_refuses_the_wrong_callers_and_serves_the_right_one,
    a_deleted_study_is_hidden_from_every_imaging_endpoint,
);

/// The router, whose routes the matrix must name.
const ROUTER_SOURCE: &str = include_str!("../../api/src/http/mod.rs");

// The callers. H1 and H2 are hospitals of alliance A1, H3 of alliance A2.
const ANONYMOUS: &str = "anonymous";
const OPERATOR: &str = "operator";
/// Alliance administrators of A1 and A2.
const A1: &str = "a1";
const A2: &str = "a2";
/// Hospital administrators of H1, H2, H3.
const H1: &str = "h1";
const H2: &str = "h2";
const H3: &str = "h3";
/// H1's doctor (study.view/share, report.edit/preliminary/print).
const U1: &str = "u1";
/// H1's technician (study.view/upload).
const T1: &str = "t1";
/// H1's reviewer (the doctor's permissions and report.review).
const R1: &str = "r1";
/// An account of H1 without any role.
const N1: &str = "n1";
/// Doctors of H2 (same alliance) and H3 (other alliance): every permission H1's doctor has,
/// in their own hospital.
const U2: &str = "u2";
const U3: &str = "u3";

const SAME_HOSPITAL: [&str; 5] = [H1, U1, T1, R1, N1];
const OTHER_TENANTS: [&str; 5] = [A2, H2, H3, U2, U3];
const OTHER_ALLIANCE: [&str; 3] = [A2, H3, U3];

type Refusal = (&'static str, u16, &'static str);

fn hidden(who: &'static str) -> Refusal {
    (who, 404, "not_found")
}

fn forbidden(who: &'static str) -> Refusal {
    (who, 403, "forbidden")
}

#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    /// A STOW-RS `multipart/related` body of these instances.
    Dicom(Vec<Vec<u8>>),
    Png(Vec<u8>),
}

enum Access {
    /// Called anonymously; answers this status.
    Public(u16),
    /// Any signed-in principal (only anonymous callers are refused).
    AnyPrincipal,
    Guarded,
}

/// Who gets the success, and which one.
enum Permit {
    Call(&'static str, u16),
    /// Checked by the explicit sequence after the table (the caller's tokens change on the
    /// way: a password change, a logout).
    Sequence,
}

struct Row {
    method: &'static str,
    /// The route as the router registers it.
    route: &'static str,
    /// What is called: the route with the fixture's ids (and a query, if any).
    path: String,
    body: Body,
    /// A different body for some callers (e.g. a colleague of their own hospital).
    bodies: Vec<(&'static str, Body)>,
    access: Access,
    refusals: Vec<Refusal>,
    /// Callers of other tenants answered about their own tenant (lists and searches).
    scoped: Vec<&'static str>,
    permit: Permit,
    /// Why no principal of H1 is refused (every one of them may), when so.
    open_to_the_hospital: Option<&'static str>,
    /// Why no other tenant is refused or scoped, when so.
    own_tenant_only: Option<&'static str>,
}

fn row(method: &'static str, route: &'static str, path: impl Into<String>, body: Body) -> Row {
    Row {
        method,
        route,
        path: path.into(),
        body,
        bodies: vec![],
        access: Access::Guarded,
        refusals: vec![],
        scoped: vec![],
        permit: Permit::Sequence,
        open_to_the_hospital: None,
        own_tenant_only: None,
    }
}

fn get(route: &'static str, path: impl Into<String>) -> Row {
    row("GET", route, path, Body::None)
}

fn post(route: &'static str, path: impl Into<String>, body: Value) -> Row {
    row("POST", route, path, Body::Json(body))
}

impl Row {
    fn public(mut self, status: u16) -> Row {
        self.access = Access::Public(status);
        self
    }

    fn any_principal(mut self, who: &'static str, status: u16) -> Row {
        self.access = Access::AnyPrincipal;
        self.permit = Permit::Call(who, status);
        self
    }

    fn any_principal_in_sequence(mut self) -> Row {
        self.access = Access::AnyPrincipal;
        self
    }

    fn refuse(mut self, refusals: impl IntoIterator<Item = Refusal>) -> Row {
        self.refusals.extend(refusals);
        self
    }

    fn scoped(mut self, callers: impl IntoIterator<Item = &'static str>) -> Row {
        self.scoped.extend(callers);
        self
    }

    fn permit(mut self, who: &'static str, status: u16) -> Row {
        self.permit = Permit::Call(who, status);
        self
    }

    fn body_for(mut self, who: &'static str, body: Body) -> Row {
        self.bodies.push((who, body));
        self
    }

    fn open_to_the_hospital(mut self, why: &'static str) -> Row {
        self.open_to_the_hospital = Some(why);
        self
    }

    fn own_tenant_only(mut self, why: &'static str) -> Row {
        self.own_tenant_only = Some(why);
        self
    }

    fn key(&self) -> (String, String) {
        (self.method.to_string(), self.route.to_string())
    }

    fn body(&self, who: &str) -> &Body {
        self.bodies
            .iter()
            .find(|(w, _)| *w == who)
            .map(|(_, b)| b)
            .unwrap_or(&self.body)
    }
}

/// What the matrix calls: H1's studies, reports, templates and knowledge, and the accounts.
struct Fixture {
    o: Org,
    tokens: HashMap<&'static str, String>,
    ids: HashMap<&'static str, Uuid>,
    /// Studies of H1: `S1` (reports, DICOMweb), `S2` (a preliminary report), `S3` (lifecycle).
    studies: Vec<CtSpec>,
    /// A study of S1's patient in H2, which shares its studies as priors with the alliance.
    prior: CtSpec,
    /// An instance of H1 not sent yet (STOW-RS).
    new_instance: Vec<u8>,
    r1_report: Uuid,
    r2_report: Uuid,
    template: Uuid,
    hospital_entry: Uuid,
    personal_entry: Uuid,
    scratch_role: Uuid,
    scratch_user: Uuid,
    /// A PC session of `m1`, an account of H1 whose `/me` calls change it.
    m1_login: String,
    m1_token: String,
    ticket: (String, String),
    logo: Vec<u8>,
}

impl Fixture {
    fn token(&self, who: &str) -> Option<&str> {
        if who == ANONYMOUS {
            return None;
        }
        Some(self.tokens.get(who).unwrap_or_else(|| panic!("unknown caller {who}")))
    }

    fn study(&self, i: usize) -> (String, String, String) {
        let s = &self.studies[i];
        (s.study_instance_uid(), s.series_instance_uid(), s.sop_instance_uid())
    }

    /// What a caller of another tenant must never be shown.
    fn markers(&self, who: &str) -> Vec<String> {
        let mut m: Vec<String> = self.studies.iter().map(|s| s.study_instance_uid()).collect();
        m.extend(self.studies.iter().map(|s| s.sop_instance_uid()));
        m.extend(
            [
                self.r1_report,
                self.r2_report,
                self.template,
                self.hospital_entry,
                self.personal_entry,
            ]
            .map(|u| u.to_string()),
        );
        if OTHER_ALLIANCE.contains(&who) {
            m.extend([self.o.h1, self.o.a1].map(|u| u.to_string()));
        }
        m
    }
}

fn ct(study_index: u32) -> CtSpec {
    CtSpec {
        rows: 16,
        columns: 16,
        study_index,
        patient_index: 7,
        ..CtSpec::default()
    }
}

/// The same patient's study in H2 (other UIDs).
fn h2_prior() -> CtSpec {
    CtSpec { seed: 2, ..ct(1) }
}

fn id_of(r: &Reply) -> Uuid {
    r.body["id"]
        .as_str()
        .or(r.body["report"]["id"].as_str())
        .unwrap_or_else(|| panic!("an id: {}", r.body))
        .parse()
        .unwrap()
}

async fn created(r: Reply) -> Uuid {
    assert!(matches!(r.status, 200 | 201), "{}", r.body);
    id_of(&r)
}

async fn fixture(s: &TestServer) -> Fixture {
    let o = Org::build(s).await;
    let h1_role = |name: &str| o.h1_roles[name].clone();
    let (t1, _) = o
        .add_user(s, o.h1, &o.h1_admin, "tech", vec![h1_role("technician")])
        .await;
    let (r1, _) = o
        .add_user(s, o.h1, &o.h1_admin, "zhao", vec![h1_role("reviewer")])
        .await;
    let (n1, _) = o.add_user(s, o.h1, &o.h1_admin, "nobody", vec![]).await;
    let (m1_token, _) = o.add_user(s, o.h1, &o.h1_admin, "me", vec![]).await;
    let (_, scratch_user) = o.add_user(s, o.h1, &o.h1_admin, "scratch", vec![]).await;
    // The scratch account is frozen (ten wrong passwords) for the unfreeze call.
    for _ in 0..10 {
        let r = s
            .post(
                "/api/v1/auth/login",
                None,
                json!({"login": format!("scratch.{}", o.suffix), "password": "Wrong-Pass-0", "client": "pc"}),
            )
            .await;
        assert!(matches!(r.status, 401 | 403 | 423), "{}", r.body);
    }
    let h2_doctor = Org::role(s, o.h2, &o.h2_admin, "doctor").await;
    let h3_doctor = Org::role(s, o.h3, &o.h3_admin, "doctor").await;
    let (u2, u2_id) = o.add_user(s, o.h2, &o.h2_admin, "li", vec![h2_doctor]).await;
    let (u3, u3_id) = o.add_user(s, o.h3, &o.h3_admin, "chen", vec![h3_doctor]).await;
    let scratch_role = created(
        s.post(
            &format!("/api/v1/hospitals/{}/roles", o.h1),
            Some(&o.h1_admin),
            json!({"name": "临时角色", "permissions": ["stats.view"]}),
        )
        .await,
    )
    .await;

    let studies: Vec<CtSpec> = (1..=3).map(ct).collect();
    dicomweb::stow_all(s, &t1, studies.iter().map(synthetic_ct).collect()).await;
    // H2 holds a study of the same patient and shares its studies as priors.
    let h2_technician = Org::role(s, o.h2, &o.h2_admin, "technician").await;
    let (t2, _) = o.add_user(s, o.h2, &o.h2_admin, "tech2", vec![h2_technician]).await;
    dicomweb::stow_all(s, &t2, vec![synthetic_ct(&h2_prior())]).await;
    let shared = s
        .post(
            "/api/v1/report-settings",
            Some(&o.h2_admin),
            json!({"prior_sharing": "studies"}),
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.body);
    let head = s.head().await;
    let listed = s
        .get(&format!("/api/v1/studies?min_position={head}"), Some(&o.u1_token))
        .await;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(3),
        "{}",
        listed.body
    );

    // R1: S1's report, saved and closed. R2: S2's, submitted (preliminary).
    let mut reports = vec![];
    for study in &studies[..2] {
        let uid = study.study_instance_uid();
        let opened = s
            .post(&format!("/api/v1/studies/{uid}/report"), Some(&o.u1_token), json!({}))
            .await;
        assert_eq!(opened.status, 201, "{}", opened.body);
        let id = id_of(&opened);
        let version = opened.body["report"]["version"].as_u64().unwrap();
        let saved = s
            .post(
                &format!("/api/v1/reports/{id}/save"),
                Some(&o.u1_token),
                json!({"version": version, "findings": "双肺纹理清晰。", "impression": "未见异常。", "close": true}),
            )
            .await;
        assert_eq!(saved.status, 200, "{}", saved.body);
        reports.push((id, saved.body["report"]["version"].as_u64().unwrap()));
    }
    let (r2_report, r2_version) = reports[1];
    let submitted = s
        .post(
            &format!("/api/v1/reports/{r2_report}/submit"),
            Some(&o.u1_token),
            json!({"version": r2_version}),
        )
        .await;
    assert_eq!(submitted.status, 200, "{}", submitted.body);

    let template = created(
        s.post(
            "/api/v1/report-templates",
            Some(&o.h1_admin),
            json!({"name": "胸部CT平扫", "study_type": {"modality": "CT"}}),
        )
        .await,
    )
    .await;
    let hospital_entry = created(
        s.post(
            "/api/v1/knowledge",
            Some(&o.h1_admin),
            json!({"personal": false, "title": "正常胸部", "findings": "胸廓对称。"}),
        )
        .await,
    )
    .await;
    let personal_entry = created(
        s.post(
            "/api/v1/knowledge",
            Some(&o.u1_token),
            json!({"title": "王医生的词条", "findings": "私人。"}),
        )
        .await,
    )
    .await;
    let ticket = s.post("/api/v1/auth/qr-tickets", None, json!({})).await;
    assert_eq!(ticket.status, 201, "{}", ticket.body);
    let mut logo = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 30]))
        .write_to(&mut logo, image::ImageFormat::Png)
        .unwrap();

    let tokens = HashMap::from([
        (OPERATOR, o.operator.clone()),
        (A1, o.a1_admin.clone()),
        (A2, o.a2_admin.clone()),
        (H1, o.h1_admin.clone()),
        (H2, o.h2_admin.clone()),
        (H3, o.h3_admin.clone()),
        (U1, o.u1_token.clone()),
        (T1, t1),
        (R1, r1),
        (N1, n1),
        (U2, u2),
        (U3, u3),
    ]);
    let ids = HashMap::from([(U1, o.u1), (U2, u2_id), (U3, u3_id)]);
    Fixture {
        m1_login: format!("me.{}", o.suffix),
        m1_token,
        tokens,
        ids,
        new_instance: synthetic_ct(&ct(4)),
        studies,
        prior: h2_prior(),
        r1_report: reports[0].0,
        r2_report,
        template,
        hospital_entry,
        personal_entry,
        scratch_role,
        scratch_user,
        ticket: (
            ticket.body["ticket_id"].as_str().unwrap().to_string(),
            ticket.body["secret"].as_str().unwrap().to_string(),
        ),
        logo: logo.into_inner(),
        o,
    }
}

/// The matrix, in the order its permitted calls run.
fn matrix(f: &Fixture) -> Vec<Row> {
    let o = &f.o;
    let (h1, a1, d1) = (o.h1, o.a1, o.d1);
    let (s1, se1, i1) = f.study(0);
    let (s3, _, _) = f.study(2);
    let (r1, r2) = (f.r1_report, f.r2_report);
    let (template, entry, hospital_entry) = (f.template, f.personal_entry, f.hospital_entry);
    let (role, user) = (f.scratch_role, f.scratch_user);
    let suffix = &o.suffix;
    let person = |login: &str| json!({"login": format!("{login}.{suffix}"), "name": "新人", "password": PASSWORD});
    let hospital_read = [hidden(A2), hidden(H2), hidden(H3), hidden(U2), hidden(U3)];
    let hospital_manage = || {
        vec![
            hidden(A2),
            hidden(H2),
            hidden(H3),
            hidden(U2),
            forbidden(U1),
            forbidden(N1),
            forbidden(A1),
            forbidden(OPERATOR),
        ]
    };
    // Studies, DICOMweb and reports: H1's doctors see them; other hospitals' doctors (who
    // hold the same permissions at home) find nothing; administrators and accounts without
    // study.view are refused before anything is looked up.
    let study_read = || {
        vec![
            hidden(U2),
            hidden(U3),
            forbidden(H2),
            forbidden(N1),
            forbidden(H1),
            forbidden(A1),
            forbidden(OPERATOR),
        ]
    };
    let qido = |route: &'static str, path: String| {
        get(route, path)
            .refuse([forbidden(N1), forbidden(H1), forbidden(H2), forbidden(OPERATOR)])
            .scoped([U2, U3])
            .permit(U1, 200)
    };
    let dicomweb = |route: &'static str, path: String, ok: u16| get(route, path).refuse(study_read()).permit(U1, ok);
    let report_read = || {
        vec![
            hidden(U2),
            hidden(U3),
            hidden(H2),
            forbidden(N1),
            forbidden(A1),
            forbidden(OPERATOR),
        ]
    };
    let report_edit = || {
        vec![
            hidden(U2),
            hidden(U3),
            hidden(H2),
            forbidden(N1),
            forbidden(T1),
            forbidden(H1),
        ]
    };
    let report_review = || {
        vec![
            hidden(U2),
            hidden(U3),
            hidden(H2),
            forbidden(U1),
            forbidden(T1),
            forbidden(N1),
        ]
    };
    let reports = |tail: &str| format!("/api/v1/reports/{r1}{tail}");
    let version = json!({"version": "$version"});
    let dw = format!("/dicomweb/studies/{s1}");
    let instance = format!("{dw}/series/{se1}/instances/{i1}");
    // H2's study of S1's patient, as a prior of R1 (H1's report on S1).
    let priors = format!("/dicomweb/reports/{r1}/priors");
    let pw = format!("{priors}/studies/{}", f.prior.study_instance_uid());
    let pse = f.prior.series_instance_uid();
    let prior_instance = format!("{pw}/series/{pse}/instances/{}", f.prior.sop_instance_uid());

    vec![
        // ---- public ------------------------------------------------------------------
        get("/healthz", "/healthz").public(200),
        get("/readyz", "/readyz").public(200),
        get("/metrics", "/metrics").public(200),
        get("/api/openapi.json", "/api/openapi.json").public(200),
        get("/verify/reports/{id}", format!("/verify/reports/{r1}")).public(200),
        post(
            "/api/v1/auth/login",
            "/api/v1/auth/login",
            json!({"login": format!("nobody.{suffix}"), "password": PASSWORD, "client": "pc"}),
        )
        .public(200),
        post("/api/v1/auth/qr-tickets", "/api/v1/auth/qr-tickets", json!({})).public(201),
        post(
            "/api/v1/auth/qr-tickets/{id}/redeem",
            format!("/api/v1/auth/qr-tickets/{}/redeem", f.ticket.0),
            json!({"secret": f.ticket.1}),
        )
        .public(202),
        post(
            "/api/v1/auth/password-resets",
            "/api/v1/auth/password-resets",
            json!({"login": format!("nobody.{suffix}")}),
        )
        .public(202),
        // A guessed code with the current password: refused either way, nothing changes.
        post(
            "/api/v1/auth/password-resets/confirm",
            "/api/v1/auth/password-resets/confirm",
            json!({"login": format!("nobody.{suffix}"), "code": "000000", "new_password": PASSWORD}),
        )
        .public(422),
        // ---- the caller's own ------------------------------------------------------------
        get("/api/v1/me", "/api/v1/me").any_principal(U1, 200),
        get("/api/v1/me/sessions", "/api/v1/me/sessions").any_principal(U1, 200),
        get("/api/v1/me/notifications", "/api/v1/me/notifications").any_principal(R1, 200),
        get("/api/v1/permissions", "/api/v1/permissions").any_principal(N1, 200),
        post("/api/v1/me/phone", "/api/v1/me/phone", json!({"phone": "13800000000"})).any_principal_in_sequence(),
        post(
            "/api/v1/me/password",
            "/api/v1/me/password",
            json!({"current_password": PASSWORD, "new_password": "Another-Pass-9"}),
        )
        .any_principal_in_sequence(),
        post(
            "/api/v1/me/sessions/{id}/revoke",
            format!("/api/v1/me/sessions/{}/revoke", Uuid::now_v7()),
            json!({}),
        )
        .any_principal_in_sequence(),
        post(
            "/api/v1/auth/qr-tickets/{id}/confirm",
            format!("/api/v1/auth/qr-tickets/{}/confirm", f.ticket.0),
            json!({"secret": f.ticket.1}),
        )
        .any_principal_in_sequence(),
        post("/api/v1/auth/logout", "/api/v1/auth/logout", json!({})).any_principal_in_sequence(),
        // ---- platform and alliances ------------------------------------------------------
        post(
            "/api/v1/alliances",
            "/api/v1/alliances",
            json!({"name": format!("新医联体 {suffix}"), "admin": person("new.alliance")}),
        )
        .refuse([
            forbidden(A1),
            forbidden(H1),
            forbidden(U1),
            forbidden(A2),
            forbidden(U3),
        ])
        .own_tenant_only("alliances hang off the platform: no tenant to cross")
        .permit(OPERATOR, 201),
        get("/api/v1/alliances", "/api/v1/alliances")
            .scoped([A2, H3, U3])
            .open_to_the_hospital("everyone sees the alliance they belong to")
            .permit(U1, 200),
        post(
            "/api/v1/alliances/{id}/hospitals",
            format!("/api/v1/alliances/{a1}/hospitals"),
            json!({"name": "新医院", "code": format!("NEW{suffix}"), "admin": person("new.hospital")}),
        )
        .refuse([
            hidden(A2),
            hidden(H3),
            hidden(U3),
            forbidden(H1),
            forbidden(U1),
            forbidden(OPERATOR),
        ])
        .permit(A1, 201),
        get("/api/v1/audit/events", "/api/v1/audit/events")
            .refuse([
                forbidden(A1),
                forbidden(H1),
                forbidden(U1),
                forbidden(A2),
                forbidden(H3),
            ])
            .own_tenant_only("the raw ledger is the platform operator's alone")
            .permit(OPERATOR, 200),
        post(
            "/api/v1/admin/forget-patient",
            "/api/v1/admin/forget-patient",
            json!({"hospital_id": h1, "patient_id": "NO-SUCH-PATIENT", "reason": "矩阵测试"}),
        )
        .refuse([
            forbidden(H1),
            forbidden(U1),
            forbidden(A1),
            forbidden(H3),
            forbidden(A2),
        ])
        .own_tenant_only("forgetting is the platform operator's alone")
        .permit(OPERATOR, 200),
        // ---- hospitals -----------------------------------------------------------------
        get("/api/v1/hospitals", "/api/v1/hospitals")
            .scoped([A2, H3, U3, U2])
            .open_to_the_hospital("everyone sees their own hospital")
            .permit(U1, 200),
        get("/api/v1/hospitals/{id}", format!("/api/v1/hospitals/{h1}"))
            .refuse(hospital_read)
            .open_to_the_hospital("the hospital's directory entry is for all its people")
            .permit(N1, 200),
        post(
            "/api/v1/hospitals/{id}/profile",
            format!("/api/v1/hospitals/{h1}/profile"),
            json!({"name": "瑞金医院", "address": "上海市瑞金二路197号"}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        row(
            "POST",
            "/api/v1/hospitals/{id}/logo",
            format!("/api/v1/hospitals/{h1}/logo"),
            Body::Png(f.logo.clone()),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        get("/api/v1/hospitals/{id}/logo", format!("/api/v1/hospitals/{h1}/logo"))
            .refuse(hospital_read)
            .open_to_the_hospital("the logo is for all the hospital's people")
            .permit(N1, 200),
        get(
            "/api/v1/hospitals/{id}/qr.png",
            format!("/api/v1/hospitals/{h1}/qr.png"),
        )
        .refuse(hospital_read)
        .open_to_the_hospital("the QR code is for all the hospital's people")
        .permit(N1, 200),
        get(
            "/api/v1/hospitals/{id}/qr.svg",
            format!("/api/v1/hospitals/{h1}/qr.svg"),
        )
        .refuse(hospital_read)
        .open_to_the_hospital("the QR code is for all the hospital's people")
        .permit(N1, 200),
        post(
            "/api/v1/hospitals/{id}/departments",
            format!("/api/v1/hospitals/{h1}/departments"),
            json!({"name": "超声科"}),
        )
        .refuse(hospital_manage())
        .permit(H1, 201),
        get(
            "/api/v1/hospitals/{id}/departments",
            format!("/api/v1/hospitals/{h1}/departments"),
        )
        .refuse(hospital_read)
        .open_to_the_hospital("departments are in the directory")
        .permit(N1, 200),
        post(
            "/api/v1/hospitals/{id}/roles",
            format!("/api/v1/hospitals/{h1}/roles"),
            json!({"name": "统计员", "permissions": ["stats.view"]}),
        )
        .refuse(hospital_manage())
        .permit(H1, 201),
        get("/api/v1/hospitals/{id}/roles", format!("/api/v1/hospitals/{h1}/roles"))
            .refuse(hospital_read)
            .open_to_the_hospital("roles are in the directory")
            .permit(N1, 200),
        post(
            "/api/v1/roles/{id}/permissions",
            format!("/api/v1/roles/{role}/permissions"),
            json!({"permissions": ["stats.view", "stats.download"]}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        post(
            "/api/v1/hospitals/{id}/users",
            format!("/api/v1/hospitals/{h1}/users"),
            json!({"login": format!("new.user.{suffix}"), "name": "新人", "password": PASSWORD, "department_id": d1}),
        )
        .refuse(hospital_manage())
        .permit(H1, 201),
        // Another alliance's administrator searches their own alliance (nothing of H1's).
        get("/api/v1/users", format!("/api/v1/users?hospital={h1}"))
            .refuse([hidden(H2), hidden(H3), hidden(U2), hidden(U3)])
            .scoped([A2])
            .open_to_the_hospital("colleagues are in the directory")
            .permit(N1, 200),
        get("/api/v1/users/{id}", format!("/api/v1/users/{user}"))
            .refuse(hospital_read)
            .open_to_the_hospital("colleagues are in the directory")
            .permit(N1, 200),
        post(
            "/api/v1/users/{id}/disable",
            format!("/api/v1/users/{user}/disable"),
            json!({}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        post(
            "/api/v1/users/{id}/enable",
            format!("/api/v1/users/{user}/enable"),
            json!({}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        post(
            "/api/v1/users/{id}/unfreeze",
            format!("/api/v1/users/{user}/unfreeze"),
            json!({}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        post(
            "/api/v1/users/{id}/roles",
            format!("/api/v1/users/{user}/roles"),
            json!({"roles": [role]}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        get("/api/v1/operation-log", "/api/v1/operation-log")
            .refuse([forbidden(U1), forbidden(N1), forbidden(U2)])
            .scoped([H2, H3, A2])
            .permit(H1, 200),
        // ---- imaging -------------------------------------------------------------------
        row(
            "POST",
            "/dicomweb/studies",
            "/dicomweb/studies",
            Body::Dicom(vec![f.new_instance.clone()]),
        )
        .refuse([
            forbidden(U1),
            forbidden(N1),
            forbidden(H1),
            forbidden(OPERATOR),
            forbidden(A1),
            forbidden(H2),
            forbidden(U3),
        ])
        .own_tenant_only("instances always go into the sender's own hospital")
        .permit(T1, 200),
        qido("/dicomweb/studies", "/dicomweb/studies".into()),
        qido("/dicomweb/studies/{study}/series", format!("{dw}/series")),
        qido("/dicomweb/studies/{study}/instances", format!("{dw}/instances")),
        qido(
            "/dicomweb/studies/{study}/series/{series}/instances",
            format!("{dw}/series/{se1}/instances"),
        ),
        dicomweb("/dicomweb/studies/{study}", dw.clone(), 200),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}",
            format!("{dw}/series/{se1}"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}",
            instance.clone(),
            200,
        ),
        dicomweb("/dicomweb/studies/{study}/metadata", format!("{dw}/metadata"), 200),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/metadata",
            format!("{dw}/series/{se1}/metadata"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata",
            format!("{instance}/metadata"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}",
            format!("{instance}/bulkdata/7FE00010"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            format!("{instance}/frames/1"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered",
            format!("{instance}/rendered"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            format!("{instance}/frames/1/rendered"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            format!("{instance}/thumbnail"),
            200,
        ),
        dicomweb(
            "/dicomweb/studies/{study}/series/{series}/thumbnail",
            format!("{dw}/series/{se1}/thumbnail"),
            200,
        ),
        dicomweb("/dicomweb/studies/{study}/thumbnail", format!("{dw}/thumbnail"), 200),
        // The priors of R1: other hospitals' doctors find no R1 (404); without study.view, 403.
        dicomweb("/dicomweb/reports/{report}/priors/studies", format!("{priors}/studies"), 200),
        dicomweb("/dicomweb/reports/{report}/priors/studies/{study}", pw.clone(), 200),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/metadata",
            format!("{pw}/metadata"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series",
            format!("{pw}/series"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/instances",
            format!("{pw}/instances"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/thumbnail",
            format!("{pw}/thumbnail"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}",
            format!("{pw}/series/{pse}"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/metadata",
            format!("{pw}/series/{pse}/metadata"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances",
            format!("{pw}/series/{pse}/instances"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/thumbnail",
            format!("{pw}/series/{pse}/thumbnail"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}",
            prior_instance.clone(),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/metadata",
            format!("{prior_instance}/metadata"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path}",
            format!("{prior_instance}/bulkdata/7FE00010"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            format!("{prior_instance}/frames/1"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/rendered",
            format!("{prior_instance}/rendered"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            format!("{prior_instance}/frames/1/rendered"),
            200,
        ),
        dicomweb(
            "/dicomweb/reports/{report}/priors/studies/{study}/series/{series}/instances/{instance}/thumbnail",
            format!("{prior_instance}/thumbnail"),
            200,
        ),
        get("/api/v1/studies", "/api/v1/studies")
            .refuse([
                forbidden(N1),
                forbidden(H1),
                forbidden(H2),
                forbidden(OPERATOR),
                forbidden(A1),
            ])
            .scoped([U2, U3])
            .permit(U1, 200),
        get("/api/v1/me/worklist-columns", "/api/v1/me/worklist-columns")
            .refuse([forbidden(N1), forbidden(H1), forbidden(OPERATOR)])
            .own_tenant_only("the caller's own columns")
            .permit(U1, 200),
        row(
            "PUT",
            "/api/v1/me/worklist-columns",
            "/api/v1/me/worklist-columns",
            Body::Json(json!({"columns": DEFAULT_COLUMNS[..4]})),
        )
        .refuse([forbidden(N1), forbidden(H1), forbidden(OPERATOR)])
        .own_tenant_only("the caller's own columns")
        .permit(U1, 200),
        // A foreign doctor names a colleague of their own hospital (themselves), so the
        // study's visibility is what answers.
        post(
            "/api/v1/studies/{study}/share",
            format!("/api/v1/studies/{s1}/share"),
            json!({"user_id": o.u1, "note": "请会诊"}),
        )
        .body_for(U2, Body::Json(json!({"user_id": f.ids[U2]})))
        .body_for(U3, Body::Json(json!({"user_id": f.ids[U3]})))
        .refuse([
            hidden(U2),
            hidden(U3),
            forbidden(T1),
            forbidden(N1),
            forbidden(H1),
            forbidden(H2),
        ])
        .permit(R1, 200),
        post(
            "/api/v1/studies/{study}/delete",
            format!("/api/v1/studies/{s3}/delete"),
            json!({"reason": "重复检查"}),
        )
        .refuse([
            hidden(H2),
            hidden(H3),
            forbidden(U1),
            forbidden(T1),
            forbidden(A1),
            forbidden(OPERATOR),
        ])
        .permit(H1, 200),
        get("/api/v1/studies", "/api/v1/studies?deleted=true")
            .refuse([forbidden(U1), forbidden(N1), forbidden(OPERATOR)])
            .scoped([H2, H3])
            .permit(H1, 200),
        post(
            "/api/v1/studies/{study}/restore",
            format!("/api/v1/studies/{s3}/restore"),
            json!({}),
        )
        .refuse([hidden(H2), hidden(H3), forbidden(U1), forbidden(T1), forbidden(A1)])
        .permit(H1, 200),
        post(
            "/api/v1/studies/{study}/archive",
            format!("/api/v1/studies/{s3}/archive"),
            json!({}),
        )
        .refuse([hidden(H2), hidden(H3), forbidden(U1), forbidden(T1), forbidden(A1)])
        .permit(H1, 200),
        post(
            "/api/v1/studies/{study}/retrieve",
            format!("/api/v1/studies/{s3}/retrieve"),
            json!({}),
        )
        .refuse([hidden(H2), hidden(H3), forbidden(U1), forbidden(T1), forbidden(A1)])
        .permit(H1, 200),
        get(
            "/api/v1/storage/usage",
            format!("/api/v1/storage/usage?hospital_id={h1}"),
        )
        .refuse([
            hidden(H2),
            hidden(H3),
            hidden(A2),
            hidden(U2),
            forbidden(U1),
            forbidden(T1),
        ])
        .permit(H1, 200),
        get(
            "/api/v1/storage/uploads",
            format!("/api/v1/storage/uploads?hospital_id={h1}"),
        )
        .refuse([
            hidden(H2),
            hidden(H3),
            hidden(A2),
            hidden(U2),
            forbidden(U1),
            forbidden(T1),
        ])
        .permit(A1, 200),
        row(
            "PUT",
            "/api/v1/hospitals/{id}/storage-plan",
            format!("/api/v1/hospitals/{h1}/storage-plan"),
            Body::Json(json!({"billing_unit": "放射科", "resource_package": "云胶片 5TB", "validity_months": 24})),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        get(
            "/api/v1/hospitals/{id}/dicom-peers",
            format!("/api/v1/hospitals/{h1}/dicom-peers"),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        post(
            "/api/v1/hospitals/{id}/dicom-peers",
            format!("/api/v1/hospitals/{h1}/dicom-peers"),
            json!({"ae_title": "CT_MATRIX"}),
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        row(
            "DELETE",
            "/api/v1/hospitals/{id}/dicom-peers/{ae_title}",
            format!("/api/v1/hospitals/{h1}/dicom-peers/CT_MATRIX"),
            Body::None,
        )
        .refuse(hospital_manage())
        .permit(H1, 200),
        // ---- reports -------------------------------------------------------------------
        // Opening a report looks the study up in the caller's own hospital.
        post(
            "/api/v1/studies/{study_uid}/report",
            format!("/api/v1/studies/{s1}/report"),
            json!({}),
        )
        .refuse([
            hidden(U2),
            hidden(U3),
            forbidden(N1),
            forbidden(T1),
            forbidden(H1),
            forbidden(OPERATOR),
        ])
        .permit(U1, 200),
        get("/api/v1/reports", "/api/v1/reports")
            .refuse([forbidden(N1), forbidden(OPERATOR), forbidden(A1)])
            .scoped([U2, U3, H2])
            .permit(U1, 200),
        get("/api/v1/reports/{id}", reports(""))
            .refuse(report_read())
            .permit(T1, 200),
        get("/api/v1/reports/{id}/history", reports("/history"))
            .refuse(report_read())
            .permit(U1, 200),
        get("/api/v1/reports/{id}/priors", reports("/priors"))
            .refuse(report_read())
            .permit(U1, 200),
        get("/api/v1/reports/{id}/diff", reports(&format!("/diff?against={r2}")))
            .refuse(report_read())
            .permit(U1, 200),
        post(
            "/api/v1/reports/{id}/lock/heartbeat",
            reports("/lock/heartbeat"),
            json!({}),
        )
        .refuse(report_edit())
        .permit(U1, 200),
        post(
            "/api/v1/reports/{id}/save",
            reports("/save"),
            json!({"version": "$version", "findings": "双肺纹理增粗。", "impression": "支气管炎。"}),
        )
        .refuse(report_edit())
        .permit(U1, 200),
        post(
            "/api/v1/reports/{id}/phrases",
            reports("/phrases"),
            json!({"entry_id": hospital_entry, "version": "$version"}),
        )
        .refuse(report_edit())
        .permit(U1, 200),
        post("/api/v1/reports/{id}/lock/release", reports("/lock/release"), json!({}))
            .refuse(report_edit())
            .permit(U1, 200),
        post("/api/v1/reports/{id}/lock", reports("/lock"), json!({}))
            .refuse(report_edit())
            .permit(U1, 200),
        post("/api/v1/reports/{id}/lock/break", reports("/lock/break"), json!({}))
            .refuse([
                hidden(H2),
                hidden(H3),
                hidden(U2),
                forbidden(U1),
                forbidden(R1),
                forbidden(N1),
            ])
            .permit(H1, 200),
        post("/api/v1/reports/{id}/submit", reports("/submit"), version.clone())
            .refuse([
                hidden(U2),
                hidden(U3),
                hidden(H2),
                forbidden(T1),
                forbidden(N1),
                forbidden(H1),
            ])
            .permit(U1, 200),
        post("/api/v1/reports/{id}/review", reports("/review"), version.clone())
            .refuse(report_review())
            .permit(R1, 200),
        post("/api/v1/reports/{id}/print", reports("/print"), json!({"copies": 1}))
            .refuse([
                hidden(U2),
                hidden(U3),
                hidden(H2),
                forbidden(T1),
                forbidden(N1),
                forbidden(H1),
            ])
            .permit(U1, 200),
        post(
            "/api/v1/reports/{id}/amend",
            reports("/amend"),
            json!({"reason": "补充诊断"}),
        )
        .refuse(report_review())
        .permit(R1, 200),
        post(
            "/api/v1/reports/{id}/send-back",
            format!("/api/v1/reports/{r2}/send-back"),
            json!({"reason": "请补充所见"}),
        )
        .refuse(report_review())
        .permit(R1, 200),
        post(
            "/api/v1/report-templates",
            "/api/v1/report-templates",
            json!({"name": "头颅CT平扫", "study_type": {"modality": "CT"}}),
        )
        .refuse([
            forbidden(U1),
            forbidden(N1),
            forbidden(OPERATOR),
            forbidden(A1),
            forbidden(U2),
        ])
        .own_tenant_only("templates are created in the caller's own hospital")
        .permit(H1, 201),
        get("/api/v1/report-templates", "/api/v1/report-templates")
            .refuse([forbidden(N1), forbidden(OPERATOR)])
            .scoped([U2, U3, H2])
            .permit(U1, 200),
        get(
            "/api/v1/report-templates/{id}",
            format!("/api/v1/report-templates/{template}"),
        )
        .refuse([hidden(U2), hidden(U3), hidden(H2), forbidden(N1), forbidden(OPERATOR)])
        .permit(U1, 200),
        post(
            "/api/v1/report-templates/{id}",
            format!("/api/v1/report-templates/{template}"),
            json!({"name": "胸部CT平扫（新版）", "study_type": {"modality": "CT"}}),
        )
        .refuse([hidden(U2), hidden(H2), hidden(H3), forbidden(U1), forbidden(N1)])
        .permit(H1, 200),
        post(
            "/api/v1/report-templates/{id}/retire",
            format!("/api/v1/report-templates/{template}/retire"),
            json!({}),
        )
        .refuse([hidden(U2), hidden(H2), hidden(H3), forbidden(U1), forbidden(N1)])
        .permit(H1, 200),
        post(
            "/api/v1/knowledge",
            "/api/v1/knowledge",
            json!({"title": "李医生的词条", "findings": "私人。"}),
        )
        .refuse([
            forbidden(N1),
            forbidden(T1),
            forbidden(H1),
            forbidden(OPERATOR),
            forbidden(H2),
        ])
        .own_tenant_only("entries are created in the caller's own hospital")
        .permit(R1, 201),
        get("/api/v1/knowledge", "/api/v1/knowledge")
            .refuse([forbidden(N1), forbidden(OPERATOR)])
            .scoped([U2, U3])
            .permit(U1, 200),
        // A personal entry is its owner's: a colleague with report.edit finds nothing.
        post(
            "/api/v1/knowledge/{id}",
            format!("/api/v1/knowledge/{entry}"),
            json!({"title": "王医生的词条", "findings": "私人，已改。"}),
        )
        .refuse([hidden(U2), hidden(U3), hidden(R1), forbidden(N1), forbidden(H1)])
        .permit(U1, 200),
        post(
            "/api/v1/knowledge/{id}/retire",
            format!("/api/v1/knowledge/{entry}/retire"),
            json!({}),
        )
        .refuse([hidden(U2), hidden(U3), hidden(R1), forbidden(N1), forbidden(H1)])
        .permit(U1, 200),
        get("/api/v1/report-settings", "/api/v1/report-settings")
            .refuse([forbidden(N1), forbidden(OPERATOR), forbidden(A1)])
            .scoped([U2, U3, H2])
            .permit(U1, 200),
        post(
            "/api/v1/report-settings",
            "/api/v1/report-settings",
            json!({"allow_self_review": false}),
        )
        .refuse([
            forbidden(U1),
            forbidden(R1),
            forbidden(N1),
            forbidden(OPERATOR),
            forbidden(A1),
        ])
        .own_tenant_only("settings of the caller's own hospital")
        .permit(H1, 200),
    ]
}

async fn send(s: &TestServer, method: &str, path: &str, token: Option<&str>, body: &Body) -> Reply {
    let url = s.url(path);
    let mut r = match method {
        "GET" => s.http.get(url),
        "PUT" => s.http.put(url),
        "DELETE" => s.http.delete(url),
        _ => s.http.post(url),
    };
    r = match body {
        Body::None => r,
        Body::Json(v) => r.json(v),
        Body::Dicom(instances) => {
            let parts: Vec<(&str, Vec<u8>)> = instances.iter().map(|b| ("application/dicom", b.clone())).collect();
            r.header("content-type", dicomweb::content_type())
                .body(dicomweb::multipart(&parts))
        }
        Body::Png(bytes) => r.header("content-type", "image/png").body(bytes.clone()),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    // Read your writes: every query waits for what was written before it.
    let head = s.head().await;
    Reply::from(r.header("x-min-position", head.to_string()).send().await.unwrap()).await
}

/// `"version": "$version"` becomes the report's current content version.
async fn with_version(s: &TestServer, f: &Fixture, path: &str, body: &Body) -> Body {
    let Body::Json(v) = body else {
        return body.clone();
    };
    if v["version"] != "$version" {
        return body.clone();
    }
    let id = path.split('/').nth(4).unwrap();
    let report = send(s, "GET", &format!("/api/v1/reports/{id}"), f.token(U1), &Body::None).await;
    assert_eq!(report.status, 200, "{}", report.body);
    let mut v = v.clone();
    v["version"] = report.body["version"].clone();
    Body::Json(v)
}

/// (METHOD, path template) of every operation in the OpenAPI document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// (METHOD, path) of every `.route(…)` in the router's source: `path` with `/api/v1` in
/// front for the routes of the nested API router.
fn registered(source: &str) -> BTreeSet<(String, String)> {
    let api_start = source.find("let api = Router::new()").expect("the API router");
    let api_end = api_start + source[api_start..].find(';').expect("its end");
    let mut out = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = source[at..].find(".route(") {
        let start = at + found + ".route(".len();
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let mut end = start;
        for (i, c) in source[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + i;
                break;
            }
        }
        let args = &source[start..end];
        let path = args.split('"').nth(1).expect("a path literal");
        let prefix = if (api_start..api_end).contains(&start) {
            "/api/v1"
        } else {
            ""
        };
        let bytes = args.as_bytes();
        for method in ["get", "post", "put", "delete", "patch"] {
            let call = format!("{method}(");
            for (i, _) in args.match_indices(&call) {
                let before = if i == 0 { b' ' } else { bytes[i - 1] };
                if before.is_ascii_whitespace() || matches!(before, b'.' | b',' | b'(') {
                    out.insert((method.to_uppercase(), format!("{prefix}{path}")));
                }
            }
        }
        at = end;
    }
    out
}

#[test]
fn the_router_source_is_read_route_by_route() {
    let routes = registered(ROUTER_SOURCE);
    for expected in [
        ("GET", "/healthz"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/hospitals/{id}/logo"),
        ("POST", "/api/v1/hospitals/{id}/logo"),
        ("PUT", "/api/v1/me/worklist-columns"),
        ("DELETE", "/api/v1/hospitals/{id}/dicom-peers/{ae_title}"),
        ("POST", "/dicomweb/studies"),
        ("GET", "/dicomweb/studies/{study}/thumbnail"),
        ("GET", "/verify/reports/{id}"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} in {routes:?}"
        );
    }
    assert!(!routes.iter().any(|(_, p)| p.contains("/api/v1/api/v1")));
    assert!(routes.len() > 100, "{} routes", routes.len());
}

async fn every_endpoint_refuses_the_wrong_callers_and_serves_the_right_one(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let f = fixture(&s).await;
    let rows = matrix(&f);

    // The matrix names every route, and only routes that exist.
    let named: BTreeSet<(String, String)> = rows.iter().map(Row::key).collect();
    let router = registered(ROUTER_SOURCE);
    let doc = send(&s, "GET", "/api/openapi.json", None, &Body::None).await.body;
    let documented = documented(&doc);
    let missing: Vec<_> = router.union(&documented).filter(|r| !named.contains(*r)).collect();
    assert!(missing.is_empty(), "routes the matrix does not cover: {missing:?}");
    let unknown: Vec<_> = named.difference(&router).collect();
    assert!(
        unknown.is_empty(),
        "rows for routes the router does not have: {unknown:?}"
    );
    // Every route is documented, but for the document itself.
    let undocumented: Vec<_> = router
        .difference(&documented)
        .filter(|(_, path)| path != "/api/openapi.json")
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );

    // Every guarded row refuses someone of the hospital and crosses tenants, or says why not.
    for r in &rows {
        if !matches!(r.access, Access::Guarded) {
            assert!(r.refusals.is_empty() && r.scoped.is_empty(), "{:?}", r.key());
            continue;
        }
        let lower = r
            .refusals
            .iter()
            .any(|(w, st, _)| SAME_HOSPITAL.contains(w) && *st == 403);
        assert!(
            lower || r.open_to_the_hospital.is_some(),
            "{:?}: no principal of H1 is refused",
            r.key()
        );
        let crossed = r
            .refusals
            .iter()
            .map(|(w, _, _)| w)
            .chain(r.scoped.iter())
            .any(|w| OTHER_TENANTS.contains(w));
        assert!(
            crossed || r.own_tenant_only.is_some(),
            "{:?}: no other tenant is tried",
            r.key()
        );
        assert!(
            !matches!(r.permit, Permit::Sequence),
            "{:?}: no permitted call",
            r.key()
        );
    }

    // Refusals: anonymous first on everything that is not public; nothing is written.
    let head = s.head().await;
    let mut refused = 0;
    for r in &rows {
        let mut refusals = r.refusals.clone();
        if !matches!(r.access, Access::Public(_)) {
            refusals.insert(0, (ANONYMOUS, 401, "unauthenticated"));
        }
        for (who, status, code) in refusals {
            let body = with_version(&s, &f, &r.path, r.body(who)).await;
            let reply = send(&s, r.method, &r.path, f.token(who), &body).await;
            assert_eq!(
                (reply.status, reply.body["code"].as_str().unwrap_or("")),
                (status, code),
                "{} {} as {who}: {}",
                r.method,
                r.path,
                reply.body
            );
            refused += 1;
        }
    }
    assert!(refused > 400, "the matrix checks {refused} refusals");
    assert_eq!(s.head().await, head, "no refused call wrote anything");

    // Other tenants' lists and searches answer about their own tenant only.
    for r in &rows {
        for who in &r.scoped {
            let reply = send(&s, r.method, &r.path, f.token(who), r.body(who)).await;
            assert!(
                matches!(reply.status, 200 | 204),
                "{} {} as {who}: {} {}",
                r.method,
                r.path,
                reply.status,
                reply.body
            );
            let text = reply.body.to_string();
            for marker in f.markers(who) {
                assert!(
                    !text.contains(&marker),
                    "{} {} as {who} shows {marker}: {text}",
                    r.method,
                    r.path
                );
            }
        }
    }

    // The permitted calls, in order.
    let mut served: BTreeSet<(String, String)> = BTreeSet::new();
    for r in &rows {
        let (who, status) = match (&r.access, &r.permit) {
            (Access::Public(status), _) => (ANONYMOUS, *status),
            (_, Permit::Call(who, status)) => (*who, *status),
            (_, Permit::Sequence) => continue,
        };
        let body = with_version(&s, &f, &r.path, r.body(who)).await;
        let reply = send(&s, r.method, &r.path, f.token(who), &body).await;
        assert_eq!(reply.status, status, "{} {} as {who}: {}", r.method, r.path, reply.body);
        served.insert(r.key());
    }

    // The caller's own account, whose tokens change on the way.
    let m1 = Some(f.m1_token.as_str());
    let phone = send(
        &s,
        "POST",
        "/api/v1/me/phone",
        m1,
        &Body::Json(json!({"phone": "13800000001"})),
    )
    .await;
    assert_eq!(phone.status, 200, "{}", phone.body);
    let new_password = "Another-Pass-9";
    let changed = send(
        &s,
        "POST",
        "/api/v1/me/password",
        m1,
        &Body::Json(json!({"current_password": PASSWORD, "new_password": new_password})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let login = |client: &'static str| {
        let s = &s;
        let body = json!({"login": f.m1_login, "password": new_password, "client": client});
        async move {
            let r = s.post("/api/v1/auth/login", None, body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["token"].as_str().unwrap().to_string()
        }
    };
    let phone_token = login("mobile").await;
    let pc_token = login("pc").await;
    let sessions = send(&s, "GET", "/api/v1/me/sessions", Some(&phone_token), &Body::None).await;
    assert_eq!(sessions.status, 200, "{}", sessions.body);
    let other = sessions.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["session_id"] != sessions.body["current"])
        .map(|i| i["session_id"].as_str().unwrap().to_string())
        .expect("the PC session");
    let revoked = send(
        &s,
        "POST",
        &format!("/api/v1/me/sessions/{other}/revoke"),
        Some(&phone_token),
        &Body::Json(json!({})),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let gone = send(&s, "GET", "/api/v1/me", Some(&pc_token), &Body::None).await;
    assert_eq!(gone.status, 401, "the revoked session is over: {}", gone.body);
    let confirmed = send(
        &s,
        "POST",
        &format!("/api/v1/auth/qr-tickets/{}/confirm", f.ticket.0),
        Some(&phone_token),
        &Body::Json(json!({"secret": f.ticket.1})),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let out = send(
        &s,
        "POST",
        "/api/v1/auth/logout",
        Some(&phone_token),
        &Body::Json(json!({})),
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    for route in [
        "/api/v1/me/phone",
        "/api/v1/me/password",
        "/api/v1/me/sessions/{id}/revoke",
        "/api/v1/auth/qr-tickets/{id}/confirm",
        "/api/v1/auth/logout",
    ] {
        served.insert(("POST".into(), route.into()));
    }
    let unserved: Vec<_> = named.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "routes never called by a permitted caller: {unserved:?}"
    );

    // Delegation never grows privileges: a user allowed to manage users may only grant
    // roles whose permissions they hold.
    let (h1, u1) = (f.o.h1, f.o.u1);
    let delegate = s
        .post(
            &format!("/api/v1/hospitals/{h1}/roles"),
            Some(&f.o.h1_admin),
            json!({"name": "人事", "permissions": ["admin.users"]}),
        )
        .await;
    let r = s
        .post(
            &format!("/api/v1/users/{u1}/roles"),
            Some(&f.o.h1_admin),
            json!({"roles": [delegate.body["id"]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let grant = s
        .post(
            &format!("/api/v1/hospitals/{h1}/users"),
            Some(&f.o.u1_token),
            json!({"login": format!("esc.{}", f.o.suffix), "name": "提权", "password": PASSWORD, "roles": [f.o.h1_roles["reviewer"]]}),
        )
        .await;
    grant.assert_problem(403, "cannot_grant_more_than_own");
    let plain = s
        .post(
            &format!("/api/v1/hospitals/{h1}/users"),
            Some(&f.o.u1_token),
            json!({"login": format!("plain.{}", f.o.suffix), "name": "普通", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        plain.status, 201,
        "a delegated user manager may add plain users: {}",
        plain.body
    );
    s.stop().await;
}

/// A soft-deleted study is the administrators' (who restore it): hidden from the worklist,
/// QIDO-RS, WADO-RS and its frames, renders and thumbnails alike, for its own hospital's
/// doctors too, until it is restored.
async fn a_deleted_study_is_hidden_from_every_imaging_endpoint(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let f = fixture(&s).await;
    let (study, series, sop) = f.study(2);
    let dw = format!("/dicomweb/studies/{study}");
    let instance = format!("{dw}/series/{series}/instances/{sop}");
    let paths = [
        dw.clone(),
        format!("{dw}/metadata"),
        format!("{dw}/series/{series}"),
        format!("{dw}/series/{series}/metadata"),
        instance.clone(),
        format!("{instance}/metadata"),
        format!("{instance}/bulkdata/7FE00010"),
        format!("{instance}/frames/1"),
        format!("{instance}/rendered"),
        format!("{instance}/frames/1/rendered"),
        format!("{instance}/thumbnail"),
        format!("{dw}/series/{series}/thumbnail"),
        format!("{dw}/thumbnail"),
    ];
    let doctor = f.token(U1);
    // Seen before (and thumbnails cached), hidden after the delete, back after the restore.
    for path in &paths {
        let r = send(&s, "GET", path, doctor, &Body::None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let deleted = send(
        &s,
        "POST",
        &format!("/api/v1/studies/{study}/delete"),
        f.token(H1),
        &Body::Json(json!({"reason": "重复检查"})),
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    for path in &paths {
        let r = send(&s, "GET", path, doctor, &Body::None).await;
        assert_eq!(
            (r.status, r.body["code"].as_str().unwrap_or("")),
            (404, "not_found"),
            "{path} of a deleted study: {}",
            r.body
        );
    }
    for qido in [
        format!("/dicomweb/studies?StudyInstanceUID={study}"),
        format!("{dw}/series"),
    ] {
        let r = send(&s, "GET", &qido, doctor, &Body::None).await;
        assert_eq!(r.status, 204, "{qido}: {}", r.body);
    }
    let restored = send(
        &s,
        "POST",
        &format!("/api/v1/studies/{study}/restore"),
        f.token(H1),
        &Body::Json(json!({})),
    )
    .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    for path in &paths {
        let r = send(&s, "GET", path, doctor, &Body::None).await;
        assert_eq!(r.status, 200, "{path} after the restore: {}", r.body);
    }

    // Archived: every object answers 409 until it is retrieved (cached thumbnails too).
    let (s_ref, f_ref) = (&s, &f);
    let admin = |action: &'static str| {
        let path = format!("/api/v1/studies/{study}/{action}");
        async move {
            let r = send(s_ref, "POST", &path, f_ref.token(H1), &Body::Json(json!({}))).await;
            assert_eq!(r.status, 200, "{action}: {}", r.body);
        }
    };
    admin("archive").await;
    for path in paths.iter().filter(|p| !p.ends_with("metadata")) {
        let r = send(&s, "GET", path, doctor, &Body::None).await;
        assert_eq!(
            (r.status, r.body["code"].as_str().unwrap_or("")),
            (409, "study_archived"),
            "{path} of an archived study: {}",
            r.body
        );
    }
    admin("retrieve").await;

    // Forgotten with its patient: the objects are gone, and no cached render outlives them.
    let forgotten = send(
        &s,
        "POST",
        "/api/v1/admin/forget-patient",
        f.token(OPERATOR),
        &Body::Json(json!({"hospital_id": f.o.h1, "patient_id": f.studies[2].patient_id(), "reason": "患者要求"})),
    )
    .await;
    assert_eq!(forgotten.status, 200, "{}", forgotten.body);
    for path in &paths {
        let r = send(&s, "GET", path, doctor, &Body::None).await;
        assert_eq!(
            (r.status, r.body["code"].as_str().unwrap_or("")),
            (410, "study_erased"),
            "{path} of an erased study: {}",
            r.body
        );
    }
    s.stop().await;
}
