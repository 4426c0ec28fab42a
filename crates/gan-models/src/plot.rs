//! Scatter plots of 2D points as PNG, with plotters' bitmap backend.
//!
//! No text is drawn (plotters' font support needs system font libraries): each panel is a
//! square with a light grid at integer coordinates and the axes through the origin in a darker
//! grey, so scales can still be read off.

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
}

/// One square panel: a view of the plane and the layers drawn in it, first to last.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel<'a> {
    /// The view spans [-half_width, half_width] on both axes.
    pub half_width: f32,
    /// The layers.
    pub layers: Vec<Layer<'a>>,
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
    Ok(())
}
