//! The words of the generated texts: a vocabulary with frequencies, sampled word by word.
//!
//! With BEIR SciFact at hand the vocabulary is its corpus's (titles and texts, split on every
//! character that is not a letter or a digit, lowercased) with the words' counts as weights, so
//! that generated texts have the word distribution of real scientific abstracts. Without it,
//! [`SYNTHETIC_WORDS`] made-up words follow a Zipf law of exponent [`ZIPF_EXPONENT`], the shape
//! of word frequencies in English text. A document is 40 to 60 words (one chunk), a title 3 to 8,
//! a query 3 to 8 words outside the [`COMMON`] most frequent.

use super::alias::Alias;
use super::draw::Draw;
use anyhow::Context;
use std::collections::HashMap;
use std::path::Path;

/// Words of a document's text.
pub(super) const TEXT_WORDS: (usize, usize) = (40, 60);
/// Words of a document's title.
const TITLE_WORDS: (usize, usize) = (3, 8);
/// Words of a query.
const QUERY_WORDS: (usize, usize) = (3, 8);
/// The most frequent words, left out of queries (they would match most documents).
pub(super) const COMMON: usize = 100;
/// Size of the made-up vocabulary.
pub(super) const SYNTHETIC_WORDS: usize = 50_000;
/// Exponent of the made-up vocabulary's Zipf law.
pub(super) const ZIPF_EXPONENT: f64 = 1.07;

/// A vocabulary, most frequent word first, and its sampler.
pub(super) struct Vocabulary {
    words: Vec<String>,
    alias: Alias,
    /// Where the words come from, as the report says it.
    pub(super) source: String,
}

impl Vocabulary {
    /// The words of a BEIR corpus file (`corpus.jsonl`) with their counts.
    pub(super) fn from_corpus(path: &Path) -> anyhow::Result<Vocabulary> {
        #[derive(serde::Deserialize)]
        struct Record {
            #[serde(default)]
            title: String,
            #[serde(default)]
            text: String,
        }
        let body = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (i, line) in body
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let r: Record = serde_json::from_str(line)
                .with_context(|| format!("{}: line {} is not a record", path.display(), i + 1))?;
            for w in tokens(&r.title).chain(tokens(&r.text)) {
                *counts.entry(w).or_default() += 1;
            }
        }
        anyhow::ensure!(
            counts.len() > COMMON,
            "{}: only {} distinct words",
            path.display(),
            counts.len()
        );
        let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let weights: Vec<f64> = ranked.iter().map(|(_, c)| *c as f64).collect();
        let n = ranked.len();
        Ok(Vocabulary {
            words: ranked.into_iter().map(|(w, _)| w).collect(),
            alias: Alias::new(&weights),
            source: format!("SciFact word frequencies ({n} words)"),
        })
    }

    /// [`SYNTHETIC_WORDS`] made-up words under a Zipf law.
    pub(super) fn zipf() -> Vocabulary {
        let weights: Vec<f64> = (1..=SYNTHETIC_WORDS)
            .map(|r| (r as f64).powf(-ZIPF_EXPONENT))
            .collect();
        Vocabulary {
            words: (0..SYNTHETIC_WORDS).map(made_up_word).collect(),
            alias: Alias::new(&weights),
            source: format!("synthetic Zipf (s = {ZIPF_EXPONENT}, {SYNTHETIC_WORDS} words)"),
        }
    }

    fn push_words(&self, d: &mut Draw, (lo, hi): (usize, usize), skip: usize, out: &mut String) {
        for i in 0..d.between(lo, hi) {
            let mut w = self.alias.sample(d);
            while w < skip {
                w = self.alias.sample(d);
            }
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&self.words[w]);
        }
    }

    /// A document's title and text.
    pub(super) fn document(&self, d: &mut Draw) -> (String, String) {
        let (mut title, mut text) = (String::new(), String::new());
        self.push_words(d, TITLE_WORDS, 0, &mut title);
        self.push_words(d, TEXT_WORDS, 0, &mut text);
        (title, text)
    }

    /// A query's text: no word among the [`COMMON`] most frequent.
    pub(super) fn query(&self, d: &mut Draw) -> String {
        let mut q = String::new();
        self.push_words(d, QUERY_WORDS, COMMON.min(self.words.len() - 1), &mut q);
        q
    }
}

/// The lowercased words of `text`: runs of letters and digits.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The made-up word of rank `rank`: syllables (a consonant and a vowel) numbering the rank in
/// bijective base 100, so that every rank has its own word and frequent words are short.
fn made_up_word(rank: usize) -> String {
    const CONSONANTS: &[u8; 20] = b"bcdfghjklmnpqrstvwxz";
    const VOWELS: &[u8; 5] = b"aeiou";
    let mut n = rank + 1;
    let mut w = Vec::new();
    while n > 0 {
        let s = (n - 1) % 100;
        w.push(VOWELS[s % 5]);
        w.push(CONSONANTS[s / 5]);
        n = (n - 1) / 100;
    }
    w.reverse();
    String::from_utf8(w).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::draw::Purpose;

    #[test]
    fn tokens_split_on_non_alphanumerics_and_lowercase() {
        let t: Vec<String> = tokens("IL-6 (in vivo), 2.5% Ärzte").collect();
        assert_eq!(t, ["il", "6", "in", "vivo", "2", "5", "ärzte"]);
    }

    #[test]
    fn made_up_words_are_distinct_and_short_when_frequent() {
        let words: std::collections::HashSet<String> =
            (0..SYNTHETIC_WORDS).map(made_up_word).collect();
        assert_eq!(words.len(), SYNTHETIC_WORDS);
        assert_eq!(made_up_word(0).len(), 2);
        assert_eq!(made_up_word(99).len(), 2);
        assert_eq!(made_up_word(100).len(), 4);
    }

    #[test]
    fn documents_and_queries_have_their_lengths() {
        let v = Vocabulary::zipf();
        let mut d = Draw::stream(1, Purpose::DocText, 0);
        for _ in 0..50 {
            let (title, text) = v.document(&mut d);
            let n = text.split(' ').count();
            assert!((TEXT_WORDS.0..=TEXT_WORDS.1).contains(&n), "{text}");
            assert!(title.split(' ').count() >= 3);
            let q = v.query(&mut d);
            let common: Vec<&str> = v.words[..COMMON].iter().map(String::as_str).collect();
            assert!(q.split(' ').all(|w| !common.contains(&w)), "{q}");
        }
    }
}
