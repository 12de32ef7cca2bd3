//! Typed, self-documenting events and the catalog that documents them.
//!
//! `#[derive(TrackedEvent)]` (feature `derive`) turns a struct into an event
//! type: it implements [`TrackedEvent`] (the constant name, version and
//! schema reference, and the payload writer; the engine's `TrackedEventExt`
//! adds `emit()` and `emit_to(&tracker)`) and registers an
//! [`EventTypeInfo`] at compile time: the name, the version, the struct's doc
//! comment, each field's doc comment and a JSON Schema of the payload.
//!
//! ```
//! # #[cfg(feature = "derive")] {
//! use eventtracking_core::{catalog, Event, TrackedEvent};
//!
//! /// A learner created a postal address.
//! #[derive(TrackedEvent)]
//! #[tracked_event(crate = "eventtracking_core", name = "address.create", version = 2)]
//! struct AddressCreate {
//!     /// The addressee.
//!     name: String,
//!     /// The learner, put in the event's context rather than its data.
//!     #[tracked_event(context)]
//!     user_id: u64,
//! }
//!
//! // What `tracker.emit_typed(&event)` (or `event.emit_to(&tracker)`) sends:
//! let address = AddressCreate { name: "Ada".into(), user_id: 7 };
//! let event = Event::emitted_typed(&address, Default::default()).unwrap();
//! assert_eq!(event.name(), "address.create");
//! assert_eq!(event.schema(), Some("address.create@2"));
//! assert_eq!(event.data()["name"], "Ada");
//! assert_eq!(event.context()["user_id"], 7);
//!
//! let entry = catalog().unwrap().get("address.create", 2).unwrap();
//! assert_eq!(entry.description, "A learner created a postal address.");
//! assert_eq!(entry.schema["properties"]["name"]["description"], "The addressee.");
//! # }
//! ```
//!
//! Typed events carry a schema reference, `"schema": "NAME@VERSION"`, next
//! to their name; it is the [`CatalogEntry::key`] under which every backend
//! persists the entry (see [`Backend::publish_event_types`](crate::Backend::publish_event_types)),
//! so analysis can join events to their documentation.
//!
//! Nested types in a typed event must implement `serde::Serialize` and
//! `schemars::JsonSchema` (derive both); the event struct itself needs
//! neither: the derive writes its payload and its schema from the fields.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

use crate::event::JsonMap;

/// The JSON Schema dialect of catalog schemas.
pub const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// An event type, usually implemented by `#[derive(TrackedEvent)]`.
///
/// The payload is written from the fields by [`serialize_data`](Self::serialize_data);
/// fields marked `#[tracked_event(context)]` go into the event's context
/// through [`context_fields`](Self::context_fields).
pub trait TrackedEvent {
    /// The event name, e.g. `address.create`.
    const NAME: &'static str;
    /// The version of the event type's schema.
    const VERSION: u32;
    /// The schema reference carried by the events: `NAME@VERSION`.
    const SCHEMA: &'static str;
    /// Whether [`context_fields`](Self::context_fields) adds anything.
    const HAS_CONTEXT_FIELDS: bool = false;

    /// Serializes the event's data (its non-context, non-skipped fields) as a map.
    fn serialize_data<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;

    /// Appends the event's data as a JSON object to `out` (what `emit`
    /// stores), written as `serde_json` writes it. The derive writes the
    /// keys as ready-made JSON text; this default goes through
    /// [`serialize_data`](Self::serialize_data).
    fn write_data_json(&self, out: &mut String) -> Result<(), serde_json::Error>
    where
        Self: Sized,
    {
        serde::Serialize::serialize(&DataOf(self), crate::json_text::JsonWriter(out))
    }

    /// The event name as one shared string for the type, made once: the
    /// derive implements it (its name is checked at compile time); `None`
    /// (the default) has the emit path validate and intern [`NAME`](Self::NAME)
    /// per thread instead.
    #[doc(hidden)]
    fn __shared_name() -> Option<Arc<str>>
    where
        Self: Sized,
    {
        None
    }

    /// Adds the fields that belong in the event's context.
    fn context_fields(&self, context: &mut JsonMap) -> Result<(), serde_json::Error> {
        let _ = context;
        Ok(())
    }
}

/// The data of a typed event as a `Serialize` value.
pub(crate) struct DataOf<'a, E>(pub(crate) &'a E);

impl<E: TrackedEvent> Serialize for DataOf<'_, E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_data(serializer)
    }
}

/// Where a documented field goes in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldLocation {
    /// In `data`.
    Data,
    /// In `context`.
    Context,
}

