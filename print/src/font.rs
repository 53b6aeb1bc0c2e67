//! Locating and measuring the CJK font.
//!
//! The font is never bundled with the crate nor downloaded: it comes from a Debian
//! package installed on the host and is found at run time (see [`FontConfig`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::PrintError;

/// Environment variable naming the CJK font file. An optional `#N` suffix selects face
/// `N` of a TrueType collection (`.ttc`), e.g.
/// `/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc#2` (Simplified Chinese).
pub const CJK_FONT_ENV: &str = "MEDLEDGER_CJK_FONT";

/// Debian locations tried in order when no explicit font is configured, with the face
/// index to use inside collections.
///
/// * `fonts-wqy-microhei` — 5 MB collection; face 0 is the proportional WenQuanYi Micro Hei
///   (CJK plus Latin). This is the package the project installs.
/// * `fonts-noto-cjk` — face 2 of the collection is Noto Sans CJK SC.
/// * `fonts-droid-fallback` — single TrueType file with CJK and Latin.
/// * `fonts-wqy-zenhei` — collection, face 0.
pub const DEFAULT_CJK_FONTS: &[(&str, u32)] = &[
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
];

/// Latin fonts used only for characters the CJK font lacks (some CJK fonts, such as
/// `DroidSansFallbackFull.ttf`, have no Latin letters or digits). Debian
/// `fonts-dejavu-core`; skipped silently when absent.
pub const DEFAULT_FALLBACK_FONTS: &[(&str, u32)] = &[
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
    ("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", 0),
    ("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf", 0),
];

/// Where to find the CJK font.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontConfig {
    /// Candidate `(path, face index)` pairs, tried in order; the first that exists is used.
    pub candidates: Vec<(PathBuf, u32)>,
    /// Fonts for characters the CJK font has no glyph for; every one that exists is used,
    /// in order. Missing ones are skipped.
    pub fallbacks: Vec<(PathBuf, u32)>,
}

impl Default for FontConfig {
    /// The Debian defaults ([`DEFAULT_CJK_FONTS`], [`DEFAULT_FALLBACK_FONTS`]).
    fn default() -> Self {
        Self {
            candidates: DEFAULT_CJK_FONTS.iter().map(|(p, i)| (PathBuf::from(p), *i)).collect(),
            fallbacks: default_fallbacks(),
        }
    }
}

fn default_fallbacks() -> Vec<(PathBuf, u32)> {
    DEFAULT_FALLBACK_FONTS
        .iter()
        .map(|(p, i)| (PathBuf::from(p), *i))
        .collect()
}

impl FontConfig {
    /// Exactly one CJK font file (face `index`); no fallback to the default CJK fonts
    /// (the Latin fallbacks keep their defaults).
    pub fn from_path(path: impl Into<PathBuf>, index: u32) -> Self {
        Self {
            candidates: vec![(path.into(), index)],
            fallbacks: default_fallbacks(),
        }
    }

    /// [`CJK_FONT_ENV`] when set (and then only that file, so that a typo is an error
    /// rather than a silent fallback), else the Debian defaults.
    pub fn from_env() -> Self {
        Self::from_env_value(std::env::var(CJK_FONT_ENV).ok().as_deref())
    }

    /// [`FontConfig::from_env`] with the variable's value passed in (testable without
    /// touching the process environment).
    pub fn from_env_value(value: Option<&str>) -> Self {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Self::default(),
            Some(v) => {
                let (path, index) = match v.rsplit_once('#') {
                    Some((p, i)) if !p.is_empty() => match i.parse::<u32>() {
                        Ok(i) => (p, i),
                        Err(_) => (v, 0),
                    },
                    _ => (v, 0),
                };
                Self::from_path(path, index)
            }
        }
    }

    /// Loads the first candidate that exists. None found → `cjk_font_missing`.
    pub(crate) fn load(&self) -> Result<LoadedFont, PrintError> {
        for (path, index) in &self.candidates {
            if path.is_file() {
                let primary = Face::load(path, *index)?;
                // The whole point is Chinese text: a Latin-only font would print tofu boxes.
                if primary.advance('中').is_none() || primary.advance('诊').is_none() {
                    return Err(PrintError::FontInvalid {
                        path: path.display().to_string(),
                        reason: "the font has no CJK glyphs".into(),
                    });
                }
                let mut faces = vec![primary];
                // A broken fallback is not worth failing a print for: skip it.
                faces.extend(
                    self.fallbacks
                        .iter()
                        .filter(|(p, _)| p.is_file())
                        .filter_map(|(p, i)| Face::load(p, *i).ok()),
                );
                return Ok(LoadedFont { faces });
            }
        }
        Err(PrintError::CjkFontMissing {
            searched: self.candidates.iter().map(|(p, _)| p.display().to_string()).collect(),
        })
    }
}

