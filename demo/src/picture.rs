//! The demo's picture: a block map of an image after a run, one cell per block coloured by the
//! file that holds it, metadata in its own colour, free blocks blank and blocks claimed twice in
//! red. Written as SVG (each run of cells one rectangle, named by its blocks) and PNG.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use volume::fsck::{BlockMap, Cell};

/// Red: a block claimed twice.
pub const RED: [u8; 3] = [0xe5, 0x39, 0x35];
/// Metadata: the volume's own structures, directories, indirect and attribute blocks.
pub const METADATA: [u8; 3] = [0x37, 0x47, 0x4f];
/// Leaked: marked in use, held by no file.
pub const LEAKED: [u8; 3] = [0xa0, 0xa0, 0xa0];
/// Free blocks: the background.
const FREE: [u8; 3] = [0xff, 0xff, 0xff];

/// Cells at most in one picture; past it each cell stands for several blocks.
const MAX_CELLS: u64 = 512 * 512;
/// Height of the caption above the cells, in pixels.
const CAPTION: u32 = 44;

#[derive(Debug, Clone, Serialize)]
/// The pictures of one run's image, and what they show.
pub struct Picture {
    /// The block map as SVG.
    pub svg: PathBuf,
    /// The same as PNG.
    pub png: PathBuf,
    /// Blocks of the image.
    pub blocks: u64,
    /// Blocks claimed twice (red).
    pub claimed_twice: u64,
    /// Blocks marked in use that no file holds.
    pub leaked: u64,
}

/// The colour of a cell; none for a free one.
pub fn colour(cell: Cell) -> Option<[u8; 3]> {
    match cell {
        Cell::Free => None,
        Cell::System | Cell::Meta(_) => Some(METADATA),
        Cell::Twice => Some(RED),
        Cell::Leaked => Some(LEAKED),
        Cell::Data(ino) => Some(file_colour(ino)),
    }
}

/// A colour for a file, far from red and from the metadata colour, different for neighbours.
fn file_colour(ino: u32) -> [u8; 3] {
    let hue = 50.0 + (ino as f64 * 137.508) % 240.0; // yellow through green and blue to violet
    let light = [0.52, 0.64, 0.42][ino as usize % 3];
    hsl(hue, 0.62, light)
}

fn hsl(h: f64, s: f64, l: f64) -> [u8; 3] {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    [r, g, b].map(|v| ((v + m) * 255.0).round() as u8)
}

/// What a run of blocks shown as one cell is: claimed twice if any is, else leaked if any is,
/// else what most of them are; free only if all are.
pub fn bucket(cells: &[Cell]) -> Cell {
    if let [one] = cells {
        return *one;
    }
    if cells.contains(&Cell::Twice) {
        return Cell::Twice;
    }
    if cells.contains(&Cell::Leaked) {
        return Cell::Leaked;
    }
    let mut n: HashMap<Cell, usize> = HashMap::new();
    for c in cells.iter().filter(|c| **c != Cell::Free) {
        *n.entry(*c).or_default() += 1;
    }
    n.into_iter()
        .max_by_key(|(c, k)| (*k, std::cmp::Reverse(rank(*c))))
        .map_or(Cell::Free, |(c, _)| c)
}

/// An order of cells, so that ties go the same way every time.
fn rank(c: Cell) -> (u8, u32) {
    match c {
        Cell::Twice => (0, 0),
        Cell::Leaked => (1, 0),
        Cell::System => (2, 0),
        Cell::Meta(i) => (3, i),
        Cell::Data(i) => (4, i),
        Cell::Free => (5, 0),
    }
}

/// How the cells are laid out: blocks `start..shown` (before them the volume's own
/// structures, after them free blocks), `per_cell` blocks to a cell, `cols` cells to a row,
/// each `px` pixels square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// The first block drawn: the first past the volume's own structures.
    pub start: u64,
    /// One past the last block drawn; every block from here on is free.
    pub shown: u64,
    /// Blocks per cell (1 unless the image is very large).
    pub per_cell: u64,
    /// Cells per row.
    pub cols: u64,
    /// Rows.
    pub rows: u64,
    /// Pixels per cell side.
    pub px: u32,
}

impl Grid {
    /// The layout for `map`: roughly twice as wide as high, at most 1024 pixels wide.
    pub fn for_map(map: &BlockMap) -> Grid {
        let start = map.data_start();
        let shown = map.extent().max(start + 1);
        let per_cell = (shown - start).div_ceil(MAX_CELLS);
        let cells = (shown - start).div_ceil(per_cell);
        let cols = (((cells * 2) as f64).sqrt().ceil() as u64).clamp(16, 512);
        let rows = cells.div_ceil(cols);
        let px = (1024 / cols).clamp(1, 12) as u32;
        Grid {
            start,
            shown,
            per_cell,
            cols,
            rows,
            px,
        }
    }
    /// The cells, in order, each what its blocks are.
    fn cells(&self, map: &BlockMap) -> Vec<Cell> {
        let end = (self.shown as usize).min(map.cells.len());
        map.cells[(self.start as usize).min(end)..end]
            .chunks(self.per_cell as usize)
            .map(bucket)
            .collect()
    }
    fn width(&self) -> u32 {
        (self.cols as u32 * self.px).max(560)
    }
}

