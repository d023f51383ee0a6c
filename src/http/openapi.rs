//! The served OpenAPI document: poem-openapi's, finished with what its attributes cannot say.
//! One function, [`finish`], run once at start-up; the JSON, the YAML and Swagger UI all serve
//! its result, so they never differ.
//!
//! What it adds, and why here rather than in an attribute:
//! - `RateLimit` and `RateLimit-Policy` on every answer of every rate-limited route (all of
//!   `/api/v1` but the documents), and `Access-Control-Allow-Origin` (optional) on every answer.
//!   The middleware sets them, not the operations, and poem-openapi has no per-route response
//!   header; its `extra_response_header` would put them on health and on 414/431 too, which
//!   never carry them (the request-head limits answer before the rate limiter). The headers are
//!   `$ref`s to `components/headers`, so each is described once.
//! - `security: []` on the public operations (poem-openapi omits `security` when an operation
//!   takes no scheme; linters then cannot tell "public" from "forgotten").
//! - `x-internal: false` and a description on the server entry (poem-openapi's `ServerObject`
//!   has no extensions).
//! - `maxLength` on `uuid` (36) and `date-time` (64) strings: their text form is bounded, but
//!   poem-openapi's `Uuid` and `DateTime` schemas say nothing, and its length validators need a
//!   string type.
//! - Enum fields with a description: poem-openapi writes `allOf: [$ref, {description}]`, and
//!   generators read the second member as `unknown` (`Priority & unknown` in TypeScript). The
//!   annotation-only member is dropped; the same annotations stay beside `allOf`.

use bytes::Bytes;
use poem::endpoint::make_sync;
use poem::{Endpoint, Response};
use serde_json::{Map, Value, json};

/// The finished document, rendered once in each served form.
pub struct Document {
    json: Bytes,
    yaml: Bytes,
    swagger_ui: Bytes,
}

impl Document {
    /// Finishes `spec` (poem-openapi's JSON) and renders it as JSON, as YAML, and inside
    /// `swagger_ui_html` (poem-openapi's Swagger UI page, which embeds `spec` verbatim).
    pub fn finish(spec: &str, swagger_ui_html: String) -> Self {
        let document = finish(spec);
        let json = serde_json::to_string_pretty(&document).unwrap_or_default();
        let yaml = serde_yaml::to_string(&document).unwrap_or_default();
        let swagger_ui = swagger_ui_html.replacen(spec, &json, 1);
        Self {
            json: json.into(),
            yaml: yaml.into(),
            swagger_ui: swagger_ui.into(),
        }
    }

    /// `GET /api/v1/openapi.json`.
    pub fn json_endpoint(&self) -> impl Endpoint + 'static {
        let body = self.json.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(body.clone())
        })
    }

    /// `GET /api/v1/openapi.yaml`.
    pub fn yaml_endpoint(&self) -> impl Endpoint + 'static {
        let body = self.yaml.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("application/x-yaml")
                .header("Content-Disposition", "inline; filename=\"spec.yaml\"")
                .body(body.clone())
        })
    }

    /// `GET /docs`: Swagger UI showing the finished document.
    pub fn swagger_ui_endpoint(&self) -> impl Endpoint + 'static {
        let body = self.swagger_ui.clone();
        make_sync(move |_| {
            Response::builder()
                .content_type("text/html; charset=utf-8")
                .body(body.clone())
        })
    }
}

/// The time the document's examples show (a fixed one, so the document is stable).
pub fn example_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_793_611_800, 0).unwrap_or_default()
}

/// Routes whose answers carry no rate-limit fields: they are not rate-limited.
fn rate_limited(path: &str) -> bool {
    path.starts_with("/api/v1/") && !path.starts_with("/api/v1/openapi.")
}

/// Statuses answered before the rate limiter runs (the request-head limits), so without its
/// fields.
const BEFORE_RATE_LIMIT: [&str; 2] = ["414", "431"];

/// The longest text form of a `uuid` (hyphenated) and of a `date-time` we accept (RFC 3339
/// with nanoseconds and an offset is 35; room for leniency).
const UUID_MAX: u64 = 36;
const DATE_TIME_MAX: u64 = 64;

