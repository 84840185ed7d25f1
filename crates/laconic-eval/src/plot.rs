//! SVG plots with plotters' SVG backend, laconic's one plotting module: accuracy against the budget on
//! a log₂ axis, overlaid length histograms, bands of mean ± spread (the lab) and plain lines (a run's
//! training curves).
//!
//! Only the `svg_backend` and `line_series` features are on: text is written as SVG `<text>` elements and
//! laid out by the viewer, so no font file, fontconfig or freetype is needed to build or draw.

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::distribution::Histogram;
use crate::error::{Error, Result};
use crate::report::{benchmark_names, file_stem, EvalReport};

/// Chart size in pixels.
const SIZE: (u32, u32) = (860, 520);

/// Tableau 10: distinguishable lines and bars.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A line of an accuracy chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// `(budget, accuracy in [0, 1])`, ascending budgets.
    pub points: Vec<(usize, f64)>,
    /// Palette index.
    pub color: usize,
    /// Dashed instead of solid.
    pub dashed: bool,
}

/// One histogram of an overlaid-histogram chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars<'a> {
    /// Legend text.
    pub label: String,
    /// The counts.
    pub histogram: &'a Histogram,
    /// Divisor of the counts (bars show `count / total`); 0 draws nothing.
    pub total: usize,
    /// Palette index.
    pub color: usize,
}

/// `2048` → `2k`, `1000` → `1000`.
pub fn budget_label(budget: usize) -> String {
    if budget >= 1024 && budget.is_multiple_of(1024) {
        format!("{}k", budget / 1024)
    } else {
        budget.to_string()
    }
}

/// Draws accuracy (%) against the budget, x on a log₂ scale with a tick at every budget.
///
/// # Errors
/// When the file cannot be written.
pub fn accuracy_chart(path: &Path, title: &str, lines: &[Line]) -> Result<PathBuf> {
    draw(path, |root| {
        let mut budgets: Vec<usize> = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        let log2 = |b: usize| (b.max(1) as f64).log2();
        let keys: Vec<f64> = budgets.iter().map(|&b| log2(b)).collect();
        let lo = keys.first().copied().unwrap_or(0.0) - 0.3;
        let hi = keys.last().copied().unwrap_or(1.0) + 0.3;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..hi, 0.0..100.0)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .light_line_style(BLACK.mix(0.04))
            .axis_desc_style(("sans-serif", 16))
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("token budget B (log₂ scale)")
            .y_desc("accuracy (%)")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        // A tick, a grid line and a label at every budget (plotters' own ticks would fall between budgets).
        let grid = BLACK.mix(0.15);
        for (&b, &x) in budgets.iter().zip(&keys) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, 100.0)],
                grid,
            )))?;
            let (px, py) = chart.backend_coord(&(x, 0.0));
            let style = TextStyle::from(("sans-serif", 15).into_font())
                .pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK))?;
            root.draw(&Text::new(budget_label(b), (px, py + 8), style))?;
        }
        for line in lines {
            let style = color(line.color).stroke_width(2);
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .map(|&(b, y)| (log2(b), 100.0 * y))
                .collect();
            let anno = if line.dashed {
                chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))?
            } else {
                chart.draw_series(LineSeries::new(points.clone(), style))?
            };
            let dashed = line.dashed;
            anno.label(&line.label).legend(move |(x, y)| {
                let end = if dashed { x + 9 } else { x + 20 };
                PathElement::new(vec![(x, y), (end, y)], style)
            });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, style.filled())))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

/// Draws histograms over one another as translucent bars, each normalised by its `total`.
///
/// # Errors
/// When the file cannot be written.
pub fn histogram_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    layers: &[Bars<'_>],
) -> Result<PathBuf> {
    draw(path, |root| {
        let fraction = |b: &Bars<'_>, count: usize| {
            if b.total == 0 {
                0.0
            } else {
                count as f64 / b.total as f64
            }
        };
        let x_max = layers
            .iter()
            .filter_map(|b| b.histogram.edges.last().copied())
            .fold(1.0, f64::max);
        let y_max = layers
            .iter()
            .flat_map(|b| b.histogram.counts.iter().map(move |&c| fraction(b, c)))
            .fold(0.0, f64::max);
        let y_top = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .light_line_style(BLACK.mix(0.04))
            .axis_desc_style(("sans-serif", 16))
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc("fraction of samples")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()?;
        for layer in layers {
            let fill = color(layer.color).mix(0.45).filled();
            let edge = color(layer.color).stroke_width(1);
            let h = layer.histogram;
            let bars: Vec<(f64, f64, f64)> = h
                .counts
                .iter()
                .enumerate()
                .map(|(i, &c)| (h.edges[i], h.edges[i + 1], fraction(layer, c)))
                .collect();
            chart
                .draw_series(
                    bars.iter()
                        .map(|&(x0, x1, y)| Rectangle::new([(x0, 0.0), (x1, y)], fill)),
                )?
                .label(&layer.label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], fill));
            chart.draw_series(
                bars.iter()
                    .map(|&(x0, x1, y)| Rectangle::new([(x0, 0.0), (x1, y)], edge)),
            )?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// A curve with a band: the mean over runs (e.g. seeds) and ± one spread around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Legend text.
    pub label: String,
    /// `(x, mean, spread)`, ascending `x`.
    pub points: Vec<(f64, f64, f64)>,
    /// Palette index.
    pub color: usize,
}