/// Makes the JSON Schema of a field's type (written by the derive).
pub type FieldSchemaFn = fn(&mut SchemaGenerator) -> Value;

/// Generates the JSON Schemas of a typed event's fields, sharing the
/// definitions of the types they name (draft 2020-12). Made by the catalog;
/// the derive's generated code asks it for each field's schema.
pub struct SchemaGenerator(schemars::SchemaGenerator);

impl std::fmt::Debug for SchemaGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaGenerator").finish_non_exhaustive()
    }
}

impl Default for SchemaGenerator {
    /// A generator of draft 2020-12 schemas, as the catalog's.
    fn default() -> Self {
        SchemaGenerator(schemars::generate::SchemaSettings::draft2020_12().into_generator())
    }
}

impl SchemaGenerator {
    /// The schema of `T`, referring to shared definitions. For generated code.
    #[doc(hidden)]
    pub fn subschema_for<T: ?Sized + schemars::JsonSchema>(&mut self) -> Value {
        self.0.subschema_for::<T>().to_value()
    }

    /// The definitions (`$defs`) the schemas made so far refer to, taken out.
    pub fn take_definitions(&mut self) -> JsonMap {
        self.0.take_definitions(true)
    }
}

/// One documented field of an event type (made by the derive).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FieldInfo {
    /// The key in the event's data or context.
    pub name: &'static str,
    /// The field's doc comment.
    pub description: &'static str,
    /// Data or context.
    pub location: FieldLocation,
    /// Whether the key is always present (`false` for `Option` fields).
    pub required: bool,
    /// The JSON Schema of the field's type.
    pub schema: FieldSchemaFn,
}

/// An event type as registered at compile time by `#[derive(TrackedEvent)]`.
///
/// Registered with [`inventory`]; [`catalog`] collects them.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EventTypeInfo {
    /// The event name.
    pub name: &'static str,
    /// The schema version.
    pub version: u32,
    /// The type's doc comment.
    pub description: &'static str,
    /// The Rust type, e.g. `my_app::events::AddressCreate`.
    pub rust_type: &'static str,
    /// The documented fields, in declaration order.
    pub fields: &'static [FieldInfo],
}

impl FieldInfo {
    /// A documented field (the derive writes these).
    pub const fn new(
        name: &'static str,
        description: &'static str,
        location: FieldLocation,
        required: bool,
        schema: FieldSchemaFn,
    ) -> Self {
        FieldInfo {
            name,
            description,
            location,
            required,
            schema,
        }
    }
}

impl EventTypeInfo {
    /// An event type's registration (the derive writes these).
    pub const fn new(
        name: &'static str,
        version: u32,
        description: &'static str,
        rust_type: &'static str,
        fields: &'static [FieldInfo],
    ) -> Self {
        EventTypeInfo {
            name,
            version,
            description,
            rust_type,
            fields,
        }
    }
}

inventory::collect!(EventTypeInfo);

/// The catalog key of an event type: `NAME@VERSION`.
pub fn schema_key(name: &str, version: u32) -> String {
    format!("{name}@{version}")
}

/// A documented field, as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDoc {
    /// The key in the event's data or context.
    pub name: String,
    /// Data or context.
    pub location: FieldLocation,
    /// The field's doc comment.
    pub description: String,
    /// Whether the key is always present.
    pub required: bool,
}

/// One event type of the [`Catalog`]: what backends persist. It reads back
/// from its JSON form ([`CatalogEntry::to_json`]), e.g. from a catalog topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// `NAME@VERSION`: what typed events carry in their `schema` field.
    pub key: String,
    /// The event name.
    pub name: String,
    /// The schema version.
    pub version: u32,
    /// The type's doc comment.
    pub description: String,
    /// The Rust type that defines it.
    pub rust_type: String,
    /// The documented fields.
    pub fields: Vec<FieldDoc>,
    /// The JSON Schema (draft 2020-12) of the event's `data`.
    pub schema: Value,
    /// The JSON Schema of the fields the event adds to its `context`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_schema: Option<Value>,
}

