//! Success responses shared by several operations.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use uuid::Uuid;

/// Declares the text of a response header as a type whose schema states its bound and shape.
macro_rules! header_text {
    ($(#[$meta:meta])* $name:ident, max = $max:expr, pattern = $pattern:expr, example = $example:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name(pub String);

        crate::schema_newtype!([] $name, String, "string", {
            let mut schema = poem_openapi::registry::MetaSchema::new("string");
            schema.max_length = Some($max);
            schema.pattern = Some($pattern.to_owned());
            schema.example = Some(serde_json::Value::from($example));
            schema
        });

        impl poem_openapi::types::ToHeader for $name {
            fn to_header(&self) -> Option<poem::http::HeaderValue> {
                poem::http::HeaderValue::from_str(&self.0).ok()
            }
        }
    };
}

header_text!(
    /// An `ETag`: the version of a resource, `"v<version>"`.
    EntityTag,
    max = 16,
    pattern = "^\"v[0-9]{1,10}\"$",
    example = "\"v3\""
);

header_text!(
    /// A `Location`: the path of a resource, `/api/v1/<collection>/<id>` (or `/api/v1/users/me`),
    /// or of a collection inside one (`/api/v1/projects/<id>/invitations`).
    ResourcePath,
    max = 100,
    pattern = "^/api/v1/[a-z]+/([0-9a-f-]{36}|me)(/[a-z]+)?$",
    example = "/api/v1/tasks/0194f0aa-2b1c-7d3e-8f40-5a6b7c8d9e0f"
);

/// Declares a `200` JSON answer whose OpenAPI description says what the body is (a bare
/// `Json<T>` has none).
macro_rules! described_json {
    ($(#[$meta:meta])* $name:ident, $description:literal) => {
        $(#[$meta])*
        pub struct $name<T>(pub T);

        impl<T: ToJSON> ApiResponse for $name<T> {
            fn meta() -> MetaResponses {
                let mut meta = <Json<T> as ApiResponse>::meta();
                for response in &mut meta.responses {
                    response.description = $description;
                }
                meta
            }

            fn register(registry: &mut Registry) {
                <Json<T> as ApiResponse>::register(registry);
            }
        }

        impl<T: ToJSON> IntoResponse for $name<T> {
            fn into_response(self) -> Response {
                Json(self.0).into_response()
            }
        }
    };
}

described_json!(
    /// `200` with a page of a list.
    Page,
    "A page of items; pass `next_cursor` back as `cursor` for the next one (`null`: the last page)."
);
described_json!(
    /// `200` with the resource read.
    Found,
    "The resource."
);
described_json!(
    /// `200` with the resource after a change.
    Changed,
    "The resource after the change."
);
described_json!(
    /// `200` with newly issued tokens.
    Issued,
    "A new access token and a new single-use refresh token."
);

/// `201 Created` with the new resource and its `Location`.
#[derive(ApiResponse)]
pub enum Created<T: Type + ToJSON> {
    /// Created. `Location` is the new resource's URL.
    #[oai(status = 201)]
    Created(Json<T>, #[oai(header = "Location")] ResourcePath),
}

/// `204 No Content`.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done; there is no body.
    #[oai(status = 204)]
    NoContent,
}

/// A JSON body of type `T` that was rendered earlier: the same document and schema as
/// `Json<T>`, sent as stored bytes.
pub struct RenderedJson<T> {
    body: Bytes,
    of: PhantomData<fn() -> T>,
}

impl<T: ToJSON> RenderedJson<T> {
    /// Renders `value` as `Json<T>` would.
    pub fn render(value: &T) -> Self {
        Self::from_bytes(Bytes::from(
            serde_json::to_vec(&value.to_json()).unwrap_or_default(),
        ))
    }
}

impl<T> RenderedJson<T> {
    fn from_bytes(body: Bytes) -> Self {
        Self {
            body,
            of: PhantomData,
        }
    }
}

impl<T: Type> Payload for RenderedJson<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// As an answer on its own: `200` with the schema of `Json<T>` (a task list uses it).
impl<T: ToJSON> ApiResponse for RenderedJson<T> {
    fn meta() -> MetaResponses {
        let mut meta = <Json<T> as ApiResponse>::meta();
        for response in &mut meta.responses {
            response.description = "The requested document: a resource, or a page of them (pass \
                `next_cursor` back as `cursor` for the next page).";
        }
        meta
    }

    fn register(registry: &mut Registry) {
        <Json<T> as ApiResponse>::register(registry);
    }
}

impl<T> IntoResponse for RenderedJson<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Json<poem_openapi::types::Any<()>> as Payload>::CONTENT_TYPE)
            .body(self.body)
    }
}

/// An item of a page that [`RenderedByVersion::page`] renders.
pub enum PageEntry<'a, T> {
    /// A document [`RenderedByVersion::rendered`] gave.
    Rendered(Bytes),
    /// Version `.1` of resource `.0`.
    Value(Uuid, i64, &'a T),
}

/// Bodies kept at most by a [`RenderedByVersion`] (about 0.5 KiB each).
const RENDERED_CAPACITY: u64 = 10_000;

