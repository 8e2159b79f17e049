//! Unit tests for the simulated cloud, over real sockets with a plain hyper client.

mod data;
mod glance;
mod keystone;
mod stores;
mod transfer;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::{Cloud, ImageData, ImageSpec};
use crate::http::{client, full, HttpClient};

/// A finished exchange.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The Glance error message without webob's suffix (asserting the suffix is there).
    fn glance_message(&self) -> String {
        let body = self.json();
        let message = body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {body}"));
        message
            .strip_suffix(super::WEBOB_SUFFIX)
            .unwrap_or_else(|| panic!("no webob suffix: {message:?}"))
            .to_owned()
    }
}

fn http() -> HttpClient {
    client(Duration::from_secs(5))
}

/// Sends one request and returns the response head with its streaming body.
async fn raw(
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Response<Incoming> {
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("x-auth-token", t);
    }
    // The tests read error bodies as JSON, as openstacksdk asks for them.
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
    {
        req = req.header("accept", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http().request(req.body(full(body)).unwrap()).await.unwrap()
}

/// Sends one request and reads the whole answer.
async fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let resp = raw(method, url, token, headers, body.into()).await;
    let (parts, body) = resp.into_parts();
    #[allow(clippy::disallowed_methods)] // a test reads the answer of the server it tests whole
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get(url: &str, token: &str) -> Reply {
    call(Method::GET, url, Some(token), &[], Bytes::new()).await
}

/// A two-region cloud and a member token of project `demo`.
async fn cloud() -> (Cloud, String) {
    let cloud = Cloud::start(&["REGION1", "REGION2"]).await.unwrap();
    let token = cloud.keystone.issue_token("demo", "demo", &["member"]);
    (cloud, token)
}

/// An active raw/bare image of `demo` in REGION1 holding `data`.
fn active_image(cloud: &Cloud, data: ImageData) -> String {
    cloud
        .region("REGION1")
        .create_image(ImageSpec::active("demo", data))
}
