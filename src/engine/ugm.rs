//! SentencePiece unigram vocabularies as GGUF stores them (`tokenizer.ggml.model = "t5"`: T5,
//! mT5, Flan-T5, nomic-bert-moe), tokenized as llama.cpp's `llm_tokenizer_ugm` does
//! (llama-vocab.cpp), which follows SentencePiece's own normalizer and unigram Viterbi
//! (sentencepiece normalizer.cc, unigram_model.cc):
//!
//! 1. the text is cut at user-defined and control pieces, which become their own ids;
//! 2. each remaining fragment is normalized: the longest byte prefix the precompiled charsmap
//!    knows is replaced by its rewrite (NFKC and friends, built into the model), spaces are
//!    dropped at the start, runs of them merged (`remove_extra_whitespaces`), a space put before
//!    the first word (`add_space_prefix`), and every space written `▁` (U+2581);
//! 3. Viterbi over the normalized bytes: the split whose pieces' scores sum highest; a character
//!    no piece covers is the unknown piece, scored 10 below the lowest piece, and unknown
//!    characters in a row become one unknown id.

use super::spm::{TYPE_NORMAL, TYPE_UNUSED, TYPE_USER_DEFINED, decode_pieces, partition, specials};

/// SentencePiece's penalty for an unknown character below the lowest piece score
/// (unigram_model.cc `kUnkPenalty`).
const UNKNOWN_PENALTY: f64 = 10.0;

/// A unigram vocabulary's settings from the GGUF header (`tokenizer.ggml.*`), with llama.cpp's
/// defaults where a key is absent.
pub struct Settings {
    pub add_space_prefix: bool,
    pub remove_extra_whitespaces: bool,
    /// `tokenizer.ggml.precompiled_charsmap`: the normalizer's rules, or empty for none.
    pub charsmap: Vec<u8>,
    pub unknown_id: u32,
}

/// A SentencePiece unigram vocabulary.
pub struct Ugm {
    pieces: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
    /// Ids of the pieces the Viterbi search may use (normal, user-defined, unused), sorted by
    /// their bytes: a trie laid flat, walked by narrowing a range one byte at a time.
    sorted: Vec<u32>,
    specials: Vec<(String, u32)>,
    /// User-defined pieces, which normalization leaves as they are.
    user_defined: Vec<String>,
    charsmap: Option<Charsmap>,
    unknown_id: u32,
    unknown_score: f64,
    add_space_prefix: bool,
    remove_extra_whitespaces: bool,
}

