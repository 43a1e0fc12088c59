//! `memory.png` (and the SVG of `report.html`): memory over time in panels, one per group
//! of series of comparable size, each with its legend in a band of its own beside it (so
//! the legend never covers data), epoch ends as dashed lines numbered above each panel,
//! validation shaded, and the fitted epoch-end trend of each series drawn on top of the
//! lines and labelled with its slope. The title carries the verdict and its reason.
//!
//! What is drawn is decided first, by [`plan_memory`], and returned by [`draw_memory`], so
//! a test can check the legend against the data: every legend entry names a series with
//! points, and no entry names a series the run did not record.
//!
//! Two series that run on each other (a single process's tree PSS and its USS) would hide
//! the first drawn: it is drawn wide and faded beneath, so both show. The memory limit,
//! when known, is a red line on the first panel when it is near the data and a legend
//! entry when it is far above; the projected out-of-memory point, when there is one, is
//! drawn where it falls within reach of the run's length, and named in the legend.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{human_bytes, signed_bytes, verdict_reason};
use crate::analysis::{Analysis, PlotSeries};
use crate::error::Error;

/// DejaVu Sans ships with the crate so PNGs render on machines without fontconfig.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Which panel a series belongs in: the process's (or tree's) own memory, the allocator's
/// ledger, the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Process,
    Allocator,
    Gpu,
}

/// Series drawn, in legend order, with their panel and colour.
const PLOTTED: &[(&str, Group, RGBColor)] = &[
    ("rss_bytes", Group::Process, RGBColor(31, 119, 180)),
    ("rss_in_use_bytes", Group::Process, RGBColor(23, 190, 207)),
    // A watched process tree.
    ("tree_rss_bytes", Group::Process, RGBColor(150, 150, 150)),
    ("tree_pss_bytes", Group::Process, RGBColor(31, 119, 180)),
    ("main_uss_bytes", Group::Process, RGBColor(44, 160, 44)),
    ("workers_uss_bytes", Group::Process, RGBColor(214, 39, 40)),
    // The allocator's ledger.
    ("je_resident_bytes", Group::Allocator, RGBColor(44, 160, 44)),
    ("je_allocated_bytes", Group::Allocator, RGBColor(214, 39, 40)),
    ("heap_exact_bytes", Group::Allocator, RGBColor(140, 86, 75)),
    // GPU.
    ("gpu_process_used_bytes", Group::Gpu, RGBColor(127, 127, 127)),
    ("gpu_reserved_bytes", Group::Gpu, RGBColor(148, 103, 189)),
    ("gpu_allocated_bytes", Group::Gpu, RGBColor(255, 127, 14)),
    ("gpu_tree_used_bytes", Group::Gpu, RGBColor(148, 103, 189)),
];

/// A series whose peak is under this share (a fifth) of its panel's largest gets a panel of its own
/// (a 16 MiB workers line beside a 1.4 GiB summed RSS would lie flat on the axis).
const SMALL_SHARE: f64 = 0.2;

/// Two series run on each other when at most this share of the panel's height apart at
/// this share of the first one's points.
const ON_EACH_OTHER: (f64, f64) = (0.025, 0.6);

/// The limit is drawn as a line when it stands at most this many times the first panel's
/// highest point (above, a line would flatten every series on the axis).
const LIMIT_ON_SCALE: f64 = 2.0;

/// The projected out-of-memory point is drawn when it falls within this many times the
/// run's length (the time axis is lengthened to it).
const OOM_REACH: f64 = 1.5;

/// Image width, and the band at the right of each panel that holds its legend.
pub const WIDTH: u32 = 1400;
const LEGEND_W: u32 = 380;
const TITLE_H: u32 = 90;
const PANEL_H: u32 = 340;

/// One series as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnSeries {
    /// Timeline column.
    pub column: String,
    /// Its legend text.
    pub label: String,
    /// Measured points drawn.
    pub points: usize,
    /// The fitted trend's label ("+2.1 MiB/epoch"), when a trend line is drawn.
    pub trend: Option<String>,
    /// The column of a later series that runs on this one; then this one is drawn wide
    /// and faded beneath it, so it is not hidden.
    pub under: Option<String>,
}

