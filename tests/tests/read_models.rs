//! Directory read models (accounts, organization, sessions) on both backends:
//! events are appended straight to the store, the projections caught up, and
//! every query checked; a rebuild must answer the same.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use medledger_api::platform::Platform;
use medledger_commands::codec::Metadata;
use medledger_commands::store::{AppendRequest, ExpectedVersion};
use medledger_commands::App;
use medledger_domain::administration::AdministrationEvent;
use medledger_domain::identity::account::{AccountEvent, LoginFailure, PasswordChange};
use medledger_domain::identity::session::SessionEvent;
use medledger_domain::identity::{AccountRole, ClientKind, LoginName, Tenant};
use medledger_domain::organization::alliance::AllianceEvent;
use medledger_domain::organization::department::DepartmentEvent;
use medledger_domain::organization::hospital::HospitalEvent;
use medledger_domain::organization::role::RoleEvent;
use medledger_domain::organization::{HospitalCode, Name, Permission, TimeZone};
use medledger_domain::{DomainEvent, PersonalData};
use medledger_projections::read_models::accounts::{self, AccountStatus, UserFilter};
use medledger_projections::read_models::organization::{self, HospitalLogo};
use medledger_projections::read_models::sessions;
use medledger_tests::{system_clock, Backend};
use uuid::Uuid;

medledger_tests::on_both_backends!(
    directory_search_is_scoped_by_tenant_and_leaves_out_platform_operators,
    directory_search_matches_login_name_or_phone_case_insensitively_and_literally,
    directory_search_pages_by_login_with_a_cursor,
    an_account_view_follows_freezes_disabling_roles_phone_and_passwords,
    a_forgotten_account_loses_its_name_and_phone_from_view_and_search_even_after_a_rebuild,
    organization_lists_are_scoped_sorted_by_name_and_follow_updates,
    sessions_are_listed_newest_first_and_ended_ones_only_on_request,
);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap()
}

/// A platform whose projections the test drives itself (no background tasks).
async fn opened(b: &Backend) -> Platform {
    let config = b.config(&medledger_commands::crypto::MasterKey::generate());
    let p = Platform::open(&config, system_clock()).await.unwrap();
    p.runner.prepare().await.unwrap();
    p
}

async fn append<E: DomainEvent>(app: &App, stream: &str, events: &[E], at: DateTime<Utc>) {
    let new = app.codec.prepare(events, &Metadata::system(), at).await.unwrap();
    app.store
        .append(AppendRequest::stream(stream, ExpectedVersion::Any, new))
        .await
        .unwrap();
}

async fn caught_up(p: &Platform) {
    p.runner.catch_up_all().await.unwrap();
}

const ALLIANCE: Uuid = Uuid::from_u128(0xa1);
const OTHER_ALLIANCE: Uuid = Uuid::from_u128(0xa2);
const HOSPITAL: Uuid = Uuid::from_u128(0xb1);
const OTHER_HOSPITAL: Uuid = Uuid::from_u128(0xb2);
const RADIOLOGY: Uuid = Uuid::from_u128(0xd1);

struct Person {
    id: Uuid,
    login: &'static str,
    name: &'static str,
    phone: Option<&'static str>,
    role: AccountRole,
    tenant: Tenant,
    department_id: Option<Uuid>,
}

fn hospital_tenant(alliance: Uuid, hospital: Uuid) -> Tenant {
    Tenant {
        alliance_id: Some(alliance),
        hospital_id: Some(hospital),
    }
}

fn registered(p: &Person) -> AccountEvent {
    AccountEvent::AccountRegistered {
        account_id: p.id,
        login: LoginName::parse(p.login).unwrap(),
        display_name: PersonalData::new(p.id, p.name),
        phone: p.phone.map(|ph| PersonalData::new(p.id, ph)),
        role: p.role,
        tenant: p.tenant,
        department_id: p.department_id,
        title: Some("主任医师".into()),
        roles: vec![],
        time_zone: TimeZone::DEFAULT,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        registered_by: None,
    }
}