impl Ugm {
    /// From the GGUF arrays: pieces, their scores and token types, and the settings.
    pub fn new(
        pieces: Vec<String>,
        scores: Vec<f32>,
        types: Vec<i32>,
        settings: Settings,
    ) -> Result<Ugm, String> {
        let n = pieces.len();
        if n == 0 {
            return Err("the vocabulary is empty".into());
        }
        if scores.len() != n || types.len() != n {
            return Err(format!(
                "{n} pieces but {} scores and {} token types",
                scores.len(),
                types.len()
            ));
        }
        if settings.unknown_id as usize >= n {
            return Err(format!(
                "the unknown token id {} is past the {n} pieces",
                settings.unknown_id
            ));
        }
        let charsmap = if settings.charsmap.is_empty() {
            None
        } else {
            Some(Charsmap::parse(settings.charsmap)?)
        };
        let mut sorted: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    types[i as usize],
                    TYPE_NORMAL | TYPE_USER_DEFINED | TYPE_UNUSED
                ) && !pieces[i as usize].is_empty()
            })
            .collect();
        sorted.sort_by(|&a, &b| {
            pieces[a as usize]
                .as_bytes()
                .cmp(pieces[b as usize].as_bytes())
        });
        // One id per piece: the last one, as a trie insert overwrites (llama.cpp's naive_trie).
        sorted.reverse();
        sorted.dedup_by(|a, b| pieces[*a as usize] == pieces[*b as usize]);
        sorted.reverse();
        let lowest = (0..n)
            .filter(|&i| types[i] == TYPE_NORMAL)
            .map(|i| f64::from(scores[i]))
            .fold(f64::INFINITY, f64::min);
        let lowest = if lowest.is_finite() { lowest } else { 0.0 };
        let user_defined = (0..n)
            .filter(|&i| types[i] == TYPE_USER_DEFINED && !pieces[i].is_empty())
            .map(|i| pieces[i].clone())
            .collect();
        Ok(Ugm {
            specials: specials(&pieces, &types),
            pieces,
            scores,
            types,
            sorted,
            user_defined,
            charsmap,
            unknown_id: settings.unknown_id,
            unknown_score: lowest - UNKNOWN_PENALTY,
            add_space_prefix: settings.add_space_prefix,
            remove_extra_whitespaces: settings.remove_extra_whitespaces,
        })
    }

    /// The ids of `text`, without BOS or EOS.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for (fragment, special) in partition(&self.specials, text) {
            match special {
                Some(id) => out.push(id),
                None => self.viterbi(&self.normalize(fragment.as_bytes()), &mut out),
            }
        }
        out
    }

    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        decode_pieces(&self.pieces, &self.types, ids)
    }

    /// Step 2: the charsmap's rewrites and the whitespace rules, spaces written `▁`.
    fn normalize(&self, input: &[u8]) -> Vec<u8> {
        const SPACE: &[u8] = "\u{2581}".as_bytes();
        let mut out = Vec::with_capacity(input.len() * 3);
        let mut prefixed = false;
        let mut in_word = false;
        let mut at = 0;
        while at < input.len() {
            let (rewrite, consumed) = self.normalize_prefix(&input[at..]);
            for &c in rewrite {
                if c == b' ' {
                    in_word = false;
                    if !self.remove_extra_whitespaces {
                        out.extend_from_slice(SPACE);
                    }
                    continue;
                }
                if !in_word {
                    in_word = true;
                    // With merged whitespace every word gets the one space its run of spaces
                    // became (leading and trailing runs vanish).
                    if (self.add_space_prefix && !prefixed) || self.remove_extra_whitespaces {
                        out.extend_from_slice(SPACE);
                        prefixed = true;
                    }
                }
                out.push(c);
            }
            at += consumed.max(1);
        }
        out
    }

    /// The rewrite of the start of `input` and how many bytes it consumes: a user-defined piece as
    /// it is, else the charsmap's longest match, else the first character as it is.
    fn normalize_prefix<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], usize) {
        let user = self
            .user_defined
            .iter()
            .filter(|p| input.starts_with(p.as_bytes()))
            .map(|p| p.len())
            .max();
        if let Some(len) = user {
            return (&input[..len], len);
        }
        if let Some((len, rewrite)) = self.charsmap.as_ref().and_then(|c| c.longest(input)) {
            return (rewrite, len);
        }
        let len = utf8_len(input[0]).min(input.len());
        (&input[..len], len)
    }

    /// Step 3: the best-scoring split of `text` (normalized bytes) into pieces.
    fn viterbi(&self, text: &[u8], out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        // best[i]: the best split of text[..i] — its last piece, where that piece starts, and
        // the score (f64, as SentencePiece sums them).
        let mut best = vec![(self.unknown_id, 0usize, f64::NEG_INFINITY); text.len() + 1];
        best[0].2 = 0.0;
        let mut at = 0;
        while at < text.len() {
            let char_len = utf8_len(text[at]).min(text.len() - at);
            let here = best[at].2;
            let mut whole_char = false;
            self.prefixes(&text[at..], |len, id| {
                whole_char |= len == char_len;
                // User-defined pieces score 0 so they win where they fit (llama.cpp).
                let score = if self.types[id as usize] == TYPE_USER_DEFINED {
                    0.0
                } else {
                    f64::from(self.scores[id as usize])
                };
                if here + score > best[at + len].2 {
                    best[at + len] = (id, at, here + score);
                }
            });
            if !whole_char && here + self.unknown_score > best[at + char_len].2 {
                best[at + char_len] = (self.unknown_id, at, here + self.unknown_score);
            }
            at += char_len;
        }
        let first = out.len();
        let mut end = text.len();
        let mut prev_unknown = false;
        while end > 0 {
            let (id, start, _) = best[end];
            let unknown = id == self.unknown_id;
            if !(prev_unknown && unknown) {
                out.push(id);
            }
            prev_unknown = unknown;
            end = start;
        }
        out[first..].reverse();
    }

    /// Every piece that starts `text`, shortest first: `found(length, id)`.
    fn prefixes(&self, text: &[u8], mut found: impl FnMut(usize, u32)) {
        let piece = |i: u32| self.pieces[i as usize].as_bytes();
        let (mut lo, mut hi) = (0, self.sorted.len());
        for (depth, &c) in text.iter().enumerate() {
            // In sorted[lo..hi] every piece starts with text[..depth]; those exactly that long
            // come first, then the rest in the order of their byte at `depth`.
            let range = &self.sorted[lo..hi];
            let first =
                lo + range.partition_point(|&i| piece(i).len() <= depth || piece(i)[depth] < c);
            let last = first + self.sorted[first..hi].partition_point(|&i| piece(i)[depth] == c);
            if first == last {
                return;
            }
            (lo, hi) = (first, last);
            if piece(self.sorted[lo]).len() == depth + 1 {
                found(depth + 1, self.sorted[lo]);
            }
        }
    }
}