/// One panel as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnPanel {
    /// Its heading.
    pub title: String,
    /// Its series, in legend order.
    pub series: Vec<DrawnSeries>,
}

/// A vertical band of the image around one epoch end, with that epoch's values (for the
/// SVG's hover text): pixel x range, pixel y range.
#[derive(Clone, Debug, PartialEq)]
pub struct HoverBand {
    /// Left and right pixel.
    pub x: (i32, i32),
    /// Top and bottom pixel.
    pub y: (i32, i32),
    /// "Epoch 3 (45 s): tree PSS 1.2 GiB, ...".
    pub text: String,
}

/// What the memory plot shows: its title, its panels and their legends.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPlot {
    /// "Verdict: growing".
    pub title: String,
    /// The verdict's reason, under the title.
    pub subtitle: String,
    /// Panels, top to bottom.
    pub panels: Vec<DrawnPanel>,
    /// Legend entries that are not series ("validation", "epoch ends"): only when drawn.
    pub extra_legend: Vec<String>,
    /// Image size in pixels.
    pub size: (u32, u32),
    /// Per epoch end, per panel: where it is, and its values (filled by drawing).
    pub hover: Vec<HoverBand>,
    /// The memory limit and the projected out-of-memory point, on the first panel.
    pub limit: Option<LimitMark>,
}

/// The memory limit as the plot shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitMark {
    /// The limit.
    pub bytes: u64,
    /// Drawn as a line on the first panel (it stands near enough the data); otherwise
    /// only named in the legend.
    pub on_scale: bool,
    /// The projected out-of-memory point drawn on the first panel: from (seconds, bytes)
    /// at the last fitted epoch's peak to (seconds, the limit).
    pub oom: Option<[(f64, f64); 2]>,
}

impl MemoryPlot {
    /// Every legend entry, series and others.
    pub fn legend(&self) -> Vec<String> {
        self.panels.iter().flat_map(|p| p.series.iter().map(|s| s.label.clone())).chain(self.extra_legend.iter().cloned()).collect()
    }
}

fn axis_unit(max: f64) -> (f64, &'static str) {
    if max >= 2.0 * 1024f64.powi(3) {
        (1024f64.powi(3), "GiB")
    } else if max >= 2.0 * 1024f64.powi(2) {
        (1024f64.powi(2), "MiB")
    } else {
        (1024.0, "KiB")
    }
}

fn peak(s: &PlotSeries) -> u64 {
    s.points.iter().map(|p| p.1).max().unwrap_or(0)
}

/// Moments marked with a red line across every panel: when the tree passed --max-memory,
/// when diagnose stopped the command, how the command ended if it did not exit 0.
fn events(a: &Analysis) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    if let Some(m) = &a.max_memory {
        out.push((m.t_s, "passed --max-memory".to_string()));
    }
    if let Some(end) = &a.end {
        let what = if end.oom_killed {
            Some("OOM-killed".to_string())
        } else if let (Some(_), Some(by)) = (end.signal, &a.stopped_by) {
            Some(format!("stopped ({by})"))
        } else if let Some(sig) = end.signal {
            Some(format!("killed by signal {sig}"))
        } else {
            end.code.filter(|c| *c != 0).map(|c| format!("exited with code {c}"))
        };
        out.extend(what.map(|w| (end.t_s, w)));
    }
    out
}

