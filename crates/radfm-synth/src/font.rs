//! A 5x7 bitmap font for burned-in annotations and side markers.

const GLYPHS: &[(char, [u8; 7])] = &[
    (
        'A',
        [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'B',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
    ),
    (
        'C',
        [
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
    ),
    (
        'D',
        [
            0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110,
        ],
    ),
    (
        'E',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'F',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'G',
        [
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
    ),
    (
        'H',
        [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'I',
        [
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        'J',
        [
            0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
        ],
    ),
    (
        'K',
        [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'L',
        [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'M',
        [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'N',
        [
            0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
        ],
    ),
    (
        'O',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'P',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'Q',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
        ],
    ),
    (
        'R',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'S',
        [
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
    ),
    (
        'T',
        [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'U',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'V',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
    ),
    (
        'W',
        [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
    ),
    (
        'X',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
    ),
    (
        'Y',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'Z',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
        ],
    ),
    (
        '0',
        [
            0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
        ],
    ),
    (
        '1',
        [
            0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        '2',
        [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
        ],
    ),
    (
        '3',
        [
            0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '4',
        [
            0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
        ],
    ),
    (
        '5',
        [
            0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '6',
        [
            0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '7',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
        ],
    ),
    (
        '8',
        [
            0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '9',
        [
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
        ],
    ),
    ('-', [0, 0, 0, 0b11111, 0, 0, 0]),
    (':', [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0]),
    (
        '/',
        [
            0b00001, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b10000,
        ],
    ),
    ('.', [0, 0, 0, 0, 0, 0b01100, 0b01100]),
    ('^', [0b00100, 0b01010, 0b10001, 0, 0, 0, 0]),
    (',', [0, 0, 0, 0, 0b01100, 0b00100, 0b01000]),
];

fn glyph(c: char) -> Option<&'static [u8; 7]> {
    let c = c.to_ascii_uppercase();
    GLYPHS.iter().find(|g| g.0 == c).map(|g| &g.1)
}

/// Draw `text` into a `w`-wide image at (x, y), each font pixel a `scale` x `scale` block, with `value`.
pub fn draw(img: &mut [f32], w: usize, x: usize, y: usize, scale: usize, text: &str, value: f32) {
    draw_styled(img, w, x, y, &Style::plain(scale), text, value);
}

/// How text is drawn: the variety burned-in annotations come in (sizes,
/// aspect, weight, slant, letter spacing), so that a text detector is not
/// tuned to one rendering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// width and height of a font pixel, in image pixels
    pub sx: usize,
    pub sy: usize,
    /// strokes one pixel wider
    pub bold: bool,
    /// slant: rows shifted right by up to this many pixels at the top
    pub slant: usize,
    /// columns between characters, in font pixels (the plain font has 1)
    pub spacing: usize,
}

impl Style {
    pub fn plain(scale: usize) -> Style {
        Style {
            sx: scale,
            sy: scale,
            bold: false,
            slant: 0,
            spacing: 1,
        }
    }

    /// Width in pixels of `text` in this style.
    pub fn width(&self, text: &str) -> usize {
        text.chars().count() * (5 + self.spacing) * self.sx + self.slant + usize::from(self.bold)
    }

    /// Height in pixels of a line of text in this style.
    pub fn height(&self) -> usize {
        7 * self.sy
    }
}

/// Draw `text` in `style`; returns the pixels set (indices into `img`).
pub fn draw_styled(
    img: &mut [f32],
    w: usize,
    x: usize,
    y: usize,
    style: &Style,
    text: &str,
    value: f32,
) -> Vec<usize> {
    let h = img.len() / w;
    let mut set = Vec::new();
    let (sx, sy) = (style.sx.max(1), style.sy.max(1));
    for (k, c) in text.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        let gx = x + k * (5 + style.spacing) * sx;
        for (r, bits) in g.iter().enumerate() {
            let shift = style.slant * (6 - r) / 6;
            for col in 0..5 {
                if bits & (1 << (4 - col)) == 0 {
                    continue;
                }
                for dy in 0..sy {
                    for dx in 0..sx + usize::from(style.bold) {
                        let (px, py) = (gx + shift + col * sx + dx, y + r * sy + dy);
                        if px < w && py < h {
                            img[py * w + px] = value;
                            set.push(py * w + px);
                        }
                    }
                }
            }
        }
    }
    set
}

/// Width in pixels of `text` drawn at `scale`.
pub fn width(text: &str, scale: usize) -> usize {
    text.chars().count() * 6 * scale
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_inside_and_clips() {
        let mut img = vec![0f32; 40 * 10];
        super::draw(&mut img, 40, 1, 1, 1, "R1", 1.0);
        assert!(img.iter().filter(|v| **v == 1.0).count() > 20);
        super::draw(&mut img, 40, 38, 8, 2, "W", 1.0); // clipped, no panic
        assert_eq!(super::width("AB", 2), 24);
    }
}