/// The rate-limit fields (draft-ietf-httpapi-ratelimit-headers-11) and the CORS origin, as
/// reusable header objects.
fn component_headers() -> Value {
    json!({
        "RateLimit": {
            "description": "What remains of each applicable quota and when it resets \
                (draft-ietf-httpapi-ratelimit-headers-11), such as `\"user\";r=1199;t=60`; \
                login, register and refresh also name the per-account quota.",
            "required": true,
            "schema": {
                "type": "string",
                "maxLength": 200,
                "pattern": "^\"[a-z-]+\";r=[0-9]+;t=[0-9]+(, \"[a-z-]+\";r=[0-9]+;t=[0-9]+)*$",
                "example": "\"user\";r=1199;t=60"
            }
        },
        "RateLimit-Policy": {
            "description": "The quota policies that apply, such as `\"user\";q=1200;w=60` \
                (draft-ietf-httpapi-ratelimit-headers-11).",
            "required": true,
            "schema": {
                "type": "string",
                "maxLength": 200,
                "pattern": "^\"[a-z-]+\";q=[0-9]+;w=[0-9]+(, \"[a-z-]+\";q=[0-9]+;w=[0-9]+)*$",
                "example": "\"user\";q=1200;w=60"
            }
        },
        "Access-Control-Allow-Origin": {
            "description": "Sent only when `TASKLIGHT_CORS_ALLOWED_ORIGINS` is set and the \
                request's `Origin` is one of them: that origin.",
            "required": false,
            "schema": {
                "type": "string",
                "maxLength": 2048,
                "pattern": "^https?://[^\\s/]+$",
                "example": "https://board.example.com"
            }
        }
    })
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// Finishes poem-openapi's document (`spec`, as `OpenApiService::spec` renders it); see the
/// module documentation for what changes.
pub fn finish(spec: &str) -> Value {
    let mut doc: Value = serde_json::from_str(spec).unwrap_or_else(|_| json!({}));
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let limited = rate_limited(path);
            for operation in item
                .as_object_mut()
                .into_iter()
                .flat_map(|i| i.values_mut())
            {
                finish_operation(operation, limited);
            }
        }
    }
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("headers".to_owned(), component_headers());
    }
    if let Some(servers) = doc.get_mut("servers").and_then(Value::as_array_mut) {
        for server in servers.iter_mut().filter_map(Value::as_object_mut) {
            server.insert("x-internal".to_owned(), Value::Bool(false));
            server.entry("description").or_insert_with(|| {
                "The instance serving this document (local or production alike): requests go \
                 to the same origin."
                    .into()
            });
        }
    }
    bound_strings_and_unwrap_enums(&mut doc);
    let types = component_types(&doc);
    type_nullable_schemas(&mut doc, &types);
    doc
}

/// The `type` (and `enum`, if any) of each component schema that has a type, by its `$ref`.
fn component_types(doc: &Value) -> Map<String, Value> {
    let mut types = Map::new();
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            if let Some(kind) = schema.get("type") {
                let mut facts = Map::new();
                facts.insert("type".to_owned(), kind.clone());
                if let Some(values) = schema.get("enum") {
                    facts.insert("enum".to_owned(), values.clone());
                }
                types.insert(format!("#/components/schemas/{name}"), Value::Object(facts));
            }
        }
    }
    types
}

/// OpenAPI 3.0's `nullable` means something only beside a `type`: a nullable reference (an
/// optional enum field, `allOf: [$ref]`) gets the referenced schema's type (and its values, so
/// that linters which do not follow the reference see the string's bound), and a schema of any
/// type (a JSON value), which admits `null` already, loses the `nullable` that says nothing.
fn type_nullable_schemas(value: &mut Value, types: &Map<String, Value>) {
    match value {
        Value::Object(object) => {
            if object.get("nullable") == Some(&Value::Bool(true)) && !object.contains_key("type") {
                let referenced = object
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find_map(|m| m.get("$ref").and_then(Value::as_str))
                    .or_else(|| object.get("$ref").and_then(Value::as_str))
                    .map(str::to_owned);
                match referenced.and_then(|r| types.get(&r)) {
                    Some(Value::Object(facts)) => {
                        for (key, fact) in facts {
                            object.insert(key.clone(), fact.clone());
                        }
                    }
                    Some(_) => {}
                    None if !object.contains_key("allOf")
                        && !object.contains_key("$ref")
                        && !object.contains_key("oneOf")
                        && !object.contains_key("anyOf") =>
                    {
                        object.remove("nullable");
                    }
                    None => {}
                }
            }
            for child in object.values_mut() {
                type_nullable_schemas(child, types);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| type_nullable_schemas(item, types)),
        _ => {}
    }
}

fn finish_operation(operation: &mut Value, rate_limited: bool) {
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    operation
        .entry("security")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let headers = response
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(headers) = headers.as_object_mut() else {
            continue;
        };
        if rate_limited && !BEFORE_RATE_LIMIT.contains(&status.as_str()) {
            for name in ["RateLimit", "RateLimit-Policy"] {
                headers.insert(name.to_owned(), header_ref(name));
            }
        }
        headers.insert(
            "Access-Control-Allow-Origin".to_owned(),
            header_ref("Access-Control-Allow-Origin"),
        );
    }
}