/// Decide the panels and the legend (nothing is drawn). Panels of a group with series of
/// very different sizes are split: the small ones get a panel of their own.
pub fn plan_memory(a: &Analysis) -> MemoryPlot {
    let mut panels: Vec<(String, Vec<&PlotSeries>)> = Vec::new();
    for group in [Group::Process, Group::Allocator, Group::Gpu] {
        let members: Vec<&PlotSeries> = PLOTTED
            .iter()
            .filter(|(_, g, _)| *g == group)
            .filter_map(|(c, _, _)| a.plot.series.iter().find(|s| s.column == *c && !s.points.is_empty()))
            .collect();
        if members.is_empty() {
            continue;
        }
        let top = members.iter().map(|s| peak(s)).max().unwrap_or(0) as f64;
        let (big, small): (Vec<&PlotSeries>, Vec<&PlotSeries>) = members.into_iter().partition(|s| peak(s) as f64 >= SMALL_SHARE * top);
        let name = match (group, a.recorder.as_str()) {
            (Group::Process, "watch") => "process tree",
            (Group::Process, _) => "process",
            (Group::Allocator, _) => "allocator ledger",
            (Group::Gpu, _) => "GPU",
        };
        if small.is_empty() {
            panels.push((name.to_string(), big));
        } else {
            panels.push((name.to_string(), big));
            panels.push((format!("{name}: smaller series, own scale"), small));
        }
    }
    let panels: Vec<DrawnPanel> = panels
        .into_iter()
        .map(|(title, series)| DrawnPanel {
            title,
            series: series
                .into_iter()
                .map(|s| {
                    let trend = trend_points(a, s, 1.0).map(|_| {
                        let v = a.series(&s.column).expect("a trend has a verdict");
                        format!("{}/epoch", signed_bytes(v.slope_bytes_per_epoch.unwrap_or(0.0)))
                    });
                    let class = a.series(&s.column).map(|v| v.class.as_str()).unwrap_or("not judged");
                    let label = match &trend {
                        Some(t) => format!("{} — {class}, {t}", s.name),
                        None => format!("{} — {class}", s.name),
                    };
                    DrawnSeries { column: s.column.clone(), label, points: s.points.len(), trend, under: None }
                })
                .collect(),
        })
        .collect();
    let mut panels = panels;
    for panel in &mut panels {
        let series: Vec<&PlotSeries> = panel.series.iter().filter_map(|d| a.plot.series.iter().find(|s| s.column == d.column)).collect();
        let top = series.iter().map(|s| peak(s)).max().unwrap_or(0) as f64;
        for i in 0..series.len() {
            panel.series[i].under = series[i + 1..].iter().find(|b| runs_on(series[i], b, top)).map(|b| b.column.clone());
        }
    }
    let limit = limit_mark(a, panels.first());
    let mut extra_legend = Vec::new();
    if !a.plot.epoch_ends.is_empty() {
        extra_legend.push("epoch end (numbered above)".to_string());
    }
    if !a.plot.validations.is_empty() {
        extra_legend.push("validation".to_string());
    }
    extra_legend.extend(events(a).into_iter().map(|(_, what)| what));
    if let Some(l) = &limit {
        let source = a.oom.as_ref().map_or(String::new(), |o| format!(" ({})", o.limit_source));
        extra_legend.push(if l.on_scale {
            format!("memory limit {}{source}", human_bytes(l.bytes as f64))
        } else {
            format!("memory limit {}{source}, off scale", human_bytes(l.bytes as f64))
        });
    }
    if let Some(o) = &a.oom {
        let drawn = if limit.as_ref().is_some_and(|l| l.oom.is_some()) { "" } else { " (off plot)" };
        extra_legend.push(format!("OOM projected: epoch {:.1}{drawn}", o.at_epoch));
    }
    let height = TITLE_H + PANEL_H * panels.len().max(1) as u32;
    MemoryPlot {
        title: format!("Verdict: {}", a.verdict),
        subtitle: verdict_reason(a),
        panels,
        extra_legend,
        size: (WIDTH, height),
        hover: Vec::new(),
        limit,
    }
}

/// Whether `b` runs on `a`: at most [`ON_EACH_OTHER`]'s share of the panel's height apart
/// at most of `a`'s points, so that `b`, drawn after, would hide it.
fn runs_on(a: &PlotSeries, b: &PlotSeries, top: f64) -> bool {
    let (gap, share) = ON_EACH_OTHER;
    let close = a.points.iter().filter(|&&(t, v)| value_at(b, t).is_some_and(|w| (v as f64 - w as f64).abs() <= gap * top)).count();
    !a.points.is_empty() && close as f64 >= share * a.points.len() as f64
}

