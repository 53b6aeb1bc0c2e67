//! WADO-RS frames, rendered images and thumbnails through the HTTP API, on both
//! deployments: real decoding of what STOW-RS stored, tenant scoping and problems.

use medledger_dicom_ingest::generate::pixel_data;
use medledger_dicom_ingest::{synthetic_ct, synthetic_encapsulated, CtSpec, ImageSpec, Pattern, Photometric};
use medledger_tests::dicomweb::{self, multipart, stow};
use medledger_tests::org::{Org, PASSWORD};
use medledger_tests::{system_clock, Deployment, Reply, TestServer};
use serde_json::json;

medledger_tests::on_both_deployments!(frames_rendered_and_thumbnails_of_stored_instances);

fn ct(instance: u32, frames: u32) -> CtSpec {
    CtSpec {
        seed: 7,
        instance_index: instance,
        rows: 64,
        columns: 128,
        image: ImageSpec {
            frames,
            pattern: Pattern::Gradient,
            photometric: Photometric::Monochrome2,
            ..ImageSpec::default()
        },
        ..CtSpec::default()
    }
}

/// GET with `X-Min-Position: head` (read your writes: the instances view has applied the STOW).
async fn get(
    s: &TestServer,
    head: u64,
    token: Option<&str>,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, Vec<u8>) {
    dicomweb::fetch(s, token, path, accept, Some(head)).await
}

async fn problem(s: &TestServer, head: u64, token: Option<&str>, path: &str) -> Reply {
    let mut r = s.http.get(s.url(path)).header("x-min-position", head.to_string());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    Reply::from(r.send().await.unwrap()).await
}

/// Splits a multipart/related body into (content type, bytes) per part.
fn parts(ctype: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = ctype.split("boundary=").nth(1).expect("boundary").trim_matches('"');
    let opening = format!("--{boundary}\r\n");
    let mut out = Vec::new();
    let mut pos = 0;
    while body[pos..].starts_with(opening.as_bytes()) {
        pos += opening.len();
        let end = pos + body[pos..].windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&body[pos..end]).to_string();
        let field = |name: &str| {
            headers
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .to_string()
        };
        let len: usize = field("Content-Length:").parse().unwrap();
        let start = end + 4;
        out.push((field("Content-Type:"), body[start..start + len].to_vec()));
        pos = start + len + 2;
    }
    assert!(body[pos..].starts_with(format!("--{boundary}--").as_bytes()));
    out
}