/// The JSON of versioned resources, rendered once per version. A resource's document depends
/// only on its id and version (every change bumps the version), so an entry is never stale and
/// needs no invalidation; the bound keeps memory in check. Authentication, authorization and
/// the rate limit run before a body is looked up, as for any other answer. Rendering through
/// poem-openapi builds a `serde_json::Value` tree first; on a cached task read that was about a
/// tenth of the request's instructions.
pub struct RenderedByVersion<T> {
    bodies: moka::sync::Cache<(Uuid, i64), Bytes, foldhash::fast::RandomState>,
    of: PhantomData<fn() -> T>,
}

impl<T> Default for RenderedByVersion<T> {
    fn default() -> Self {
        Self {
            bodies: moka::sync::Cache::builder()
                .max_capacity(RENDERED_CAPACITY)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            of: PhantomData,
        }
    }
}

impl<T: ToJSON> RenderedByVersion<T> {
    /// The body of `value`, which is version `version` of resource `id`.
    pub fn get(&self, id: Uuid, version: i64, value: &T) -> RenderedJson<T> {
        let body = self
            .bodies
            .get_with((id, version), || RenderedJson::render(value).body);
        RenderedJson::from_bytes(body)
    }

    /// The document of version `version` of resource `id`, if it was rendered.
    pub fn rendered(&self, id: Uuid, version: i64) -> Option<Bytes> {
        self.bodies.get(&(id, version))
    }

    /// A page `{"items": [...], "next_cursor": ...}` of `P` (a [`crate::page_type`] of `T`).
    /// Each item's document comes from the memo, so a page costs one copy of each body rather
    /// than rendering every item anew.
    pub fn page<'a, P>(
        &self,
        items: impl ExactSizeIterator<Item = PageEntry<'a, T>>,
        next_cursor: Option<&str>,
    ) -> RenderedJson<P>
    where
        T: 'a,
    {
        let bodies: Vec<Bytes> = items
            .map(|item| match item {
                PageEntry::Rendered(body) => body,
                PageEntry::Value(id, version, value) => self.get(id, version, value).body,
            })
            .collect();
        let size = bodies.iter().map(|body| body.len() + 1).sum::<usize>();
        let mut page = Vec::with_capacity(size + 64 + next_cursor.map_or(0, str::len));
        page.extend_from_slice(b"{\"items\":[");
        for (i, body) in bodies.iter().enumerate() {
            if i > 0 {
                page.push(b',');
            }
            page.extend_from_slice(body);
        }
        page.extend_from_slice(b"],\"next_cursor\":");
        match next_cursor {
            // serde_json escapes the cursor as `Json<P>` would.
            Some(cursor) => serde_json::to_writer(&mut page, cursor).unwrap_or_default(),
            None => page.extend_from_slice(b"null"),
        }
        page.push(b'}');
        RenderedJson::from_bytes(Bytes::from(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::Object;

    #[derive(Debug, Object)]
    pub struct Doc {
        name: String,
        count: i32,
    }

    #[tokio::test]
    async fn a_rendered_body_is_the_json_payloads_body() {
        let doc = || Doc {
            name: "a \"quoted\" name".into(),
            count: 3,
        };
        let plain = Json(doc()).into_response();
        let memo = RenderedByVersion::<Doc>::default();
        let id = Uuid::now_v7();
        let rendered = memo.get(id, 1, &doc()).into_response();
        assert_eq!(rendered.content_type(), plain.content_type());
        let (plain, rendered) = (
            plain.into_body().into_bytes().await.unwrap(),
            rendered.into_body().into_bytes().await.unwrap(),
        );
        assert_eq!(plain, rendered);
        // The same version answers from memory; another version renders anew.
        let changed = Doc {
            name: "changed".into(),
            count: 4,
        };
        let again = memo.get(id, 1, &changed).into_response();
        assert_eq!(again.into_body().into_bytes().await.unwrap(), plain);
        let next = memo.get(id, 2, &changed).into_response();
        let next: serde_json::Value =
            serde_json::from_slice(&next.into_body().into_bytes().await.unwrap()).unwrap();
        assert_eq!(next["name"], "changed");
    }

    crate::page_type!(DocPage, Doc);

    #[tokio::test]
    async fn a_rendered_page_is_the_json_payloads_body() {
        let docs = [("one \"1\"", 1), ("two\n", 2), ("three", 3)].map(|(name, count)| Doc {
            name: name.into(),
            count,
        });
        let memo = RenderedByVersion::<Doc>::default();
        let ids: Vec<Uuid> = docs.iter().map(|_| Uuid::now_v7()).collect();
        for (take, cursor) in [
            (0, None),
            (1, Some("a \"cursor\"")),
            (3, None),
            (3, Some("c")),
        ] {
            let plain = Json(DocPage {
                items: docs[..take]
                    .iter()
                    .map(|d| Doc {
                        name: d.name.clone(),
                        count: d.count,
                    })
                    .collect(),
                next_cursor: cursor.map(str::to_owned),
            })
            .into_response();
            // The first item as a document the caller already had, the rest as values.
            let items = ids
                .iter()
                .zip(&docs)
                .take(take)
                .enumerate()
                .map(|(i, (id, d))| match memo.rendered(*id, 1) {
                    Some(body) if i == 0 => PageEntry::Rendered(body),
                    _ => PageEntry::Value(*id, 1, d),
                });
            let rendered = memo.page::<DocPage>(items, cursor).into_response();
            assert_eq!(rendered.content_type(), plain.content_type());
            assert_eq!(
                plain.into_body().into_bytes().await.unwrap(),
                rendered.into_body().into_bytes().await.unwrap(),
                "{take} items, cursor {cursor:?}"
            );
        }
    }
}
