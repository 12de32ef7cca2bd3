//! The event catalog as a web page: `GET /catalog`, and what `eventtracking
//! catalog --format html` writes. One self-contained HTML file (inline style
//! and script, no dependencies) built from the same catalog as
//! `/catalog.json`, with a search box that filters the types as you type.

use std::fmt::Write as _;

use axum::response::Response;
use eventtracking_core::catalog::{schema_type_name, Catalog, CatalogEntry, FieldLocation};
use http::StatusCode;
use serde_json::Value;

use crate::assets::static_response;

/// The catalog as one self-contained HTML page: every event type with its
/// name, version, description and a table of its fields, and a search box
/// that hides the types not matching every word typed (in their name,
/// description, Rust type or field names). All catalog text is escaped.
///
/// ```
/// let catalog = eventtracking_core::catalog().unwrap();
/// let page = eventtracking_collector::catalog_html(catalog);
/// assert!(page.starts_with("<!doctype html>"));
/// ```
pub fn catalog_html(catalog: &Catalog) -> String {
    let mut out = String::with_capacity(4096 + catalog.len() * 1024);
    out.push_str(HEAD);
    let _ = writeln!(
        out,
        "<p id=\"summary\">{} event type{}.</p>",
        catalog.len(),
        if catalog.len() == 1 { "" } else { "s" }
    );
    out.push_str(
        "<input id=\"search\" type=\"search\" placeholder=\"Filter by name, description or field\" \
         aria-label=\"Filter event types\" autofocus>\n<p id=\"count\" aria-live=\"polite\"></p>\n",
    );
    if catalog.is_empty() {
        out.push_str("<p>No event types are registered.</p>\n");
    }
    for entry in catalog.iter() {
        entry_html(&mut out, entry);
    }
    out.push_str("<p id=\"none\" hidden>No event type matches.</p>\n");
    out.push_str(SCRIPT);
    out.push_str("</body>\n</html>\n");
    out
}

/// One `<section>` per event type.
fn entry_html(out: &mut String, entry: &CatalogEntry) {
    let mut search = format!("{} {} {}", entry.key, entry.description, entry.rust_type);
    for field in &entry.fields {
        search.push(' ');
        search.push_str(&field.name);
    }
    let _ = write!(
        out,
        "<section class=\"event-type\" id=\"{key}\" data-name=\"{name}\" data-search=\"{search}\">\n\
         <h2><code>{name}</code> <span class=\"version\">version {version}</span></h2>\n",
        key = escape(&entry.key),
        name = escape(&entry.name),
        search = escape(&search.to_lowercase()),
        version = entry.version,
    );
    if !entry.description.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"description\">{}</p>",
            escape(&entry.description)
        );
    }
    let _ = writeln!(
        out,
        "<p class=\"meta\">Schema reference <code>{}</code>; defined by <code>{}</code>.</p>",
        escape(&entry.key),
        escape(&entry.rust_type)
    );
    if entry.fields.is_empty() {
        out.push_str("<p>No fields.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table>\n<thead><tr><th>field</th><th>in</th><th>type</th><th>required</th>\
         <th>description</th></tr></thead>\n<tbody>\n",
    );
    for field in &entry.fields {
        let (location, schema) = match field.location {
            FieldLocation::Data => ("data", Some(&entry.schema)),
            FieldLocation::Context => ("context", entry.context_schema.as_ref()),
        };
        let kind = schema
            .and_then(|s| s["properties"].get(&field.name))
            .map(schema_type_name)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{location}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&field.name),
            escape(&kind),
            if field.required { "yes" } else { "no" },
            escape(&field.description),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    definitions_html(out, entry);
    out.push_str("</section>\n");
}

