//! `If-Match` / `If-None-Match` parsing: no panic on any header, and the comparisons of
//! RFC 9110 (strong for `If-Match`, weak for `If-None-Match`) against our own ETags.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tasklight::etag::{for_version, if_match, if_none_match, version_of};

#[derive(Debug, Arbitrary)]
struct Input {
    /// A header exactly as a client could send it.
    header: String,
    /// The current version of the resource.
    version: i32,
    /// Another version.
    other: i32,
    /// Entries of a list header, and where our tag goes in it.
    noise: Vec<String>,
    at: usize,
    /// Whitespace style of the list.
    spaced: bool,
}

fuzz_target!(|input: Input| {
    let current = for_version(input.version);
    let header = input.header.as_str();

    // Any header: no panic, and the two comparisons agree with each other.
    let strong = if_match(header, &current);
    let weak = if_none_match(header, &current);
    assert!(!strong || weak, "If-Match matched but If-None-Match did not: {header:?}");
    if strong {
        assert!(
            header.trim() == "*" || header.contains(&current),
            "If-Match {header:?} matched {current} without naming it"
        );
    }
    if weak {
        assert!(header.trim() == "*" || header.contains(&current));
    }
    let _ = if_match(header, header);
    let _ = if_none_match(header, header);

    // version_of reads back our own tags only.
    assert_eq!(version_of(&current), Some(input.version));
    if let Some(v) = version_of(header) {
        // Only the canonical form: exactly what for_version writes, give or take whitespace.
        assert_eq!(for_version(v), header.trim());
    }

    // A tag matches itself, strongly and weakly; a weak tag never matches strongly.
    assert!(if_match(&current, &current));
    assert!(if_match(&format!("  {current}\t"), &current));
    assert!(if_match("*", &current));
    assert!(if_none_match(&current, &current));
    assert!(if_none_match(&format!("W/{current}"), &current));
    assert!(!if_match(&format!("W/{current}"), &current));

    // Another version's tag matches only if it is the same version.
    let other = for_version(input.other);
    assert_eq!(if_match(&other, &current), input.other == input.version);
    assert_eq!(if_none_match(&other, &current), input.other == input.version);

    // Our tag anywhere in a list of other entries is found; a list without it is not matched
    // (unless some entry happens to be the tag, or the whole list is `*`).
    let noise: Vec<String> = input
        .noise
        .iter()
        .map(|n| n.replace(',', ""))
        .filter(|n| n.trim() != current && n.trim() != "*")
        .collect();
    let sep = if input.spaced { ", " } else { "," };
    let without = noise.join(sep);
    if without.trim() != "*" {
        assert!(!if_match(&without, &current), "{without:?} matched {current}");
    }
    let mut with = noise.clone();
    with.insert(input.at % (noise.len() + 1), current.clone());
    let with = with.join(sep);
    assert!(if_match(&with, &current), "{with:?} did not match {current}");
    assert!(if_none_match(&with, &current));
});
