//! WADO-RS frames, rendered images and thumbnails (PS3.18 §8.7.3, §9.5, §9.7):
//!
//! - `GET …/instances/{i}/frames/{list}`: the frames as stored, one part each, as
//!   `multipart/related` (native frames as little-endian `application/octet-stream`,
//!   compressed frames as their own media type, e.g. `image/jpeg`, `image/jls`, `image/jp2`);
//!   `Accept: multipart/related; type="application/octet-stream"` gets compressed frames
//!   decoded to native;
//! - `GET …/instances/{i}/rendered` (frame 1) and `…/frames/{n}/rendered`: one JPEG
//!   (default) or PNG, negotiated by `Accept`, with `window=center,width,function`,
//!   `quality=1..100`, `viewport=w,h` and `variant=thumbnail|original`;
//! - `GET …/instances/{i}/thumbnail`, `…/series/{se}/thumbnail` (the series' middle
//!   instance) and `…/studies/{s}/thumbnail` (the middle instance of its first series).
//!
//! Authorized and answered like WADO-RS retrieve ([`Source`]): `study.view`, the caller's own
//! hospital — or, under `/dicomweb/reports/{report}/priors`, a prior another hospital shares —,
//! anything else is 404; deleted studies 404, erased 410, archived 409. Frames, renders and
//! thumbnails of a prior are not recorded one by one: the study-level request that gave the
//! viewer their UIDs was. Decoding runs on the
//! blocking pool; thumbnails and `variant=thumbnail` renders go through the
//! [`RenderCache`](medledger_dicom_ingest::render_cache::RenderCache), which the series
//! thumbnail worker ([`crate::series_thumbnails`]) fills ahead of the first request.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use medledger_dicom_ingest::render::{Format, Instance, RenderError, RenderOptions, Window, MAX_DIMENSION};
use medledger_dicom_ingest::render_cache::{render_blocking, CacheError, RenderRequest};
use medledger_projections::read_models::instances::{find, InstanceView};

use super::dicomweb::{available, Source};
use super::extract::{ApiPath, MinPosition};
use super::problem::ApiError;
use super::AppState;

/// Side of the box thumbnails fit into unless a viewport is given.
pub const THUMBNAIL_SIZE: u32 = 128;
const THUMBNAIL_QUALITY: u8 = 75;
const RENDERED_QUALITY: u8 = 90;
/// Most frames one `/frames/{list}` request may name.
const MAX_FRAME_LIST: usize = 1000;
const INSTANCE_LIMIT: u32 = 10_000;

#[derive(serde::Deserialize)]
pub struct RenderPath {
    study: String,
    series: Option<String>,
    instance: Option<String>,
    frames: Option<String>,
}

impl From<RenderError> for ApiError {
    fn from(e: RenderError) -> Self {
        let status = match e {
            RenderError::FrameOutOfRange { .. } => StatusCode::NOT_FOUND,
            RenderError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            RenderError::UnsupportedTransferSyntax(_) => StatusCode::NOT_ACCEPTABLE,
            RenderError::NotAnImage(_) | RenderError::DecodeFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let extra = match &e {
            RenderError::FrameOutOfRange { frame, frames } => {
                Some(serde_json::json!({"frame": frame, "number_of_frames": frames}))
            }
            _ => None,
        };
        let mut api = ApiError::new(status, e.code(), e.to_string());
        api.extra = extra;
        api
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Render(r) => r.into(),
            CacheError::Storage(detail) => {
                tracing::error!(detail, "rendering could not read or write the object store");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "blob_store_unavailable",
                    "the stored object could not be read; try again",
                )
            }
        }
    }
}

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", detail)
}

/// Query parameters of rendered resources.
#[derive(Debug, Default)]
struct RenderQuery {
    window: Option<Window>,
    viewport: Option<(u32, u32)>,
    quality: Option<u8>,
    thumbnail: bool,
}

