//! Per-project import slots: beside the node-wide `max_concurrent_imports`, one project may run
//! at most `max_imports_per_project` imports at once.
//!
//! A map of counters, one per project with imports running; an entry is removed when its count
//! falls to zero, so the map never holds more entries than there are imports in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Running imports per project.
#[derive(Debug)]
pub struct ProjectSlots {
    limit: usize,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// One running import of a project; the count goes down when it is dropped.
#[derive(Debug)]
pub struct ProjectSlot {
    project: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl ProjectSlots {
    /// Slots allowing `limit` imports per project (at least one).
    pub fn new(limit: usize) -> Self {
        ProjectSlots {
            limit: limit.max(1),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `project`, or `None` when it already runs `limit` imports.
    pub fn try_acquire(&self, project: &str) -> Option<ProjectSlot> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let count = running.entry(project.to_string()).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ProjectSlot {
            project: project.to_string(),
            running: self.running.clone(),
        })
    }

    /// Imports of `project` running now.
    pub fn running(&self, project: &str) -> usize {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(project).copied().unwrap_or(0)
    }

    /// Projects with imports running now (the map's size).
    pub fn projects(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for ProjectSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = running.get_mut(&self.project) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.project);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_gets_at_most_its_limit() {
        let slots = ProjectSlots::new(2);
        let a1 = slots.try_acquire("a").unwrap();
        let _a2 = slots.try_acquire("a").unwrap();
        assert!(slots.try_acquire("a").is_none());
        // Other projects are not affected.
        let _b = slots.try_acquire("b").unwrap();
        drop(a1);
        assert_eq!(slots.running("a"), 1);
        assert!(slots.try_acquire("a").is_some());
    }

    #[test]
    fn entries_go_when_their_imports_end() {
        let slots = ProjectSlots::new(1);
        let held: Vec<_> = (0..100)
            .map(|i| slots.try_acquire(&format!("p{i}")).unwrap())
            .collect();
        assert_eq!(slots.projects(), 100);
        // A refused project leaves no entry behind it either.
        assert!(slots.try_acquire("p0").is_none());
        drop(held);
        assert_eq!(slots.projects(), 0);
    }
}
