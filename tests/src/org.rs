//! A small organization tree built through the HTTP API, for identity,
//! organization and authorization tests:
//!
//! ```text
//! platform (operator)
//! ├── alliance A1 (admin a1)
//! │   ├── hospital H1 (admin h1): department D1, user u1 (doctor role)
//! │   └── hospital H2 (admin h2)
//! └── alliance A2 (admin a2)
//!     └── hospital H3 (admin h3)
//! ```

use serde_json::{json, Value};
use uuid::Uuid;

use crate::{TestServer, OPERATOR_PASSWORD};

pub const PASSWORD: &str = "Hospital-Pass-1";

pub struct Org {
    pub operator: String,
    pub a1: Uuid,
    pub a1_admin: String,
    pub h1: Uuid,
    pub h1_admin: String,
    pub h1_roles: Value,
    pub d1: Uuid,
    pub u1: Uuid,
    pub u1_login: String,
    pub u1_token: String,
    pub h2: Uuid,
    pub h2_admin: String,
    pub a2: Uuid,
    pub a2_admin: String,
    pub h3: Uuid,
    pub h3_admin: String,
    pub suffix: String,
}

fn person(login: &str, name: &str) -> Value {
    json!({"login": login, "name": name, "phone": "+86 138 0000 0000", "password": PASSWORD})
}

fn id(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

impl Org {
    /// A further account of `hospital`, created by that hospital's administrator (`admin`'s
    /// token) with these role ids and a phone, logged in from a PC: (token, account id). The
    /// login is `login` with the fixture's suffix.
    pub async fn add_user(
        &self,
        s: &TestServer,
        hospital: Uuid,
        admin: &str,
        login: &str,
        roles: Vec<Value>,
    ) -> (String, Uuid) {
        let login = format!("{login}.{}", self.suffix);
        let r = s
            .post(
                &format!("/api/v1/hospitals/{hospital}/users"),
                Some(admin),
                json!({"login": login, "name": login, "phone": "13700000000", "roles": roles, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (s.login(&login, PASSWORD).await.0, id(&r.body))
    }

    /// The id of `hospital`'s role called `name` (e.g. a built-in `doctor`), as its
    /// administrator `admin` lists them.
    pub async fn role(s: &TestServer, hospital: Uuid, admin: &str, name: &str) -> Value {
        let head = s.head().await;
        let r = s
            .get(
                &format!("/api/v1/hospitals/{hospital}/roles?min_position={head}"),
                Some(admin),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .find(|role| role["name"] == name)
            .map(|role| role["role_id"].clone())
            .unwrap_or_else(|| panic!("no role {name}: {}", r.body))
    }

    pub async fn build(s: &TestServer) -> Org {
        let suffix = Uuid::new_v4().simple().to_string()[..8].to_string();
        let (operator, _) = s.login("operator", OPERATOR_PASSWORD).await;
        let alliance = |name: &str, admin: &str| json!({"name": format!("{name} {suffix}"), "admin": person(&format!("{admin}.{suffix}"), admin)});
        let r = s
            .post("/api/v1/alliances", Some(&operator), alliance("华东医联体", "a1"))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let a1 = id(&r.body);
        let r = s
            .post("/api/v1/alliances", Some(&operator), alliance("西南医联体", "a2"))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let a2 = id(&r.body);
        let (a1_admin, _) = s.login(&format!("a1.{suffix}"), PASSWORD).await;
        let (a2_admin, _) = s.login(&format!("a2.{suffix}"), PASSWORD).await;

        let hospital = |name: &str, code: &str, admin: &str| json!({"name": name, "code": format!("{code}{suffix}"), "address": "上海市", "admin": person(&format!("{admin}.{suffix}"), admin)});
        let r = s
            .post(
                &format!("/api/v1/alliances/{a1}/hospitals"),
                Some(&a1_admin),
                hospital("瑞金医院", "RJ", "h1"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let h1 = id(&r.body);
        let h1_roles = r.body["roles"].clone();
        let r = s
            .post(
                &format!("/api/v1/alliances/{a1}/hospitals"),
                Some(&a1_admin),
                hospital("仁济医院", "RJX", "h2"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let h2 = id(&r.body);
        let r = s
            .post(
                &format!("/api/v1/alliances/{a2}/hospitals"),
                Some(&a2_admin),
                hospital("华西医院", "HX", "h3"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let h3 = id(&r.body);
        let (h1_admin, _) = s.login(&format!("h1.{suffix}"), PASSWORD).await;
        let (h2_admin, _) = s.login(&format!("h2.{suffix}"), PASSWORD).await;
        let (h3_admin, _) = s.login(&format!("h3.{suffix}"), PASSWORD).await;

        let r = s
            .post(
                &format!("/api/v1/hospitals/{h1}/departments"),
                Some(&h1_admin),
                json!({"name": "放射科", "phone": "021-6437 0045"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let d1 = id(&r.body);
        let u1_login = format!("wang.{suffix}");
        let r = s
            .post(
                &format!("/api/v1/hospitals/{h1}/users"),
                Some(&h1_admin),
                json!({"login": u1_login, "name": "王医生", "phone": "13912345678", "department_id": d1,
                       "title": "主治医师", "roles": [h1_roles["doctor"]], "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let u1 = id(&r.body);
        let (u1_token, _) = s.login(&u1_login, PASSWORD).await;
        Org {
            operator,
            a1,
            a1_admin,
            h1,
            h1_admin,
            h1_roles,
            d1,
            u1,
            u1_login,
            u1_token,
            h2,
            h2_admin,
            a2,
            a2_admin,
            h3,
            h3_admin,
            suffix,
        }
    }
}
