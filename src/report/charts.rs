//! The HTML report's charts, drawn with plotters' SVG backend into strings that are inlined in
//! the page: sustained decode speed and temperature over time, the per-token latency
//! distribution, and bar charts by device class. Every series is named in a legend or an axis
//! label, and bars carry their value as text, so nothing depends on colour alone.

use plotters::coord::Shift;
use plotters::prelude::*;

const W: u32 = 960;
const H: u32 = 320;
/// Text sizes, as plotters takes them (its SVG writes 0.81 of them as pixels: 18 → 14.5 px).
/// plotters' default tick labels came out a few pixels high, unreadable in the HTML report at
/// 1200 px; these stay legible there (the headless-Chromium screenshot of tests/it/report.rs, and
/// the regression test below).
const CAPTION: (&str, u32) = ("sans-serif", 24);
const LABEL: (&str, u32) = ("sans-serif", 18);

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn finish(root: &Area) -> Result<(), String> {
    root.present().map_err(|e| e.to_string())
}

/// A tick label as people read it ("2000", not "2000.0"; "0.25").
fn tick(v: &f64) -> String {
    super::human(*v)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Decode tok/s per window over time, with the hottest zone's temperature on a second axis
/// when the device reported one.
pub fn sustained(title: &str, points: &[(f64, f64, Option<f64>)]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
        let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
        let temps: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| p.2.map(|t| (p.0, t)))
            .collect();
        let (t_lo, t_hi) = temps.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (_, t)| {
            (lo.min(*t), hi.max(*t))
        });
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION)
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .right_y_label_area_size(if temps.is_empty() { 10 } else { 55 })
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?
            .set_secondary_coord(0f64..x_max, (t_lo - 2.0).min(t_hi)..(t_hi + 2.0));
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .x_labels(8)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc("seconds of decoding")
            .y_desc("decode tok/s")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), &BLUE))
            .map_err(err)?
            .label("decode tok/s (left axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if !temps.is_empty() {
            chart
                .configure_secondary_axes()
                .label_style(LABEL)
                .axis_desc_style(LABEL)
                .y_label_formatter(&tick)
                .y_desc("max temperature °C")
                .draw()
                .map_err(err)?;
            chart
                .draw_secondary_series(LineSeries::new(
                    temps,
                    ShapeStyle::from(&RED).stroke_width(2),
                ))
                .map_err(err)?
                .label("max temperature °C (right axis, thicker line)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .label_font(LABEL)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        finish(&root)?;
    }
    Ok(svg)
}

/// A histogram of per-token latencies, 30 buckets from the fastest to the p99.9.
pub fn latency_histogram(title: &str, token_ms: &[f64]) -> Result<String, String> {
    let mut sorted = token_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let lo = sorted.first().copied().unwrap_or(0.0);
    let top = crate::bench::stats::percentile_sorted(&sorted, 99.9);
    let hi = (lo + (top - lo) * 1.05).max(lo + 1e-3);
    const BUCKETS: usize = 30;
    let width = (hi - lo) / BUCKETS as f64;
    let mut counts = [0u32; BUCKETS];
    for &t in &sorted {
        let i = (((t - lo) / width) as usize).min(BUCKETS - 1);
        counts[i] += 1;
    }
    let y_max = f64::from(counts.iter().copied().max().unwrap_or(1)) * 1.15;
    let p50 = crate::bench::stats::percentile_sorted(&sorted, 50.0);
    let p99 = crate::bench::stats::percentile_sorted(&sorted, 99.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION)
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..hi, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .x_labels(8)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc("ms per decoded token")
            .y_desc("tokens")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                let x0 = lo + width * i as f64;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, f64::from(n))],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(err)?;
        for (q, v) in [("p50", p50), ("p99", p99)] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(v, 0.0), (v, y_max * 0.95)],
                    BLACK,
                )))
                .map_err(err)?;
            // Near the right edge the label goes to the left of its line, inside the chart.
            let x = if v > lo + 0.7 * (hi - lo) {
                v - 0.22 * (hi - lo)
            } else {
                v
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{q} {} ms", super::human(v)),
                    (x, y_max * 0.97),
                    LABEL,
                )))
                .map_err(err)?;
        }
        finish(&root)?;
    }
    Ok(svg)
}

/// Horizontal bars, one per labelled item, each with its value written beside it.
pub fn bars(title: &str, unit: &str, items: &[(String, f64)]) -> Result<String, String> {
    let n = items.len().max(1);
    let x_max = items.iter().map(|i| i.1).fold(1e-9, f64::max) * 1.3;
    let height = (60 + 28 * n as u32).max(140);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION)
            .margin(10)
            .x_label_area_size(48)
            // Room for the longest label at LABEL's size (about 8.5 px a character), within
            // half the chart.
            .y_label_area_size(
                (items.iter().map(|i| i.0.chars().count()).max().unwrap_or(8) as u32 * 17 / 2 + 16)
                    .min(W / 2),
            )
            .build_cartesian_2d(0f64..x_max, (0..n).into_segmented())
            .map_err(err)?;
        let labels: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .disable_y_mesh()
            .x_labels(6)
            .x_label_formatter(&tick)
            .x_desc(unit)
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    labels.get(*i).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
                    ],
                    BLUE.mix(0.6).filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(err)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                Text::new(
                    format!("{} {unit}", super::human(*v)),
                    (*v + x_max * 0.01, SegmentValue::CenterOf(i)),
                    LABEL,
                )
            }))
            .map_err(err)?;
        finish(&root)?;
    }
    Ok(svg)
}

