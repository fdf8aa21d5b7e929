//! SentencePiece BPE as GGUF stores it (`tokenizer.ggml.model = "llama"`: Llama 2, TinyLlama,
//! Mistral, Phi-3, Gemma), tokenized as llama.cpp's `llm_tokenizer_spm` does (llama-vocab.cpp),
//! so `odai generate --prompt` and `odai quality` feed a model the ids llama.cpp would:
//!
//! 1. the text is cut at user-defined tokens (and control tokens, which llama.cpp parses as
//!    special in a prompt), which become their own ids;
//! 2. each remaining fragment gets a leading space where `add_space_prefix` holds and it starts
//!    the text or follows a special token, and every space becomes `▁` (U+2581);
//! 3. the fragment starts as one symbol per UTF-8 character; the adjacent pair whose
//!    concatenation is a vocabulary piece with the highest score merges first (the leftmost on a
//!    tie), again and again;
//! 4. each final symbol is its piece's id, or (byte fallback) one `<0xXX>` id per byte.
//!
//! candle's GGUF tokenizer support builds gpt2 BPE vocabularies only.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub(crate) const TYPE_NORMAL: i32 = 1;
pub(crate) const TYPE_UNKNOWN: i32 = 2;
pub(crate) const TYPE_CONTROL: i32 = 3;
pub(crate) const TYPE_USER_DEFINED: i32 = 4;
pub(crate) const TYPE_UNUSED: i32 = 5;
pub(crate) const TYPE_BYTE: i32 = 6;

/// A SentencePiece vocabulary.
pub struct Spm {
    pieces: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    bytes: [Option<u32>; 256],
    /// User-defined and control pieces, longest first: where the text is cut before merging.
    specials: Vec<(String, u32)>,
    add_space_prefix: bool,
}

/// A candidate merge of the symbols at `left` and `right`.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// The highest score first; on a tie the leftmost (llama.cpp's `llm_bigram_spm::comparator`).
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// From the GGUF arrays: pieces, their scores and token types, and `add_space_prefix`.
    pub fn new(
        pieces: Vec<String>,
        scores: Vec<f32>,
        types: Vec<i32>,
        add_space_prefix: bool,
    ) -> Result<Spm, String> {
        if pieces.is_empty() {
            return Err("the vocabulary is empty".into());
        }
        let n = pieces.len();
        let scores = if scores.len() == n {
            scores
        } else {
            vec![0.0; n]
        };
        let types = if types.len() == n { types } else { vec![1; n] };
        let mut ids = HashMap::with_capacity(n);
        let mut bytes = [None; 256];
        for (i, p) in pieces.iter().enumerate() {
            let id = i as u32;
            ids.entry(p.clone()).or_insert(id);
            if types[i] == TYPE_BYTE
                && let Some(b) = byte_of(p)
            {
                bytes[usize::from(b)] = Some(id);
            }
        }
        let specials = specials(&pieces, &types);
        Ok(Spm {
            pieces,
            scores,
            types,
            ids,
            bytes,
            specials,
            add_space_prefix,
        })
    }

    /// The ids of `text`, without BOS.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut prev_special = true;
        for (fragment, special) in partition(&self.specials, text) {
            if let Some(id) = special {
                out.push(id);
                prev_special = true;
                continue;
            }
            let mut t = String::with_capacity(fragment.len() + 3);
            if self.add_space_prefix && prev_special {
                t.push(' ');
            }
            t.push_str(fragment);
            let escaped = t.replace(' ', "\u{2581}");
            self.merge(&escaped, &mut out);
            prev_special = false;
        }
        out
    }

    /// The merges of llama.cpp's `llm_tokenizer_spm::tokenize` on one escaped fragment.
    fn merge(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::new();
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        let mut queue = BinaryHeap::new();
        let push = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
            let (a, b) = (symbols[l], symbols[r]);
            let piece = &text[a.start..a.start + a.len + b.len];
            if let Some(&id) = self.ids.get(piece) {
                queue.push(Bigram {
                    left: l,
                    right: r,
                    score: self.scores[id as usize],
                    len: piece.len(),
                });
            }
        };
        for i in 1..symbols.len() {
            push(&mut queue, &symbols, i - 1, i);
        }
        while let Some(b) = queue.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            // A stale candidate: one side merged since.
            if l.len == 0 || r.len == 0 || l.len + r.len != b.len {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(b.left);
            }
            if let Some(p) = symbols[b.left].prev {
                push(&mut queue, &symbols, p, b.left);
            }
            if let Some(n) = symbols[b.left].next {
                push(&mut queue, &symbols, b.left, n);
            }
        }
        let mut i = if symbols.is_empty() { None } else { Some(0) };
        while let Some(s) = i {
            let sym = symbols[s];
            let piece = &text[sym.start..sym.start + sym.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    // Byte fallback; a byte without its piece is the unknown token (0 where the
                    // vocabulary says nothing).
                    for byte in piece.bytes() {
                        out.push(self.bytes[usize::from(byte)].unwrap_or(0));
                    }
                }
            }
            i = sym.next;
        }
    }

    /// The piece of `id`, as the vocabulary stores it.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    /// The text of `ids`: `▁` back to spaces, byte pieces back to bytes, control pieces dropped.
    pub fn decode(&self, ids: &[u32]) -> String {
        decode_pieces(&self.pieces, &self.types, ids)
    }
}

