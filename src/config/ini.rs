//! A small parser for oslo.config-style INI files.
//!
//! Accepted: `[section]` headers, `key = value` (or `key: value`) lines, whole-line comments
//! starting with `#` or `;`, and trailing comments introduced by whitespace followed by `;` or `#`
//! (as in the sample configuration). Keys before any header belong to `DEFAULT`. Values are
//! trimmed; nothing else is interpreted here.

use super::ConfigError;

/// Upper bound on a configuration file, so a wrong path (a device, a huge log) is refused early.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// One `key = value` line, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses the text of an INI file into entries, in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError::FileTooLarge);
    }
    let mut section = String::from("DEFAULT");
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or(ConfigError::Syntax {
                    line: line_no,
                    reason: "a section header must look like [name]",
                })?;
            section = name.to_string();
            continue;
        }
        let split = line.find(['=', ':']).ok_or(ConfigError::Syntax {
            line: line_no,
            reason: "expected `key = value`",
        })?;
        let key = line[..split].trim();
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                line: line_no,
                reason: "empty key",
            });
        }
        entries.push(Entry {
            section: section.clone(),
            key: key.to_string(),
            value: line[split + 1..].trim().to_string(),
            line: line_no,
        });
    }
    Ok(entries)
}

/// Drops a whole-line comment, or a trailing one that follows whitespace.
fn strip_comment(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return "";
    }
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b';' || bytes[i] == b'#') && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Splits an oslo.config list value: `a,b`, `[a, b]`, with optional quotes around items.
pub fn list(value: &str) -> Vec<String> {
    let inner = value.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            let unquoted = item
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| item.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(item);
            unquoted.to_string()
        })
        .filter(|item| !item.is_empty())
        .collect()
}