async fn frames_rendered_and_thumbnails_of_stored_instances(d: &Deployment) {
    let s = TestServer::start(&d.config(), system_clock()).await;
    let o = Org::build(&s).await;
    let tech_login = format!("tech.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h1),
            Some(&o.h1_admin),
            json!({"login": tech_login, "name": "技师", "password": PASSWORD, "roles": [o.h1_roles["technician"]]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (tech, _) = s.login(&tech_login, PASSWORD).await;
    // A doctor of another hospital (with study.view there).
    let roles = s
        .get(&format!("/api/v1/hospitals/{}/roles", o.h2), Some(&o.h2_admin))
        .await;
    let doctor = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "doctor")
        .unwrap()["role_id"]
        .clone();
    let other_login = format!("li.{}", o.suffix);
    let r = s
        .post(
            &format!("/api/v1/hospitals/{}/users", o.h2),
            Some(&o.h2_admin),
            json!({"login": other_login, "name": "李医生", "password": PASSWORD, "roles": [doctor]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (other, _) = s.login(&other_login, PASSWORD).await;

    // A series of three instances; the middle one has two frames.
    let specs = [ct(0, 1), ct(1, 2), ct(2, 1)];
    let body = multipart(
        &specs
            .iter()
            .map(|c| ("application/dicom", synthetic_ct(c)))
            .collect::<Vec<_>>(),
    );
    let r = stow(&s, Some(&tech), &medledger_tests::dicomweb::content_type(), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let head = s.head().await;
    let (study, series) = (specs[0].study_instance_uid(), specs[0].series_instance_uid());
    let instance = |i: usize| {
        format!(
            "/dicomweb/studies/{study}/series/{series}/instances/{}",
            specs[i].sop_instance_uid()
        )
    };
    let token = Some(o.u1_token.as_str());

    // Frames as stored: native little-endian bytes, one part per frame in the order asked.
    let (status, ctype, body) = get(&s, head, token, &format!("{}/frames/2,1", instance(1)), None).await;
    assert_eq!(status, 200);
    assert!(
        ctype.starts_with("multipart/related; type=\"application/octet-stream\""),
        "{ctype}"
    );
    let got = parts(&ctype, &body);
    let pixels = pixel_data(&specs[1]);
    let frame_len = 64 * 128 * 2;
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].0,
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    );
    assert_eq!(got[0].1, pixels[frame_len..]);
    assert_eq!(got[1].1, pixels[..frame_len]);
    let (status, ctype, body) = get(&s, head, token, &format!("{}/frames/1", instance(0)), None).await;
    assert_eq!(status, 200);
    assert_eq!(parts(&ctype, &body)[0].1, pixel_data(&specs[0]));

    // Rendered: JPEG by default, PNG on request, of the image's size unless a viewport is given.
    let (status, ctype, body) = get(&s, head, token, &format!("{}/rendered", instance(0)), None).await;
    assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
    let img = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (128, 64));
    let path = format!(
        "{}/frames/2/rendered?window=1024,4096,linear&viewport=64,64",
        instance(1)
    );
    let (status, ctype, body) = get(&s, head, token, &path, Some("image/png")).await;
    assert_eq!((status, ctype.as_str()), (200, "image/png"));
    let img = image::load_from_memory_with_format(&body, image::ImageFormat::Png)
        .unwrap()
        .to_luma8();
    assert_eq!(img.dimensions(), (64, 32));
    // Frame 2 runs right to left: bright on the left, dark on the right.
    assert!(
        img.get_pixel(1, 16).0[0] > 230 && img.get_pixel(62, 16).0[0] < 25,
        "{:?}",
        img.get_pixel(1, 16)
    );
    let path = format!(
        "{}/frames/1/rendered?window=1024,4096,linear&viewport=64,64",
        instance(1)
    );
    let (_, _, body) = get(&s, head, token, &path, Some("image/png")).await;
    let first = image::load_from_memory(&body).unwrap().to_luma8();
    assert!(first.get_pixel(1, 16).0[0] < 25, "frame 1 runs left to right");

    // Thumbnails: instance, series (middle instance, middle frame) and study; cached.
    for path in [
        format!("{}/thumbnail", instance(0)),
        format!("/dicomweb/studies/{study}/series/{series}/thumbnail"),
        format!("/dicomweb/studies/{study}/thumbnail"),
        format!("{}/rendered?variant=thumbnail", instance(2)),
    ] {
        let (status, ctype, body) = get(&s, head, token, &path, None).await;
        assert_eq!((status, ctype.as_str()), (200, "image/jpeg"), "{path}");
        let img = image::load_from_memory(&body).unwrap();
        assert_eq!((img.width(), img.height()), (128, 64), "{path}: fits 128×128");
    }
    let (_, _, series_thumb) = get(
        &s,
        head,
        token,
        &format!("/dicomweb/studies/{study}/series/{series}/thumbnail"),
        None,
    )
    .await;
    let (_, _, study_thumb) = get(&s, head, token, &format!("/dicomweb/studies/{study}/thumbnail"), None).await;
    assert_eq!(series_thumb, study_thumb, "the same middle instance, from the cache");
    let (_, _, again) = get(
        &s,
        head,
        token,
        &format!("{}/thumbnail?viewport=32,32", instance(0)),
        Some("image/png"),
    )
    .await;
    assert_eq!(image::load_from_memory(&again).unwrap().width(), 32);

    // A compressed instance (baseline JPEG, 8-bit): frames as stored, or decoded on request.
    let mut jpeg_spec = ct(3, 1);
    jpeg_spec.image.bits_allocated = 8;
    let grey: Vec<u8> = (0..64 * 128).map(|i| ((i % 128) * 2) as u8).collect();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode(&grey, 128, 64, image::ExtendedColorType::L8)
        .unwrap();
    let compressed = synthetic_encapsulated(&jpeg_spec, "1.2.840.10008.1.2.4.50", &[vec![jpeg.clone()]]);
    let r = stow(
        &s,
        Some(&tech),
        &medledger_tests::dicomweb::content_type(),
        multipart(&[("application/dicom", compressed)]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let head = s.head().await;
    let jpeg_path = format!(
        "/dicomweb/studies/{study}/series/{series}/instances/{}",
        jpeg_spec.sop_instance_uid()
    );
    let (status, ctype, body) = get(&s, head, token, &format!("{jpeg_path}/frames/1"), None).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("multipart/related; type=\"image/jpeg\""), "{ctype}");
    let got = parts(&ctype, &body);
    assert_eq!(got[0].0, "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50");
    assert_eq!(
        got[0].1[..jpeg.len()],
        jpeg[..],
        "the stored fragment (padded to even length)"
    );
    let accept = "multipart/related; type=\"application/octet-stream\"";
    let (status, ctype, body) = get(&s, head, token, &format!("{jpeg_path}/frames/1"), Some(accept)).await;
    assert_eq!(status, 200);
    let got = parts(&ctype, &body);
    assert_eq!(
        got[0].0,
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    );
    assert_eq!(got[0].1.len(), 64 * 128, "decoded 8-bit samples");
    let worst = got[0].1.iter().zip(&grey).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 8, "decoded JPEG close to the original ramp (off by {worst})");
    let (status, ctype, body) = get(&s, head, token, &format!("{jpeg_path}/rendered"), None).await;
    assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
    assert_eq!(image::load_from_memory(&body).unwrap().width(), 128);

    // Problems.
    problem(&s, head, token, &format!("{}/frames/2", instance(0)))
        .await
        .assert_problem(404, "frame_out_of_range");
    problem(&s, head, token, &format!("{}/frames/2/rendered", instance(0)))
        .await
        .assert_problem(404, "frame_out_of_range");
    problem(&s, head, token, &format!("{}/frames/x", instance(0)))
        .await
        .assert_problem(400, "invalid_parameter");
    for bad in [
        "window=40",
        "window=40,0,linear",
        "viewport=0,0",
        "quality=0",
        "variant=huge",
    ] {
        problem(&s, head, token, &format!("{}/rendered?{bad}", instance(0)))
            .await
            .assert_problem(400, "invalid_parameter");
    }
    let r = s
        .http
        .get(s.url(&format!("{}/rendered", instance(0))))
        .bearer_auth(&o.u1_token)
        .header("x-min-position", head.to_string())
        .header("accept", "image/gif")
        .send()
        .await
        .unwrap();
    Reply::from(r).await.assert_problem(406, "not_acceptable");
    problem(&s, head, None, &format!("{}/rendered", instance(0)))
        .await
        .assert_problem(401, "unauthenticated");
    problem(&s, head, None, &format!("{}/frames/1", instance(0)))
        .await
        .assert_problem(401, "unauthenticated");
    for path in [
        format!("{}/rendered", instance(0)),
        format!("{}/frames/1", instance(0)),
        format!("{}/thumbnail", instance(0)),
        format!("/dicomweb/studies/{study}/thumbnail"),
    ] {
        problem(&s, head, Some(&other), &path)
            .await
            .assert_problem(404, "not_found");
    }
    problem(&s, head, token, "/dicomweb/studies/1.2.3/thumbnail")
        .await
        .assert_problem(404, "not_found");
    s.stop().await;
}
