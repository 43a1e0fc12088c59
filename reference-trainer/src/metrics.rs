//! Validation metrics: box IoU, spatio-temporal IoU of a predicted tube against the
//! ground-truth tube, and mean average precision at IoU 0.5 (all-point interpolation).

use crate::data::BoxF;

/// Intersection over union of two boxes.
pub fn iou(a: &BoxF, b: &BoxF) -> f64 {
    let ix = (a.x1.min(b.x1) - a.x0.max(b.x0)).max(0.0) as f64;
    let iy = (a.y1.min(b.y1) - a.y0.max(b.y0)).max(0.0) as f64;
    let inter = ix * iy;
    let area = |b: &BoxF| ((b.x1 - b.x0).max(0.0) * (b.y1 - b.y0).max(0.0)) as f64;
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Spatio-temporal IoU: summed intersection over summed union across frames. A frame
/// with a box on one side only adds that box's area to the union.
pub fn st_iou(pred: &[Option<BoxF>], gt: &[Option<BoxF>]) -> f64 {
    let area = |b: &BoxF| ((b.x1 - b.x0).max(0.0) * (b.y1 - b.y0).max(0.0)) as f64;
    let (mut inter, mut union) = (0.0, 0.0);
    for t in 0..pred.len().max(gt.len()) {
        match (pred.get(t).copied().flatten(), gt.get(t).copied().flatten()) {
            (Some(p), Some(g)) => {
                let i = iou(&p, &g);
                let u = area(&p) + area(&g);
                // From IoU = I / (A + B - I): I = IoU (A + B) / (1 + IoU).
                let it = i * u / (1.0 + i);
                inter += it;
                union += u - it;
            }
            (Some(b), None) | (None, Some(b)) => union += area(&b),
            (None, None) => {}
        }
    }
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// A scored prediction on one image.
#[derive(Clone, Copy, Debug)]
pub struct Detection {
    /// Which image (frame) it is on.
    pub image: usize,
    /// Predicted class.
    pub class: i64,
    /// Confidence.
    pub score: f32,
    /// Box.
    pub bbox: BoxF,
}

/// A ground-truth object on one image.
#[derive(Clone, Copy, Debug)]
pub struct GroundTruth {
    /// Which image (frame) it is on.
    pub image: usize,
    /// Class.
    pub class: i64,
    /// Box.
    pub bbox: BoxF,
}

/// Average precision of one class: predictions sorted by score, each matched to the
/// unmatched ground truth on its image with the highest IoU ≥ `threshold`.
pub fn average_precision(dets: &[Detection], gts: &[GroundTruth], threshold: f64) -> f64 {
    if gts.is_empty() {
        return 0.0;
    }
    let mut order: Vec<&Detection> = dets.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut matched = vec![false; gts.len()];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = Vec::with_capacity(order.len()); // (recall, precision)
    for d in order {
        let best = gts
            .iter()
            .enumerate()
            .filter(|(i, g)| g.image == d.image && !matched[*i])
            .map(|(i, g)| (i, iou(&d.bbox, &g.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, v)) if v >= threshold => {
                matched[i] = true;
                tp += 1.0;
            }
            _ => fp += 1.0,
        }
        points.push((tp / gts.len() as f64, tp / (tp + fp)));
    }
    // All-point interpolation: precision made monotone from the right, area under it.
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for i in 0..points.len() {
        let max_prec = points[i..].iter().map(|p| p.1).fold(0.0, f64::max);
        ap += (points[i].0 - prev_recall) * max_prec;
        prev_recall = points[i].0;
    }
    ap
}

/// Mean AP over the classes present in the ground truth, at IoU 0.5.
pub fn map50(dets: &[Detection], gts: &[GroundTruth]) -> f64 {
    let mut classes: Vec<i64> = gts.iter().map(|g| g.class).collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return 0.0;
    }
    let total: f64 = classes
        .iter()
        .map(|&c| {
            let d: Vec<Detection> = dets.iter().filter(|d| d.class == c).copied().collect();
            let g: Vec<GroundTruth> = gts.iter().filter(|g| g.class == c).copied().collect();
            average_precision(&d, &g, 0.5)
        })
        .sum();
    total / classes.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f32, y0: f32, x1: f32, y1: f32) -> BoxF {
        BoxF { x0, y0, x1, y1 }
    }

    #[test]
    fn iou_by_hand() {
        assert_eq!(iou(&b(0., 0., 1., 1.), &b(0., 0., 1., 1.)), 1.0);
        assert_eq!(iou(&b(0., 0., 1., 1.), &b(2., 2., 3., 3.)), 0.0);
        // Half overlap: I = 0.5, U = 1.5.
        assert!((iou(&b(0., 0., 1., 1.), &b(0.5, 0., 1.5, 1.)) - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn st_iou_by_hand() {
        let g = [Some(b(0., 0., 1., 1.)), Some(b(0., 0., 1., 1.))];
        assert!((st_iou(&g, &g) - 1.0).abs() < 1e-9);
        // Frame 0 perfect (I=1,U=1); frame 1 half overlap (I=.5, U=1.5): 1.5 / 2.5.
        let p = [Some(b(0., 0., 1., 1.)), Some(b(0.5, 0., 1.5, 1.))];
        assert!((st_iou(&p, &g) - 0.6).abs() < 1e-6, "{}", st_iou(&p, &g));
        // A missed frame adds its ground-truth area to the union: 1 / 2.
        let missed = [Some(b(0., 0., 1., 1.)), None];
        assert!((st_iou(&missed, &g) - 0.5).abs() < 1e-9);
        assert_eq!(st_iou(&[None], &[None]), 0.0);
    }

    #[test]
    fn ap_by_hand() {
        let g = |image| GroundTruth { image, class: 1, bbox: b(0., 0., 1., 1.) };
        let d = |image, score, hit: bool| Detection {
            image,
            class: 1,
            score,
            bbox: if hit { b(0., 0., 1., 1.) } else { b(5., 5., 6., 6.) },
        };
        // Two objects, both found with the top scores: AP 1.
        assert_eq!(average_precision(&[d(0, 0.9, true), d(1, 0.8, true), d(1, 0.1, false)], &[g(0), g(1)], 0.5), 1.0);
        // Ranked: miss (0.9), hit (0.8), then nothing: recall 0.5 at precision 0.5 -> AP 0.25.
        assert_eq!(average_precision(&[d(0, 0.9, false), d(0, 0.8, true)], &[g(0), g(1)], 0.5), 0.25);
        // A duplicate of a matched object is a false positive.
        assert_eq!(average_precision(&[d(0, 0.9, true), d(0, 0.8, true)], &[g(0), g(1)], 0.5), 0.5);
    }

    #[test]
    fn map_averages_classes() {
        let gts = [GroundTruth { image: 0, class: 1, bbox: b(0., 0., 1., 1.) }, GroundTruth { image: 1, class: 2, bbox: b(0., 0., 1., 1.) }];
        let dets = [Detection { image: 0, class: 1, score: 0.9, bbox: b(0., 0., 1., 1.) }];
        assert_eq!(map50(&dets, &gts), 0.5);
        assert_eq!(map50(&[], &[]), 0.0);
    }
}
