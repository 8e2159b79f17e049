//! The Image API v2 calls the sidecar makes, typed.

use http::{header, Method, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::chunked::Chunked;
use crate::http::{boxed, empty, full, BoxBody, JSON_PATCH};
use crate::keystone::Token;

use super::call::{request, with_token, Answer};
use super::{parse_image, Glance, GlanceError, GlanceTask, Image, ImageId, PatchOp};
use super::{IMAGE_SIZE, MAX_IMAGE_JSON};

impl Glance {
    /// `GET {base}/v2/images/{id}`.
    pub async fn get_image(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
    ) -> Result<Image, GlanceError> {
        let uri = format!("{base}/v2/images/{id}");
        let answer = self
            .json_call(request(Method::GET, uri, Some(token)).body(empty()))
            .await?;
        parse_image(&answer.body)
    }

    /// `PATCH {base}/v2/images/{id}` with all `ops` in one request (Glance applies them together).
    pub async fn patch_image(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        ops: &[PatchOp],
    ) -> Result<Image, GlanceError> {
        let body = Value::Array(ops.iter().map(PatchOp::to_json).collect());
        let built = request(Method::PATCH, format!("{base}/v2/images/{id}"), Some(token))
            .header(header::CONTENT_TYPE, JSON_PATCH)
            .body(full(serde_json::to_vec(&body).unwrap_or_default()));
        parse_image(&self.json_call(built).await?.body)
    }

    /// `GET {base}/v2/images/{id}/file`, optionally only bytes `first..=last` (`last` `None`:
    /// to the end) and asking for a content coding (`Accept-Encoding`); the body is not read.
    pub async fn open_file(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        range: Option<(u64, Option<u64>)>,
        accept_encoding: Option<&'static str>,
    ) -> Result<Response<Incoming>, GlanceError> {
        let mut b = request(
            Method::GET,
            format!("{base}/v2/images/{id}/file"),
            Some(token),
        );
        if let Some(coding) = accept_encoding {
            b = b.header(header::ACCEPT_ENCODING, coding);
        }
        match range {
            None => {}
            Some((first, None)) => b = b.header(header::RANGE, format!("bytes={first}-")),
            Some((first, Some(last))) => {
                b = b.header(header::RANGE, format!("bytes={first}-{last}"))
            }
        }
        let response = self.send(b.body(empty())).await?;
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(response),
            StatusCode::NO_CONTENT => Err(GlanceError::Status {
                status: StatusCode::NO_CONTENT,
                message: "the image has no data".into(),
            }),
            _ => Err(self.error_from(response).await),
        }
    }

    /// `PUT {base}/v2/images/{id}/file` with exactly `size` bytes streamed from `body`.
    ///
    /// The body is sent in chunked transfer coding; if `body` fails before its end, the request
    /// is cut before its last chunk, which every server reports to Glance as an error, and
    /// Glance returns the image to `queued`: this is how an upload is aborted.
    pub async fn put_file(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        size: u64,
        store: Option<&str>,
        body: BoxBody,
    ) -> Result<(), GlanceError> {
        let uri = format!("{base}/v2/images/{id}/file");
        self.put_data(uri, token, size, store, body).await
    }

    /// `PUT {base}/v2/images/{id}/stage`: the data into Glance's staging area, aborted the same
    /// way (Glance then deletes the partial file and returns the image to `queued`).
    pub async fn put_stage(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        size: u64,
        body: BoxBody,
    ) -> Result<(), GlanceError> {
        let uri = format!("{base}/v2/images/{id}/stage");
        self.put_data(uri, token, size, None, body).await
    }

    async fn put_data(
        &self,
        uri: String,
        token: &Token,
        size: u64,
        store: Option<&str>,
        body: BoxBody,
    ) -> Result<(), GlanceError> {
        // Chunked, never `Content-Length`: a cut chunked body is an error at every server, a cut
        // `Content-Length` one a clean end of data to some (see `chunked`). The size
        // goes in `x-openstack-image-size`, which Glance 32+ checks the stored bytes against.
        // No time limit: the answer comes only after the whole upload.
        let mut b = request(Method::PUT, uri, Some(token))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(IMAGE_SIZE, size);
        if let Some(store) = store {
            b = b.header("x-image-meta-store", store);
        }
        let request = b
            .body(boxed(Chunked::new(body)))
            .map_err(GlanceError::Request)?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(GlanceError::Transport)?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.error_from(response).await)
    }

    /// `POST {base}/v2/images/{id}/actions/deactivate`: the image's data can no longer be
    /// downloaded or booted (204; a deactivated image stays so).
    pub async fn deactivate(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
    ) -> Result<(), GlanceError> {
        let uri = format!("{base}/v2/images/{id}/actions/deactivate");
        let built = request(Method::POST, uri, Some(token)).body(empty());
        self.exchange(built, MAX_IMAGE_JSON).await?.require(None)?;
        Ok(())
    }

    /// `POST {base}/v2/images/{id}/import` with `body`; returns the answer's request id, which
    /// the import task records.
    pub async fn import(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
        body: &Value,
    ) -> Result<String, GlanceError> {
        let uri = format!("{base}/v2/images/{id}/import");
        self.start_task(request(Method::POST, uri, Some(token)), body)
            .await
    }

    /// `POST {base}/v2/images/{id}/locations` with `body`, with the caller's `token` and the
    /// sidecar's `service` token as `X-Service-Token` (Glance lets only callers with the
    /// `service` role add non-http locations); returns the answer's request id, which the
    /// `location_import` task records.
    pub async fn add_location(
        &self,
        base: &str,
        id: &ImageId,
        (token, service): (&Token, &Token),
        body: &Value,
    ) -> Result<String, GlanceError> {
        let uri = format!("{base}/v2/images/{id}/locations");
        let b = request(Method::POST, uri, Some(token));
        self.start_task(with_token(b, "x-service-token", service), body)
            .await
    }

    /// Sends `b` with the JSON `body` to a call that starts a Glance task (202); returns the
    /// answer's request id, which the task records (see [`super::follow_task`]).
    async fn start_task(
        &self,
        b: http::request::Builder,
        body: &Value,
    ) -> Result<String, GlanceError> {
        let built = b
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(serde_json::to_vec(body).unwrap_or_default()));
        let answer = self.exchange(built, MAX_IMAGE_JSON).await?;
        Ok(answer.require(Some(StatusCode::ACCEPTED))?.request_id())
    }

    /// `GET {base}/v2/images/{id}/tasks`: the image's tasks as Glance lists them.
    pub async fn tasks(
        &self,
        base: &str,
        id: &ImageId,
        token: &Token,
    ) -> Result<Vec<GlanceTask>, GlanceError> {
        let uri = format!("{base}/v2/images/{id}/tasks");
        let answer = self
            .json_call(request(Method::GET, uri, Some(token)).body(empty()))
            .await?;
        let doc = serde_json::from_slice(&answer.body).map_err(GlanceError::BadJson)?;
        Ok(GlanceTask::list(&doc))
    }

    /// `GET {base}/v2/info/stores`: the stores of a multi-store Glance, or `None` for a
    /// single-store one (upstream answers 404 "Multi backend is not supported at this site.").
    pub async fn stores(
        &self,
        base: &str,
        token: &Token,
    ) -> Result<Option<Vec<crate::stores::StoreInfo>>, GlanceError> {
        let uri = format!("{base}/v2/info/stores");
        let built = request(Method::GET, uri, Some(token)).body(empty());
        match self.json_call(built).await {
            Ok(answer) => Ok(crate::stores::parse_info(&Value::Object(
                parse_image(&answer.body)?.0,
            ))),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A JSON call: the answer (a success, its body at most [`MAX_IMAGE_JSON`]), its latency
    /// recorded.
    async fn json_call(
        &self,
        built: Result<http::Request<BoxBody>, http::Error>,
    ) -> Result<Answer, GlanceError> {
        let started = tokio::time::Instant::now();
        let result = self.exchange(built, MAX_IMAGE_JSON).await;
        if let Some(metrics) = &self.metrics {
            metrics
                .upstream_latency
                .observe(started.elapsed().as_secs_f64());
        }
        result?.require(None)
    }
}
