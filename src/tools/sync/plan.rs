//! `sync --plan FILE`: the source, the targets and the options of a run in one YAML file, to be
//! reviewed before anything moves. The file says what the flags say (`--dry-run`, `--json` and
//! the credential flags stay on the command line); [`PlanFile::options`] builds the same
//! [`Options`] the flags build, so a plan and its flags run alike.
//!
//! ```yaml
//! source:
//!   cloud: prod            # optional: else --os-cloud, $OS_CLOUD or the OS_* variables
//!   region: REGION1
//!   images: []             # ids; or filters (not both)
//!   filters:
//!     name: "ubuntu-*"
//!     tags: [golden]
//!     visibility: public
//!     properties: {os_distro: ubuntu}
//! targets:
//!   cloud: prod            # optional: else the source's; another cloud is --to-cloud
//!   regions: [REGION2, REGION3]
//! options:
//!   concurrency: 4
//!   keep_id: false
//!   prune: hide            # optional: delete or hide
//! ```
//!
//! Refused files name the line and the key: unknown keys, wrong types, missing keys, bad values.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::glance::ImageId;

use super::{Filters, Options, OptionsError, Prune, DEFAULT_CONCURRENCY, MAX_CONCURRENCY};

/// Largest plan file read.
pub const MAX_PLAN_BYTES: u64 = 1024 * 1024;

/// Most image ids in a plan.
pub const MAX_PLAN_IMAGES: usize = 10_000;

/// Most entries in any other list or map of a plan (regions, tags, properties).
pub const MAX_PLAN_ENTRIES: usize = 64;

/// Why a plan file is refused (exit status 64).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("plan {path}: larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    /// The YAML does not fit the schema; `reason` names the key and the line.
    #[error("plan {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("plan {path}: {reason}")]
    Options { path: String, reason: String },
    #[error(
        "plan {path}: targets.cloud {target:?} needs source.cloud (or --os-cloud, $OS_CLOUD): \
         the source's cloud must be a clouds.yaml entry too"
    )]
    UnnamedSource { path: String, target: String },
}

/// A parsed plan file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub source: Source,
    pub targets: Targets,
    #[serde(default)]
    pub options: PlanOptions,
}

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A clouds.yaml entry; none: `--os-cloud`, `$OS_CLOUD` or the `OS_*` variables.
    pub cloud: Option<String>,
    pub region: Region,
    /// Images to copy, by id; none: every active image the filters select.
    #[serde(default)]
    pub images: Bounded<PlanImageId, MAX_PLAN_IMAGES>,
    #[serde(default)]
    pub filters: PlanFilters,
}

/// The filters of `--name`, `--tag`, `--visibility` and `--property`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFilters {
    pub name: Option<NameGlob>,
    #[serde(default)]
    pub tags: Bounded<Tag, MAX_PLAN_ENTRIES>,
    pub visibility: Option<Visibility>,
    #[serde(default)]
    pub properties: Properties,
}

/// Where the copies go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// A clouds.yaml entry; none: the source's. Another cloud than the source's is what
    /// `--to-cloud` is (copies stream through `sync`).
    pub cloud: Option<String>,
    pub regions: Bounded<Region, MAX_PLAN_ENTRIES>,
}

/// `--concurrency`, `--keep-id`, `--prune`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanOptions {
    #[serde(default = "default_concurrency")]
    pub concurrency: Concurrency,
    #[serde(default)]
    pub keep_id: bool,
    pub prune: Option<PruneMode>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            concurrency: default_concurrency(),
            keep_id: false,
            prune: None,
        }
    }
}

fn default_concurrency() -> Concurrency {
    Concurrency(DEFAULT_CONCURRENCY)
}

/// `options.prune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneMode {
    Delete,
    Hide,
}

/// `source.filters.visibility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
    Shared,
    Community,
    All,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
            Visibility::All => "all",
        }
    }
}

/// A list of at most `N` entries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Vec<T>")]
pub struct Bounded<T: Keyed, const N: usize>(pub Vec<T>);

impl<T: Keyed, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Bounded(Vec::new())
    }
}

/// The key a checked value is read from, named in its refusals (the YAML error's path stops at
/// the enclosing mapping).
pub trait Keyed {
    /// The key of a list of such values.
    const LIST_KEY: &'static str;
}

impl<T: Keyed, const N: usize> TryFrom<Vec<T>> for Bounded<T, N> {
    type Error = String;
    fn try_from(list: Vec<T>) -> Result<Self, String> {
        if list.len() > N {
            let key = T::LIST_KEY;
            return Err(format!("{key}: at most {N} entries, not {}", list.len()));
        }
        Ok(Bounded(list))
    }
}