/// The nested types the fields refer to (the schema's `$defs`), each with
/// its own field table.
fn definitions_html(out: &mut String, entry: &CatalogEntry) {
    let definitions = entry.schema.get("$defs").and_then(Value::as_object);
    for (name, definition) in definitions.into_iter().flatten() {
        let _ = writeln!(out, "<h3><code>{}</code></h3>", escape(name));
        if let Some(description) = definition.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "<p>{}</p>", escape(description));
        }
        let Some(properties) = definition.get("properties").and_then(Value::as_object) else {
            let kind = schema_type_name(definition);
            if !kind.is_empty() {
                let _ = writeln!(out, "<p>Type: {}.</p>", escape(&kind));
            }
            continue;
        };
        let required: Vec<&str> = definition
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(
            "<table>\n<thead><tr><th>field</th><th>type</th><th>required</th>\
             <th>description</th></tr></thead>\n<tbody>\n",
        );
        for (field, schema) in properties {
            let description = schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(field),
                escape(&schema_type_name(schema)),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                escape(description),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

/// Text safe in HTML content and in quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /catalog`: the page of the event types linked into the program; 500
/// if two of them clash.
pub(crate) async fn catalog_page() -> Response {
    match eventtracking_core::catalog::catalog() {
        Ok(catalog) => static_response(
            "text/html; charset=utf-8",
            "no-cache",
            catalog_html(catalog),
        ),
        Err(error) => {
            let mut response = static_response(
                "text/plain; charset=utf-8",
                "no-cache",
                format!("the event catalog is inconsistent: {error}"),
            );
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

const HEAD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Event catalog</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
  #search { font-size: 1rem; width: 100%; padding: .4rem; box-sizing: border-box; }
  .event-type { border-top: 1px solid #ccc; margin-top: 1.5rem; }
  .version { font-size: .8em; color: #666; font-weight: normal; }
  .meta { color: #555; font-size: .9em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
  th { background: #f4f4f4; }
</style>
</head>
<body>
<h1>Event catalog</h1>
"#;

/// Hides the types that do not contain every word typed (matched against
/// their `data-search`, lowercased when the page was made).
const SCRIPT: &str = r#"<script>
(function () {
  "use strict";
  var input = document.getElementById("search");
  var count = document.getElementById("count");
  var none = document.getElementById("none");
  var types = Array.prototype.slice.call(document.querySelectorAll(".event-type"));
  function filter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    types.forEach(function (type) {
      var text = type.getAttribute("data-search");
      var hit = words.every(function (word) { return text.indexOf(word) >= 0; });
      type.hidden = !hit;
      if (hit) shown++;
    });
    count.textContent = words.length ? shown + " of " + types.length + " shown" : "";
    none.hidden = shown > 0 || !types.length;
  }
  input.addEventListener("input", filter);
  filter();
})();
</script>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use eventtracking_core::catalog::{EventTypeInfo, FieldInfo};

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn the_empty_catalog_says_so() {
        let page = catalog_html(&Catalog::default());
        assert!(page.contains("0 event types."), "{page}");
        assert!(page.contains("No event types are registered."));
    }

    fn string_schema(_: &mut eventtracking_core::catalog::SchemaGenerator) -> Value {
        serde_json::json!({"type": "string"})
    }

    const HOSTILE_FIELDS: &[FieldInfo] = &[FieldInfo::new(
        "x\"><img src=x onerror=alert(1)>",
        "<b>bold</b> & 'quoted'",
        FieldLocation::Data,
        true,
        string_schema,
    )];

    #[test]
    fn catalog_text_cannot_inject_html() {
        let info = EventTypeInfo::new(
            "evil.</script><script>alert(1)</script>",
            1,
            "A <script>alert(\"doc\")</script> description",
            "crate::Evil<'a>",
            HOSTILE_FIELDS,
        );
        let catalog = Catalog::from_infos([&info]).unwrap();
        let page = catalog_html(&catalog);
        // The page's own markup: one script element, one img-free body.
        assert_eq!(page.matches("<script>").count(), 1, "{page}");
        assert_eq!(page.matches("</script>").count(), 1, "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>bold"), "{page}");
        assert!(page.contains("evil.&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("x&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;"));
        assert!(page.contains("1 event type."));
        assert!(page.contains("<td>string</td><td>yes</td>"), "{page}");
    }
}
