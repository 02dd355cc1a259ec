//! What every request passes before it reaches a page: GET or HEAD only, the token when one is
//! set (an `Authorization: Bearer` header or a `?token=` the page carries on to its own requests;
//! compared in constant time), a loopback `Host` when none is (a web page elsewhere cannot rebind
//! its name to 127.0.0.1 and read the runs), and the security headers on every answer.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{CSP, Shared, problem};

pub(super) async fn guard(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let mut response = match check(&app, &request) {
        Ok(()) => next.run(request).await,
        Err(refused) => *refused,
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn check(app: &Shared, request: &Request) -> Result<(), Box<Response>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut refused = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "sluice serve is read-only: GET and HEAD only",
        );
        refused
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Err(Box::new(refused));
    }
    match &app.token {
        Some(token) => {
            let given = bearer(request.headers()).or_else(|| query_token(request.uri().query()));
            if given.is_some_and(|given| same(&given, token)) {
                Ok(())
            } else {
                let mut refused = problem(
                    StatusCode::UNAUTHORIZED,
                    "a token is needed: send `Authorization: Bearer TOKEN` or add ?token=TOKEN",
                );
                refused
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(Box::new(refused))
            }
        }
        None if loopback_host(request.headers()) => Ok(()),
        None => Err(Box::new(problem(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers requests for 127.0.0.1, localhost or [::1] only",
        ))),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    Some(token.trim().to_string())
}

/// The `token` parameter of a query string, percent-decoded.
pub(super) fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(decode)
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equal, in time that does not depend on where they differ (digests of both are compared).
fn same(given: &str, token: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(token));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 without a Host: not a browser.
        return true;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("0123456789abcdef", "0123456789abcdef"));
        assert!(!same("0123456789abcdeF", "0123456789abcdef"));
        assert!(!same("0123456789abcde", "0123456789abcdef"));
        assert!(!same("", "0123456789abcdef"));
    }

    #[test]
    fn the_query_token_is_decoded() {
        assert_eq!(
            query_token(Some("page=2&token=a%2Bb+c")).as_deref(),
            Some("a+b c")
        );
        assert_eq!(query_token(Some("page=2")), None);
    }

    #[test]
    fn only_loopback_names_pass_without_a_token() {
        let mut headers = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:8480", true),
            ("localhost:1", true),
            ("[::1]:8480", true),
            ("evil.example:8480", false),
            ("127.0.0.1.evil.example", false),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(loopback_host(&headers), ok, "{host}");
        }
    }
}
