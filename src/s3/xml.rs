//! The little XML the S3 calls exchange: a few flat elements read out of small, bounded answers,
//! and the CompleteMultipartUpload body. S3 documents these shapes exactly; a general XML parser
//! would add a dependency for no gain.

/// The text of the first `<name>...</name>` element in `doc`, unescaped.
pub fn element(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find(&close)?;
    Some(unescape(&doc[start..start + len]))
}

/// Every `<name>...</name>` element's text in `doc`, in order, unescaped.
#[cfg(any(test, feature = "tools"))]
pub fn elements(doc: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(unescape(&after[..j]));
        rest = &after[j + close.len()..];
    }
    out
}

/// Whether `doc` is an S3 error document (`<Error>` root).
pub fn is_error(doc: &str) -> bool {
    doc.trim_start()
        .trim_start_matches(|c| c != '<')
        .split_once("?>")
        .map_or(doc, |(_, rest)| rest)
        .trim_start()
        .starts_with("<Error>")
}

/// The CompleteMultipartUpload request body for `(part number, ETag)` pairs in order.
pub fn complete_body(parts: &[(u32, String)]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        body.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(etag)
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// Escapes text content.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Undoes the five predefined entities.
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
