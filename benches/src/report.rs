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

/// Aggregate MiB/s against concurrent writers, as SVG.
pub fn plot(path: &Path, system: &str, outcomes: &[Outcome]) -> Result<(), String> {
    use plotters::prelude::*;
    let points: Vec<(u32, f64)> = outcomes
        .iter()
        .filter_map(|o| o.writers.map(|k| (k as u32, o.value)))
        .collect();
    if points.is_empty() {
        return Err("no scaling figures to plot (the scaling workload did not run)".into());
    }
    let max_x = points.iter().map(|p| p.0).max().unwrap_or(1);
    let max_y = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let draw = |root: DrawingArea<_, _>| -> Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{system}: throughput against concurrent writers"),
                ("sans-serif", 20),
            )
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
        chart
            .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, BLUE.filled())),
            )
            .map_err(|e| e.to_string())?;
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