/// Draws each band's mean as a line over a translucent `mean ± spread` area.
///
/// # Errors
/// When the file cannot be written.
pub fn band_chart(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    bands: &[Band],
) -> Result<PathBuf> {
    draw(path, |root| {
        let all = bands.iter().flat_map(|b| b.points.iter());
        let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, m, s) in all.filter(|p| p.1.is_finite() && p.2.is_finite()) {
            x_max = x_max.max(x);
            y_min = y_min.min(m - s);
            y_max = y_max.max(m + s);
        }
        if !y_min.is_finite() {
            (y_min, y_max) = (0.0, 1.0);
        }
        let mut chart = cartesian(root, title, (x_desc, y_desc), x_max, (y_min, y_max))?;
        for band in bands {
            let points: Vec<(f64, f64, f64)> = band
                .points
                .iter()
                .copied()
                .filter(|p| p.1.is_finite() && p.2.is_finite())
                .collect();
            let mut outline: Vec<(f64, f64)> = points.iter().map(|&(x, m, s)| (x, m + s)).collect();
            outline.extend(points.iter().rev().map(|&(x, m, s)| (x, m - s)));
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color(band.color).mix(0.18).filled(),
            )))?;
            let style = color(band.color).stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, m, _)| (x, m)),
                    style,
                ))?
                .label(&band.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// A named series of `(x, y)` points: one line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// The points, in drawing order (non-finite ones are skipped).
    pub points: Vec<(f64, f64)>,
}

/// Draws each series as a line (the training curves of a run folder). Nothing is written when no
/// series has a finite point; returns whether the file was written.
///
/// # Errors
/// When the file cannot be written.
pub fn line_chart(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[Series],
) -> Result<Option<PathBuf>> {
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()).filter(finite) {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        return Ok(None);
    }
    draw(path, |root| {
        let mut chart = cartesian(root, title, (x_desc, y_desc), x_max, (y_min, y_max))?;
        for (i, s) in series.iter().enumerate() {
            let style = color(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().filter(finite).copied(),
                    style,
                ))?
                .label(&s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
    .map(Some)
}

/// A titled chart on `root` over `[0, x_max] × [y_min, y_max]` (the values' range padded by 5 %),
/// its mesh and axis names drawn: the frame of the line and band charts.
fn cartesian<'a, 'b: 'a>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    x_max: f64,
    (y_min, y_max): (f64, f64),
) -> std::result::Result<
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    Box<dyn std::error::Error>,
> {
    let pad = ((y_max - y_min) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 15))
        .light_line_style(BLACK.mix(0.04))
        .axis_desc_style(("sans-serif", 16))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// The legend box of every chart, at `position`.
fn legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Opens an SVG drawing area on `path`, runs `body`, and writes the file.
fn draw(
    path: &Path,
    body: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<PathBuf> {
    let plot_error = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    body(&root).map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))?;
    Ok(path.to_path_buf())
}

