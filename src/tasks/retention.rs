//! Which finished tasks are kept: the newest within a limit per image, per project and in all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// How long a finished task stays visible (Glance's `[task] task_time_to_live`, 48 h).
pub const TASK_TTL: Duration = Duration::from_secs(48 * 3600);

/// Default of `max_finished_tasks`: most finished tasks kept in memory in all; the oldest are
/// dropped first.
pub const MAX_FINISHED: usize = 10_000;

/// Default of `max_tasks_per_image`: finished tasks kept (and listed) per image.
pub const MAX_PER_IMAGE: usize = 20;

/// Default of `max_tasks_per_project`: finished tasks kept per project (image owner).
pub const MAX_PER_PROJECT: usize = 1_000;

/// How many finished tasks are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_image: usize,
    pub per_project: usize,
    pub total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_image: MAX_PER_IMAGE,
            per_project: MAX_PER_PROJECT,
            total: MAX_FINISHED,
        }
    }
}

/// Finished records, oldest first, within [`Limits`]: adding one drops the oldest of its image,
/// of its project, and of all, as needed. Also used to read the journal back in bounded memory.
#[derive(Debug)]
pub struct Retained<T> {
    limits: Limits,
    next: u64,
    by_seq: BTreeMap<u64, (String, String, String, T)>,
    by_id: HashMap<String, u64>,
    by_image: HashMap<String, VecDeque<u64>>,
    by_project: HashMap<String, VecDeque<u64>>,
}

impl<T> Default for Retained<T> {
    fn default() -> Self {
        Retained::new(Limits::default())
    }
}

impl<T> Retained<T> {
    pub fn new(limits: Limits) -> Self {
        Retained {
            limits: Limits {
                per_image: limits.per_image.max(1),
                per_project: limits.per_project.max(1),
                total: limits.total.max(1),
            },
            next: 0,
            by_seq: BTreeMap::new(),
            by_id: HashMap::new(),
            by_image: HashMap::new(),
            by_project: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    /// Adds (or replaces, by id) a record as the newest, then drops the oldest beyond the limits.
    pub fn insert(&mut self, id: &str, image: &str, project: &str, value: T) {
        self.remove(id);
        let seq = self.next;
        self.next += 1;
        self.by_seq.insert(
            seq,
            (
                id.to_string(),
                image.to_string(),
                project.to_string(),
                value,
            ),
        );
        self.by_id.insert(id.to_string(), seq);
        let image_seqs = self.by_image.entry(image.to_string()).or_default();
        image_seqs.push_back(seq);
        let over_image = (image_seqs.len() > self.limits.per_image).then(|| image_seqs[0]);
        if let Some(old) = over_image {
            self.drop_seq(old);
        }
        let project_seqs = self.by_project.entry(project.to_string()).or_default();
        project_seqs.push_back(seq);
        let over_project = (project_seqs.len() > self.limits.per_project).then(|| project_seqs[0]);
        if let Some(old) = over_project {
            self.drop_seq(old);
        }
        while self.by_seq.len() > self.limits.total {
            match self.by_seq.keys().next().copied() {
                Some(old) => {
                    self.drop_seq(old);
                }
                None => break,
            }
        }
    }

    /// Drops the record `id`, if kept; returns it.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let seq = *self.by_id.get(id)?;
        self.drop_seq(seq)
    }

    /// Drops the oldest record if `expired` says so; returns whether it did.
    pub(super) fn drop_oldest_if(&mut self, expired: impl Fn(&T) -> bool) -> bool {
        let oldest = self
            .by_seq
            .iter()
            .next()
            .filter(|(_, (_, _, _, value))| expired(value))
            .map(|(seq, _)| *seq);
        match oldest {
            Some(seq) => self.drop_seq(seq).is_some(),
            None => false,
        }
    }

    fn drop_seq(&mut self, seq: u64) -> Option<T> {
        let (id, image, project, value) = self.by_seq.remove(&seq)?;
        self.by_id.remove(&id);
        for (index, key) in [(&mut self.by_image, image), (&mut self.by_project, project)] {
            if let Some(seqs) = index.get_mut(&key) {
                if let Some(at) = seqs.iter().position(|s| *s == seq) {
                    seqs.remove(at);
                }
                if seqs.is_empty() {
                    index.remove(&key);
                }
            }
        }
        Some(value)
    }

    /// The records of one image, oldest first (at most `per_image`).
    pub fn for_image(&self, image: &str) -> impl Iterator<Item = &T> {
        self.by_image
            .get(image)
            .into_iter()
            .flatten()
            .filter_map(|seq| self.by_seq.get(seq).map(|(_, _, _, value)| value))
    }

    /// Every record, oldest first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.by_seq.values().map(|(_, _, _, value)| value)
    }

    /// Every record, oldest first, taken out.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.by_seq.into_values().map(|(_, _, _, value)| value)
    }
}
