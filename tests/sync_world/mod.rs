//! The cloud the `sync` tests copy in: three simulated regions with one user of one project, and
//! the real sidecar in front of REGION2, which the catalog names as REGION2's image endpoint.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use glance_download_sidecar::api::{App, Server};
use glance_download_sidecar::config::Config;
use glance_download_sidecar::tools::sim::Cloud;

pub const PROJECT: &str = "sync-project";
pub const USER: &str = "sync-user";
pub const PASSWORD: &str = "correct horse battery staple";

/// REGION1 to REGION3, and [`USER`] a member of [`PROJECT`].
pub async fn cloud() -> Cloud {
    let cloud = Cloud::start(&["REGION1", "REGION2", "REGION3"])
        .await
        .unwrap();
    cloud
        .keystone
        .add_user(USER, PASSWORD, PROJECT, &["member"]);
    cloud
}

/// A sidecar in front of `region`'s Glance, put in the catalog as that region's image endpoint.
pub async fn sidecar_in_front_of(cloud: &Cloud, region: &str) -> Server {
    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: cloud.region(region).url(),
        auth_url: cloud.auth_url(),
        task_journal: None,
        ..Config::default()
    };
    let sidecar = Server::bind(App::new(config.clone()).unwrap(), config.bind)
        .await
        .unwrap();
    for interface in ["public", "internal", "admin"] {
        cloud
            .keystone
            .set_endpoint(region, interface, &sidecar.url());
    }
    sidecar
}

/// Output captured from a `sync` observer (the progress lines a user would see).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Asserts the copy is active with the source's name, size, digests and formats.
pub fn assert_same_data(copy: &serde_json::Value, source: &serde_json::Value) {
    assert_eq!(copy["status"], "active", "{copy}");
    for key in [
        "size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "disk_format",
        "container_format",
        "name",
    ] {
        assert_eq!(copy[key], source[key], "{key}");
    }
}
