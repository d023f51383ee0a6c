//! Field checks that run after a request body parses: each failure names its field, in words a
//! developer can act on. Shared by the request types of every area and by the domain rules that
//! check the same fields (such as `create-admin`).

use crate::error::FieldError;

/// Limits a request type enforces after parsing; each failure names its field.
pub trait Validate {
    /// Returns every invalid field (empty when the value is valid).
    fn validate(&self) -> Vec<FieldError>;
}

/// Collects field errors, for [`Validate`] implementations and domain rules.
#[derive(Default)]
pub struct FieldChecks {
    errors: Vec<FieldError>,
}

impl FieldChecks {
    /// A single-line text: `min..=max` characters, not blank when `min > 0`, no control characters.
    pub fn line(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        if value.contains(['\n', '\r', '\t']) {
            self.fail(field, "must be a single line (no newlines or tabs)");
        }
        self.text(field, value, min, max)
    }

    /// A multi-line text of at most `max` characters (newlines and tabs allowed).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let len = value.chars().count();
        if len > max {
            self.fail(
                field,
                format!("must be at most {max} characters, got {len}"),
            );
        } else if min > 0 && value.trim().chars().count() < min {
            self.fail(
                field,
                format!("must have at least {min} non-blank character(s)"),
            );
        }
        if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            self.fail(
                field,
                "must not contain control characters other than newlines and tabs",
            );
        }
        self
    }

    /// Records a failure.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) -> &mut Self {
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// The collected errors.
    pub fn finish(&mut self) -> Vec<FieldError> {
        std::mem::take(&mut self.errors)
    }
}

/// A string field whose OpenAPI schema carries its length limits: `minLength` `MIN` (left out
/// when 0) and `maxLength` `MAX`. A request type names its limits once, as the constants it
/// instantiates this with, and its [`Validate`] checks use the same constants through
/// [`Text::check_line`] and [`Text::check_text`]. Parsed from JSON as a plain string.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Text<const MIN: usize, const MAX: usize>(pub String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    /// Checks a single-line value against the limits (see [`FieldChecks::line`]).
    pub fn check_line(&self, checks: &mut FieldChecks, field: &str) {
        checks.line(field, &self.0, MIN, MAX);
    }

    /// Checks a multi-line value against the limits (see [`FieldChecks::text`]).
    pub fn check_text(&self, checks: &mut FieldChecks, field: &str) {
        checks.text(field, &self.0, MIN, MAX);
    }

    /// The value.
    pub fn into_inner(self) -> String {
        self.0
    }
}

crate::schema_newtype!([const MIN: usize, const MAX: usize] Text<MIN, MAX>, String, "string", {
    let mut schema = poem_openapi::registry::MetaSchema::new("string");
    schema.min_length = (MIN > 0).then_some(MIN);
    schema.max_length = Some(MAX);
    schema
});

/// Implements poem-openapi's `Type`, `ParseFromJSON` and `ToJSON` for a newtype over `$inner`
/// whose inline schema is `$schema` (a `MetaSchema`): the type parses and renders as `$inner`
/// does, and the document states the limits the schema carries.
#[macro_export]
macro_rules! schema_newtype {
    ([$($generics:tt)*] $ty:ty, $inner:ty, $name:literal, $schema:expr) => {
        impl<$($generics)*> poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                poem_openapi::registry::MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(std::iter::once(self))
            }
        }

        impl<$($generics)*> poem_openapi::types::ParseFromJSON for $ty {
            fn parse_from_json(
                value: Option<serde_json::Value>,
            ) -> poem_openapi::types::ParseResult<Self> {
                <$inner as poem_openapi::types::ParseFromJSON>::parse_from_json(value)
                    .map(Self)
                    .map_err(poem_openapi::types::ParseError::propagate)
            }
        }

        impl<$($generics)*> poem_openapi::types::ToJSON for $ty {
            fn to_json(&self) -> Option<serde_json::Value> {
                poem_openapi::types::ToJSON::to_json(&self.0)
            }
        }
    };
}