/// Walks every schema: bounds `uuid` and `date-time` strings, and drops the annotation-only
/// member poem-openapi adds to `allOf` beside a `$ref`.
fn bound_strings_and_unwrap_enums(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("type").and_then(Value::as_str) == Some("string")
                && !object.contains_key("maxLength")
            {
                let bound = match object.get("format").and_then(Value::as_str) {
                    Some("uuid") => Some(UUID_MAX),
                    Some("date-time") => Some(DATE_TIME_MAX),
                    _ => None,
                };
                if let Some(bound) = bound {
                    object.insert("maxLength".to_owned(), bound.into());
                }
            }
            if let Some(Value::Array(all_of)) = object.get_mut("allOf")
                && all_of.len() > 1
                && all_of.iter().any(|m| m.get("$ref").is_some())
            {
                all_of.retain(|member| !annotation_only(member));
            }
            for child in object.values_mut() {
                bound_strings_and_unwrap_enums(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_strings_and_unwrap_enums),
        _ => {}
    }
}

/// A schema that constrains nothing: only description, default, example, title, deprecation,
/// read/write-only or nullability.
fn annotation_only(schema: &Value) -> bool {
    const ANNOTATIONS: [&str; 8] = [
        "description",
        "default",
        "example",
        "title",
        "deprecated",
        "readOnly",
        "writeOnly",
        "nullable",
    ];
    schema
        .as_object()
        .is_some_and(|o| o.keys().all(|k| ANNOTATIONS.contains(&k.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> String {
        json!({
            "openapi": "3.0.0",
            "servers": [{ "url": "/" }],
            "paths": {
                "/api/v1/things/{id}": {
                    "get": {
                        "security": [{ "bearerAuth": [] }],
                        "parameters": [{ "name": "id", "in": "path",
                            "schema": { "type": "string", "format": "uuid" } }],
                        "responses": {
                            "200": { "description": "ok" },
                            "414": { "description": "too long" },
                            "429": { "description": "slow down", "headers": {
                                "Retry-After": { "schema": { "type": "integer" } } } }
                        }
                    }
                },
                "/api/v1/auth/login": { "post": { "responses": { "200": { "description": "ok" } } } },
                "/health/live": { "get": { "responses": { "200": { "description": "ok" } } } }
            },
            "components": { "schemas": { "Thing": { "type": "object", "properties": {
                "at": { "type": "string", "format": "date-time" },
                "name": { "type": "string", "maxLength": 5, "format": "uuid" },
                "priority": { "allOf": [{ "$ref": "#/components/schemas/Priority" },
                    { "description": "Priority.", "default": "medium" }],
                    "description": "Priority.", "default": "medium" },
                "both": { "allOf": [{ "$ref": "#/components/schemas/A" }, { "maxLength": 3 }] },
                "maybe": { "allOf": [{ "$ref": "#/components/schemas/Priority" }], "nullable": true },
                "value": { "description": "Any JSON value.", "nullable": true }
            } },
            "Priority": { "type": "string", "enum": ["low", "medium"] } } }
        })
        .to_string()
    }

    #[test]
    fn rate_limited_answers_carry_the_rate_limit_fields_except_those_before_the_limiter() {
        let doc = finish(&spec());
        let responses = &doc["paths"]["/api/v1/things/{id}"]["get"]["responses"];
        for status in ["200", "429"] {
            let headers = &responses[status]["headers"];
            assert_eq!(
                headers["RateLimit"]["$ref"],
                "#/components/headers/RateLimit"
            );
            assert_eq!(
                headers["RateLimit-Policy"]["$ref"],
                "#/components/headers/RateLimit-Policy"
            );
        }
        assert!(responses["429"]["headers"]["Retry-After"].is_object());
        assert!(responses["414"]["headers"].get("RateLimit").is_none());
        let health = &doc["paths"]["/health/live"]["get"]["responses"]["200"]["headers"];
        assert!(health.get("RateLimit").is_none());
        // Every answer may carry the CORS origin.
        for headers in [&responses["414"]["headers"], health] {
            assert!(headers["Access-Control-Allow-Origin"].is_object());
        }
        let components = &doc["components"]["headers"];
        for name in [
            "RateLimit",
            "RateLimit-Policy",
            "Access-Control-Allow-Origin",
        ] {
            assert!(components[name]["schema"]["maxLength"].is_u64(), "{name}");
        }
    }

    #[test]
    fn the_documented_patterns_match_what_the_rate_limiter_sends() {
        let headers = component_headers();
        let matches = |name: &str, value: &str| {
            let pattern = headers[name]["schema"]["pattern"].as_str().unwrap();
            simple_match(pattern, value)
        };
        assert!(matches("RateLimit", "\"user\";r=1199;t=60"));
        assert!(matches(
            "RateLimit",
            "\"auth-ip\";r=9;t=1, \"auth-account\";r=4;t=60"
        ));
        assert!(!matches("RateLimit", "user;r=1;t=1"));
        assert!(matches("RateLimit-Policy", "\"ip\";q=600;w=60"));
        assert!(matches(
            "RateLimit-Policy",
            "\"auth-ip\";q=10;w=60, \"auth-account\";q=5;w=300"
        ));
    }

    /// The two patterns above, checked by hand (no regex crate in the service): items of
    /// `"name";k=digits;k=digits` joined by `, `.
    fn simple_match(pattern: &str, value: &str) -> bool {
        let (first, second) = if pattern.contains(";r=") {
            ("r", "t")
        } else {
            ("q", "w")
        };
        value.split(", ").all(|item| {
            let parts: Vec<&str> = item.split(';').collect();
            let digits = |p: &str, key: &str| {
                p.strip_prefix(key)
                    .and_then(|p| p.strip_prefix('='))
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            };
            parts.len() == 3
                && parts[0].len() > 2
                && parts[0].starts_with('"')
                && parts[0].ends_with('"')
                && parts[0][1..parts[0].len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
                && digits(parts[1], first)
                && digits(parts[2], second)
        })
    }

    #[test]
    fn public_operations_say_so_and_protected_ones_keep_their_scheme() {
        let doc = finish(&spec());
        assert_eq!(
            doc["paths"]["/api/v1/auth/login"]["post"]["security"],
            json!([])
        );
        assert_eq!(doc["paths"]["/health/live"]["get"]["security"], json!([]));
        assert_eq!(
            doc["paths"]["/api/v1/things/{id}"]["get"]["security"],
            json!([{ "bearerAuth": [] }])
        );
        assert_eq!(doc["servers"][0]["x-internal"], false);
    }

    #[test]
    fn uuids_and_times_are_bounded_and_enum_fields_are_plain_references() {
        let doc = finish(&spec());
        let param = &doc["paths"]["/api/v1/things/{id}"]["get"]["parameters"][0]["schema"];
        assert_eq!(param["maxLength"], 36);
        let thing = &doc["components"]["schemas"]["Thing"]["properties"];
        assert_eq!(thing["at"]["maxLength"], 64);
        assert_eq!(thing["name"]["maxLength"], 5, "an explicit bound stays");
        assert_eq!(
            thing["priority"]["allOf"],
            json!([{ "$ref": "#/components/schemas/Priority" }])
        );
        assert_eq!(thing["priority"]["description"], "Priority.");
        assert_eq!(thing["priority"]["default"], "medium");
        assert_eq!(
            thing["both"]["allOf"].as_array().unwrap().len(),
            2,
            "a member that constrains stays"
        );
    }

    #[test]
    fn nullable_schemas_have_a_type_or_no_nullable() {
        let doc = finish(&spec());
        let thing = &doc["components"]["schemas"]["Thing"]["properties"];
        assert_eq!(
            thing["maybe"]["type"], "string",
            "the referenced enum's type"
        );
        assert_eq!(thing["maybe"]["enum"], json!(["low", "medium"]));
        assert_eq!(thing["maybe"]["nullable"], true);
        assert_eq!(
            thing["value"].get("nullable"),
            None,
            "any value admits null already"
        );
        assert_eq!(thing["value"]["description"], "Any JSON value.");
    }
}