/// `accuracy.svg` (Mean@k solid, Pass@k at the largest k dashed, a colour per benchmark) and
/// `lengths-<benchmark>.svg` (correct vs incorrect at the largest budget) of a report.
pub(crate) fn report_plots(r: &EvalReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let k = r.config.samples;
    let pass_k = r.config.pass_ks().last().copied().unwrap_or(k);
    let mut lines = Vec::new();
    for (i, bench) in r.benchmarks.iter().enumerate() {
        let series = |f: &dyn Fn(&crate::BudgetMetrics) -> Option<f64>| -> Vec<(usize, f64)> {
            bench
                .budgets
                .iter()
                .filter_map(|m| f(m).map(|y| (m.budget, y)))
                .collect()
        };
        lines.push(Line {
            label: format!("{} Mean@{k}", bench.name),
            points: series(&|m| Some(m.mean_at_k)),
            color: i,
            dashed: false,
        });
        lines.push(Line {
            label: format!("{} Pass@{pass_k}", bench.name),
            points: series(&|m| m.pass_at_k.get(&pass_k).copied()),
            color: i,
            dashed: true,
        });
    }
    let title = match &r.info.model {
        Some(model) => format!("Accuracy vs budget: {model}"),
        None => "Accuracy vs budget".to_string(),
    };
    let mut written = vec![accuracy_chart(&dir.join("accuracy.svg"), &title, &lines)?];
    for bench in &r.benchmarks {
        let Some(m) = bench.at_max() else { continue };
        let total = m.lengths.all.count;
        let layers = [
            Bars {
                label: format!("correct ({})", m.lengths.correct.count),
                histogram: &m.lengths.correct.histogram,
                total,
                color: 2,
            },
            Bars {
                label: format!("incorrect ({})", m.lengths.incorrect.count),
                histogram: &m.lengths.incorrect.histogram,
                total,
                color: 3,
            },
        ];
        let path = dir.join(format!("lengths-{}.svg", file_stem(&bench.name)));
        let title = format!("{}: response lengths at B = {}", bench.name, m.budget);
        written.push(histogram_chart(
            &path,
            &title,
            "response length (tokens)",
            &layers,
        )?);
    }
    Ok(written)
}

/// `compare-accuracy.svg` (Mean@k of each benchmark: `before` dashed, `after` solid) and
/// `compare-lengths-<benchmark>.svg` (all samples at each run's largest budget).
pub(crate) fn comparison_plots(
    before: &EvalReport,
    after: &EvalReport,
    labels: [&str; 2],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let names = benchmark_names(before, after);
    let mut lines = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for (run, label, dashed) in [(before, labels[0], true), (after, labels[1], false)] {
            if let Some(bench) = run.benchmark(name) {
                lines.push(Line {
                    label: format!("{name} Mean@{} {label}", run.config.samples),
                    points: bench
                        .budgets
                        .iter()
                        .map(|m| (m.budget, m.mean_at_k))
                        .collect(),
                    color: i,
                    dashed,
                });
            }
        }
    }
    let title = format!("Accuracy vs budget: {} → {}", labels[0], labels[1]);
    let mut written = vec![accuracy_chart(
        &dir.join("compare-accuracy.svg"),
        &title,
        &lines,
    )?];
    for name in &names {
        let at_max = |r: &EvalReport| r.benchmark(name).and_then(|b| b.at_max()).cloned();
        let (Some(x), Some(y)) = (at_max(before), at_max(after)) else {
            continue;
        };
        let layers = [
            Bars {
                label: format!("{} (B = {})", labels[0], x.budget),
                histogram: &x.lengths.all.histogram,
                total: x.lengths.all.count,
                color: 0,
            },
            Bars {
                label: format!("{} (B = {})", labels[1], y.budget),
                histogram: &y.lengths.all.histogram,
                total: y.lengths.all.count,
                color: 1,
            },
        ];
        let path = dir.join(format!("compare-lengths-{}.svg", file_stem(name)));
        written.push(histogram_chart(
            &path,
            &format!("{name}: response lengths"),
            "response length (tokens)",
            &layers,
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_labels() {
        assert_eq!(budget_label(2048), "2k");
        assert_eq!(budget_label(32768), "32k");
        assert_eq!(budget_label(1000), "1000");
        assert_eq!(budget_label(16), "16");
    }

    #[test]
    fn charts_are_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("laconic-eval-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [Line {
            label: "gsm8k Mean@4".into(),
            points: vec![(16, 0.1), (64, 0.5), (256, 0.75)],
            color: 0,
            dashed: false,
        }];
        let path = accuracy_chart(&dir.join("a.svg"), "title", &lines).unwrap();
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("gsm8k Mean@4") && svg.contains("\n256\n"),
            "{svg}"
        );
        let h = Histogram::equal_width(&[1.0, 2.0, 9.0], 0.0, 10.0, 5);
        let bars = [Bars {
            label: "all".into(),
            histogram: &h,
            total: 3,
            color: 0,
        }];
        let svg =
            std::fs::read_to_string(histogram_chart(&dir.join("h.svg"), "t", "x", &bars).unwrap())
                .unwrap();
        assert!(
            svg.contains("<rect") && svg.contains("fraction of samples"),
            "{svg}"
        );
        let bands = [Band {
            label: "easy (3 seeds)".into(),
            points: vec![(1.0, 0.5, 0.1), (2.0, 0.7, 0.05), (3.0, f64::NAN, 0.0)],
            color: 1,
        }];
        let path = band_chart(&dir.join("b.svg"), "t", ("step", "accuracy"), &bands).unwrap();
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.contains("<polygon") && svg.contains("easy (3 seeds)") && svg.contains("step"),
            "{svg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
