//! Sending DICOM to a test server the way a PACS would (STOW-RS).

use crate::{Reply, TestServer};

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