async fn register(app: &App, p: &Person) {
    append(app, &format!("account-{}", p.id), &[registered(p)], t0()).await;
}

/// An operator, an alliance administrator, a hospital administrator and
/// users in two hospitals of two alliances.
fn people() -> Vec<Person> {
    let at_hospital = hospital_tenant(ALLIANCE, HOSPITAL);
    vec![
        Person {
            id: Uuid::from_u128(1),
            login: "operator",
            name: "Platform Operator",
            phone: None,
            role: AccountRole::PlatformOperator,
            tenant: Tenant::PLATFORM,
            department_id: None,
        },
        Person {
            id: Uuid::from_u128(2),
            login: "east.admin",
            name: "Chen Jing",
            phone: Some("+8613900000002"),
            role: AccountRole::AllianceAdministrator,
            tenant: Tenant {
                alliance_id: Some(ALLIANCE),
                hospital_id: None,
            },
            department_id: None,
        },
        Person {
            id: Uuid::from_u128(3),
            login: "rj.admin",
            name: "Li Na",
            phone: None,
            role: AccountRole::HospitalAdministrator,
            tenant: at_hospital,
            department_id: None,
        },
        Person {
            id: Uuid::from_u128(4),
            login: "dr.wang",
            name: "Wang Fang",
            phone: Some("+8613800138000"),
            role: AccountRole::User,
            tenant: at_hospital,
            department_id: Some(RADIOLOGY),
        },
        Person {
            id: Uuid::from_u128(5),
            login: "dr.zhang",
            name: "张伟 100%_sure",
            phone: Some("+8613700000005"),
            role: AccountRole::User,
            tenant: at_hospital,
            department_id: Some(RADIOLOGY),
        },
        Person {
            id: Uuid::from_u128(6),
            login: "dr.west",
            name: "WANG Lei",
            phone: None,
            role: AccountRole::User,
            tenant: hospital_tenant(OTHER_ALLIANCE, OTHER_HOSPITAL),
            department_id: None,
        },
    ]
}

async fn with_people(b: &Backend) -> Platform {
    let p = opened(b).await;
    for person in people() {
        register(&p.app, &person).await;
    }
    caught_up(&p).await;
    p
}

fn logins(page: &accounts::UserPage) -> Vec<&str> {
    page.items.iter().map(|v| v.login.as_str()).collect()
}

async fn search(p: &Platform, filter: UserFilter) -> accounts::UserPage {
    accounts::search(&p.app.store.read_models(), &UserFilter { limit: 50, ..filter })
        .await
        .unwrap()
}