/// The length of the UTF-8 sequence a byte starts (a stray continuation byte counts as one), as
/// llama.cpp's `unicode_len_utf8`.
fn utf8_len(b: u8) -> usize {
    match b >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

/// SentencePiece's precompiled charsmap: a u32 (little-endian) byte length, that many bytes of a
/// XOR-compressed compact double array (Kanda et al. 2018, "Space- and Time-Efficient String
/// Dictionaries"; sentencepiece third_party/darts_clone) whose leaves point into the rest, the
/// NUL-terminated rewrites.
///
/// Not spm_precompiled (the crate tokenizers uses): it indexes the array unchecked (a damaged
/// model panics), rewrites the shortest match per grapheme, and needs the rewrites to be UTF-8,
/// where SentencePiece and llama.cpp take the longest byte prefix.
struct Charsmap {
    array: Vec<u32>,
    rewrites: Vec<u8>,
}

impl Charsmap {
    fn parse(bytes: Vec<u8>) -> Result<Charsmap, String> {
        let bad = |why: &str| format!("tokenizer.ggml.precompiled_charsmap: {why}");
        let size = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad("shorter than its 4-byte header"))?;
        if size % 4 != 0 || 4 + size >= bytes.len() {
            return Err(bad(&format!(
                "a {size}-byte array does not fit its {} bytes",
                bytes.len()
            )));
        }
        let array = bytes[4..4 + size]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Charsmap {
            array,
            rewrites: bytes[4 + size..].to_vec(),
        })
    }

    /// The longest prefix of `input` with a rewrite: (its length, the rewrite). A walk that leaves
    /// the array or a rewrite without its NUL ends the match (a damaged file, not a panic).
    fn longest(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        // Each unit: BASE in bits 10..31 (shifted by 8 when bit 9 is set), LEAF in bit 8, LCHECK
        // (the label) in bits 0..8 with bit 31; a leaf's child holds the value in bits 0..31.
        let unit = |i: usize| self.array.get(i).copied();
        let base = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let mut node = base(unit(0)?);
        let mut found = None;
        for (i, &c) in input.iter().enumerate() {
            if c == 0 {
                break;
            }
            node ^= usize::from(c);
            let Some(u) = unit(node) else { break };
            if u & ((1 << 31) | 0xFF) != u32::from(c) {
                break;
            }
            node ^= base(u);
            if (u >> 8) & 1 == 1 {
                let Some(v) = unit(node) else { break };
                found = Some((i + 1, (v & ((1 << 31) - 1)) as usize));
            }
        }
        let (len, offset) = found?;
        let rest = self.rewrites.get(offset..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some((len, &rest[..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::spm::{TYPE_CONTROL, TYPE_UNKNOWN};

    /// A toy vocabulary whose scores make the best split differ from the greedy longest match.
    fn vocab(remove_extra_whitespaces: bool) -> Ugm {
        let mut pieces = vec!["<pad>".to_owned(), "</s>".to_owned(), "<unk>".to_owned()];
        let mut types = vec![TYPE_CONTROL, TYPE_CONTROL, TYPE_UNKNOWN];
        let mut scores = vec![0.0, 0.0, 0.0];
        for (p, s) in [
            ("▁", -2.0),
            ("a", -3.0),
            ("b", -3.0),
            ("c", -3.0),
            ("▁ab", -4.0),
            ("▁a", -2.5),
            ("bc", -1.0),
            ("<sep>", -20.0),
        ] {
            pieces.push(p.to_owned());
            types.push(if p == "<sep>" {
                TYPE_USER_DEFINED
            } else {
                TYPE_NORMAL
            });
            scores.push(s);
        }
        let settings = Settings {
            add_space_prefix: true,
            remove_extra_whitespaces,
            charsmap: Vec::new(),
            unknown_id: 2,
        };
        Ugm::new(pieces, scores, types, settings).unwrap()
    }

    fn ids(v: &Ugm, pieces: &[&str]) -> Vec<u32> {
        pieces
            .iter()
            .map(|p| v.pieces.iter().position(|q| q == p).unwrap() as u32)
            .collect()
    }

    #[test]
    fn the_best_scoring_split_wins_over_the_longest_piece() {
        let v = vocab(true);
        // ▁ab + c = -7; ▁a + bc = -3.5.
        assert_eq!(v.encode("abc"), ids(&v, &["▁a", "bc"]));
    }

    #[test]
    fn unknown_characters_in_a_row_are_one_unknown_id() {
        let v = vocab(true);
        assert_eq!(v.encode("a☃☃b"), ids(&v, &["▁a", "<unk>", "b"]));
        assert_eq!(v.decode(&v.encode("a☃☃b")), " a\u{2585}b");
    }

    #[test]
    fn whitespace_is_merged_or_kept_as_the_vocabulary_says() {
        let merged = vocab(true);
        assert_eq!(merged.encode("  a   b  "), ids(&merged, &["▁a", "▁", "b"]));
        let kept = vocab(false);
        assert_eq!(
            kept.encode(" a  b"),
            ids(&kept, &["▁", "▁a", "▁", "▁", "b"])
        );
    }

    #[test]
    fn user_defined_and_control_pieces_are_cut_out_first() {
        let v = vocab(true);
        assert_eq!(
            v.encode("a<sep>b</s>"),
            ids(&v, &["▁a", "<sep>", "▁", "b", "</s>"])
        );
    }

    #[test]
    fn a_damaged_charsmap_is_refused_or_ends_the_match_never_panics() {
        let settings = |charsmap| Settings {
            add_space_prefix: true,
            remove_extra_whitespaces: false,
            charsmap,
            unknown_id: 0,
        };
        let new = |charsmap| Ugm::new(vec!["a".into()], vec![0.0], vec![1], settings(charsmap));
        assert!(new(vec![1, 2]).is_err());
        assert!(new(vec![8, 0, 0, 0, 1, 2, 3, 4]).is_err());
        // An array whose BASE points far outside it: no rewrite, the text as it is.
        let mut wild = 8u32.to_le_bytes().to_vec();
        wild.extend_from_slice(&(0xFFFF_FC00u32).to_le_bytes());
        wild.extend_from_slice(&(0xFFFF_FFFFu32).to_le_bytes());
        wild.extend_from_slice(b"x\0");
        let v = new(wild).unwrap();
        assert_eq!(v.encode("a"), vec![0]);
    }
}