/// TTFT p95 against prompt length for one class: each model × runtime's measured points joined by
/// a line (marked with circles), and the workload's budget as a dashed horizontal line.
pub fn ttft_curve(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    budget_ms: Option<f64>,
) -> Result<String, String> {
    curve(
        title,
        ("prompt tokens", "TTFT p95 ms"),
        series,
        budget_ms.map(|b| (b, format!("TTFT budget {b:.0} ms (dashed)"))),
    )
}

/// Decode speed against the context it decodes at (llama-bench's `tgN @ dD`) for one class:
/// each model × runtime × KV cache type's points joined by a line.
pub fn depth_curve(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<String, String> {
    curve(
        title,
        ("tokens in the context", "decode tok/s"),
        series,
        None,
    )
}

/// Measured points per series, joined by lines and marked with circles (`axes`: the x and y
/// descriptions), and a dashed horizontal line with its legend where `line` is given.
fn curve(
    title: &str,
    axes: (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    line: Option<(f64, String)>,
) -> Result<String, String> {
    let budget_ms = line.as_ref().map(|l| l.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let x_max = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.0))
            .fold(1.0, f64::max)
            * 1.05;
        let y_max = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p.1))
            .chain(budget_ms)
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, CAPTION)
            .margin(10)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style(LABEL)
            .axis_desc_style(LABEL)
            .x_labels(8)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc(axes.0)
            .y_desc(axes.1)
            .draw()
            .map_err(err)?;
        let palette = [BLUE, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, pts)) in series.iter().enumerate() {
            let colour = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), colour))
                .map_err(err)?
                .label(format!("{name} (measured)"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, colour.filled())))
                .map_err(err)?;
        }
        if let Some(b) = budget_ms {
            let dashes: Vec<Vec<(f64, f64)>> = (0..40)
                .filter(|i| i % 2 == 0)
                .map(|i| {
                    let step = x_max / 40.0;
                    vec![(f64::from(i) * step, b), (f64::from(i + 1) * step, b)]
                })
                .collect();
            let mut first = true;
            for d in dashes {
                let series = chart
                    .draw_series(LineSeries::new(d, ShapeStyle::from(&RED).stroke_width(2)))
                    .map_err(err)?;
                if first {
                    let label = line.as_ref().map_or_else(String::new, |l| l.1.clone());
                    series
                        .label(label)
                        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
                    first = false;
                }
            }
        }
        chart
            .configure_series_labels()
            .label_font(LABEL)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
        finish(&root)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_words() {
        let s = sustained("pi", &[(10.0, 20.0, Some(50.0)), (20.0, 18.0, Some(60.0))]).unwrap();
        assert!(s.starts_with("<svg") && s.contains("decode tok/s") && s.contains("°C"));
        let h = latency_histogram("lat", &[10.0, 11.0, 12.0, 30.0]).unwrap();
        assert!(h.contains("<rect") && h.contains("p99"));
        let b = bars("ttft", "ms", &[("phone smollm2".into(), 120.0)]).unwrap();
        assert!(b.contains("phone smollm2") && b.contains("120 ms"));
        let c = ttft_curve(
            "laptop",
            &[(
                "smollm2 on odai".into(),
                vec![(128.0, 90.0), (512.0, 400.0)],
            )],
            Some(1500.0),
        )
        .unwrap();
        assert!(
            c.contains("prompt tokens")
                && c.contains("TTFT budget 1500 ms")
                && c.contains("smollm2 on odai")
        );
    }

    /// Regression: the HTML report's tick labels were plotters' default, a few pixels high once
    /// the page showed the chart at 1200 px; every text in a chart is now 14 px or more, and
    /// ticks read as people write figures.
    #[test]
    fn regression_chart_text_is_legible_and_ticks_are_plain_figures() {
        let svg = bars(
            "TTFT",
            "ms",
            &[
                ("laptop · smollm2".into(), 1696.9976),
                ("phone".into(), 12498.5),
            ],
        )
        .unwrap();
        let sizes: Vec<f64> = svg
            .split("font-size=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().parse().unwrap())
            .collect();
        assert!(!sizes.is_empty(), "{svg}");
        assert!(sizes.iter().all(|&px| px >= 14.0), "{sizes:?}");
        assert!(svg.contains("\n1697 ms\n"), "{svg}");
        let ticks: Vec<&str> = svg.lines().filter(|l| l.parse::<f64>().is_ok()).collect();
        assert!(ticks.contains(&"5000"), "{ticks:?}");
        assert!(!ticks.iter().any(|t| t.ends_with(".0")), "{ticks:?}");
    }
}