/// The limit (the projection's, else the one recorded with the run) as the first panel
/// shows it, and the projected out-of-memory point when it falls within reach.
fn limit_mark(a: &Analysis, first: Option<&DrawnPanel>) -> Option<LimitMark> {
    let bytes = a.oom.as_ref().map(|o| o.limit_bytes).or(a.mem_limit_bytes)?;
    let top = first
        .map(|p| p.series.iter().filter_map(|d| a.plot.series.iter().find(|s| s.column == d.column)).map(peak).max().unwrap_or(0))
        .unwrap_or(0);
    let on_scale = top > 0 && bytes as f64 <= LIMIT_ON_SCALE * top as f64;
    let oom = a.oom.as_ref().filter(|_| on_scale).and_then(|o| {
        let last = *o.fitted_epochs.last()?;
        let t_last = a.plot.epoch_ends.iter().find(|(e, _)| *e == last)?.1;
        let t_oom = t_last + o.seconds_to_limit?;
        (t_oom <= OOM_REACH * a.duration_s.max(1e-3)).then_some([(t_last, o.last_bytes as f64), (t_oom, bytes as f64)])
    });
    Some(LimitMark { bytes, on_scale, oom })
}

/// The fitted trend of a series over the epochs it used, as (seconds, value / unit) at the
/// first and last of them; `None` without a fit over at least two epoch ends.
fn trend_points(a: &Analysis, s: &PlotSeries, unit: f64) -> Option<[(f64, f64); 2]> {
    let v = a.series(&s.column)?;
    let (slope, icept) = (v.slope_bytes_per_epoch?, v.intercept_bytes?);
    let times: Vec<(f64, f64)> = a
        .plot
        .epoch_ends
        .iter()
        .filter(|(e, _)| v.fitted.is_some_and(|f| f.contains(*e)))
        .map(|&(e, t)| (t, (icept + slope * e as f64) / unit))
        .collect();
    (times.len() >= 2).then(|| [times[0], times[times.len() - 1]])
}

fn colour_of(column: &str) -> RGBColor {
    PLOTTED.iter().find(|(c, _, _)| *c == column).map_or(BLACK, |p| p.2)
}

/// The value of a series at an epoch end: its point at that time, or the last before it.
fn value_at(s: &PlotSeries, t: f64) -> Option<u64> {
    s.points.iter().take_while(|p| p.0 <= t + 1e-9).last().map(|p| p.1)
}

