//! The `glance-upload` sink: `PUT /v2/images/{id}/file` on the fronted Glance.
//!
//! Works in front of any Glance v2. On a multi-store Glance the first requested store is named
//! with `X-Image-Meta-Store`; the others are copied after the image is verified (see `import`).
//! Glance hashes and stores the bytes itself; the upload is sent in chunked transfer coding with
//! the size in `x-openstack-image-size`, so when the pipeline fails the body the request is cut
//! before its last chunk, every server reports the cut, and Glance puts the image back to
//! `queued` (see `chunked`).

use crate::glance::Glance;
use crate::http::boxed;
use crate::pipeline::SinkBody;

use super::{SinkFuture, StoreSink, Target};

/// Uploads through the fronted Glance's own data API.
#[derive(Clone)]
pub struct GlanceUpload {
    glance: Glance,
    glance_url: String,
}

impl GlanceUpload {
    pub fn new(glance: Glance, glance_url: &str) -> Self {
        GlanceUpload {
            glance,
            glance_url: glance_url.to_string(),
        }
    }
}

impl StoreSink for GlanceUpload {
    fn name(&self) -> &'static str {
        "glance-upload"
    }

    fn store<'a>(&'a self, target: &'a Target, body: SinkBody) -> SinkFuture<'a> {
        Box::pin(async move {
            self.glance
                .put_file(
                    &self.glance_url,
                    &target.image_id,
                    &target.token,
                    target.size,
                    target.stores.first().map(String::as_str),
                    boxed(body),
                )
                .await?;
            Ok(())
        })
    }
}
