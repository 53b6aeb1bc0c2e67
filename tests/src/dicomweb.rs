//! Sending DICOM to a test server the way a PACS would (STOW-RS), and reading it back.

use medledger_dicom_ingest::CtSpec;

use crate::{Reply, TestServer};

/// A small (16×16) CT of patient `patient` (Patient ID `P0000000<patient>`, birth date from
/// it), study `index`; `seed` keeps the UIDs of different hospitals apart.
pub fn small_ct(seed: u64, patient: u32, index: u32) -> CtSpec {
    CtSpec {
        seed,
        patient_index: patient,
        study_index: index,
        rows: 16,
        columns: 16,
        ..CtSpec::default()
    }
}

/// `GET` with an optional token, `Accept` and `X-Min-Position`: the status, content type and
/// body bytes.
pub async fn fetch(
    s: &TestServer,
    token: Option<&str>,
    path: &str,
    accept: Option<&str>,
    min_position: Option<u64>,
) -> (u16, String, Vec<u8>) {
    let mut r = s.http.get(s.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    if let Some(p) = min_position {
        r = r.header("x-min-position", p.to_string());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ctype, r.bytes().await.unwrap().to_vec())
}

pub const BOUNDARY: &str = "medledger-test-boundary";

pub fn content_type() -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}")
}

/// A `multipart/related` body of (part content type, bytes).
pub fn multipart(parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (content_type, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /dicomweb/studies`.
pub async fn stow(s: &TestServer, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Reply {
    let mut r = s
        .http
        .post(s.url("/dicomweb/studies"))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    Reply::from(r.send().await.unwrap()).await
}

/// STOW-RS several instances in one request; asserts all were stored.
pub async fn stow_all(s: &TestServer, token: &str, instances: Vec<Vec<u8>>) {
    let parts: Vec<(&str, Vec<u8>)> = instances.into_iter().map(|b| ("application/dicom", b)).collect();
    let r = stow(s, Some(token), &content_type(), multipart(&parts)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `GET` a WADO-RS URL and split the multipart answer into its parts'
/// bytes (each part carries a Content-Length).
pub async fn retrieve(s: &TestServer, token: &str, path: &str) -> (u16, Vec<Vec<u8>>) {
    let (status, ctype, body) = fetch(s, Some(token), path, None, None).await;
    if status != 200 {
        return (status, vec![]);
    }
    assert!(
        ctype.starts_with("multipart/related; type=\"application/dicom\""),
        "{ctype}"
    );
    let boundary = ctype.split("boundary=").nth(1).unwrap().to_string();
    let mut parts = Vec::new();
    let mut pos = 0;
    let opening = format!("--{boundary}\r\n");
    while body[pos..].starts_with(opening.as_bytes()) {
        pos += opening.len();
        let header_end = pos + body[pos..].windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&body[pos..header_end]).to_string();
        let len: usize = headers
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let start = header_end + 4;
        parts.push(body[start..start + len].to_vec());
        pos = start + len + 2;
    }
    assert!(
        body[pos..].starts_with(format!("--{boundary}--").as_bytes()),
        "closing boundary"
    );
    (status, parts)
}
