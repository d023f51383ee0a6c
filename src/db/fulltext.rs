//! Full-text queries from what a user typed, made safe for each database: the words of the
//! text (runs of letters and digits), without PostgreSQL's English stop words, and for SQLite an
//! FTS5 MATCH expression of those words, each quoted, so that no input (quotes, `*`, `NEAR`,
//! `AND`, `-`, parentheses, column filters) is read as FTS5 syntax.

/// PostgreSQL's `english` stop words (`tsearch_data/english.stop`): PostgreSQL leaves them out
/// of documents and queries, and so does the SQLite query built here, so that a query of stop
/// words only finds nothing on both databases.
const STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
];

/// The words of `text` that a search looks for: runs of letters and digits, in order, without
/// stop words (compared case-insensitively).
pub fn search_words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .filter(|word| {
            let lower = word.to_lowercase();
            !STOP_WORDS.contains(&lower.as_str())
        })
        .collect()
}

/// An FTS5 MATCH expression that finds rows containing every word of `text` (after stemming by
/// the table's tokenizer), or `None` when `text` has no word to look for. Each word is an FTS5
/// string in double quotes; a word holds no `"` (it is letters and digits only), so nothing in
/// it can be read as an operator.
pub fn fts5_match(text: &str) -> Option<String> {
    let words = search_words(text);
    if words.is_empty() {
        return None;
    }
    let mut expression = String::with_capacity(text.len() + 3 * words.len());
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            expression.push(' ');
        }
        expression.push('"');
        expression.push_str(word);
        expression.push('"');
    }
    Some(expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_without_stop_words() {
        assert_eq!(
            search_words("The launch-plan, v2 (draft)!"),
            ["launch", "plan", "v2", "draft"]
        );
        assert_eq!(
            search_words("Café crème über 東京"),
            ["Café", "crème", "über", "東京"]
        );
        assert!(search_words("the AND of OR not").is_empty());
        assert!(search_words("\"*\" -- ()").is_empty());
    }

    #[test]
    fn fts5_syntax_in_the_input_becomes_quoted_words() {
        assert_eq!(
            fts5_match(r#"launch* NEAR(plan "x" AND y) col:z ^w"#).as_deref(),
            Some(r#""launch" "NEAR" "plan" "x" "y" "col" "z" "w""#)
        );
        assert_eq!(fts5_match("   "), None);
        assert_eq!(fts5_match("the"), None);
        assert_eq!(fts5_match("\"\"\""), None);
    }
}
