//! OWASP API Security Top 10 (2023): one test group per item that applies, named after it.
//! Not here: API6 (no business flow is sensitive to automation beyond the login limits of API2),
//! API7 (the service makes no request to a URL a client chooses) and API10 (it consumes no
//! third-party API).

mod api1_object_level;
mod api2_authentication;
mod api3_property_level;
mod api4_resource_consumption;
mod api5_function_level;
mod api8_misconfiguration;
mod api9_inventory;

/// A documented path template with a fresh, well-formed id in every path parameter.
fn with_unknown_ids(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
