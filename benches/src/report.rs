//! The run's results: a table for people, JSON for scripts, and a plot of throughput against
//! the number of concurrent writers.

use std::path::Path;

use crate::workloads::Outcome;

/// One line per figure, aligned; the verification column says what was found wrong.
pub fn table(system: &str, outcomes: &[Outcome], rss: Option<(u64, u64)>) -> String {
    let w = outcomes
        .iter()
        .map(|o| o.workload.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!("rwxfs bench on {system}\n\n");
    out += &format!(
        "{:<w$}  {:>12}  {:<9}  {}\n",
        "workload", "value", "unit", "data"
    );
    out += &format!("{}\n", "-".repeat(w + 40));
    for o in outcomes {
        let data = match &o.wrong {
            None => "verified".to_string(),
            Some(e) => format!("WRONG: {e}"),
        };
        let note = if o.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", o.note)
        };
        out += &format!(
            "{:<w$}  {:>12.1}  {:<9}  {data}{note}\n",
            o.workload, o.value, o.unit
        );
    }
    if let Some((server, client)) = rss {
        out += &format!(
            "\npeak memory: server {:.1} MiB, largest mount {:.1} MiB\n",
            server as f64 / 1024.0,
            client as f64 / 1024.0
        );
    }
    out
}

#[derive(serde::Serialize)]
struct Json<'a> {
    system: &'a str,
    outcomes: &'a [Outcome],
    all_verified: bool,
    peak_rss_kib: Option<PeakRss>,
}

#[derive(serde::Serialize)]
struct PeakRss {
    server: u64,
    largest_mount: u64,
}

/// The figures as JSON, named by the system measured, with its memory use when known.
pub fn json(system: &str, outcomes: &[Outcome], rss: Option<(u64, u64)>) -> String {
    serde_json::to_string_pretty(&Json {
        system,
        outcomes,
        all_verified: outcomes.iter().all(|o| o.wrong.is_none()),
        peak_rss_kib: rss.map(|(server, largest_mount)| PeakRss {
            server,
            largest_mount,
        }),
    })
    .unwrap_or_default()
}

/// One point of the writers curve, on both paths.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CurvePoint {
    /// Concurrent writers, each on a mount process of its own.
    pub writers: usize,
    /// Their aggregate MiB/s through the server.
    pub server: f64,
    /// Their aggregate MiB/s on direct mounts.
    pub direct: f64,
    /// Direct over the server path.
    pub direct_over_server: f64,
}

/// The writers curve of both runs, point by point: the counts both measured.
pub fn curve(server: &[Outcome], direct: &[Outcome]) -> Vec<CurvePoint> {
    server
        .iter()
        .filter_map(|o| Some((o.writers?, o.value)))
        .filter_map(|(writers, server)| {
            let direct = direct.iter().find(|o| o.writers == Some(writers))?.value;
            Some(CurvePoint {
                writers,
                server,
                direct,
                direct_over_server: direct / server.max(f64::MIN_POSITIVE),
            })
        })
        .collect()
}

/// The curve as a table: one row per writer count, both paths and their ratio.
pub fn curve_table(points: &[CurvePoint]) -> String {
    let mut out = String::from(
        "aggregate write throughput, MiB/s, each writer on a mount process of its own\n\n",
    );
    out += &format!(
        "{:<8}  {:>18}  {:>10}  {:>15}\n",
        "writers", "through the server", "direct", "direct / server"
    );
    out += &format!("{}\n", "-".repeat(57));
    for p in points {
        out += &format!(
            "{:<8}  {:>18.1}  {:>10.1}  {:>14.2}×\n",
            p.writers, p.server, p.direct, p.direct_over_server
        );
    }
    out
}

/// Aggregate MiB/s against concurrent writers, as SVG: one curve per run, named.
pub fn plot(path: &Path, title: &str, runs: &[(&str, &[Outcome])]) -> Result<(), String> {
    use plotters::prelude::*;
    let curves: Vec<(&str, Vec<(u32, f64)>)> = runs
        .iter()
        .map(|(name, outcomes)| {
            let points = outcomes
                .iter()
                .filter_map(|o| o.writers.map(|k| (k as u32, o.value)))
                .collect();
            (*name, points)
        })
        .collect();
    if curves.iter().all(|(_, p)| p.is_empty()) {
        return Err("no scaling figures to plot (the scaling workload did not run)".into());
    }
    let all = || curves.iter().flat_map(|(_, p)| p.iter());
    let max_x = all().map(|p| p.0).max().unwrap_or(1);
    let max_y = all().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let colours = [BLUE, RGBColor(0x2e, 0x9d, 0x4f)];
    let draw = |root: DrawingArea<_, _>| -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0u32..max_x + 1, 0.0..max_y)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("concurrent writers (one mount each)")
            .y_desc("aggregate MiB/s")
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (name, points)) in curves.iter().enumerate() {
            let c = colours[k % colours.len()];
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, c.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        if curves.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => draw(SVGBackend::new(path, (800, 500)).into_drawing_area()),
        _ => Err(format!(
            "{}: the plot is written as SVG: name it FILE.svg",
            path.display()
        )),
    }
}