impl CatalogEntry {
    /// The entry for one registered type: its schemas are generated here.
    pub fn from_info(info: &EventTypeInfo) -> Self {
        let mut generator = SchemaGenerator::default();
        let mut object = |location: FieldLocation| {
            let mut properties = JsonMap::new();
            let mut required = Vec::new();
            for field in info.fields.iter().filter(|f| f.location == location) {
                let mut schema = (field.schema)(&mut generator);
                if !field.description.is_empty() {
                    if let Value::Object(map) = &mut schema {
                        map.insert("description".into(), field.description.into());
                    } else {
                        // `true` (any value): wrap it to carry the description.
                        schema = json!({"description": field.description});
                    }
                }
                properties.insert(field.name.to_owned(), schema);
                if field.required {
                    required.push(Value::from(field.name));
                }
            }
            (properties, required)
        };
        let (properties, required) = object(FieldLocation::Data);
        let (context_properties, context_required) = object(FieldLocation::Context);
        let definitions = generator.take_definitions();
        let mut schema = json!({
            "$schema": SCHEMA_DIALECT,
            "$id": schema_key(info.name, info.version),
            "title": info.name,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        if !info.description.is_empty() {
            schema["description"] = info.description.into();
        }
        if !definitions.is_empty() {
            schema["$defs"] = Value::Object(definitions.clone());
        }
        let context_schema = (!context_properties.is_empty()).then(|| {
            let mut context = json!({
                "$schema": SCHEMA_DIALECT,
                "type": "object",
                "properties": context_properties,
                "required": context_required,
            });
            if !definitions.is_empty() {
                context["$defs"] = Value::Object(definitions);
            }
            context
        });
        CatalogEntry {
            key: schema_key(info.name, info.version),
            name: info.name.to_owned(),
            version: info.version,
            description: info.description.to_owned(),
            rust_type: info.rust_type.to_owned(),
            fields: info
                .fields
                .iter()
                .map(|f| FieldDoc {
                    name: f.name.to_owned(),
                    location: f.location,
                    description: f.description.to_owned(),
                    required: f.required,
                })
                .collect(),
            schema,
            context_schema,
        }
    }

    /// The entry as JSON (what [`Catalog::to_json`] lists).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Two event types registered with the same name and version but different schemas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "event type `{key}` is defined twice with different schemas: by `{first}` and by `{second}`; \
     give one of them another name or version"
)]
pub struct DuplicateEventType {
    /// `NAME@VERSION`.
    pub key: String,
    /// The Rust type of the first definition.
    pub first: String,
    /// The Rust type of the second definition.
    pub second: String,
}

/// Every event type linked into the program, sorted by name then version.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Arc<CatalogEntry>>,
    by_key: BTreeMap<String, usize>,
}