fn parse_query(raw: Option<&str>) -> Result<RenderQuery, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| bad("the query string is malformed"))?;
    let mut q = RenderQuery::default();
    for (k, v) in pairs {
        match k.as_str() {
            "window" => q.window = Some(Window::parse(&v)?),
            "quality" => {
                q.quality = Some(
                    v.trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| bad("quality is 1 to 100"))?,
                )
            }
            "viewport" => {
                let sides: Vec<&str> = v.split(',').map(str::trim).collect();
                let parsed: Vec<u32> = sides.iter().filter_map(|s| s.parse().ok()).collect();
                match parsed.as_slice() {
                    [w, h]
                        if sides.len() == 2 && (1..=MAX_DIMENSION).contains(w) && (1..=MAX_DIMENSION).contains(h) =>
                    {
                        q.viewport = Some((*w, *h))
                    }
                    _ => {
                        return Err(bad(format!(
                            "viewport is width,height, each 1 to {MAX_DIMENSION} (cropping is not supported)"
                        )))
                    }
                }
            }
            "variant" => {
                q.thumbnail = match v.as_str() {
                    "thumbnail" => true,
                    "original" => false,
                    _ => return Err(bad("variant is thumbnail or original")),
                }
            }
            // annotation, charset, iccprofile and anything else: ignored, as PS3.18 allows.
            _ => {}
        }
    }
    Ok(q)
}

/// JPEG unless the client prefers PNG; 406 when it accepts neither.
fn negotiate(headers: &HeaderMap) -> Result<Format, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            "image/jpeg" | "image/*" | "*/*" => Format::Jpeg,
            "image/png" => Format::Png,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "rendered images are served as image/jpeg or image/png",
        )
    })
}

/// The instances at this path in the source's hospital (404 for none or a deleted study;
/// 410 erased, 409 archived, as retrieval).
async fn instances(
    state: &AppState,
    source: &Source,
    path: &RenderPath,
    min: &MinPosition,
) -> Result<Vec<InstanceView>, ApiError> {
    min.wait(state, medledger_projections::read_models::instances::NAME)
        .await?;
    let hospital = source.hospital()?;
    let found = find(
        &state.app.store.read_models(),
        hospital,
        &path.study,
        path.series.as_deref(),
        path.instance.as_deref(),
        INSTANCE_LIMIT,
    )
    .await?;
    available(found.iter().map(|i| (i.deleted, i.storage_tier.as_str(), i.erased)))?;
    Ok(found)
}

fn image_response(bytes: Vec<u8>, format: Format) -> Response {
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    response
}

/// The options a rendered resource asked for, with the defaults of thumbnails (128×128 box,
/// quality 75) or full renders (quality 90) filled in.
fn render_options(query: &RenderQuery, format: Format, thumbnail: bool) -> RenderOptions {
    RenderOptions {
        window: query.window,
        viewport: query.viewport.or(thumbnail.then_some((THUMBNAIL_SIZE, THUMBNAIL_SIZE))),
        format,
        quality: query
            .quality
            .unwrap_or(if thumbnail { THUMBNAIL_QUALITY } else { RENDERED_QUALITY }),
    }
}

/// What `GET …/series/{se}/thumbnail` renders when asked plainly (no parameters, JPEG): the
/// series thumbnail worker renders exactly this ahead of the first request.
pub fn default_thumbnail_options() -> RenderOptions {
    render_options(&RenderQuery::default(), Format::Jpeg, true)
}

/// The frame a series' thumbnail shows: the middle instance of the first series among
/// `found` (in series and instance order, as [`find`] returns them), its middle frame. A
/// study's thumbnail is its first series' thumbnail.
pub fn representative(found: &[InstanceView]) -> Option<(&InstanceView, u32)> {
    let first_series = &found.first()?.series_instance_uid;
    let series: Vec<&InstanceView> = found
        .iter()
        .filter(|i| &i.series_instance_uid == first_series)
        .collect();
    let instance = series[series.len() / 2];
    let frame = (instance.number_of_frames.max(1) as u32).div_ceil(2);
    Some((instance, frame))
}

