//! The `demo` command: a whole cross-region import on an embedded cloud, with nothing installed.
//!
//! Starts a simulated Keystone and two simulated Glance regions on loopback, puts the real
//! sidecar in front of REGION2, creates a generated image in REGION1, and imports it into REGION2
//! through the sidecar exactly as a client would (create, import, poll the task). Then it checks
//! the copy against the source and reports.

use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::{json, Map, Value};

use crate::api::{App, Server};
use crate::config::Config;
use crate::glance::Image;
use crate::tools::apiclient::{CallError, ImageApi};
use crate::tools::sim::{Cloud, ImageData, ImageSpec};
use crate::verify::{self, Expected};

/// Properties given to the demo's source image: five synced by the default prefixes, two not.
pub const DEMO_PROPERTIES: [(&str, &str); 7] = [
    ("hw_disk_bus", "scsi"),
    ("hw_scsi_model", "virtio-scsi"),
    ("trait:CUSTOM_DEMO", "required"),
    ("os_distro", "ubuntu"),
    ("os_type", "linux"),
    ("owner_note", "not synced"),
    ("build_host", "factory-7"),
];

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub size: u64,
    pub elapsed: Duration,
    pub checksum: String,
    pub os_hash_algo: String,
    pub os_hash_value: String,
    pub synced: Vec<String>,
    pub not_synced: Vec<String>,
    pub peak_rss: Option<u64>,
}

impl Report {
    /// Throughput from the import call to the verified `active` image, in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        self.size as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("could not start the simulated cloud or the sidecar: {0}")]
    Start(#[from] std::io::Error),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Check(String),
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::Check(what()))
    }
}

/// Runs the demo with an image of `size` bytes.
pub async fn run(size: u64) -> Result<Report, DemoError> {
    let cloud = Cloud::start(&["REGION1", "REGION2"]).await?;
    let token = cloud
        .keystone
        .issue_token("demo-user", "demo-project", &["member", "reader"]);
    let source_region = cloud.region("REGION1");
    let target_region = cloud.region("REGION2");
    target_region.keep_uploads_up_to(0);

    let mut properties = Map::new();
    for (k, v) in DEMO_PROPERTIES {
        properties.insert(k.to_string(), Value::from(v));
    }
    let source_id = source_region.create_image(ImageSpec {
        name: Some("golden-image".into()),
        disk_format: Some("qcow2".into()),
        container_format: Some("bare".into()),
        properties,
        ..ImageSpec::active("demo-project", ImageData::Generated { seed: 2026, size })
    });

    let config = Config {
        bind: ([127, 0, 0, 1], 0).into(),
        glance_url: target_region.url(),
        auth_url: cloud.auth_url(),
        task_journal: None,
        ..Config::default()
    };
    let app = App::new(config.clone()).map_err(|e| DemoError::Check(e.to_string()))?;
    let sidecar = Server::bind(app, config.bind).await?;
    let api = ImageApi::new(&sidecar.url(), &token);

    let created = api
        .create_image(
            &json!({"name": "golden-image-copy", "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    check(created.status.as_u16() == 201, || {
        format!("image create answered {}", created.status)
    })?;
    let methods = created
        .header("openstack-image-import-methods")
        .unwrap_or("");
    check(methods.contains("glance-download"), || {
        format!("image create does not advertise glance-download: {methods:?}")
    })?;
    let target_id = created.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let started = Instant::now();
    let accepted = api
        .import_glance_download(&target_id, "REGION1", &source_id)
        .await?;
    check(accepted.status.as_u16() == 202, || {
        format!(
            "import answered {}: {}",
            accepted.status,
            String::from_utf8_lossy(&accepted.body)
        )
    })?;
    let budget = Duration::from_secs(60 + size / (5 * 1024 * 1024));
    let task = api.wait_for_import(&target_id, budget).await?;
    let elapsed = started.elapsed();
    check(task["status"] == "success", || {
        format!("import task ended {}: {}", task["status"], task["message"])
    })?;

    let source = source_region
        .image(&source_id)
        .ok_or_else(|| DemoError::Check("source image vanished".into()))?;
    let copy = api.image(&target_id).await?;
    let record = |image: &Value| Image(image.as_object().cloned().unwrap_or_default());
    let expected = Expected::from_source(&record(&source))
        .map_err(|problem| DemoError::Check(problem.to_string()))?;
    verify::check_stored(&expected, &record(&copy))
        .map_err(|mismatch| DemoError::Check(format!("the copy {mismatch}")))?;
    for key in ["disk_format", "container_format"] {
        check(copy[key] == source[key], || {
            format!("{key}: copy has {}, source has {}", copy[key], source[key])
        })?;
    }
    let mut synced = Vec::new();
    let mut not_synced = Vec::new();
    for (key, value) in DEMO_PROPERTIES {
        let copied = copy[key] == value;
        let expected = crate::metadata::is_synced(key, &config.extra_properties);
        check(copied == expected, || {
            format!("property {key}: copied={copied}, but the prefixes say {expected}")
        })?;
        if copied {
            synced.push(format!("{key}={value}"));
        } else {
            not_synced.push(key.to_string());
        }
    }
    sidecar.shutdown(Duration::ZERO).await;
    Ok(Report {
        size,
        elapsed,
        checksum: copy["checksum"].as_str().unwrap_or_default().to_string(),
        os_hash_algo: copy["os_hash_algo"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        os_hash_value: copy["os_hash_value"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        synced,
        not_synced,
        peak_rss: peak_rss(),
    })
}

/// Peak resident set size of this process (`VmHWM`), where the platform reports it.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses a size such as `256MiB`, `1GiB`, `64M`, `1048577` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 256MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The flags of `demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Size of the generated image (B, KiB, MiB, GiB; KB, MB, GB).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    size: u64,
}

impl DemoArgs {
    /// Runs the demo and prints its report; exits 1 if it failed.
    pub fn run(self) -> ExitCode {
        crate::serve::init_logging("warn");
        let report = crate::serve::runtime()
            .map_err(DemoError::from)
            .and_then(|rt| rt.block_on(run(self.size)));
        match report {
            Ok(report) => {
                print_report(&report);
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("demo failed: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Prints the demo's report on stdout.
fn print_report(report: &Report) {
    use std::fmt::Write;
    let mut out = String::new();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        out,
        "glance-download demo: REGION1 -> REGION2 through the sidecar"
    );
    let _ = writeln!(
        out,
        "  image size        {} bytes ({:.1} MiB)",
        report.size,
        mib(report.size)
    );
    let _ = writeln!(
        out,
        "  import time       {:.2} s (202 to verified active)",
        report.elapsed.as_secs_f64()
    );
    let _ = writeln!(out, "  throughput        {:.1} MB/s", report.mb_per_s());
    let _ = writeln!(
        out,
        "  checksum (md5)    {}  verified: source = stream = target",
        report.checksum
    );
    let _ = writeln!(
        out,
        "  {:<17} {}  verified: source = stream = target",
        format!("os_hash ({})", report.os_hash_algo),
        report.os_hash_value
    );
    let _ = writeln!(out, "  synced properties {}", report.synced.join(", "));
    let _ = writeln!(out, "  not synced        {}", report.not_synced.join(", "));
    let _ = match report.peak_rss {
        Some(rss) => writeln!(
            out,
            "  peak memory       {:.1} MiB resident (whole process: fake cloud + sidecar)",
            mib(rss)
        ),
        None => writeln!(out, "  peak memory       not reported by this platform"),
    };
    let _ = writeln!(out, "result: OK");
    crate::stdout::write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1048577"), Ok(1_048_577));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