/// Draw the plot of `a` onto `root` (any backend); returns what it drew.
pub(crate) fn draw_memory_on<DB: DrawingBackend>(a: &Analysis, root: &DrawingArea<DB, Shift>) -> Result<MemoryPlot, String> {
    register_font();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut plan = plan_memory(a);
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (title_area, rest) = root.split_vertically(TITLE_H);
    let verdict_colour = match a.verdict {
        "growing" => RGBColor(190, 20, 20),
        "flat" => RGBColor(20, 120, 40),
        _ => RGBColor(90, 90, 90),
    };
    title_area.draw(&Text::new(plan.title.clone(), (20, 12), ("sans-serif", 30).into_font().color(&verdict_colour))).map_err(|x| e(&x))?;
    let mut subtitle = plan.subtitle.clone();
    if subtitle.chars().count() > 150 {
        subtitle = subtitle.chars().take(149).chain(std::iter::once('…')).collect();
    }
    title_area.draw(&Text::new(subtitle, (20, 52), ("sans-serif", 19).into_font().color(&RGBColor(60, 60, 60)))).map_err(|x| e(&x))?;

    // The time axis reaches the projected out-of-memory point when that is drawn.
    let oom = plan.limit.as_ref().and_then(|l| l.oom);
    let t_max = oom.map_or(0.0, |o| o[1].0).max(a.duration_s).max(1e-3);
    let n = plan.panels.len().max(1);
    let areas = rest.split_evenly((n, 1));
    if plan.panels.is_empty() {
        areas[0]
            .draw(&Text::new("No memory series was recorded.", (40, 40), ("sans-serif", 22).into_font()))
            .map_err(|x| e(&x))?;
    }
    let mut hover = Vec::new();
    let last = plan.panels.len().saturating_sub(1);
    for (i, (panel, area)) in plan.panels.iter().zip(areas.iter()).enumerate() {
        let (plot_area, legend_area) = area.split_horizontally(WIDTH - LEGEND_W);
        let series: Vec<&PlotSeries> = panel.series.iter().filter_map(|d| a.plot.series.iter().find(|s| s.column == d.column)).collect();
        let mut y_max = series.iter().map(|s| peak(s)).max().unwrap_or(1).max(1) as f64;
        let limit = plan.limit.as_ref().filter(|l| i == 0 && l.on_scale);
        if let Some(l) = limit {
            y_max = y_max.max(l.bytes as f64);
        }
        let (unit, unit_name) = axis_unit(y_max);
        let y_top = y_max / unit * 1.12;
        let x_desc = if i == last { "seconds since start" } else { "" };
        let mut chart = ChartBuilder::on(&plot_area)
            .margin_left(10)
            .margin_right(20)
            .margin_top(34)
            .margin_bottom(6)
            .x_label_area_size(if i == last { 46 } else { 26 })
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..t_max, 0f64..y_top)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_labels(12)
            .y_labels(6)
            .x_desc(x_desc)
            .y_desc(format!("{} ({unit_name})", panel.title))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|x| e(&x))?;
        // Validation spans, shaded.
        let shade = RGBColor(255, 200, 120).mix(0.3);
        chart
            .draw_series(a.plot.validations.iter().map(|&(s, end)| Rectangle::new([(s, 0.0), (end.max(s + t_max * 0.002), y_top)], shade.filled())))
            .map_err(|x| e(&x))?;
        // Epoch ends, dashed, numbered above the plot area (every k-th when crowded).
        let ((x0, px_top), (x1, px_bottom)) = (chart.backend_coord(&(0.0, y_top)), chart.backend_coord(&(t_max, 0.0)));
        let px = move |t: f64| x0 + ((x1 - x0) as f64 * t / t_max).round() as i32;
        let py = move |v: f64| px_bottom + ((px_top - px_bottom) as f64 * v / y_top).round() as i32;
        let all_ends = &a.plot.epoch_ends;
        let spacing = if all_ends.len() >= 2 { (px(all_ends[all_ends.len() - 1].1) - px(all_ends[0].1)).abs() as f64 / (all_ends.len() - 1) as f64 } else { 100.0 };
        // Crowded epoch ends (a week cut into 2-s windows: 300,000 of them), drawn and
        // given a hover band every k-th and the last, at least 4 px apart: one line and
        // one band each made the SVG grow with the run (4.4 GB for 300,000).
        let drawn = ((4.0 / spacing.max(1e-9)).ceil() as usize).max(1);
        let ends: Vec<(u32, f64)> = all_ends.iter().enumerate().filter(|(k, _)| k % drawn == 0 || k + 1 == all_ends.len()).map(|(_, p)| *p).collect();
        let every = ((26.0 / (spacing * drawn as f64).max(1.0)).ceil() as usize).max(1);
        for (k, &(epoch, t)) in ends.iter().enumerate() {
            chart.draw_series(DashedLineSeries::new(vec![(t, 0.0), (t, y_top)], 6, 4, BLACK.mix(0.3).into())).map_err(|x| e(&x))?;
            if k % every == 0 || k + 1 == ends.len() {
                let label = epoch.to_string();
                let x = px(t) - 4 * label.len() as i32;
                root.draw(&Text::new(label, (x, px_top - 22), ("sans-serif", 15).into_font().color(&RGBColor(80, 80, 80)))).map_err(|x| e(&x))?;
            }
            // The band from half-way to the previous epoch end to half-way to the next.
            let prev = if k == 0 { 0.0 } else { ends[k - 1].1 };
            let next = ends.get(k + 1).map_or(t_max, |p| p.1);
            let values: Vec<String> = series
                .iter()
                .filter_map(|s| value_at(s, t).map(|v| format!("{} {}", s.name, human_bytes(v as f64))))
                .collect();
            hover.push(HoverBand {
                x: (px((prev + t) / 2.0), px((t + next) / 2.0)),
                y: (px_top, px_bottom),
                text: format!("Epoch {epoch} (ended at {t:.0} s): {}", values.join(", ")),
            });
        }
        if !ends.is_empty() {
            root.draw(&Text::new("epoch", (px(0.0) - 60, px_top - 22), ("sans-serif", 15).into_font().color(&RGBColor(80, 80, 80)))).map_err(|x| e(&x))?;
        }
        // Events: a red line, named at its foot in the first panel.
        for (k, (t, what)) in events(a).into_iter().enumerate() {
            chart.draw_series(LineSeries::new(vec![(t, 0.0), (t, y_top)], RGBColor(200, 0, 0).stroke_width(2))).map_err(|x| e(&x))?;
            if i == 0 {
                let w = 8 * what.chars().count() as i32;
                root.draw(&Text::new(what, ((px(t) - w - 6).max(x0 + 4), px_bottom - 22 - 20 * k as i32), ("sans-serif", 15).into_font().color(&RGBColor(200, 0, 0)))).map_err(|x| e(&x))?;
            }
        }
        // The memory limit, and the projection from the last fitted epoch's peak to it.
        if let Some(l) = limit {
            let red = RGBColor(200, 0, 0);
            let y = l.bytes as f64 / unit;
            chart.draw_series(DashedLineSeries::new(vec![(0.0, y), (t_max, y)], 10, 6, red.stroke_width(2))).map_err(|x| e(&x))?;
            root.draw(&Text::new("memory limit", (x0 + 6, py(y) + 4), ("sans-serif", 15).into_font().color(&red))).map_err(|x| e(&x))?;
            if let Some([from, to]) = l.oom {
                let pts = vec![(from.0, from.1 / unit), (to.0, to.1 / unit)];
                chart.draw_series(DashedLineSeries::new(pts, 3, 5, red.stroke_width(2))).map_err(|x| e(&x))?;
                chart.draw_series(std::iter::once(Cross::new((to.0, to.1 / unit), 7, red.stroke_width(3)))).map_err(|x| e(&x))?;
            }
        }
        // The measured series: a line through its points, and a dot on each when they are
        // few (PSS read every 30 s: the dots show where it was read). A series another
        // runs on is drawn wide and faded first, so it shows around the one on top.
        for (s, d) in series.iter().zip(&panel.series) {
            let colour = colour_of(&s.column);
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(t, v)| (t, v as f64 / unit)).collect();
            if d.under.is_some() {
                chart.draw_series(LineSeries::new(pts.clone(), colour.mix(0.45).stroke_width(9))).map_err(|x| e(&x))?;
            }
            chart.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2))).map_err(|x| e(&x))?;
            if pts.len() <= 120 {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(|x| e(&x))?;
            }
        }
        // Trend lines last, so no solid line hides them (the line shows between the
        // dashes), and the slope written at their end.
        let mut label_ys: Vec<i32> = Vec::new();
        for (s, d) in series.iter().zip(&panel.series) {
            let (Some(ends), Some(label)) = (trend_points(a, s, unit), &d.trend) else { continue };
            let colour = colour_of(&s.column);
            chart.draw_series(DashedLineSeries::new(ends.to_vec(), 12, 6, colour.stroke_width(3))).map_err(|x| e(&x))?;
            // The slope above the line's end, on a white box, clear of the other labels:
            // moved up past them (down would put the box on the lines it labels), or
            // down when the top of the panel is reached.
            let (x, start) = (px(ends[1].0), py(ends[1].1) - 24);
            let clear = |y: i32| !label_ys.iter().any(|&u| (u - y).abs() < 20);
            let mut y = start;
            while !clear(y) && y - 20 >= px_top + 2 {
                y -= 20;
            }
            if !clear(y) {
                y = start;
                while !clear(y) {
                    y += 20;
                }
            }
            let y = y.clamp(px_top + 2, px_bottom - 20);
            label_ys.push(y);
            let width = 8 * label.chars().count() as i32 + 8;
            let text_x = (x - width).max(px(0.0) + 4);
            root.draw(&Rectangle::new([(text_x - 3, y - 2), (text_x + width - 3, y + 17)], WHITE.mix(0.85).filled())).map_err(|x| e(&x))?;
            root.draw(&Text::new(label.clone(), (text_x, y), ("sans-serif", 15).into_font().color(&colour))).map_err(|x| e(&x))?;
        }
        draw_legend(&legend_area, panel, if i == 0 { &plan.extra_legend } else { &[] }).map_err(|x| e(&x))?;
    }
    plan.hover = hover;
    root.present().map_err(|x| e(&x))?;
    Ok(plan)
}

