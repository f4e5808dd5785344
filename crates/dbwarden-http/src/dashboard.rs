//! The live dashboard: one HTML page and its script, stylesheet and icon,
//! compiled into the binary (no CDN, no network, no build step).
//!
//! `GET /` answers the page: the sign-in form for a visitor without
//! credentials, the dashboard for one with a live session cookie or the
//! admin token. The script then reads the JSON API with the cookie and
//! follows `/api/events`. Every URL in the page is relative to a `<base>`
//! naming the mount point relative to the page, so it works nested under any
//! prefix and behind a proxy: axum answers a router nested at
//! `/admin/dbwarden` at that path (not at `/admin/dbwarden/`), where
//! relative URLs alone would resolve one level up.
//!
//! The page is served with a strict Content-Security-Policy (scripts and
//! styles from this origin only, no inline script, no framing); assets are
//! served with their content type, an `ETag`, and long-lived caching when
//! asked for by the versioned URL the page uses.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::auth::is_authorized;
use crate::state::AppState;

/// The Content-Security-Policy sent with the page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'";

const INDEX_HTML: &str = include_str!("../assets/index.html");

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../assets/app.js") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../assets/app.css") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("../assets/favicon.svg") },
];

/// The names of the embedded assets, served under `assets/`.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// A short digest of every asset: the page asks for `assets/app.js?v=<it>`,
/// so a new build's assets are fetched anew while unchanged ones stay cached.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // A stable 64-bit FNV-1a: the same bytes give the same version in
        // every build and on every machine, unlike std's randomized hasher.
        let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
        for asset in ASSETS {
            asset.name.hash(&mut fnv);
            fnv.write(asset.body);
        }
        INDEX_HTML.hash(&mut fnv);
        format!("{:016x}", fnv.finish())
    })
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The page with the sign-in form showing, and with the dashboard showing.
fn pages() -> &'static (String, String) {
    static PAGES: OnceLock<(String, String)> = OnceLock::new();
    PAGES.get_or_init(|| {
        let base = INDEX_HTML.replace("{{ASSET_VERSION}}", asset_version());
        let signin =
            base.replace("{{VIEW}}", "signin").replace("{{SIGNIN_HIDDEN}}", "").replace("{{APP_HIDDEN}}", "hidden");
        let dashboard =
            base.replace("{{VIEW}}", "dashboard").replace("{{SIGNIN_HIDDEN}}", "hidden").replace("{{APP_HIDDEN}}", "");
        (signin, dashboard)
    })
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// Escapes `text` for an HTML attribute value.
fn attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's `<base>`: the mount point as a URL relative to the page, so
/// that it holds behind a proxy that strips a prefix too. `./` for a page
/// asked for as `…/`; `./dbwarden/` for one asked for as `/admin/dbwarden`
/// (the `./` keeps a segment with a colon from reading as a scheme).
fn base_href(original: &Uri) -> String {
    let path = original.path();
    if path.ends_with('/') { "./".to_owned() } else { format!("./{}/", path.rsplit('/').next().unwrap_or_default()) }
}

/// `GET /`: the page, for whoever asks (open: the page itself holds no
/// data, and shows the sign-in form to a visitor without credentials).
pub(crate) async fn index(
    State(state): State<AppState>,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (signin, dashboard) = pages();
    let page = if is_authorized(&state, &headers) { dashboard } else { signin };
    let body = page.replacen("{{BASE}}", &attribute(&base_href(&original)), 1);
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // The page differs by who asks; never store it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Cookie, Authorization"));
    security_headers(h);
    response
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(
    Path(name): Path<String>,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        let mut response = (StatusCode::NOT_FOUND, "no such asset").into_response();
        security_headers(response.headers_mut());
        return response;
    };
    let version = asset_version();
    let etag = format!("\"{version}-{}\"", asset.name);
    let versioned = original.query().is_some_and(|q| q.split('&').any(|kv| kv == format!("v={version}")));
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "public, max-age=300, must-revalidate" };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.body).into_response()
    };
    let h = response.headers_mut();
    if !not_modified {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    security_headers(h);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_every_placeholder_filled_and_one_view_hidden() {
        let (signin, dashboard) = pages();
        for page in [signin, dashboard] {
            assert_eq!(page.matches("{{").count(), 1, "only the base is filled per request");
            assert!(page.contains(r#"<base href="{{BASE}}">"#));
            assert!(page.contains(&format!("assets/app.js?v={}", asset_version())));
            assert!(!page.contains("<script>"), "no inline script");
            assert!(!page.contains("style="), "no inline style");
        }
        assert!(signin.contains(r#"<body data-view="signin">"#));
        assert!(signin.contains(r#"<div id="app" hidden>"#));
        assert!(dashboard.contains(r#"<section id="signin" class="signin" aria-labelledby="signin-title" hidden>"#));
    }

    #[test]
    fn the_base_is_the_mount_point_relative_to_the_page() {
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        assert_eq!(base_href(&uri("/")), "./");
        assert_eq!(base_href(&uri("/admin/dbwarden")), "./dbwarden/");
        assert_eq!(base_href(&uri("/admin/dbwarden/")), "./");
        assert_eq!(base_href(&uri("/admin/a:b")), "./a:b/");
        assert_eq!(attribute(r#"/a"b<c>&'"#), "/a&quot;b&lt;c&gt;&amp;&#39;");
    }

    #[test]
    fn the_asset_version_is_stable_and_short() {
        assert_eq!(asset_version().len(), 16);
        assert_eq!(asset_version(), asset_version());
    }
}