async fn render_instance(
    state: &AppState,
    instance: &InstanceView,
    hospital: uuid::Uuid,
    frame: u32,
    query: RenderQuery,
    format: Format,
    thumbnail: bool,
) -> Result<Response, ApiError> {
    let options = render_options(&query, format, thumbnail);
    if thumbnail {
        let rendered = state
            .renders
            .get_or_render(&RenderRequest {
                hospital_id: hospital,
                sop_instance_uid: &instance.sop_instance_uid,
                blob_key: &instance.blob_key,
                frame,
                options,
            })
            .await?;
        return Ok(image_response(rendered.bytes.clone(), format));
    }
    let object = load(state, &instance.blob_key).await?;
    let rendered = render_blocking(object, frame, options).await?;
    Ok(image_response(rendered.bytes, format))
}

async fn load(state: &AppState, blob_key: &str) -> Result<bytes::Bytes, ApiError> {
    state
        .blobs
        .get(blob_key)
        .await
        .map_err(|e| CacheError::Storage(e.to_string()))?
        .ok_or_else(|| CacheError::Storage(format!("blob {blob_key} is missing")).into())
}

/// Render an instance (frame 1) or one of its frames (WADO-RS rendered).
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered", security(("bearer" = [])),
    params(("study" = String, Path), ("series" = String, Path), ("instance" = String, Path),
           ("window" = Option<String>, Query, description = "center,width,function (linear, linear-exact, sigmoid)"),
           ("viewport" = Option<String>, Query, description = "width,height to fit into (each 1..4096)"),
           ("quality" = Option<u8>, Query, description = "JPEG quality 1..100"),
           ("variant" = Option<String>, Query, description = "thumbnail (small, cached) or original")),
    responses((status = 200, description = "image/jpeg or image/png"),
              (status = 400, body = super::problem::Problem), (status = 401, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem),
              (status = 406, body = super::problem::Problem), (status = 409, body = super::problem::Problem),
              (status = 410, body = super::problem::Problem), (status = 422, body = super::problem::Problem)))]
pub async fn rendered(
    State(state): State<AppState>,
    source: Source,
    min: MinPosition,
    headers: HeaderMap,
    ApiPath(path): ApiPath<RenderPath>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let format = negotiate(&headers)?;
    let query = parse_query(raw.as_deref())?;
    let frame = match &path.frames {
        None => 1,
        Some(f) => f
            .trim()
            .parse::<u32>()
            .map_err(|_| bad("a rendered frame is one frame number"))?,
    };
    let found = instances(&state, &source, &path, &min).await?;
    let hospital = source.hospital()?;
    let thumbnail = query.thumbnail;
    render_instance(&state, &found[0], hospital, frame, query, format, thumbnail).await
}

/// Thumbnail of an instance, a series (its middle instance) or a study (the middle instance
/// of its first series).
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail", security(("bearer" = [])),
    params(("study" = String, Path), ("series" = String, Path), ("instance" = String, Path),
           ("viewport" = Option<String>, Query, description = "width,height (default 128,128)"),
           ("quality" = Option<u8>, Query, description = "JPEG quality 1..100")),
    responses((status = 200, description = "image/jpeg or image/png"),
              (status = 400, body = super::problem::Problem), (status = 401, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem), (status = 406, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem), (status = 410, body = super::problem::Problem)))]
pub async fn thumbnail(
    State(state): State<AppState>,
    source: Source,
    min: MinPosition,
    headers: HeaderMap,
    ApiPath(path): ApiPath<RenderPath>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let format = negotiate(&headers)?;
    let query = parse_query(raw.as_deref())?;
    let found = instances(&state, &source, &path, &min).await?;
    let hospital = source.hospital()?;
    let (instance, frame) = representative(&found).ok_or_else(ApiError::not_found)?;
    render_instance(&state, instance, hospital, frame, query, format, true).await
}

