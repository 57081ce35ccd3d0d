//! The block maps in a terminal: one strip per run, downsampled to fit the width, all three at
//! the same scale so they compare; coloured on a terminal that takes colour, plain characters
//! otherwise (not a terminal, or NO_COLOR set).

use std::io::IsTerminal;
use std::ops::Range;

use volume::fsck::{BlockMap, Cell};

use crate::picture::{bucket, colour};
use crate::report::DemoReport;

/// How strips are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Characters across, the labels included.
    pub width: usize,
    /// ANSI colours, or plain characters.
    pub colour: bool,
}

impl Style {
    /// For standard output: its width if it is a terminal (80 otherwise), colour if it is a
    /// terminal and NO_COLOR is unset or empty.
    pub fn for_stdout() -> Style {
        let tty = std::io::stdout().is_terminal();
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let width = console::Term::stdout()
            .size_checked()
            .map_or(80, |(_, cols)| cols as usize);
        Style {
            width: width.clamp(40, 200),
            colour: tty && !no_colour,
        }
    }
}

/// Width of the labels before the strips.
const LABEL: usize = 22;

/// The three runs' strips and a line of legend.
pub fn render(maps: [Option<&BlockMap>; 3], style: Style) -> String {
    let start = maps
        .iter()
        .flatten()
        .map(|m| m.data_start())
        .min()
        .unwrap_or(0);
    let extent = maps.iter().flatten().map(|m| m.extent()).max().unwrap_or(1);
    let extent = extent.max(start + 1);
    let chars = style.width.saturating_sub(LABEL + 2).max(10);
    let per = (extent - start).div_ceil(chars as u64).max(1);
    let mut s = format!(
        "\nBlock maps after each run: blocks {start} to {} (before, the volume's own structures; \
         after, free), {per} to a character:\n",
        extent - 1
    );
    let labels = ["through the server", "raw shared image", "direct"];
    for (label, map) in labels.iter().zip(maps) {
        s.push_str(&format!("{label:<LABEL$}"));
        match map {
            Some(m) => s.push_str(&strip(m, start..extent, per, style.colour)),
            None => s.push_str("(the image could not be read)"),
        }
        s.push('\n');
    }
    s.push_str(&legend(style.colour));
    s
}

/// Where the pictures are, if any were drawn.
pub fn pictures(d: &DemoReport) -> String {
    let mut s = String::new();
    let pictures: Vec<String> = [&d.shared, &d.raw, &d.direct]
        .iter()
        .filter_map(|side| side.picture.as_ref())
        .map(|p| p.svg.display().to_string())
        .collect();
    if !pictures.is_empty() {
        s.push_str(&format!(
            "\nBlock maps drawn (SVG, and PNG beside each): {}\n",
            pictures.join("  ")
        ));
    }
    s
}

/// One map's strip: `blocks`, `per` to a character.
fn strip(m: &BlockMap, blocks: Range<u64>, per: u64, colour: bool) -> String {
    let end = (blocks.end as usize).min(m.cells.len());
    let start = (blocks.start as usize).min(end);
    let mut s = String::from("|");
    for chunk in m.cells[start..end].chunks(per as usize) {
        s.push_str(&glyph(bucket(chunk), colour));
    }
    if colour {
        s.push_str("\x1b[0m");
    }
    s.push('|');
    s
}

fn glyph(c: Cell, colour: bool) -> String {
    if !colour {
        return match c {
            Cell::Free => " ",
            Cell::Twice => "X",
            Cell::Leaked => "?",
            Cell::System | Cell::Meta(_) => "#",
            Cell::Data(_) => "=",
        }
        .into();
    }
    match colour_of(c) {
        Some(n) => format!("\x1b[38;5;{n}m\u{2588}"),
        None => "\x1b[0m ".into(),
    }
}

/// The nearest of the 216 colours of a 256-colour terminal; the brightest red for a block
/// claimed twice, which no file's colour comes near.
fn colour_of(c: Cell) -> Option<u8> {
    if c == Cell::Twice {
        return Some(196);
    }
    let [r, g, b] = colour(c)?;
    let six = |v: u8| (v as u16 * 5 + 127) / 255;
    Some((16 + 36 * six(r) + 6 * six(g) + six(b)) as u8)
}

fn legend(colour: bool) -> String {
    let items = [
        (Cell::Data(7), "a file (one colour each)"),
        (Cell::System, "metadata"),
        (Cell::Twice, "claimed twice"),
        (Cell::Leaked, "leaked"),
    ];
    let mut s = format!("{:<LABEL$}", "");
    for (c, name) in items {
        s.push_str(&glyph(c, colour));
        if colour {
            s.push_str("\x1b[0m");
        }
        s.push_str(&format!(" {name}   "));
    }
    s.push_str("(blank: free)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(cells: Vec<Cell>) -> BlockMap {
        BlockMap { cells }
    }

    #[test]
    fn a_plain_strip_marks_a_bucket_with_one_block_claimed_twice() {
        let mut cells = vec![Cell::System; 4];
        cells.extend(vec![Cell::Data(3); 12]);
        cells[9] = Cell::Twice;
        cells.extend(vec![Cell::Free; 100]);
        let s = strip(&map(cells), 0..16, 4, false);
        assert_eq!(s, "|#=X=|");
    }

    #[test]
    fn a_coloured_strip_uses_red_only_for_blocks_claimed_twice() {
        let red = format!("38;5;{}m", colour_of(Cell::Twice).unwrap());
        let clean = strip(
            &map(vec![Cell::Data(1), Cell::Meta(1), Cell::Free]),
            0..3,
            1,
            true,
        );
        assert!(!clean.contains(&red), "{clean:?}");
        for ino in 0..5000 {
            let c = colour_of(Cell::Data(ino)).unwrap();
            // No file is red: the 256-colour cube's colours with red well above green and blue.
            let (r, g, b) = ((c - 16) / 36, (c - 16) / 6 % 6, (c - 16) % 6);
            assert!(
                !(r >= 3 && g + 2 <= r && b + 2 <= r),
                "inode {ino}: colour {c}"
            );
        }
        let bad = strip(&map(vec![Cell::Data(1), Cell::Twice]), 0..2, 1, true);
        assert!(bad.contains(&red), "{bad:?}");
    }
}