/// The SVG of `map`, titled `label`.
pub fn svg(map: &BlockMap, label: &str) -> String {
    let g = Grid::for_map(map);
    let cells = g.cells(map);
    let height = CAPTION + g.rows as u32 * g.px + 24;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
         viewBox=\"0 0 {w} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>rwxfs demo: block map after the {label} run</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n",
        w = g.width()
    );
    let [counts, drawn] = caption(map, &g);
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"16\"><tspan font-weight=\"bold\">{label}</tspan>: {counts}</text>"
    );
    let _ = writeln!(s, "<text x=\"4\" y=\"34\" font-size=\"10\">{drawn}</text>");
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"{CAPTION}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ccc\"/>",
        g.cols as u32 * g.px,
        g.rows as u32 * g.px
    );
    for (first, len, cell) in runs(&cells, g.cols) {
        rect(&mut s, &g, first, len, cell);
    }
    legend(&mut s, CAPTION + g.rows as u32 * g.px + 16);
    s.push_str("</svg>\n");
    s
}

/// Two lines under the title: the counts, then what is drawn.
fn caption(map: &BlockMap, g: &Grid) -> [String; 2] {
    let scale = match g.per_cell {
        1 => "one cell per 4 KiB block".to_string(),
        n => format!("one cell per {n} blocks"),
    };
    let rest = match map.len().saturating_sub(g.shown) {
        0 => String::new(),
        n => format!(", the last {n} free"),
    };
    [
        format!(
            "{} blocks, {} claimed twice (red), {} leaked (grey)",
            map.len(),
            map.twice(),
            map.count(Cell::Leaked)
        ),
        format!(
            "blocks {} to {}, {scale} (the first {} hold the volume's own structures{rest})",
            g.start,
            g.shown - 1,
            g.start
        ),
    ]
}

/// Runs of equal cells within a row: (first cell, cells, what they are), free ones left out.
fn runs(cells: &[Cell], cols: u64) -> Vec<(u64, u64, Cell)> {
    let mut out: Vec<(u64, u64, Cell)> = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let i = i as u64;
        match out.last_mut() {
            Some((first, len, prev))
                if prev == c && *first + *len == i && !i.is_multiple_of(cols) =>
            {
                *len += 1
            }
            _ if *c == Cell::Free => {}
            _ => out.push((i, 1, *c)),
        }
    }
    out
}

/// One run of cells as a rectangle, named by its blocks and what holds them.
fn rect(s: &mut String, g: &Grid, first: u64, len: u64, cell: Cell) {
    let Some([r, gr, b]) = colour(cell) else {
        return;
    };
    let (class, what) = match cell {
        Cell::Twice => ("twice", "claimed twice".to_string()),
        Cell::Leaked => ("leaked", "leaked".to_string()),
        Cell::System => ("meta", "volume metadata".to_string()),
        Cell::Meta(i) => ("meta", format!("inode {i}'s metadata")),
        Cell::Data(i) => ("data", format!("inode {i}")),
        Cell::Free => return,
    };
    let lo = g.start + first * g.per_cell;
    let hi = (g.start + (first + len) * g.per_cell).min(g.shown) - 1;
    let _ = writeln!(
        s,
        "<rect class=\"{class}\" data-blocks=\"{lo}-{hi}\" x=\"{}\" y=\"{}\" width=\"{}\" \
         height=\"{}\" fill=\"#{r:02x}{gr:02x}{b:02x}\"><title>blocks {lo}-{hi}: {what}</title></rect>",
        (first % g.cols) as u32 * g.px,
        CAPTION + (first / g.cols) as u32 * g.px,
        len as u32 * g.px,
        g.px
    );
}

fn legend(s: &mut String, y: u32) {
    let items: [(&str, [u8; 3]); 4] = [
        ("a file's blocks (one colour per file)", file_colour(7)),
        ("metadata", METADATA),
        ("claimed twice", RED),
        ("leaked", LEAKED),
    ];
    let mut x = 4;
    for (name, [r, g, b]) in items {
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#{r:02x}{g:02x}{b:02x}\"/>\
             <text x=\"{}\" y=\"{y}\">{name}</text>",
            y - 9,
            x + 14
        );
        x += 20 + name.len() as u32 * 6;
    }
}

/// The PNG of `map`: the cells alone, as in the SVG.
pub fn png(map: &BlockMap, path: &Path) -> Result<(), String> {
    let g = Grid::for_map(map);
    let cells = g.cells(map);
    let (w, h) = (g.cols as u32 * g.px, g.rows as u32 * g.px);
    let mut data = vec![0u8; (w * h * 3) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = (y / g.px) as usize * g.cols as usize + (x / g.px) as usize;
            let c = cells.get(i).and_then(|c| colour(*c)).unwrap_or(FREE);
            let at = ((y * w + x) * 3) as usize;
            data[at..at + 3].copy_from_slice(&c);
        }
    }
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut wr| wr.write_image_data(&data))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Write `map`'s pictures into `dir` as `NAME.svg` and `NAME.png`, titled `label`.
pub fn write(map: &BlockMap, dir: &Path, name: &str, label: &str) -> Result<Picture, String> {
    let svg_path = dir.join(format!("{name}.svg"));
    std::fs::write(&svg_path, svg(map, label))
        .map_err(|e| format!("{}: {e}", svg_path.display()))?;
    let png_path = dir.join(format!("{name}.png"));
    png(map, &png_path)?;
    Ok(Picture {
        svg: svg_path,
        png: png_path,
        blocks: map.len(),
        claimed_twice: map.twice(),
        leaked: map.count(Cell::Leaked),
    })
}