/// A panel's legend, in its own band right of the plot area.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &DrawnPanel, extra: &[String]) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut y = 40;
    let font = ("sans-serif", 15).into_font();
    for s in &panel.series {
        let colour = colour_of(&s.column);
        if s.under.is_some() {
            area.draw(&PathElement::new(vec![(6, y + 8), (34, y + 8)], colour.mix(0.45).stroke_width(9)))?;
        }
        area.draw(&PathElement::new(vec![(6, y + 8), (34, y + 8)], colour.stroke_width(3)))?;
        // Name on one line, class and slope on the next.
        let (name, rest) = s.label.split_once(" — ").unwrap_or((&s.label, ""));
        area.draw(&Text::new(name.to_string(), (42, y), font.clone().color(&BLACK)))?;
        if !rest.is_empty() {
            area.draw(&Text::new(rest.to_string(), (42, y + 18), font.clone().color(&RGBColor(90, 90, 90))))?;
        }
        y += 44;
    }
    for label in extra {
        if label == "validation" {
            area.draw(&Rectangle::new([(6, y + 2), (34, y + 14)], RGBColor(255, 200, 120).mix(0.5).filled()))?;
        } else if label.starts_with("memory limit") {
            area.draw(&PathElement::new(vec![(6, y + 8), (34, y + 8)], RGBColor(200, 0, 0).stroke_width(2)))?;
        } else if label.starts_with("OOM projected") {
            area.draw(&Cross::new((20, y + 8), 6, RGBColor(200, 0, 0).stroke_width(3)))?;
        } else if !label.starts_with("epoch end") {
            area.draw(&PathElement::new(vec![(20, y), (20, y + 16)], RGBColor(200, 0, 0).stroke_width(2)))?;
        } else {
            area.draw(&PathElement::new(vec![(20, y), (20, y + 16)], BLACK.mix(0.4).stroke_width(2)))?;
        }
        area.draw(&Text::new(label.clone(), (42, y), font.clone().color(&BLACK)))?;
        y += 26;
    }
    Ok(())
}

