//! Assertions on responses: status, problem+json shape, field errors, and no leaked hashes.

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// A string field of a JSON object.
pub fn str_of(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {value}"))
        .to_owned()
}

/// Reads a body, checking that no response ever leaks a password hash.
pub async fn read(resp: Response) -> (StatusCode, HeaderMap, String) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("a readable body");
    assert!(
        !text.contains("password_hash"),
        "a response leaks `password_hash`: {text}"
    );
    assert!(
        !text.contains("$argon2"),
        "a response leaks an Argon2 hash: {text}"
    );
    (status, headers, text)
}

/// Asserts the status and returns the JSON body (`null` when empty).
pub async fn body(resp: Response, status: u16) -> Value {
    let method_url = resp.url().to_string();
    let (actual, _, text) = read(resp).await;
    assert_eq!(
        actual.as_u16(),
        status,
        "{method_url} answered {actual}: {text}"
    );
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    }
}

/// Asserts `status` and the problem+json shape (type, title, status, detail, request_id equal to
/// `X-Request-Id`); returns the problem.
pub async fn problem(resp: Response, status: u16) -> Value {
    let url = resp.url().to_string();
    let (actual, headers, text) = read(resp).await;
    assert_eq!(actual.as_u16(), status, "{url} answered {actual}: {text}");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content-type `{content_type}` for {text}"
    );
    let problem: Value = serde_json::from_str(&text).expect("a JSON problem");
    assert!(
        str_of(&problem, "type").starts_with("urn:tasklight:problem:"),
        "{problem}"
    );
    assert!(!str_of(&problem, "title").is_empty(), "{problem}");
    assert!(!str_of(&problem, "detail").is_empty(), "{problem}");
    assert_eq!(problem["status"], status, "{problem}");
    let request_id = headers
        .get("x-request-id")
        .expect("X-Request-Id header")
        .to_str()
        .unwrap();
    assert_eq!(problem["request_id"], request_id, "{problem}");
    problem
}

/// The `errors[].field` names of a problem.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| str_of(e, "field"))
        .collect()
}

/// Asserts a 400 problem whose `errors[].field` includes `field`.
pub async fn invalid(resp: Response, field: &str) -> Value {
    let problem = problem(resp, 400).await;
    assert!(
        fields(&problem).iter().any(|f| f == field),
        "expected field `{field}` in {problem}"
    );
    problem
}

/// Asserts a 400 problem that names `name` in a field or a field message.
pub async fn names(resp: Response, name: &str) -> Value {
    let problem = problem(resp, 400).await;
    let errors = problem["errors"].as_array().cloned().unwrap_or_default();
    assert!(!errors.is_empty(), "no `errors` in {problem}");
    let named = errors
        .iter()
        .any(|e| e["field"] == name || e["message"].as_str().unwrap_or("").contains(name));
    assert!(named, "`{name}` is not named in {problem}");
    problem
}

/// The value of a response header.
pub fn header(resp: &Response, name: &str) -> String {
    let value = resp
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` header"));
    value.to_str().expect("an ASCII header").to_owned()
}

/// The ids of a list page's items.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| str_of(item, "id"))
        .collect()
}

/// Every SQL statement an instance has run, from the `/metrics` text: its query-duration
/// histograms' counts, summed over operations.
pub fn statements_run(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("db_client_operation_duration_seconds_count{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