impl Catalog {
    /// A catalog of the given types. The same type registered twice is kept
    /// once; two types sharing a name and version with different schemas are
    /// an error naming both.
    pub fn from_infos<'a>(
        infos: impl IntoIterator<Item = &'a EventTypeInfo>,
    ) -> Result<Self, DuplicateEventType> {
        let mut entries: Vec<CatalogEntry> =
            infos.into_iter().map(CatalogEntry::from_info).collect();
        entries.sort_by(|a, b| {
            (a.name.as_str(), a.version, a.rust_type.as_str()).cmp(&(
                b.name.as_str(),
                b.version,
                b.rust_type.as_str(),
            ))
        });
        let mut catalog = Catalog::default();
        for entry in entries {
            if let Some(&index) = catalog.by_key.get(&entry.key) {
                let existing = &catalog.entries[index];
                if existing.schema == entry.schema
                    && existing.context_schema == entry.context_schema
                {
                    continue;
                }
                return Err(DuplicateEventType {
                    key: entry.key,
                    first: existing.rust_type.clone(),
                    second: entry.rust_type,
                });
            }
            catalog
                .by_key
                .insert(entry.key.clone(), catalog.entries.len());
            catalog.entries.push(Arc::new(entry));
        }
        Ok(catalog)
    }

    /// Every entry, sorted by name then version.
    pub fn entries(&self) -> &[Arc<CatalogEntry>] {
        &self.entries
    }

    /// Iterates the entries.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CatalogEntry>> {
        self.entries.iter()
    }

    /// The number of event types.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no event type is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One event type by name and version.
    pub fn get(&self, name: &str, version: u32) -> Option<&Arc<CatalogEntry>> {
        self.by_key(&schema_key(name, version))
    }

    /// One event type by its key, `NAME@VERSION`.
    pub fn by_key(&self, key: &str) -> Option<&Arc<CatalogEntry>> {
        self.by_key.get(key).map(|&index| &self.entries[index])
    }

    /// The highest version registered under `name`.
    pub fn latest(&self, name: &str) -> Option<&Arc<CatalogEntry>> {
        self.entries.iter().rev().find(|entry| entry.name == name)
    }

    /// The catalog as JSON: `{"event_types": [entry, ...]}`, each entry with
    /// its JSON Schema.
    pub fn to_json(&self) -> Value {
        json!({
            "event_types": self.entries.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        })
    }

    /// The catalog as Markdown: one section per event type with its
    /// description and a table of its fields.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Event types\n");
        if self.entries.is_empty() {
            out.push_str("\nNo event types are registered.\n");
        }
        for entry in &self.entries {
            let _ = write!(
                out,
                "\n## `{}` (version {})\n\nSchema reference: `{}`. Defined by `{}`.\n",
                entry.name, entry.version, entry.key, entry.rust_type
            );
            if !entry.description.is_empty() {
                let _ = write!(out, "\n{}\n", entry.description);
            }
            if entry.fields.is_empty() {
                out.push_str("\nNo fields.\n");
                continue;
            }
            out.push_str(
                "\n| field | in | type | required | description |\n|---|---|---|---|---|\n",
            );
            for field in &entry.fields {
                let schema = match field.location {
                    FieldLocation::Data => Some(&entry.schema),
                    FieldLocation::Context => entry.context_schema.as_ref(),
                };
                let kind = schema
                    .and_then(|s| s["properties"].get(&field.name))
                    .map(type_summary)
                    .unwrap_or_default();
                let location = match field.location {
                    FieldLocation::Data => "data",
                    FieldLocation::Context => "context",
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    field.name,
                    location,
                    kind,
                    if field.required { "yes" } else { "no" },
                    markdown_cell(&field.description),
                );
            }
            // The nested types the fields refer to, with their own field docs.
            let definitions = entry.schema.get("$defs").and_then(Value::as_object);
            for (name, definition) in definitions.into_iter().flatten() {
                let _ = writeln!(out, "\n### `{name}`");
                if let Some(description) = definition.get("description").and_then(Value::as_str) {
                    let _ = writeln!(out, "\n{description}");
                }
                let Some(properties) = definition.get("properties").and_then(Value::as_object)
                else {
                    let kind = type_summary(definition);
                    if !kind.is_empty() {
                        let _ = writeln!(out, "\nType: {kind}.");
                    }
                    continue;
                };
                let required: Vec<&str> = definition
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                out.push_str("\n| field | type | required | description |\n|---|---|---|---|\n");
                for (field, schema) in properties {
                    let description = schema
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "| `{field}` | {} | {} | {} |",
                        type_summary(schema),
                        if required.contains(&field.as_str()) {
                            "yes"
                        } else {
                            "no"
                        },
                        markdown_cell(description),
                    );
                }
            }
        }
        out
    }
}

/// A short type name for a field's schema in Markdown: `string`,
/// `integer`, `` `Address` ``, ...
fn type_summary(schema: &Value) -> String {
    type_name_with(schema, &|name| format!("`{name}`"))
}

/// A short name for the type a JSON Schema describes, as the catalog's
/// pages show it: `string`, `integer or null`, `array of Address` (a
/// `$ref` by its last segment). The Markdown catalog and the collector's
/// HTML page both name types this way.
///
/// ```
/// use eventtracking_core::catalog::schema_type_name;
/// use serde_json::json;
///
/// assert_eq!(schema_type_name(&json!({"type": ["integer", "null"]})), "integer or null");
/// let addresses = json!({"type": "array", "items": {"$ref": "#/$defs/Address"}});
/// assert_eq!(schema_type_name(&addresses), "array of Address");
/// assert_eq!(schema_type_name(&json!({"anyOf": [{"type": "string"}, {"type": "null"}]})), "string or null");
/// ```
pub fn schema_type_name(schema: &Value) -> String {
    type_name_with(schema, &str::to_owned)
}

/// [`schema_type_name`], each `$ref`'s name written by `reference`.
fn type_name_with(schema: &Value, reference: &dyn Fn(&str) -> String) -> String {
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        return reference(target.rsplit('/').next().unwrap_or(target));
    }
    let nested = |schema: &Value| type_name_with(schema, reference);
    match schema.get("type") {
        Some(Value::String(kind)) if kind == "array" => match schema.get("items").map(nested) {
            Some(items) if !items.is_empty() => format!("array of {items}"),
            _ => "array".into(),
        },
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
            .map(|options| options.iter().map(nested).collect::<Vec<_>>().join(" or "))
            .unwrap_or_default(),
    }
}