/// Draw the plot of `a` into `path` (PNG); returns what it drew.
pub fn draw_memory(a: &Analysis, path: &Path) -> Result<MemoryPlot, Error> {
    let size = plan_memory(a).size;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    draw_memory_on(a, &root).map_err(|message| Error::Plot { path: path.to_path_buf(), message })
}

/// The plot of `a` as an SVG document, and what it drew.
pub fn memory_svg(a: &Analysis) -> Result<(String, MemoryPlot), String> {
    let size = plan_memory(a).size;
    let mut svg = String::new();
    let plot = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_memory_on(a, &root)?
    };
    Ok((svg, plot))
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
    register_font();
    let e_max = lines.iter().flat_map(|l| l.1.iter().map(|b| b.0)).max().unwrap_or(1).max(1) as f64;
    let y_max = lines.iter().flat_map(|l| l.1.iter().map(|b| b.1)).max().unwrap_or(1) as f64;
    let (unit, unit_name) = axis_unit(y_max);
    let y_top = (y_max / unit * 1.15).max(1.0);

    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| to_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 30))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..e_max, 0f64..y_top)
        .map_err(|e| to_err(&e))?;
    chart
        .configure_mesh()
        .x_labels(e_max as usize + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("epoch")
        .y_desc(format!("{what} ({unit_name})"))
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(|e| to_err(&e))?;
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| to_err(&e))?;
    root.present().map_err(|e| to_err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Analyzer, Tolerance};
    use crate::timeline::{Row, TimelineMeta};

    const MIB: u64 = 1 << 20;

    /// A watched tree: 1.4 GiB summed RSS, a 16 MiB workers USS that grows, PSS read
    /// only at epoch ends, a pre-exec `start` row, no validation.
    fn watched(epochs: u32) -> Analysis {
        let mut a = Analyzer::new(Tolerance::default());
        a.add(&Row { phase: "start".into(), tree_rss_bytes: Some(2 * MIB), tree_pss_bytes: Some(MIB + MIB / 2), ..Row::default() });
        for e in 0..epochs {
            for k in 1..4 {
                let t = e as f64 * 10.0 + k as f64 * 2.5;
                a.add(&Row { t_s: t, phase: "sample".into(), tree_rss_bytes: Some(1400 * MIB), ..Row::default() });
            }
            a.add(&Row {
                t_s: e as f64 * 10.0 + 10.0,
                phase: "epoch_end".into(),
                epoch: Some(e),
                tree_rss_bytes: Some(1400 * MIB),
                tree_pss_bytes: Some(600 * MIB + e as u64 * 4 * MIB),
                main_uss_bytes: Some(400 * MIB),
                workers_uss_bytes: Some(16 * MIB + e as u64 * 4 * MIB),
                ..Row::default()
            });
        }
        a.add(&Row { t_s: epochs as f64 * 10.0 + 1.0, phase: "finish".into(), label: "exit=0".into(), ..Row::default() });
        let meta = TimelineMeta { recorder: Some("watch".into()), gpu: Some("no-driver:x".into()), ..TimelineMeta::default() };
        a.finish(&meta, false)
    }

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn legend_names_only_series_with_points() {
        let a = watched(8);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.png");
        let drawn = draw_memory(&a, &path).unwrap();
        assert_eq!(png_size(&path), drawn.size);
        assert_eq!(drawn.size, (WIDTH, TITLE_H + PANEL_H * drawn.panels.len() as u32));
        for s in drawn.panels.iter().flat_map(|p| &p.series) {
            let plotted = a.plot.series.iter().find(|p| p.column == s.column).expect("drawn series is in the data");
            assert!(s.points > 0 && s.points == plotted.points.len(), "{s:?}");
        }
        // No validation in this run: no legend entry for it.
        assert!(!drawn.legend().iter().any(|l| l.contains("validation")), "{:?}", drawn.legend());
        assert!(drawn.extra_legend.iter().any(|l| l.starts_with("epoch end")));
        // The small workers line has a panel of its own, away from summed RSS.
        let panel_of = |c: &str| drawn.panels.iter().position(|p| p.series.iter().any(|s| s.column == c)).unwrap();
        assert_ne!(panel_of("workers_uss_bytes"), panel_of("tree_rss_bytes"));
        assert_eq!(panel_of("tree_pss_bytes"), panel_of("tree_rss_bytes"));
        // The growing series' trend is labelled with its slope; the title carries the verdict.
        let workers = drawn.panels.iter().flat_map(|p| &p.series).find(|s| s.column == "workers_uss_bytes").unwrap();
        assert_eq!(workers.trend.as_deref(), Some("+4.0 MiB/epoch"), "{workers:?}");
        assert_eq!(drawn.title, "Verdict: growing");
        assert!(drawn.subtitle.contains("workers USS grows +4.0 MiB/epoch"), "{}", drawn.subtitle);
        // One hover band per epoch end per panel.
        assert_eq!(drawn.hover.len(), 8 * drawn.panels.len());
    }

    #[test]
    fn pre_exec_start_values_are_not_drawn() {
        let a = watched(4);
        let pss = a.plot.series.iter().find(|s| s.column == "tree_pss_bytes").unwrap();
        assert!(pss.points.iter().all(|p| p.1 >= 600 * MIB), "{:?}", pss.points);
        assert_eq!(pss.points.len(), 4);
    }

    #[test]
    fn validation_is_in_the_legend_only_when_drawn() {
        let mut a = watched(4);
        a.plot.validations.push((3.0, 5.0));
        assert!(plan_memory(&a).extra_legend.contains(&"validation".to_string()));
    }

    #[test]
    fn svg_has_the_same_plot() {
        let a = watched(5);
        let (svg, plot) = memory_svg(&a).unwrap();
        assert!(svg.contains("<svg") && svg.contains("Verdict: growing"), "{}", &svg[..200.min(svg.len())]);
        assert_eq!(plot.size, plan_memory(&a).size);
        let html = crate::report::report_html(&a).unwrap();
        assert!(html.contains("<title>Epoch 4 (ended at 50 s)"), "hover text missing");
        for external in [" src=", "href=", "<script", "@import", "url("] {
            assert!(!html.contains(external), "not self-contained: {external}");
        }
    }
}
