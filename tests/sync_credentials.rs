//! `sync` with each way of signing in the openstack client knows — a password (see
//! `tests/sync.rs`), an application credential and a bare token — against the simulated cloud:
//! copies made, tokens renewed on long runs, a bare token refused before it could expire
//! mid-copy (naming its expiry), and no secret in any message.

use std::sync::Arc;
use std::time::Duration;

use glance_download_sidecar::keystone::{login, AuthMethod, Keystone, Token};
use glance_download_sidecar::tools::apiclient::ImageApi;
use glance_download_sidecar::tools::sim::{Cloud, Fault, ImageData, ImageSpec};
use glance_download_sidecar::tools::sync::{
    self, Action, AuthError, Credentials, Environment, Filters, Options, Quiet, Session, SyncError,
    SOURCE_IMAGE_ID,
};
use serde_json::Value;

const PROJECT: &str = "sync-project";
const USER: &str = "sync-user";
const PASSWORD: &str = "user-pa55word";
const SECRET: &str = "app-cred-s3cret";

struct World {
    cloud: Cloud,
}

impl World {
    async fn start() -> World {
        let cloud = Cloud::start(&["REGION1", "REGION3"]).await.unwrap();
        cloud
            .keystone
            .add_user(USER, PASSWORD, PROJECT, &["member"]);
        World { cloud }
    }

    fn image(&self, name: &str, size: u64) -> String {
        let spec = ImageSpec {
            name: Some(name.to_string()),
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            ..ImageSpec::active(PROJECT, ImageData::Generated { seed: 5, size })
        };
        self.cloud.region("REGION1").create_image(spec)
    }

    fn env(&self, vars: &[(&str, &str)]) -> Environment {
        let mut all = vec![("OS_AUTH_URL".to_string(), self.cloud.auth_url())];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Environment::from_vars(all)
    }

    /// A token of the user, as `openstack token issue` gives it.
    async fn issue_token(&self) -> Token {
        let client = glance_download_sidecar::http::client(Duration::from_secs(5));
        let method = AuthMethod::password(USER, PASSWORD, PROJECT, "Default");
        let url = self.cloud.auth_url();
        login(&client, &url, &method, false, Duration::from_secs(10))
            .await
            .unwrap()
            .token
    }

    async fn sync(&self, credentials: &Credentials) -> Result<sync::Summary, SyncError> {
        let options = Options::new(
            "REGION1",
            &["REGION3".into()],
            &[],
            Filters::default(),
            2,
            false,
        )
        .unwrap();
        sync::run(&options, credentials, Arc::new(Quiet)).await
    }