async fn directory_search_is_scoped_by_tenant_and_leaves_out_platform_operators(b: &Backend) {
    let p = with_people(b).await;
    let all = search(&p, UserFilter::default()).await;
    assert_eq!(
        logins(&all),
        ["dr.wang", "dr.west", "dr.zhang", "east.admin", "rj.admin"]
    );
    assert_eq!(all.next_cursor, None);
    let alliance = search(
        &p,
        UserFilter {
            alliance_id: Some(ALLIANCE),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(logins(&alliance), ["dr.wang", "dr.zhang", "east.admin", "rj.admin"]);
    let hospital = search(
        &p,
        UserFilter {
            hospital_id: Some(HOSPITAL),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(logins(&hospital), ["dr.wang", "dr.zhang", "rj.admin"]);
    let department = search(
        &p,
        UserFilter {
            hospital_id: Some(HOSPITAL),
            department_id: Some(RADIOLOGY),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(logins(&department), ["dr.wang", "dr.zhang"]);
    let elsewhere = search(
        &p,
        UserFilter {
            alliance_id: Some(OTHER_ALLIANCE),
            hospital_id: Some(HOSPITAL),
            ..Default::default()
        },
    )
    .await;
    assert!(elsewhere.items.is_empty());
}

async fn directory_search_matches_login_name_or_phone_case_insensitively_and_literally(b: &Backend) {
    let p = with_people(b).await;
    let query = |q: &str| UserFilter {
        query: Some(q.to_string()),
        ..Default::default()
    };
    // Name, either case; the login matches too.
    assert_eq!(logins(&search(&p, query("WANG")).await), ["dr.wang", "dr.west"]);
    assert_eq!(logins(&search(&p, query(" wang fang ")).await), ["dr.wang"]);
    // Phone digits, login fragments, Chinese names.
    assert_eq!(logins(&search(&p, query("138001")).await), ["dr.wang"]);
    assert_eq!(logins(&search(&p, query("Admin")).await), ["east.admin", "rj.admin"]);
    assert_eq!(logins(&search(&p, query("张伟")).await), ["dr.zhang"]);
    // LIKE wildcards in a query are plain characters.
    assert_eq!(logins(&search(&p, query("100%_sure")).await), ["dr.zhang"]);
    assert_eq!(logins(&search(&p, query("%")).await), ["dr.zhang"]);
    assert_eq!(logins(&search(&p, query("0%_s")).await), ["dr.zhang"]);
    assert!(search(&p, query("1%sure")).await.items.is_empty());
    assert!(search(&p, query("dr_w")).await.items.is_empty());
    // The operator is never listed, even by name.
    assert!(search(&p, query("operator")).await.items.is_empty());
    // An empty query filters nothing.
    assert_eq!(search(&p, query("  ")).await.items.len(), 5);
}

async fn directory_search_pages_by_login_with_a_cursor(b: &Backend) {
    let p = with_people(b).await;
    let db = p.app.store.read_models();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = accounts::search(
            &db,
            &UserFilter {
                after: after.clone(),
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|v| v.login.clone()));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(Some(&c), seen.last(), "the cursor is the page's last login");
                after = Some(c);
            }
            None => break,
        }
    }
    assert_eq!(seen, ["dr.wang", "dr.west", "dr.zhang", "east.admin", "rj.admin"]);
    // The limit is clamped to 1..=200.
    let one = accounts::search(&db, &UserFilter::default()).await.unwrap();
    assert_eq!(
        (logins(&one), one.next_cursor.as_deref()),
        (vec!["dr.wang"], Some("dr.wang"))
    );
    let many = accounts::search(
        &db,
        &UserFilter {
            limit: 10_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(many.items.len(), 5);
}

async fn an_account_view_follows_freezes_disabling_roles_phone_and_passwords(b: &Backend) {
    let p = with_people(b).await;
    let db = p.app.store.read_models();
    let id = Uuid::from_u128(3); // rj.admin, registered without a phone
    let stream = format!("account-{id}");
    let before = accounts::get(&db, id).await.unwrap().unwrap();
    assert_eq!(before.phone, None);
    assert!(!before.phone_erased);
    assert_eq!(before.status, AccountStatus::Active);
    assert_eq!(before.roles, Vec::<Uuid>::new());
    assert_eq!(before.title.as_deref(), Some("主任医师"));
    assert_eq!(before.hospital_id, Some(HOSPITAL));
    assert_eq!(before.registered_at, t0());

    let until = t0() + Duration::hours(16);
    let failed = AccountEvent::LoginFailed {
        account_id: Some(id),
        login: "rj.admin".into(),
        reason: LoginFailure::WrongPassword,
        client: ClientKind::Pc,
        local_date: None,
    };
    let roles = vec![Uuid::from_u128(0xe2), Uuid::from_u128(0xe1)];
    append(
        &p.app,
        &stream,
        &[
            failed.clone(),
            failed,
            AccountEvent::AccountFrozen {
                account_id: id,
                until,
                failed_attempts: 10,
            },
            AccountEvent::RolesAssigned {
                account_id: id,
                roles: roles.clone(),
                by: None,
            },
            AccountEvent::PhoneBound {
                account_id: id,
                phone: PersonalData::new(id, "+8615000000003"),
            },
            AccountEvent::AccountDisabled {
                account_id: id,
                by: None,
            },
        ],
        t0() + Duration::hours(1),
    )
    .await;
    caught_up(&p).await;
    let frozen = accounts::get(&db, id).await.unwrap().unwrap();
    assert_eq!(frozen.failed_logins, 2);
    assert_eq!(frozen.frozen_until, Some(until));
    assert_eq!(frozen.roles, roles, "in the order assigned");
    assert_eq!(frozen.phone.as_deref(), Some("+8615000000003"));
    assert_eq!(frozen.status, AccountStatus::Disabled);
    let by_new_phone = search(
        &p,
        UserFilter {
            query: Some("1500000".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(logins(&by_new_phone), ["rj.admin"], "a bound phone is searchable");

    let later = t0() + Duration::hours(2);
    append(
        &p.app,
        &stream,
        &[
            AccountEvent::AccountUnfrozen {
                account_id: id,
                by: None,
            },
            AccountEvent::AccountEnabled {
                account_id: id,
                by: None,
            },
            AccountEvent::PasswordChanged {
                account_id: id,
                password_hash: "$argon2id$new".into(),
                reason: PasswordChange::Change,
            },
            AccountEvent::LoginSucceeded {
                account_id: id,
                session_id: Uuid::from_u128(0x5e),
                client: ClientKind::Mobile,
            },
        ],
        later,
    )
    .await;
    caught_up(&p).await;
    let thawed = accounts::get(&db, id).await.unwrap().unwrap();
    assert_eq!(thawed.frozen_until, None);
    assert_eq!(thawed.status, AccountStatus::Active);
    assert_eq!(thawed.password_changed_at, Some(later));
    assert_eq!(thawed.last_login_at, Some(later));

    p.runner.rebuild(accounts::NAME).await.unwrap();
    assert_eq!(accounts::get(&db, id).await.unwrap().unwrap(), thawed);
    assert_eq!(accounts::get(&db, Uuid::from_u128(99)).await.unwrap(), None);
}

async fn a_forgotten_account_loses_its_name_and_phone_from_view_and_search_even_after_a_rebuild(b: &Backend) {
    let p = with_people(b).await;
    let db = p.app.store.read_models();
    let wang = Uuid::from_u128(4);
    let by = |q: &str| UserFilter {
        query: Some(q.into()),
        ..Default::default()
    };
    assert_eq!(logins(&search(&p, by("wang fang")).await), ["dr.wang"]);
    medledger_commands::administration::forget_subject(&p.app, wang, "request", &Metadata::system())
        .await
        .unwrap();
    caught_up(&p).await;

    let check = |v: accounts::AccountView| {
        assert_eq!((v.display_name, v.display_name_erased), (None, true));
        assert_eq!((v.phone, v.phone_erased), (None, true));
        assert_eq!(v.login, "dr.wang", "the login is not personal data");
    };
    check(accounts::get(&db, wang).await.unwrap().unwrap());
    assert!(search(&p, by("fang")).await.items.is_empty());
    assert!(search(&p, by("138001")).await.items.is_empty());
    assert_eq!(logins(&search(&p, by("dr.wa")).await), ["dr.wang"]);
    // Others keep theirs; a subject without a phone is not marked as erased one.
    let zhang = accounts::get(&db, Uuid::from_u128(5)).await.unwrap().unwrap();
    assert_eq!(zhang.phone.as_deref(), Some("+8613700000005"));
    append(
        &p.app,
        "subject-00000000-0000-0000-0000-000000000003",
        &[AdministrationEvent::SubjectForgotten {
            subject_id: Uuid::from_u128(3),
            reason: "test".into(),
        }],
        t0(),
    )
    .await;
    caught_up(&p).await;
    let li = accounts::get(&db, Uuid::from_u128(3)).await.unwrap().unwrap();
    assert!(li.display_name_erased);
    assert!(!li.phone_erased, "there was no phone to erase");

    p.runner.rebuild(accounts::NAME).await.unwrap();
    check(accounts::get(&db, wang).await.unwrap().unwrap());
    assert!(search(&p, by("fang")).await.items.is_empty());
    assert!(search(&p, by("138001")).await.items.is_empty());
}

async fn organization_lists_are_scoped_sorted_by_name_and_follow_updates(b: &Backend) {
    let p = opened(b).await;
    let db = p.app.store.read_models();
    let name = |s: &str| Name::parse(s).unwrap();
    for (id, n) in [(ALLIANCE, "华东医联体"), (OTHER_ALLIANCE, "Beijing Alliance")] {
        append(
            &p.app,
            &format!("alliance-{id}"),
            &[AllianceEvent::AllianceCreated {
                alliance_id: id,
                name: name(n),
                created_by: None,
            }],
            t0(),
        )
        .await;
    }
    let third = Uuid::from_u128(0xb3);
    for (id, alliance, n, code) in [
        (HOSPITAL, ALLIANCE, "Ruijin Hospital", "rj"),
        (third, ALLIANCE, "Huashan Hospital", "hs"),
        (OTHER_HOSPITAL, OTHER_ALLIANCE, "Peking Union", "pumch"),
    ] {
        append(
            &p.app,
            &format!("hospital-{id}"),
            &[HospitalEvent::HospitalRegistered {
                hospital_id: id,
                alliance_id: alliance,
                name: name(n),
                code: HospitalCode::parse(code).unwrap(),
                address: "".into(),
                time_zone: TimeZone::DEFAULT,
                registered_by: None,
            }],
            t0(),
        )
        .await;
    }
    let later = t0() + Duration::minutes(5);
    append(
        &p.app,
        &format!("hospital-{HOSPITAL}"),
        &[
            HospitalEvent::HospitalProfileUpdated {
                hospital_id: HOSPITAL,
                name: name("瑞金医院"),
                address: "上海市黄浦区瑞金二路197号".into(),
                qr_url: Some("https://rj.example/scan".into()),
            },
            HospitalEvent::HospitalLogoChanged {
                hospital_id: HOSPITAL,
                blob_key: "logos/rj.png".into(),
                content_type: "image/png".into(),
                size: 1234,
                sha256: "ab".repeat(32),
                width: 64,
                height: 64,
            },
        ],
        later,
    )
    .await;
    let dept = |id: u128, n: &str, phone: Option<&str>| DepartmentEvent::DepartmentCreated {
        department_id: Uuid::from_u128(id),
        hospital_id: HOSPITAL,
        name: name(n),
        phone: phone.map(String::from),
    };
    append(
        &p.app,
        &format!("department-{RADIOLOGY}"),
        &[dept(0xd1, "Radiology", None)],
        t0(),
    )
    .await;
    append(
        &p.app,
        "department-00000000-0000-0000-0000-0000000000d2",
        &[dept(0xd2, "Cardiology", Some("021-1"))],
        t0(),
    )
    .await;
    append(
        &p.app,
        &format!("department-{RADIOLOGY}"),
        &[DepartmentEvent::DepartmentUpdated {
            department_id: RADIOLOGY,
            name: name("Imaging"),
            phone: Some("021-64370045".into()),
        }],
        later,
    )
    .await;
    let doctor = Uuid::from_u128(0xe1);
    let custom = Uuid::from_u128(0xe2);
    append(
        &p.app,
        &format!("role-{doctor}"),
        &[
            RoleEvent::RoleDefined {
                role_id: doctor,
                hospital_id: HOSPITAL,
                name: name("doctor"),
                permissions: [Permission::StudyView, Permission::ReportEdit].into(),
                builtin: true,
            },
            RoleEvent::RolePermissionsChanged {
                role_id: doctor,
                hospital_id: HOSPITAL,
                permissions: [Permission::StudyView, Permission::ReportEdit, Permission::AdminAudit].into(),
            },
        ],
        t0(),
    )
    .await;
    append(
        &p.app,
        &format!("role-{custom}"),
        &[RoleEvent::RoleDefined {
            role_id: custom,
            hospital_id: HOSPITAL,
            name: name("auditor"),
            permissions: [Permission::AdminAudit].into(),
            builtin: false,
        }],
        later,
    )
    .await;
    caught_up(&p).await;

    let alliances = organization::list_alliances(&db, None).await.unwrap();
    assert_eq!(
        alliances.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["Beijing Alliance", "华东医联体"]
    );
    assert_eq!(alliances[1].created_at, t0());
    let own = organization::list_alliances(&db, Some(ALLIANCE)).await.unwrap();
    assert_eq!(own.iter().map(|a| a.alliance_id).collect::<Vec<_>>(), [ALLIANCE]);

    let names = |hs: &[organization::HospitalView]| hs.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    let every = organization::list_hospitals(&db, None, None).await.unwrap();
    assert_eq!(names(&every), ["Huashan Hospital", "Peking Union", "瑞金医院"]);
    let east = organization::list_hospitals(&db, Some(ALLIANCE), None).await.unwrap();
    assert_eq!(names(&east), ["Huashan Hospital", "瑞金医院"]);
    let only = organization::list_hospitals(&db, Some(ALLIANCE), Some(HOSPITAL))
        .await
        .unwrap();
    assert_eq!(names(&only), ["瑞金医院"]);
    assert!(organization::list_hospitals(&db, Some(OTHER_ALLIANCE), Some(HOSPITAL))
        .await
        .unwrap()
        .is_empty());

    let rj = organization::get_hospital(&db, HOSPITAL).await.unwrap().unwrap();
    assert_eq!(rj, only[0]);
    assert_eq!(rj.alliance_id, ALLIANCE);
    assert_eq!(rj.code, "RJ");
    assert_eq!(rj.address, "上海市黄浦区瑞金二路197号");
    assert_eq!(rj.time_zone, "Asia/Shanghai");
    assert_eq!(rj.qr_url.as_deref(), Some("https://rj.example/scan"));
    assert_eq!(
        rj.logo,
        Some(HospitalLogo {
            blob_key: "logos/rj.png".into(),
            content_type: "image/png".into(),
            sha256: "ab".repeat(32),
        })
    );
    assert_eq!(rj.registered_at, t0());
    let hs = organization::get_hospital(&db, third).await.unwrap().unwrap();
    assert_eq!((hs.qr_url, hs.logo), (None, None));
    assert_eq!(organization::get_hospital(&db, Uuid::from_u128(7)).await.unwrap(), None);

    let departments = organization::list_departments(&db, HOSPITAL).await.unwrap();
    assert_eq!(
        departments
            .iter()
            .map(|d| (d.name.as_str(), d.phone.as_deref()))
            .collect::<Vec<_>>(),
        [("Cardiology", Some("021-1")), ("Imaging", Some("021-64370045"))]
    );
    assert_eq!(departments[1].department_id, RADIOLOGY);
    assert_eq!(departments[1].created_at, t0());
    assert!(organization::list_departments(&db, OTHER_HOSPITAL)
        .await
        .unwrap()
        .is_empty());

    let roles = organization::list_roles(&db, HOSPITAL).await.unwrap();
    assert_eq!(
        roles
            .iter()
            .map(|r| (r.name.as_str(), r.builtin, r.permissions.clone()))
            .collect::<Vec<_>>(),
        [
            ("auditor", false, vec!["admin.audit".to_string()]),
            (
                "doctor",
                true,
                vec!["admin.audit".into(), "report.edit".into(), "study.view".into()]
            ),
        ]
    );
    assert_eq!(roles[0].defined_at, later);
    assert!(organization::list_roles(&db, OTHER_HOSPITAL).await.unwrap().is_empty());

    p.runner.rebuild(organization::NAME).await.unwrap();
    assert_eq!(organization::list_hospitals(&db, None, None).await.unwrap(), every);
    assert_eq!(organization::list_roles(&db, HOSPITAL).await.unwrap(), roles);
    assert_eq!(
        organization::list_departments(&db, HOSPITAL).await.unwrap(),
        departments
    );
    assert_eq!(organization::list_alliances(&db, None).await.unwrap(), alliances);
}

async fn sessions_are_listed_newest_first_and_ended_ones_only_on_request(b: &Backend) {
    let p = opened(b).await;
    let db = p.app.store.read_models();
    let account = Uuid::from_u128(4);
    let started = |id: u128, at: DateTime<Utc>, recorded_start: bool| SessionEvent::SessionStarted {
        session_id: Uuid::from_u128(id),
        account_id: account,
        role: AccountRole::User,
        tenant: hospital_tenant(ALLIANCE, HOSPITAL),
        client: ClientKind::Mobile,
        token_sha256: "ab".into(),
        expires_at: at + Duration::hours(12),
        started_at: recorded_start.then_some(at),
        generation: 0,
        method: recorded_start.then(|| "qr".to_string()),
    };
    let old = Uuid::from_u128(0x51);
    let ended = Uuid::from_u128(0x52);
    let newest = Uuid::from_u128(0x53);
    // A session recorded before `started_at` existed.
    append(&p.app, &format!("session-{old}"), &[started(0x51, t0(), false)], t0()).await;
    let t1 = t0() + Duration::hours(1);
    append(&p.app, &format!("session-{ended}"), &[started(0x52, t1, true)], t1).await;
    let t2 = t0() + Duration::hours(2);
    append(&p.app, &format!("session-{newest}"), &[started(0x53, t2, true)], t2).await;
    let touched = t2 + Duration::minutes(30);
    append(
        &p.app,
        &format!("session-{newest}"),
        &[
            SessionEvent::SessionTouched {
                session_id: newest,
                at: touched,
            },
            // Activity never moves backwards.
            SessionEvent::SessionTouched {
                session_id: newest,
                at: t2 + Duration::minutes(10),
            },
        ],
        touched,
    )
    .await;
    let end_at = t1 + Duration::minutes(20);
    append(
        &p.app,
        &format!("session-{ended}"),
        &[SessionEvent::SessionEnded {
            session_id: ended,
            reason: "logout".into(),
        }],
        end_at,
    )
    .await;
    caught_up(&p).await;

    let live = sessions::list_for_account(&db, account, false).await.unwrap();
    assert_eq!(live.iter().map(|s| s.session_id).collect::<Vec<_>>(), [newest, old]);
    let all = sessions::list_for_account(&db, account, true).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.session_id).collect::<Vec<_>>(),
        [newest, ended, old]
    );

    let n = &all[0];
    assert_eq!(
        (n.started_at, n.last_active_at, n.expires_at),
        (t2, touched, t2 + Duration::hours(12))
    );
    assert_eq!((n.client.as_str(), n.method.as_deref()), ("mobile", Some("qr")));
    assert!(n.is_active_at(touched + Duration::minutes(1)));
    let e = &all[1];
    assert_eq!((e.ended_at, e.end_reason.as_deref()), (Some(end_at), Some("logout")));
    assert!(!e.is_active_at(end_at));
    let o = &all[2];
    assert_eq!(
        (o.started_at, o.last_active_at),
        (t0(), t0()),
        "start = expiry - 12h when not recorded"
    );
    assert_eq!(o.method, None);
    assert!(sessions::list_for_account(&db, Uuid::from_u128(5), true)
        .await
        .unwrap()
        .is_empty());

    p.runner.rebuild(sessions::NAME).await.unwrap();
    assert_eq!(sessions::list_for_account(&db, account, true).await.unwrap(), all);
}