/// Text safe inside a Markdown table cell.
fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The catalog of every event type linked into the program (built on first
/// use). Fails when two types share a name and version with different
/// schemas, naming both.
///
/// ```
/// let catalog = eventtracking_core::catalog().unwrap();
/// for entry in catalog.iter() {
///     println!("{}: {}", entry.key, entry.description);
/// }
/// ```
pub fn catalog() -> Result<&'static Catalog, DuplicateEventType> {
    static CATALOG: OnceLock<Result<Catalog, DuplicateEventType>> = OnceLock::new();
    CATALOG
        .get_or_init(|| Catalog::from_infos(inventory::iter::<EventTypeInfo>))
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_schema(generator: &mut SchemaGenerator) -> Value {
        generator.subschema_for::<String>()
    }
    fn number_schema(generator: &mut SchemaGenerator) -> Value {
        generator.subschema_for::<u64>()
    }
    fn optional_schema(generator: &mut SchemaGenerator) -> Value {
        generator.subschema_for::<Option<Vec<String>>>()
    }

    const FIELDS: &[FieldInfo] = &[
        FieldInfo {
            name: "url",
            description: "Where to | go.",
            location: FieldLocation::Data,
            required: true,
            schema: string_schema,
        },
        FieldInfo {
            name: "tags",
            description: "",
            location: FieldLocation::Data,
            required: false,
            schema: optional_schema,
        },
        FieldInfo {
            name: "user_id",
            description: "Who.",
            location: FieldLocation::Context,
            required: true,
            schema: number_schema,
        },
    ];

    fn info(
        name: &'static str,
        rust_type: &'static str,
        fields: &'static [FieldInfo],
    ) -> EventTypeInfo {
        EventTypeInfo {
            name,
            version: 1,
            description: "A page was requested.",
            rust_type,
            fields,
        }
    }

    #[test]
    fn entries_carry_schemas_docs_and_context_fields() {
        let catalog = Catalog::from_infos(&[info("nav.request", "app::Nav", FIELDS)]).unwrap();
        let entry = catalog.get("nav.request", 1).unwrap();
        assert_eq!(entry.key, "nav.request@1");
        assert_eq!(entry.schema["properties"]["url"]["type"], "string");
        assert_eq!(
            entry.schema["properties"]["url"]["description"],
            "Where to | go."
        );
        assert_eq!(entry.schema["required"], json!(["url"]));
        assert_eq!(entry.schema["additionalProperties"], false);
        assert!(entry.schema["properties"].get("user_id").is_none());
        let context = entry.context_schema.as_ref().unwrap();
        assert_eq!(context["properties"]["user_id"]["type"], "integer");
        let markdown = catalog.to_markdown();
        assert!(
            markdown.contains("## `nav.request` (version 1)"),
            "{markdown}"
        );
        assert!(markdown.contains("A page was requested."), "{markdown}");
        assert!(
            markdown.contains("| `url` | data | string | yes | Where to \\| go. |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| `user_id` | context | integer | yes | Who. |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| `tags` | data | array or null | no |"),
            "{markdown}"
        );
        assert_eq!(catalog.to_json()["event_types"][0]["key"], "nav.request@1");
    }

    /// The Markdown page and the HTML page (`schema_type_name`) name
    /// types alike; Markdown quotes a `$ref`'s name as code.
    #[test]
    fn markdown_type_names_are_the_shared_names_with_references_as_code() {
        let schema = json!({"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]}});
        assert_eq!(schema_type_name(&schema), "array of Address or null");
        assert_eq!(type_summary(&schema), "array of `Address` or null");
        assert_eq!(type_summary(&json!({"type": "array"})), "array");
        assert_eq!(type_summary(&json!({})), "");
    }

    #[test]
    fn duplicates_with_different_schemas_name_both_types() {
        const OTHER: &[FieldInfo] = &[FieldInfo {
            name: "url",
            description: "",
            location: FieldLocation::Data,
            required: true,
            schema: number_schema,
        }];
        let error = Catalog::from_infos(&[
            info("nav.request", "app_a::Nav", FIELDS),
            info("nav.request", "app_b::Nav", OTHER),
        ])
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("nav.request@1")
                && message.contains("app_a::Nav")
                && message.contains("app_b::Nav"),
            "{message}"
        );
        // The same definition twice is one entry.
        let same =
            Catalog::from_infos(&[info("x", "a::X", FIELDS), info("x", "b::X", FIELDS)]).unwrap();
        assert_eq!(same.len(), 1);
    }

    #[test]
    fn latest_is_the_highest_version() {
        let mut v2 = info("nav.request", "app::NavV2", FIELDS);
        v2.version = 2;
        let catalog = Catalog::from_infos(&[v2, info("nav.request", "app::Nav", FIELDS)]).unwrap();
        assert_eq!(catalog.latest("nav.request").unwrap().version, 2);
        assert!(catalog.latest("other").is_none());
    }
}
