//! Line breaking for mixed Chinese / Latin text.
//!
//! Rules: a line may break between any two CJK characters and at spaces; Latin words
//! (letters, digits, ASCII punctuation) stay together unless a single word is wider
//! than the line; closing punctuation (`，。、；：）」` …) never starts a line and
//! opening punctuation (`（「《` …) never ends one (basic 禁则 / kinsoku).

/// A breakable unit of text.
struct Atom {
    text: String,
    space: bool,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul Jamo
        | 0x2E80..=0x2FDF    // CJK radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // kana
        | 0x3100..=0x31FF    // bopomofo, kana ext
        | 0x3200..=0x4DBF    // enclosed, compatibility, ext A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFE30..=0xFE4F    // compatibility forms
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3FFFF) // ext B..
}

/// Must not start a line.
fn is_closing(c: char) -> bool {
    "，。、；：！？）》」』】〕〉”’…—%％,.;:!?)]}·～".contains(c)
}

/// Must not end a line.
fn is_opening(c: char) -> bool {
    "（《「『【〔〈“‘([{".contains(c)
}

fn atoms(text: &str) -> Vec<Atom> {
    let mut raw: Vec<Atom> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, raw: &mut Vec<Atom>| {
        if !word.is_empty() {
            raw.push(Atom {
                text: std::mem::take(word),
                space: false,
            });
        }
    };
    for c in text.chars() {
        if c == '\t' || c.is_whitespace() {
            flush(&mut word, &mut raw);
            raw.push(Atom {
                text: " ".into(),
                space: true,
            });
        } else if is_cjk(c) || is_opening(c) {
            flush(&mut word, &mut raw);
            raw.push(Atom {
                text: c.to_string(),
                space: false,
            });
        } else if is_closing(c) && word.is_empty() {
            raw.push(Atom {
                text: c.to_string(),
                space: false,
            });
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut raw);

    // Glue punctuation: closing → previous atom, opening → next atom.
    let mut out: Vec<Atom> = Vec::new();
    let mut pending_open = String::new();
    for a in raw {
        let first = a.text.chars().next().unwrap_or(' ');
        if !a.space && a.text.chars().count() == 1 && is_opening(first) {
            pending_open.push_str(&a.text);
            continue;
        }
        if !a.space && is_closing(first) && pending_open.is_empty() {
            if let Some(prev) = out.last_mut().filter(|p| !p.space) {
                prev.text.push_str(&a.text);
                continue;
            }
        }
        if a.space {
            if !pending_open.is_empty() {
                out.push(Atom {
                    text: std::mem::take(&mut pending_open),
                    space: false,
                });
            }
            out.push(a);
        } else {
            let text = format!("{}{}", std::mem::take(&mut pending_open), a.text);
            out.push(Atom { text, space: false });
        }
    }
    if !pending_open.is_empty() {
        out.push(Atom {
            text: pending_open,
            space: false,
        });
    }
    out
}

/// Breaks `text` into lines no wider than `max_width`, measured with `width`.
/// Each `\n` starts a new paragraph; an empty paragraph yields an empty line.
pub(crate) fn wrap(text: &str, max_width: f32, width: &dyn Fn(&str) -> f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.replace("\r\n", "\n").split('\n') {
        let start = lines.len();
        let mut line = String::new();
        let mut line_w = 0.0f32;
        for atom in atoms(paragraph) {
            if atom.space && line.is_empty() {
                continue;
            }
            let w = width(&atom.text);
            if line_w + w <= max_width {
                line.push_str(&atom.text);
                line_w += w;
                continue;
            }
            if atom.space {
                lines.push(std::mem::take(&mut line).trim_end().to_string());
                line_w = 0.0;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line).trim_end().to_string());
                line_w = 0.0;
            }
            if w <= max_width {
                line.push_str(&atom.text);
                line_w = w;
            } else {
                // A single word wider than the line: break it by characters.
                for c in atom.text.chars() {
                    let cw = width(c.encode_utf8(&mut [0; 4]));
                    if line_w + cw > max_width && !line.is_empty() {
                        lines.push(std::mem::take(&mut line));
                        line_w = 0.0;
                    }
                    line.push(c);
                    line_w += cw;
                }
            }
        }
        let rest = line.trim_end().to_string();
        if !rest.is_empty() || lines.len() == start {
            lines.push(rest);
        }
    }
    lines
}

/// `text` cut to fit `max_width`, with `…` when something was cut.
pub(crate) fn ellipsize(text: &str, max_width: f32, width: &dyn Fn(&str) -> f32) -> String {
    if width(text) <= max_width {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        out.push(c);
        if width(&format!("{out}…")) > max_width {
            out.pop();
            break;
        }
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CJK and full-width = 1.0 per char, anything else 0.5.
    fn w(s: &str) -> f32 {
        s.chars().map(|c| if is_cjk(c) { 1.0 } else { 0.5 }).sum()
    }

    #[test]
    fn breaks_between_cjk_characters() {
        assert_eq!(wrap("肝脏形态大小正常", 3.0, &w), vec!["肝脏形", "态大小", "正常"]);
    }

    #[test]
    fn closing_punctuation_never_starts_a_line() {
        let lines = wrap("肝脏正常，脾脏正常。", 4.0, &w);
        assert!(
            lines.iter().all(|l| !l.starts_with('，') && !l.starts_with('。')),
            "{lines:?}"
        );
        assert_eq!(lines.concat(), "肝脏正常，脾脏正常。");
    }

    #[test]
    fn opening_punctuation_never_ends_a_line() {
        let lines = wrap("见结节（约5mm）", 3.0, &w);
        assert!(lines.iter().all(|l| !l.ends_with('（')), "{lines:?}");
    }

    #[test]
    fn latin_words_stay_together() {
        let lines = wrap("右肺上叶 nodule measuring 5 mm 见图", 6.0, &w);
        assert!(lines.iter().any(|l| l.contains("measuring")), "{lines:?}");
        assert!(lines.iter().all(|l| w(l) <= 6.0), "{lines:?}");
    }

    #[test]
    fn overlong_words_are_split() {
        let lines = wrap("abcdefghijklmnop", 2.0, &w);
        assert_eq!(lines, vec!["abcd", "efgh", "ijkl", "mnop"]);
    }

    #[test]
    fn paragraphs_and_blank_lines_are_kept() {
        assert_eq!(wrap("一\n\n二", 10.0, &w), vec!["一", "", "二"]);
    }

    #[test]
    fn ellipsize_cuts_long_text() {
        assert_eq!(ellipsize("短", 5.0, &w), "短");
        let cut = ellipsize("很长很长很长很长", 4.0, &w);
        assert!(cut.ends_with('…') && w(&cut) <= 4.0, "{cut}");
    }
}
