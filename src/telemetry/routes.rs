//! Route templates for span names and metric labels, taken from the OpenAPI document, so a raw
//! path (with ids in it) never becomes a label: `/api/v1/tasks/0194...` -> `/api/v1/tasks/{task_id}`.

/// A route template split into segments, `None` where a path parameter stands.
struct Template {
    segments: Vec<Option<String>>,
    template: &'static str,
}

/// The routes the service answers; unknown paths map to `unmatched`.
pub struct RouteTable {
    templates: Vec<Template>,
}

/// The label for paths no route matches.
pub const UNMATCHED: &str = "unmatched";
/// The label for Swagger UI and its assets.
pub const DOCS: &str = "/docs";

impl RouteTable {
    /// Builds the table from an OpenAPI document's `paths`, plus the routes outside it.
    pub fn from_spec(spec_json: &str) -> Self {
        let spec: serde_json::Value = serde_json::from_str(spec_json).unwrap_or_default();
        let mut paths: Vec<String> = spec["paths"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        paths.push("/api/v1/openapi.json".into());
        paths.push("/api/v1/openapi.yaml".into());
        let templates = paths
            .into_iter()
            .map(|path| Template {
                segments: path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect(),
                // Leaked once per route at start-up, so labels can be `&'static str`.
                template: Box::leak(path.into_boxed_str()),
            })
            .collect();
        Self { templates }
    }

    /// The template matching `path`, or [`UNMATCHED`].
    pub fn resolve(&self, path: &str) -> &'static str {
        if path == DOCS || path.starts_with("/docs/") {
            return DOCS;
        }
        // The path is split once, then compared with each template (splitting it again for every
        // template cost about 4,000 instructions a request).
        const MAX_SEGMENTS: usize = 16;
        let mut segments = [""; MAX_SEGMENTS];
        let mut count = 0;
        for segment in path.trim_start_matches('/').split('/') {
            if count == MAX_SEGMENTS {
                return UNMATCHED;
            }
            segments[count] = segment;
            count += 1;
        }
        let segments = &segments[..count];
        'templates: for template in &self.templates {
            if template.segments.len() != segments.len() {
                continue;
            }
            for (expected, actual) in template.segments.iter().zip(segments) {
                match expected {
                    Some(literal) if literal == actual => {}
                    None if !actual.is_empty() => {}
                    _ => continue 'templates,
                }
            }
            return template.template;
        }
        UNMATCHED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::from_spec(
            r#"{"paths":{"/api/v1/tasks/{task_id}":{},"/api/v1/projects":{},
                "/api/v1/projects/{project_id}/members/{user_id}":{}}}"#,
        )
    }

    #[test]
    fn ids_are_replaced_by_their_template() {
        let t = table();
        assert_eq!(
            t.resolve("/api/v1/tasks/0194f0aa-1111"),
            "/api/v1/tasks/{task_id}"
        );
        assert_eq!(
            t.resolve("/api/v1/projects/p1/members/u2"),
            "/api/v1/projects/{project_id}/members/{user_id}"
        );
        assert_eq!(t.resolve("/api/v1/projects"), "/api/v1/projects");
        assert_eq!(t.resolve("/docs/swagger.js"), DOCS);
    }

    #[test]
    fn anything_else_is_unmatched() {
        let t = table();
        for path in [
            "/",
            "/api/v1/tasks",
            "/api/v1/tasks/",
            "/api/v1/tasks/x/y",
            "/etc/passwd",
        ] {
            assert_eq!(t.resolve(path), UNMATCHED, "{path}");
        }
    }
}