/// `text` cut at special pieces (`specials`: longest first): (fragment, Some(id)) for a special
/// piece, (fragment, None) for raw text between them — llama.cpp's `tokenizer_st_partition`.
pub(crate) fn partition<'a>(
    specials: &[(String, u32)],
    text: &'a str,
) -> Vec<(&'a str, Option<u32>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // The earliest special piece in the rest (the longest at one position).
        let mut best: Option<(usize, &str, u32)> = None;
        for (p, id) in specials {
            if let Some(at) = rest.find(p.as_str())
                && best.is_none_or(|(b, bp, _)| at < b || (at == b && p.len() > bp.len()))
            {
                best = Some((at, p.as_str(), *id));
            }
        }
        let Some((at, p, id)) = best else {
            out.push((rest, None));
            break;
        };
        if at > 0 {
            out.push((&rest[..at], None));
        }
        out.push((&rest[at..at + p.len()], Some(id)));
        rest = &rest[at + p.len()..];
    }
    out
}

/// The user-defined and control pieces of a vocabulary, longest first (as llama.cpp sorts its
/// special-token cache): where a text is cut before tokenizing.
pub(crate) fn specials(pieces: &[String], types: &[i32]) -> Vec<(String, u32)> {
    let mut specials: Vec<(String, u32)> = pieces
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (p, t))| matches!(**t, TYPE_CONTROL | TYPE_USER_DEFINED) && !p.is_empty())
        .map(|(i, (p, _))| (p.clone(), i as u32))
        .collect();
    specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
    specials
}

/// The byte of a `<0xXX>` piece.
fn byte_of(piece: &str) -> Option<u8> {
    piece
        .strip_prefix("<0x")
        .and_then(|h| h.strip_suffix('>'))
        .and_then(|h| u8::from_str_radix(h, 16).ok())
}

/// The text of `ids` in a SentencePiece vocabulary: `▁` back to spaces, byte pieces back to
/// bytes, control pieces dropped, an unknown piece as `▅` (llama.cpp's `token_to_piece`).
pub(crate) fn decode_pieces(pieces: &[String], types: &[i32], ids: &[u32]) -> String {
    let mut bytes = Vec::new();
    for &id in ids {
        let (Some(p), Some(&t)) = (pieces.get(id as usize), types.get(id as usize)) else {
            continue;
        };
        match t {
            TYPE_CONTROL => {}
            TYPE_BYTE => bytes.extend(byte_of(p)),
            TYPE_UNKNOWN => bytes.extend_from_slice("\u{2585}".as_bytes()),
            _ => bytes.extend_from_slice(p.replace('\u{2581}', " ").as_bytes()),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: bytes, characters, and merges whose scores decide the order.
    fn vocab() -> Spm {
        let mut pieces = vec!["<unk>".to_owned(), "<s>".to_owned(), "</s>".to_owned()];
        let mut types = vec![2, 3, 3];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            types.push(TYPE_BYTE);
            scores.push(0.0);
        }
        for (p, s) in [
            ("▁", -1.0),
            ("a", -2.0),
            ("b", -2.0),
            ("c", -2.0),
            ("ab", -3.0),
            ("bc", -1.5),
            ("▁a", -4.0),
            ("▁abc", -0.5),
            ("abc", -0.7),
            ("<tool>", 0.0),
        ] {
            pieces.push(p.to_owned());
            types.push(if p == "<tool>" { TYPE_USER_DEFINED } else { 1 });
            scores.push(s);
        }
        Spm::new(pieces, scores, types, true).unwrap()
    }

    fn id(v: &Spm, p: &str) -> u32 {
        v.ids[p]
    }

    #[test]
    fn the_highest_scoring_pair_merges_first() {
        let v = vocab();
        // "▁abc": bc (-1.5) beats ab (-3.0); then a+bc = abc (-0.7) beats ▁+a (-4.0); then
        // ▁+abc = ▁abc.
        assert_eq!(v.encode("abc"), vec![id(&v, "▁abc")]);
        // Without a prefix space where a special piece comes first… and after it.
        assert_eq!(
            v.encode("<tool>abc"),
            vec![id(&v, "<tool>"), id(&v, "▁abc")]
        );
    }

    #[test]
    fn unknown_characters_fall_back_to_their_bytes() {
        let v = vocab();
        let ids = v.encode("é");
        assert_eq!(ids, vec![id(&v, "▁"), id(&v, "<0xC3>"), id(&v, "<0xA9>")]);
        assert_eq!(v.decode(&ids), " é");
    }
}