/// The CJK font plus Latin fallbacks, with per-character font selection.
pub(crate) struct LoadedFont {
    faces: Vec<Face>,
}

impl LoadedFont {
    /// Index of the face that draws `c`: the first that has a glyph, else the CJK font.
    fn face_for(&self, c: char) -> usize {
        self.faces.iter().position(|f| f.advance(c).is_some()).unwrap_or(0)
    }

    pub(crate) fn krilla(&self, face: usize) -> krilla::text::Font {
        self.faces[face].krilla.clone()
    }

    /// Width of `text` at `size` points (sum of horizontal advances, no kerning: CJK
    /// fonts rarely kern, and the line breaker keeps a small safety margin).
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .map(|c| {
                let f = &self.faces[self.face_for(c)];
                f.advance(c).unwrap_or_else(|| f.notdef_advance())
            })
            .sum::<f32>()
            * size
    }

    /// Splits `text` into runs drawn with one face each: `(face, run)`.
    pub(crate) fn runs<'t>(&self, text: &'t str) -> Vec<(usize, &'t str)> {
        let mut runs = Vec::new();
        let mut start = 0;
        let mut current = None;
        for (i, c) in text.char_indices() {
            let f = self.face_for(c);
            match current {
                Some(cur) if cur != f => {
                    runs.push((cur, &text[start..i]));
                    start = i;
                    current = Some(f);
                }
                None => current = Some(f),
                _ => {}
            }
        }
        if let Some(cur) = current {
            runs.push((cur, &text[start..]));
        }
        runs
    }
}

/// One parsed face: the krilla handle for drawing plus advance widths for line breaking.
struct Face {
    krilla: krilla::text::Font,
    data: Arc<Vec<u8>>,
    index: u32,
    units_per_em: f32,
    /// Advance per char in em units, `None` when the face has no glyph for it;
    /// `RefCell` because measuring happens through `&self`.
    advances: RefCell<HashMap<char, Option<f32>>>,
}

impl Face {
    fn load(path: &Path, index: u32) -> Result<Self, PrintError> {
        let invalid = |reason: String| PrintError::FontInvalid {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        let data = Arc::new(bytes);
        let face = ttf_parser::Face::parse(&data, index).map_err(|e| invalid(format!("face {index}: {e}")))?;
        let units_per_em = f32::from(face.units_per_em().max(1));
        let krilla = krilla::text::Font::new(data.clone().into(), index)
            .ok_or_else(|| invalid("krilla could not read the font".into()))?;
        Ok(Self {
            krilla,
            data,
            index,
            units_per_em,
            advances: RefCell::new(HashMap::new()),
        })
    }

    fn parse(&self) -> Option<ttf_parser::Face<'_>> {
        ttf_parser::Face::parse(&self.data, self.index).ok()
    }

    /// Advance of `c` in em, `None` when the face has no glyph for it. Whitespace
    /// other than a plain space is measured as a space.
    fn advance(&self, c: char) -> Option<f32> {
        let c = if c.is_whitespace() { ' ' } else { c };
        if let Some(a) = self.advances.borrow().get(&c) {
            return *a;
        }
        let a = self.parse().and_then(|f| {
            let gid = f.glyph_index(c)?;
            Some(f32::from(f.glyph_hor_advance(gid).unwrap_or(0)) / self.units_per_em)
        });
        self.advances.borrow_mut().insert(c, a);
        a
    }

    fn notdef_advance(&self) -> f32 {
        self.parse()
            .and_then(|f| f.glyph_hor_advance(ttf_parser::GlyphId(0)))
            .map_or(1.0, |a| f32::from(a) / self.units_per_em)
    }
}