/// Frames of an instance as stored (WADO-RS frames): `multipart/related`, one part per
/// frame in the order asked (e.g. `/frames/1,3`).
#[utoipa::path(get, path = "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", security(("bearer" = [])),
    params(("study" = String, Path), ("series" = String, Path), ("instance" = String, Path),
           ("frames" = String, Path, description = "comma-separated 1-based frame numbers")),
    responses((status = 200, description = "multipart/related; one part per frame"),
              (status = 400, body = super::problem::Problem), (status = 401, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem), (status = 406, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem), (status = 410, body = super::problem::Problem)))]
pub async fn frames(
    State(state): State<AppState>,
    source: Source,
    min: MinPosition,
    headers: HeaderMap,
    ApiPath(path): ApiPath<RenderPath>,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*")
        .to_ascii_lowercase();
    if !accept
        .split(',')
        .any(|a| a.trim().starts_with("*/*") || a.trim().starts_with("multipart/related"))
    {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "frames are served as multipart/related",
        ));
    }
    let list: Vec<u32> = path
        .frames
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|f| f.trim().parse::<u32>().ok().filter(|n| *n >= 1))
        .collect::<Option<_>>()
        .filter(|l: &Vec<u32>| !l.is_empty() && l.len() <= MAX_FRAME_LIST)
        .ok_or_else(|| {
            bad(format!(
                "frames are 1 to {MAX_FRAME_LIST} comma-separated numbers from 1"
            ))
        })?;
    // `type="application/octet-stream"` without `transfer-syntax=*` asks for native frames:
    // compressed ones are decoded. Otherwise frames are served as stored.
    let native = accept.split(',').any(|a| {
        let a = a.replace(' ', "");
        a.starts_with("multipart/related")
            && (a.contains("type=\"application/octet-stream\"") || a.contains("type=application/octet-stream"))
            && !a.contains("transfer-syntax=*")
    });
    let found = instances(&state, &source, &path, &min).await?;
    let object = load(&state, &found[0].blob_key).await?;
    let parts = tokio::task::spawn_blocking(move || {
        let instance = Instance::open(&object)?;
        list.iter()
            .map(|n| {
                if native {
                    instance.frame_native(*n)
                } else {
                    instance.frame(*n)
                }
            })
            .collect::<Result<Vec<_>, RenderError>>()
    })
    .await
    .map_err(|e| RenderError::DecodeFailed(format!("frame task failed: {e}")))??;
    let boundary = format!("medledger-{}", uuid::Uuid::new_v4().simple());
    let part_type = parts
        .first()
        .map(|p| p.media_type.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.bytes.len() + 200).sum());
    for part in &parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                part.media_type,
                part.bytes.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut response = body.into_response();
    let content_type = format!("multipart/related; type=\"{part_type}\"; boundary={boundary}");
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).map_err(|_| ApiError::not_found())?,
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_checked() {
        let q = parse_query(Some(
            "window=40,400,linear&quality=70&viewport=64,32&variant=thumbnail&annotation=x",
        ))
        .unwrap();
        assert_eq!(q.viewport, Some((64, 32)));
        assert_eq!(q.quality, Some(70));
        assert!(q.thumbnail);
        assert_eq!(q.window.unwrap().width, 400.0);
        for bad in [
            "window=40",
            "window=40,0,linear",
            "quality=0",
            "quality=101",
            "viewport=0,10",
            "viewport=5000,10",
            "viewport=10,10,0,0,5,5",
            "variant=big",
        ] {
            let e = parse_query(Some(bad)).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "invalid_parameter"),
                "{bad}"
            );
        }
    }

    #[test]
    fn accept_picks_jpeg_or_png() {
        let with = |a: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
            negotiate(&h)
        };
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Format::Jpeg);
        assert_eq!(with("image/png").unwrap(), Format::Png);
        assert_eq!(with("image/jpeg;q=0.5, image/png").unwrap(), Format::Png);
        assert_eq!(with("image/*").unwrap(), Format::Jpeg);
        assert_eq!(with("image/gif").unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
    }
}
