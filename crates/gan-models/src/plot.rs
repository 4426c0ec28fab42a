//! Scatter plots of 2D points as PNG, with plotters' bitmap backend.
//!
//! Each panel is a square with a light grid at integer coordinates and the axes through the
//! origin in a darker grey, so scales can be read off; a title at its top left, and a legend at
//! its top right naming each labelled layer beside a dot of its colour. Text is drawn with an
//! ASCII subset of DejaVu Sans built into the library (`assets/DejaVuSans-ascii.ttf`, through
//! plotters' `ab_glyph` backend), so no system font is needed.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{ModelError, Result};

/// How the points of a layer are coloured.
#[derive(Clone, Debug, PartialEq)]
pub enum Colors {
    /// One colour for every point.
    Single(RGBColor),
    /// One colour per point (same length as the points).
    PerPoint(Vec<RGBColor>),
}

/// Points drawn in one style.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer<'a> {
    /// The points.
    pub points: &'a [[f32; 2]],
    /// Their colours.
    pub colors: Colors,
    /// Dot radius in pixels (0 draws single pixels).
    pub radius: u32,
    /// Opacity in [0, 1].
    pub opacity: f64,
    /// Its name in the panel's legend (unlabelled layers are not listed).
    pub label: Option<String>,
}

/// One square panel: a view of the plane and the layers drawn in it, first to last.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel<'a> {
    /// The view spans [-half_width, half_width] on both axes.
    pub half_width: f32,
    /// The layers.
    pub layers: Vec<Layer<'a>>,
    /// Text at the panel's top left (`step 2000`), if any.
    pub title: Option<String>,
}

/// The family name the built-in font is registered under: plotters' default family, which the
/// report's charts use too.
const FONT: &str = "sans-serif";

/// Registers the built-in font with plotters, once; every chart or plot that draws text calls
/// it first (plotters' `ab_glyph` text has no font until one is registered).
pub(crate) fn register_font() -> std::result::Result<(), String> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans-ascii.ttf"),
        )
        .map_err(|_| "the built-in font does not parse".to_string())
    })
    .clone()
}

/// Grey of the real data in toy plots.
pub const REAL: RGBColor = RGBColor(150, 150, 150);
/// Blue of generated points in toy plots.
pub const FAKE: RGBColor = RGBColor(31, 119, 180);
/// Red of mode centres in toy plots.
pub const MODE: RGBColor = RGBColor(214, 39, 40);

/// A fully saturated colour of hue `h` in [0, 1) (0 red, 1/3 green, 2/3 blue).
pub fn hue(h: f32) -> RGBColor {
    let h = h.rem_euclid(1.0) * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |v: f32| (v * 220.0).round() as u8;
    RGBColor(c(r), c(g), c(b))
}

/// Writes `panels` side by side into a PNG of `panel_px` × `panel_px` pixels per panel.
pub fn scatter_png(path: &Path, panels: &[Panel<'_>], panel_px: u32) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| ModelError::Image {
        path: path.into(),
        reason: e.to_string(),
    };
    if panels.is_empty() {
        return Err(err(&"no panel to draw"));
    }
    register_font().map_err(|e| err(&e))?;
    let width = panel_px * panels.len() as u32;
    let root = BitMapBackend::new(path, (width, panel_px)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len()));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(panel, area).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel<'_>,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let w = panel.half_width;
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .build_cartesian_2d(-w..w, -w..w)?;
    let light = RGBColor(230, 230, 230);
    let axis = RGBColor(170, 170, 170);
    let n = w.floor() as i32;
    for k in -n..=n {
        let c = if k == 0 { axis } else { light };
        let v = k as f32;
        chart.draw_series(LineSeries::new([(v, -w), (v, w)], c))?;
        chart.draw_series(LineSeries::new([(-w, v), (w, v)], c))?;
    }
    let frame = [(-w, -w), (w, -w), (w, w), (-w, w), (-w, -w)];
    chart.draw_series(LineSeries::new(frame, axis))?;
    for layer in &panel.layers {
        let color_of = |i: usize| match &layer.colors {
            Colors::Single(c) => *c,
            Colors::PerPoint(cs) => cs.get(i).copied().unwrap_or(BLACK),
        };
        let inside = layer.points.iter().enumerate().filter(|(_, p)| {
            p[0].abs() <= w && p[1].abs() <= w && p[0].is_finite() && p[1].is_finite()
        });
        if layer.radius == 0 {
            chart.draw_series(
                inside.map(|(i, p)| Pixel::new((p[0], p[1]), color_of(i).mix(layer.opacity))),
            )?;
        } else {
            chart.draw_series(inside.map(|(i, p)| {
                Circle::new(
                    (p[0], p[1]),
                    layer.radius,
                    color_of(i).mix(layer.opacity).filled(),
                )
            }))?;
        }
    }
    draw_text(panel, area)
}

/// The title at the top left and the legend at the top right of a panel's `area`.
fn draw_text<DB: DrawingBackend>(
    panel: &Panel<'_>,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (w, _) = area.dim_in_pixel();
    let px = (w / 30).clamp(11, 18);
    let font = (FONT, px).into_font().color(&BLACK);
    let pad = 14 + px as i32 / 2;
    let line = px as i32 + 6;
    // A light box under the text keeps it readable over the points.
    let backdrop = |x0: i32, y0: i32, x1: i32, y1: i32| {
        Rectangle::new(
            [(x0 - 4, y0 - 3), (x1 + 4, y1 + 3)],
            WHITE.mix(0.8).filled(),
        )
    };
    if let Some(title) = &panel.title {
        let (tw, th) = area.estimate_text_size(title, &font)?;
        area.draw(&backdrop(pad, pad, pad + tw as i32, pad + th as i32))?;
        area.draw(&Text::new(title.as_str(), (pad, pad), font.clone()))?;
    }
    let mut labelled: Vec<(&str, RGBColor, i32)> = Vec::new();
    for layer in &panel.layers {
        let Some(text) = layer.label.as_deref() else {
            continue;
        };
        let color = match &layer.colors {
            Colors::Single(c) => *c,
            Colors::PerPoint(cs) => cs.first().copied().unwrap_or(BLACK),
        };
        labelled.push((text, color, area.estimate_text_size(text, &font)?.0 as i32));
    }
    let widest = labelled.iter().map(|l| l.2).max().unwrap_or(0);
    if !labelled.is_empty() {
        let dot_room = px as i32 + 8;
        let right = w as i32 - pad;
        let bottom = pad + labelled.len() as i32 * line - 6;
        area.draw(&backdrop(right - widest - dot_room, pad, right, bottom))?;
    }
    for (i, (text, color, tw)) in labelled.into_iter().enumerate() {
        let y = pad + i as i32 * line;
        let x = w as i32 - pad - tw;
        let dot = (x - px as i32 / 2 - 4, y + px as i32 / 2);
        area.draw(&Circle::new(dot, (px / 3).max(3), color.filled()))?;
        area.draw(&Text::new(text, (x, y), font.clone()))?;
    }
    Ok(())
}
