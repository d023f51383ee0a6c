//! Pagination cursors (`?cursor=`): any client string decodes to a 400 field error or to a key,
//! never a panic or another error; cursors we issue decode back to their key for the same
//! query only.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use tasklight::error::AppError;
use tasklight::paging::{decode, encode, fingerprint};
use tasklight::tasks::store::{SortKey, SortValue};
use uuid::Uuid;

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// The query the client's cursor is used with (its filter and sort words).
    parts: Vec<&'a str>,
    /// A cursor exactly as a client could send it.
    cursor: &'a str,
    /// Bytes for the keys of issued cursors.
    key: &'a [u8],
}

/// The error a bad cursor must produce: a 400 naming the `cursor` parameter.
fn assert_cursor_error(err: &AppError, cursor: &str) {
    match err {
        AppError::Validation(fields) => {
            assert_eq!(fields.len(), 1, "{cursor:?}");
            assert_eq!(fields[0].field, "cursor", "{cursor:?}");
        }
        other => panic!("cursor {cursor:?} gave {other:?}, not a validation error"),
    }
}

/// Checks what the decoder of one key type makes of a client's cursor.
fn client_cursor<K: serde::de::DeserializeOwned + std::fmt::Debug>(query: &str, cursor: &str) {
    match decode::<K>(query, cursor) {
        Ok(_) => {
            assert!(cursor.len() <= 1024, "over-long cursor accepted");
            assert!(
                cursor.chars().all(|c| BASE64URL.contains(c)),
                "cursor {cursor:?} accepted outside the base64url alphabet"
            );
        }
        Err(err) => assert_cursor_error(&err, cursor),
    }
}

fn sort_key(u: &mut Unstructured) -> arbitrary::Result<SortKey> {
    let id = Uuid::from_bytes(u.arbitrary()?);
    let value = if u.arbitrary()? {
        SortValue::Rank(u.arbitrary()?)
    } else {
        // Any instant chrono can represent, to the nanosecond.
        let secs = u.int_in_range(
            DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp() - 1,
        )?;
        let nanos = u.int_in_range(0..=999_999_999)?;
        SortValue::Time(DateTime::from_timestamp(secs, nanos).expect("in range"))
    };
    Ok(SortKey { value, id })
}

fuzz_target!(|input: Input| {
    let query = fingerprint(&input.parts);

    // Whatever the client sends, for each key type in use.
    client_cursor::<Uuid>(&query, input.cursor);
    client_cursor::<SortKey>(&query, input.cursor);
    client_cursor::<serde_json::Value>(&query, input.cursor);
    client_cursor::<Uuid>(input.cursor, input.cursor);

    // Issued cursors: decode back for their query, are refused for any other.
    let mut u = Unstructured::new(input.key);
    let Ok(key) = sort_key(&mut u) else { return };
    let cursor = encode(&query, &key);
    assert!(cursor.chars().all(|c| BASE64URL.contains(c)));
    assert!(cursor.len() <= 1024, "issued cursor too long: {}", cursor.len());
    let back: SortKey = decode(&query, &cursor).expect("an issued cursor decodes");
    assert_eq!(back, key);
    let id_cursor = encode(&query, &key.id);
    assert_eq!(decode::<Uuid>(&query, &id_cursor).expect("decodes"), key.id);

    let mut other_parts = input.parts.clone();
    other_parts.push(input.cursor);
    let other = fingerprint(&other_parts);
    assert_ne!(other, query, "fingerprint collision: {:?}", input.parts);
    let err = decode::<SortKey>(&other, &cursor).expect_err("cursor accepted for another query");
    assert_cursor_error(&err, &cursor);

    // A cursor with a character changed is refused or decodes to some key, never panics.
    if let Ok(at) = u.choose_index(cursor.len()) {
        let mut bytes = cursor.into_bytes();
        bytes[at] = BASE64URL.as_bytes()[usize::from(bytes[at]) * 7 % 64];
        let tampered = String::from_utf8(bytes).expect("ascii");
        client_cursor::<SortKey>(&query, &tampered);
    }
});
