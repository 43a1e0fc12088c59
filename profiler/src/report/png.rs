//! `memory.png`: memory over time, epoch ends as dashed lines, validation shaded, and the
//! fitted epoch-end trend of each plotted series drawn dashed in its colour.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::analysis::Analysis;
use crate::error::Error;

/// DejaVu Sans ships with the crate so PNGs render on machines without fontconfig.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Series drawn, in legend order, with their colours.
const PLOTTED: &[(&str, RGBColor)] = &[
    ("rss_bytes", RGBColor(31, 119, 180)),
    ("rss_in_use_bytes", RGBColor(23, 190, 207)),
    ("je_resident_bytes", RGBColor(44, 160, 44)),
    ("je_allocated_bytes", RGBColor(214, 39, 40)),
    ("heap_exact_bytes", RGBColor(140, 86, 75)),
    ("gpu_process_used_bytes", RGBColor(127, 127, 127)),
    ("gpu_reserved_bytes", RGBColor(148, 103, 189)),
    ("gpu_allocated_bytes", RGBColor(255, 127, 14)),
    // A watched process tree.
    ("tree_rss_bytes", RGBColor(170, 170, 170)),
    ("tree_pss_bytes", RGBColor(31, 119, 180)),
    ("main_uss_bytes", RGBColor(44, 160, 44)),
    ("workers_uss_bytes", RGBColor(214, 39, 40)),
    ("gpu_tree_used_bytes", RGBColor(148, 103, 189)),
];

fn axis_unit(max: f64) -> (f64, &'static str) {
    if max >= 2.0 * 1024f64.powi(3) {
        (1024f64.powi(3), "GiB")
    } else {
        (1024f64.powi(2), "MiB")
    }
}

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The frame both plots share: white canvas, caption, axes with their descriptions.
fn styled_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    (x_desc, y_desc): (&str, &str),
    x_labels: usize,
) -> Result<Chart<'a, 'b>, String> {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 30))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(x_labels)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Draw the legend and write the image.
fn finish_chart<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, root: &DrawingArea<BitMapBackend<'b>, Shift>, position: SeriesLabelPosition, font: u32) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", font))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Draw the plot of `a` into `path`.
pub fn draw_memory(a: &Analysis, path: &Path) -> Result<(), Error> {
    let to_err = |e: &dyn std::fmt::Display| Error::Plot { path: path.to_path_buf(), message: e.to_string() };

    let series: Vec<_> = PLOTTED
        .iter()
        .filter_map(|(c, colour)| a.plot.series.iter().find(|s| s.column == *c).map(|s| (s, *colour)))
        .collect();
    let t_max = a.duration_s.max(1e-3);
    let y_max = series.iter().flat_map(|(s, _)| s.points.iter().map(|p| p.1)).max().unwrap_or(1) as f64;
    let (unit, unit_name) = axis_unit(y_max);
    let y_top = (y_max / unit * 1.1).max(1.0);

    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    let title = format!("Memory over time: verdict {}", a.verdict);
    let y_desc = format!("memory ({unit_name})");
    let mut chart = styled_chart(&root, &title, 0f64..t_max, 0f64..y_top, ("seconds since start", &y_desc), 12).map_err(|e| to_err(&e))?;

    // Validation spans, shaded.
    let shade = RGBColor(255, 200, 120).mix(0.25);
    chart
        .draw_series(a.plot.validations.iter().map(|&(s, e)| Rectangle::new([(s, 0.0), (e.max(s + t_max * 0.002), y_top)], shade.filled())))
        .map_err(|e| to_err(&e))?
        .label("validation")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], shade.filled()));
    // Epoch ends, dashed.
    for &(_, t) in &a.plot.epoch_ends {
        chart
            .draw_series(DashedLineSeries::new(vec![(t, 0.0), (t, y_top)], 6, 4, BLACK.mix(0.35).into()))
            .map_err(|e| to_err(&e))?;
    }

    for (s, colour) in &series {
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(t, v)| (t, v as f64 / unit)).collect();
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(|e| to_err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
        // The fitted trend over the epochs it used, on the epoch-end times.
        let Some(v) = a.series(&s.column) else { continue };
        let (Some(slope), Some(icept)) = (v.slope_bytes_per_epoch, v.intercept_bytes) else { continue };
        let times: Vec<(f64, f64)> = a
            .plot
            .epoch_ends
            .iter()
            .filter(|(e, _)| v.fitted_epochs.contains(e))
            .map(|&(e, t)| (t, (icept + slope * e as f64) / unit))
            .collect();
        if times.len() >= 2 {
            let ends = vec![times[0], times[times.len() - 1]];
            chart
                .draw_series(DashedLineSeries::new(ends, 10, 6, colour.stroke_width(2)))
                .map_err(|e| to_err(&e))?;
        }
    }
    finish_chart(&mut chart, &root, SeriesLabelPosition::LowerRight, 18).map_err(|e| to_err(&e))
}

/// Sites drawn in `callsites.png`.
const TOP_SITES: usize = 6;

/// Draw live bytes per epoch of the top sites (growing first) into `path`.
pub fn draw_sites(a: &Analysis, path: &Path) -> Result<(), Error> {
    let lines: Vec<(String, Vec<(u32, u64)>)> = a
        .sites
        .iter()
        .take(TOP_SITES)
        .map(|s| {
            // Shorten the function, never the location or the class.
            let function: String = if s.function.chars().count() > 48 {
                s.function.chars().take(47).chain(std::iter::once('…')).collect()
            } else {
                s.function.clone()
            };
            let caller = s.via.split(" <- ").next().filter(|c| !c.is_empty()).map(|c| format!(" via {c}")).unwrap_or_default();
            (format!("{function} ({}){caller} [{}]", s.location, s.class.as_str()), s.bytes_by_epoch.clone())
        })
        .collect();
    let caption = format!("Call sites at epoch ends: {}", a.sites_source.map_or("live heap", |s| s.describe()));
    draw_epoch_lines(path, &caption, "live bytes", &lines)
}

/// Lines of bytes by epoch, one per label, with a point at each epoch end.
pub fn draw_epoch_lines(path: &Path, caption: &str, what: &str, lines: &[(String, Vec<(u32, u64)>)]) -> Result<(), Error> {
    let to_err = |e: &dyn std::fmt::Display| Error::Plot { path: path.to_path_buf(), message: e.to_string() };
    let e_max = lines.iter().flat_map(|l| l.1.iter().map(|b| b.0)).max().unwrap_or(1).max(1) as f64;
    let y_max = lines.iter().flat_map(|l| l.1.iter().map(|b| b.1)).max().unwrap_or(1) as f64;
    let (unit, unit_name) = axis_unit(y_max);
    let y_top = (y_max / unit * 1.15).max(1.0);

    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    let y_desc = format!("{what} ({unit_name})");
    let mut chart = styled_chart(&root, caption, 0f64..e_max, 0f64..y_top, ("epoch", &y_desc), e_max as usize + 1).map_err(|e| to_err(&e))?;
    for (i, (label, points)) in lines.iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = points.iter().map(|&(e, b)| (e as f64, b as f64 / unit)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(3)))
            .map_err(|e| to_err(&e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, colour.filled()))).map_err(|e| to_err(&e))?;
    }
    finish_chart(&mut chart, &root, SeriesLabelPosition::UpperLeft, 16).map_err(|e| to_err(&e))
}