/// Properties the images must have, with these values.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Properties(pub BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for Properties {
    type Error = String;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, String> {
        if map.len() > MAX_PLAN_ENTRIES {
            return Err(format!(
                "properties: at most {MAX_PLAN_ENTRIES} entries, not {}",
                map.len()
            ));
        }
        if map.keys().any(String::is_empty) {
            return Err("properties: a property name must not be empty".into());
        }
        Ok(Properties(map))
    }
}

/// Defines a string newtype checked while the file is read (so a refusal names its line).
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $key:literal, $list:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(pub String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                let check: fn(&str) -> Result<String, String> = $check;
                check(&text).map($name).map_err(|e| format!("{}: {e}", $key))
            }
        }

        impl Keyed for $name {
            const LIST_KEY: &'static str = $list;
        }
    };
}

checked_string!(
    /// A region name: not empty.
    Region,
    "region",
    "regions",
    |t| match t.trim() {
        "" => Err("a region name must not be empty".into()),
        region => Ok(region.to_string()),
    }
);

checked_string!(
    /// An image id (a UUID).
    PlanImageId,
    "images",
    "images",
    |t| ImageId::parse(t)
        .map(|id| id.as_str().to_string())
        .ok_or_else(|| format!("{t:?} is not an image id (a UUID)"))
);

checked_string!(
    /// A name glob (`*`, `?`, `[...]`).
    NameGlob,
    "name",
    "name",
    |t| globset::Glob::new(t)
        .map(|_| t.to_string())
        .map_err(|e| format!("{t:?} is not a valid glob: {}", e.kind()))
);

checked_string!(
    /// A tag: not empty.
    Tag,
    "tags",
    "tags",
    |t| match t {
        "" => Err("a tag must not be empty".into()),
        tag => Ok(tag.to_string()),
    }
);

/// `options.concurrency`: 1 to [`MAX_CONCURRENCY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Concurrency(pub usize);

impl TryFrom<u64> for Concurrency {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, String> {
        match usize::try_from(n) {
            Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(Concurrency(n)),
            _ => Err(format!(
                "concurrency: must be between 1 and {MAX_CONCURRENCY}, not {n}"
            )),
        }
    }
}

impl PlanFile {
    /// Reads and checks a plan file of at most [`MAX_PLAN_BYTES`].
    pub fn read(path: &Path) -> Result<PlanFile, PlanError> {
        let shown = path.display().to_string();
        let read_error = |e: std::io::Error| PlanError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = String::new();
        file.take(MAX_PLAN_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        if text.len() as u64 > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge {
                path: shown,
                max: MAX_PLAN_BYTES,
            });
        }
        PlanFile::parse(&text, &shown)
    }

    /// Checks the text of a plan; `path` names it in messages.
    pub fn parse(text: &str, path: &str) -> Result<PlanFile, PlanError> {
        serde_yaml_ng::from_str(text).map_err(|e| PlanError::Invalid {
            path: path.to_string(),
            reason: located(&e),
        })
    }

    /// The clouds the run signs in to: the source's (`source.cloud`, else `fallback`:
    /// `--os-cloud` or `$OS_CLOUD`; none: the `OS_*` variables) and the targets'
    /// (`targets.cloud`; none: the source's). A targets' cloud other than the source's needs
    /// the source's named (it is recorded on the copies).
    pub fn clouds(
        &self,
        path: &str,
        fallback: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), PlanError> {
        let source = self.source.cloud.as_deref().or(fallback);
        match (source, &self.targets.cloud) {
            (None, Some(target)) => Err(PlanError::UnnamedSource {
                path: path.to_string(),
                target: target.clone(),
            }),
            (source, target) => Ok((source.map(str::to_string), target.clone())),
        }
    }

    /// The options the same run given by flags would have; `across`: the targets are in
    /// another cloud than the source ([`PlanFile::clouds`]).
    pub fn options(&self, path: &str, dry_run: bool, across: bool) -> Result<Options, PlanError> {
        let filters = &self.source.filters;
        let filters = Filters {
            name: filters.name.as_ref().map(|g| g.0.clone()),
            tags: filters.tags.0.iter().map(|t| t.0.clone()).collect(),
            visibility: filters.visibility.map(|v| v.as_str().to_string()),
            properties: filters.properties.0.clone().into_iter().collect(),
        };
        let ids: Vec<String> = self.source.images.0.iter().map(|i| i.0.clone()).collect();
        let to: Vec<String> = self.targets.regions.0.iter().map(|r| r.0.clone()).collect();
        let build = match across {
            true => Options::across_clouds,
            false => Options::new,
        };
        let options = build(
            &self.source.region.0,
            &to,
            &ids,
            filters,
            self.options.concurrency.0,
            dry_run,
        );
        let mut options = options.map_err(|e| PlanError::Options {
            path: path.to_string(),
            reason: plan_words(&e),
        })?;
        options.keep_id = self.options.keep_id;
        options.prune = self.options.prune.map(|mode| match mode {
            PruneMode::Delete => Prune::Delete,
            PruneMode::Hide => Prune::Hide,
        });
        Ok(options)
    }
}

