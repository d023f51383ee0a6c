//! Success responses shared by several operations.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use uuid::Uuid;

/// `201 Created` with the new resource and its `Location`.
#[derive(ApiResponse)]
pub enum Created<T: Type + ToJSON> {
    /// Created. `Location` is the new resource's URL.
    #[oai(status = 201)]
    Created(Json<T>, #[oai(header = "Location")] String),
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

impl<T> IntoResponse for RenderedJson<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Json<poem_openapi::types::Any<()>> as Payload>::CONTENT_TYPE)
            .body(self.body)
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::Object;

    #[derive(Object)]
    struct Doc {
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
}
