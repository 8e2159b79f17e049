//! The `tasks` command: an image's import tasks as `openstack image task list` shows them, with
//! the sidecar's progress columns, read through the region's image endpoint (so a sidecar there
//! merges its own tasks in).

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::tools::apiclient::ImageApi;
use crate::tools::sync::{printable, Credentials, Environment, Session};

/// Why the tasks could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum TaskListError {
    #[error(transparent)]
    Credentials(#[from] crate::tools::sync::CredentialsError),
    #[error(transparent)]
    Auth(#[from] crate::tools::sync::AuthError),
    #[error(transparent)]
    Catalog(#[from] crate::keystone::CatalogError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Call(#[from] crate::tools::apiclient::CallError),
    #[error("listing tasks of image {image} in {region} answered {status}: {message}")]
    Refused {
        image: String,
        region: String,
        status: u16,
        message: String,
    },
}

/// The tasks of `image` in `region`, oldest first, read with `credentials`.
pub async fn list_as(
    credentials: Credentials,
    region: &str,
    image: &str,
) -> Result<Vec<Value>, TaskListError> {
    let trust = credentials.tls()?;
    let client = crate::http::client_with_tls(Duration::from_secs(10), trust);
    let session = Session::open(client.clone(), credentials, Duration::from_secs(60)).await?;
    let endpoint = session.image_endpoint(region)?;
    let token = session.token().await?;
    let api = ImageApi::with_client(&endpoint, token.expose(), client);
    let answer = api.get(&format!("/v2/images/{image}/tasks")).await?;
    if !answer.status.is_success() {
        return Err(TaskListError::Refused {
            image: image.to_string(),
            region: region.to_string(),
            status: answer.status.as_u16(),
            message: printable(&crate::glance::error_message(&answer.body)),
        });
    }
    Ok(answer.json()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// A bordered table like the openstack client's, one row per task.
pub fn render(tasks: &[Value]) -> String {
    let header = [
        "ID",
        "Type",
        "Status",
        "Progress",
        "Rate",
        "Updated At",
        "Message",
    ];
    let rows: Vec<[String; 7]> = tasks
        .iter()
        .map(|t| {
            // Every cell comes from the remote service: shown printable, never raw.
            let text = |v: &Value| v.as_str().map(printable).unwrap_or_default();
            let done = t["progress"]["bytes_done"].as_u64();
            let total = t["progress"]["bytes_total"].as_u64();
            let progress = match (done, total) {
                (Some(d), Some(t)) if t > 0 => {
                    format!("{:.0}% of {}", d as f64 * 100.0 / t as f64, mib(t))
                }
                (Some(_), Some(_)) => "0 B".to_string(),
                _ => String::new(),
            };
            let rate = t["progress"]["rate_bytes_per_sec"]
                .as_u64()
                .map(|r| format!("{}/s", mib(r)))
                .unwrap_or_default();
            [
                text(&t["id"]),
                text(&t["type"]),
                text(&t["status"]),
                progress,
                rate,
                text(&t["updated_at"]),
                printable(
                    &t["message"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .take(80)
                        .collect::<String>(),
                ),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("| {c:<w$} "))
            .collect::<String>()
            + "|\n"
    };
    let mut out = rule.clone();
    out.push_str(&line(&header.map(String::from)));
    out.push_str(&rule);
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&rule);
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// The flags of `tasks`.
#[derive(clap::Args)]
pub struct TasksArgs {
    /// Cloud in clouds.yaml (else OS_CLOUD, else OS_* variables).
    #[arg(long)]
    os_cloud: Option<String>,
    /// Do not verify the TLS certificates of Keystone and Glance (accepts a cloud's
    /// `verify: false`, refused without this flag). For lab clouds only: use cacert instead.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Region whose image endpoint is asked.
    #[arg(long)]
    region: String,
    /// Print the tasks as JSON.
    #[arg(long)]
    json: bool,
    /// The image.
    image_id: String,
}

impl TasksArgs {
    /// Lists the tasks as a table, or as JSON with `--json`; exits 64 without usable
    /// credentials, 1 if the tasks could not be listed.
    pub fn run(self) -> ExitCode {
        crate::serve::init_logging("warn");
        let mut env = Environment::from_process();
        env.skip_tls_verify = self.insecure_skip_tls_verify;
        let credentials = match Credentials::load(self.os_cloud.as_deref(), &env) {
            Ok(credentials) => {
                crate::tools::sync::warn_if_unverified(&credentials);
                credentials
            }
            Err(error) => {
                eprintln!("tasks: {error}");
                return ExitCode::from(crate::serve::EXIT_USAGE);
            }
        };
        let listed = crate::serve::runtime()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(list_as(credentials, &self.region, &self.image_id))
                    .map_err(|e| e.to_string())
            });
        match listed {
            Ok(tasks) if self.json => {
                let tasks = Value::Array(tasks);
                crate::stdout::write(crate::tools::sync::json_text(&tasks, false) + "\n");
                ExitCode::SUCCESS
            }
            Ok(tasks) => {
                crate::stdout::write(render(&tasks));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("tasks: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_a_table() {
        let tasks = [
            json!({"id": "t1", "type": "api_image_import", "status": "processing",
            "updated_at": "2026-11-25T12:00:00.000000", "message": "Copying data",
            "progress": {"bytes_done": 524288, "bytes_total": 1048576, "rate_bytes_per_sec": 1048576}}),
        ];
        let table = render(&tasks);
        assert!(table.contains("| t1 "), "{table}");
        assert!(table.contains("50% of 1.0 MiB"), "{table}");
        assert!(table.contains("1.0 MiB/s"), "{table}");
        assert_eq!(table.lines().count(), 5);
        assert!(table
            .lines()
            .all(|l| l.len() == table.lines().next().unwrap().len()));
    }

    #[test]
    fn remote_text_cannot_drive_the_terminal() {
        let tasks = [
            json!({"id": "t\u{1b}]0;pwned\u{7}", "type": "api_image_import",
            "status": "fail\u{9b}2J", "updated_at": "x", "message": "a\u{1b}[2J\nb\u{202e}c"}),
        ];
        let table = render(&tasks);
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(!table.contains('\u{202e}'), "{table:?}");
        assert!(table.contains(r"a\u{1b}[2J\u{a}b\u{202e}c"), "{table}");
        assert!(table.contains(r"t\u{1b}]0;pwned\u{7}"), "{table}");
        // One line per task: a newline in a message does not break the table.
        assert_eq!(table.lines().count(), 5);
    }
}