/// A checked-options error in the plan's terms (its keys, not the flags).
fn plan_words(error: &OptionsError) -> String {
    match error {
        OptionsError::NoTargets => "targets.regions: at least one target region is required".into(),
        OptionsError::TargetIsSource(region) => {
            format!("targets.regions: {region} is source.region")
        }
        OptionsError::IdsAndFilters => "source: give images or filters, not both".into(),
        OptionsError::ReservedProperty(key) => format!(
            "source.filters.properties.{key}: a listing parameter, not a property; use its own key"
        ),
        other => other.to_string(),
    }
}

/// The keys whose values are checked while the file is read (their refusals name them).
const CHECKED_KEYS: [&str; 7] = [
    "region",
    "regions",
    "images",
    "name",
    "tags",
    "properties",
    "concurrency",
];

/// A YAML error with its key path and `line N column M`, and never a quote of the document
/// beyond what serde names (a key, an expected type, a bad value).
fn located(error: &serde_yaml_ng::Error) -> String {
    let mut text = error.to_string();
    // A checked value's refusal reads "parent: key: why"; say "parent.key: why".
    if let Some((parent, rest)) = text.split_once(": ") {
        if let Some((key, why)) = rest.split_once(": ") {
            if CHECKED_KEYS.contains(&key) && !parent.contains(' ') {
                // An entry of a list: the path already ends at the list (`regions`, `tags`).
                let list = [format!(".{key}"), format!(".{key}s")];
                text = if list.iter().any(|end| parent.ends_with(end.as_str())) {
                    format!("{parent}: {why}")
                } else {
                    format!("{parent}.{key}: {why}")
                };
            }
        }
    }
    match error.location() {
        Some(at) if !text.contains(" at line ") => {
            format!("{text} at line {} column {}", at.line(), at.column())
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
source:
  region: REGION1
  filters:
    name: \"ubuntu-*\"
    tags: [golden]
    visibility: public
    properties: {os_distro: ubuntu}
targets:
  regions: [REGION2, REGION3]
options:
  concurrency: 2
  keep_id: true
  prune: hide
";

    fn refused(text: &str) -> String {
        PlanFile::parse(text, "p.yaml").unwrap_err().to_string()
    }

    #[test]
    fn a_full_plan_gives_the_options_of_its_flags() {
        let plan = PlanFile::parse(GOOD, "p.yaml").unwrap();
        let options = plan.options("p.yaml", true, false).unwrap();
        let flags = Options::new(
            "REGION1",
            &["REGION2,REGION3".to_string()],
            &[],
            Filters {
                name: Some("ubuntu-*".into()),
                tags: vec!["golden".into()],
                visibility: Some("public".into()),
                properties: vec![("os_distro".into(), "ubuntu".into())],
            },
            2,
            true,
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", options.selection),
            format!("{:?}", flags.selection)
        );
        assert_eq!((options.from, options.to), (flags.from, flags.to));
        assert_eq!(options.concurrency, 2);
        assert!(options.dry_run && options.keep_id);
        assert_eq!(options.prune, Some(Prune::Hide));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("  keep_id: true", "  keep_ids: true");
        let e = refused(&text);
        assert!(e.contains("options: unknown field `keep_ids`"), "{e}");
        assert!(e.contains("line 12"), "{e}");
        let e = refused(&GOOD.replace("options:\n", "dry_run: true\noptions:\n"));
        assert!(
            e.contains("unknown field `dry_run`") && e.contains("line 10"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_is_named_with_its_line() {
        let e = refused(&GOOD.replace("keep_id: true", "keep_id: [yes]"));
        assert!(
            e.contains("options.keep_id: invalid type") && e.contains("line 12"),
            "{e}"
        );
        let e = refused(&GOOD.replace("tags: [golden]", "tags: golden"));
        assert!(
            e.contains("source.filters.tags: invalid type") && e.contains("line 5"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_key_is_named_with_its_line() {
        let e = refused(&GOOD.replace("region: REGION1", "region: \"\""));
        assert!(
            e.contains("source.region: a region name") && e.contains("line 2"),
            "{e}"
        );
        let e = refused(&GOOD.replace("  region: REGION1\n", ""));
        assert!(
            e.contains("source: missing field `region`") && e.contains("line 2"),
            "{e}"
        );
        let e = refused(&GOOD.replace("  regions: [REGION2, REGION3]\n", "  cloud: a\n"));
        assert!(
            e.contains("targets: missing field `regions`") && e.contains("line 9"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_value_is_named_with_its_line() {
        for (from, to, key, line) in [
            (
                "visibility: public",
                "visibility: everyone",
                "source.filters.visibility",
                6,
            ),
            ("prune: hide", "prune: remove", "options.prune", 13),
            (
                "concurrency: 2",
                "concurrency: 65",
                "options.concurrency",
                11,
            ),
            (
                "name: \"ubuntu-*\"",
                "name: \"[\"",
                "source.filters.name",
                4,
            ),
            ("tags: [golden]", "tags: [\"\"]", "source.filters.tags:", 5),
            (
                "regions: [REGION2, REGION3]",
                "regions: [\" \"]",
                "targets.regions:",
                9,
            ),
            (
                "  filters:",
                "  images: [not-an-id]\n  filters:",
                "source.images:",
                3,
            ),
        ] {
            let e = refused(&GOOD.replace(from, to));
            assert!(
                e.contains(key) && e.contains(&format!("line {line}")),
                "{to}: {e}"
            );
        }
    }

    #[test]
    fn property_values_are_read_as_written() {
        let text = GOOD.replace("{os_distro: ubuntu}", "{os_version: 22.10, hw_rng: true}");
        let plan = PlanFile::parse(&text, "p.yaml").unwrap();
        assert_eq!(plan.source.filters.properties.0["os_version"], "22.10");
        assert_eq!(plan.source.filters.properties.0["hw_rng"], "true");
        let e = refused(&GOOD.replace("{os_distro: ubuntu}", "{os_distro: [a]}"));
        assert!(
            e.contains("source.filters.properties") && e.contains("line 7"),
            "{e}"
        );
    }

    #[test]
    fn lists_are_bounded() {
        let regions: Vec<String> = (0..=MAX_PLAN_ENTRIES).map(|i| format!("R{i}")).collect();
        let text = GOOD.replace("[REGION2, REGION3]", &format!("[{}]", regions.join(", ")));
        let e = refused(&text);
        assert!(
            e.contains("targets.regions") && e.contains("at most 64"),
            "{e}"
        );
    }

    #[test]
    fn cross_key_problems_name_the_keys() {
        let plan = PlanFile::parse(&GOOD.replace("REGION3]", "REGION1]"), "p.yaml").unwrap();
        let e = plan
            .options("p.yaml", false, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("targets.regions: REGION1 is source.region"),
            "{e}"
        );
        let text = GOOD.replace(
            "  filters:",
            "  images: [2b4c8f5e-7d4a-4a57-9a55-1d2e3f4a5b6c]\n  filters:",
        );
        let plan = PlanFile::parse(&text, "p.yaml").unwrap();
        let e = plan
            .options("p.yaml", false, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("images or filters, not both"), "{e}");
    }

    #[test]
    fn a_target_cloud_other_than_the_source_is_a_second_cloud() {
        let text = GOOD.replace("  region: REGION1", "  cloud: a\n  region: REGION1");
        let same = text.replace("targets:\n", "targets:\n  cloud: a\n");
        let plan = PlanFile::parse(&same, "p.yaml").unwrap();
        let clouds = plan.clouds("p.yaml", Some("b")).unwrap();
        assert_eq!(clouds, (Some("a".into()), Some("a".into())));
        let other = text.replace("targets:\n", "targets:\n  cloud: b\n");
        let plan = PlanFile::parse(&other, "p.yaml").unwrap();
        let clouds = plan.clouds("p.yaml", None).unwrap();
        assert_eq!(clouds, (Some("a".into()), Some("b".into())));
        let plan = PlanFile::parse(&text, "p.yaml").unwrap();
        assert_eq!(
            plan.clouds("p.yaml", None).unwrap(),
            (Some("a".into()), None)
        );
        // The source must be named: its name is recorded on the copies.
        let plan =
            PlanFile::parse(&GOOD.replace("targets:\n", "targets:\n  cloud: b\n"), "p").unwrap();
        let e = plan.clouds("p", None).unwrap_err().to_string();
        assert!(e.contains("targets.cloud \"b\" needs source.cloud"), "{e}");
        let clouds = plan.clouds("p", Some("a")).unwrap();
        assert_eq!(clouds, (Some("a".into()), Some("b".into())));
    }
}