    async fn copies(&self, source: &str) -> Vec<Value> {
        let token = self
            .cloud
            .keystone
            .issue_token("admin", "admin", &["admin"]);
        let api = ImageApi::new(&self.cloud.region("REGION3").url(), &token);
        let answer = api.get("/v2/images?limit=1000").await.unwrap();
        answer.json()["images"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i[SOURCE_IMAGE_ID] == source)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_application_credential_copies_in_env_and_clouds_yaml_form() {
    let w = World::start().await;
    let id = w
        .cloud
        .keystone
        .add_application_credential(USER, "sync", SECRET);
    let src = w.image("golden", 200_000);

    let env = w.env(&[
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_APPLICATION_CREDENTIAL_ID", &id),
        ("OS_APPLICATION_CREDENTIAL_SECRET", SECRET),
    ]);
    let creds = Credentials::load(None, &env).unwrap();
    let summary = w.sync(&creds).await.unwrap();
    assert_eq!(summary.count(Action::Copied), 1, "{:?}", summary.to_json());
    let copies = w.copies(&src).await;
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["status"], "active");
    assert_eq!(copies[0]["owner"], PROJECT, "the credential's project");

    // By name and user, from clouds.yaml: the copy is found and skipped.
    let dir = std::env::temp_dir().join(format!("gds-creds-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let clouds = dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    auth:\n      \
             auth_url: {}\n      application_credential_name: sync\n      username: {USER}\n      \
             user_domain_name: Default\n      application_credential_secret: {SECRET}\n",
            w.cloud.auth_url()
        ),
    )
    .unwrap();
    let mut env = Environment::from_vars([("OS_CLIENT_CONFIG_FILE", clouds.display().to_string())]);
    env.system_dir = None;
    let creds = Credentials::load(Some("ac"), &env).unwrap();
    let summary = w.sync(&creds).await.unwrap();
    assert_eq!(summary.count(Action::Skipped), 1, "{:?}", summary.to_json());
    let _ = std::fs::remove_dir_all(&dir);

    // A wrong secret: refused, and no secret in the message or in Debug.
    let env = w.env(&[
        ("OS_APPLICATION_CREDENTIAL_ID", &id),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "wrong-s3cret"),
    ]);
    let creds = Credentials::load(None, &env).unwrap();
    let error = w.sync(&creds).await.unwrap_err();
    let shown = format!("{error} {error:?} {creds:?}");
    assert!(shown.contains("application credential id"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

/// Tokens that live one second: the application credential logs in again during the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_application_credential_renews_the_token_of_a_long_run() {
    let w = World::start().await;
    let id = w
        .cloud
        .keystone
        .add_application_credential(USER, "sync", SECRET);
    let slow = w.image("slow", 300_000);
    w.cloud.region("REGION1").set_fault(
        &slow,
        Fault::Throttle {
            bytes_per_sec: 200_000,
        },
    );
    w.cloud.keystone.set_token_ttl(Duration::from_secs(1));
    let env = w.env(&[
        ("OS_APPLICATION_CREDENTIAL_ID", &id),
        ("OS_APPLICATION_CREDENTIAL_SECRET", SECRET),
    ]);
    let creds = Credentials::load(None, &env).unwrap();
    let before = w.cloud.keystone.logins();
    let summary = w.sync(&creds).await.unwrap();
    assert_eq!(summary.count(Action::Copied), 1, "{:?}", summary.to_json());
    assert!(summary.results[0].seconds > 1.0);
    assert!(w.cloud.keystone.logins() - before > 2, "logged in again");
    assert_eq!(w.copies(&slow).await[0]["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bare_token_copies() {
    let w = World::start().await;
    let src = w.image("golden", 100_000);
    let token = w.issue_token().await;
    let env = w.env(&[("OS_TOKEN", token.expose()), ("OS_PROJECT_NAME", PROJECT)]);
    let creds = Credentials::load(None, &env).unwrap();
    assert!(!format!("{creds:?}").contains(token.expose()));
    let summary = w.sync(&creds).await.unwrap();
    assert_eq!(summary.count(Action::Copied), 1, "{:?}", summary.to_json());
    assert_eq!(w.copies(&src).await[0]["status"], "active");

    // Without a project, Keystone scopes the new token to the user's default project.
    let env = w.env(&[("OS_AUTH_TYPE", "token"), ("OS_TOKEN", token.expose())]);
    let summary = w
        .sync(&Credentials::load(None, &env).unwrap())
        .await
        .unwrap();
    assert_eq!(summary.count(Action::Skipped), 1, "{:?}", summary.to_json());
}

/// A token that expires within the renewal margin: nothing starts, and the expiry is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bare_token_about_to_expire_is_refused_before_anything_moves() {
    let w = World::start().await;
    let src = w.image("golden", 100_000);
    w.cloud.keystone.set_token_ttl(Duration::from_secs(120));
    let token = w.issue_token().await;
    let env = w.env(&[("OS_TOKEN", token.expose()), ("OS_PROJECT_NAME", PROJECT)]);
    let creds = Credentials::load(None, &env).unwrap();
    let error = w.sync(&creds).await.unwrap_err().to_string();
    assert!(error.contains("the token expires at "), "{error}");
    assert!(error.contains("openstack token issue"), "{error}");
    assert!(!error.contains(token.expose()), "{error}");
    assert!(w.copies(&src).await.is_empty(), "nothing was created");
}

/// A copy is started only if a bare token outlives it (at the assumed rate); a password or an
/// application credential renews instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_longer_than_a_bare_token_lives_is_refused_naming_the_expiry() {
    let w = World::start().await;
    w.cloud.keystone.set_token_ttl(Duration::from_secs(1200));
    let token = w.issue_token().await;
    let client = glance_download_sidecar::http::client(Duration::from_secs(5));
    let env = w.env(&[("OS_TOKEN", token.expose()), ("OS_PROJECT_NAME", PROJECT)]);
    let creds = Credentials::load(None, &env).unwrap();
    let session = Session::open(client.clone(), creds, Duration::from_secs(10))
        .await
        .unwrap();
    session.token_for(Duration::from_secs(600)).await.unwrap();
    let error = session
        .token_for(Duration::from_secs(3600))
        .await
        .unwrap_err();
    let AuthError::TokenExpiring { expires_at, .. } = &error else {
        panic!("{error}");
    };
    // The expiry Keystone gives for the token, in UTC to the second.
    let keystone = Keystone::new(
        client.clone(),
        &w.cloud.auth_url(),
        Duration::from_secs(10),
        Duration::ZERO,
    );
    let at = keystone.validate(&token).await.unwrap().expires_at.unwrap();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    assert_eq!(expires_at, &at.format(&format).unwrap());
    assert!(error.to_string().contains(expires_at.as_str()), "{error}");

    let env = w.env(&[
        ("OS_USERNAME", USER),
        ("OS_PASSWORD", PASSWORD),
        ("OS_PROJECT_NAME", PROJECT),
    ]);
    let creds = Credentials::load(None, &env).unwrap();
    let session = Session::open(client, creds, Duration::from_secs(10))
        .await
        .unwrap();
    session.token_for(Duration::from_secs(3600)).await.unwrap();
}
