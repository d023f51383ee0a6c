//! `X-Request-Id` validation: `is_safe` must accept exactly the ids of 1 to 128 characters
//! from `[A-Za-z0-9._-]`, whatever the client sends.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tasklight::http::request_id::is_safe;

const ALLOWED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";

/// The specification, written independently of the implementation (by characters, not bytes).
fn spec(id: &str) -> bool {
    let count = id.chars().count();
    (1..=128).contains(&count) && id.chars().all(|c| ALLOWED.contains(c))
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any string a header could carry (and more).
    Raw(String),
    /// Mostly-allowed ids, to reach the length boundary: each byte picks an allowed character,
    /// and `odd` (if any) is inserted at `at`.
    Shaped { picks: Vec<u8>, odd: Option<char>, at: usize },
}

fuzz_target!(|input: Input| {
    let id = match input {
        Input::Raw(text) => text,
        Input::Shaped { picks, odd, at } => {
            let alphabet = ALLOWED.as_bytes();
            let mut id: String = picks
                .iter()
                .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
                .collect();
            if let Some(c) = odd {
                let at = if id.is_empty() { 0 } else { at % (id.len() + 1) };
                id.insert(at, c);
            }
            id
        }
    };
    let safe = is_safe(&id);
    assert_eq!(safe, spec(&id), "is_safe({id:?})");
    if safe {
        // What is kept ends up in response headers and logs verbatim.
        assert!(id.bytes().all(|b| b.is_ascii_graphic()));
        assert!(id.len() <= 128);
    }
});
