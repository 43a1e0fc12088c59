//! Validation: run the model over `val_episodes` episodes, accumulate per-sample
//! predictions and ground truth (as the seed's trainer did), then compute mean ST-IoU and
//! mAP@0.5. The accumulators are released when validation ends, unless a leak keeps them.

use tch::{Kind, Tensor};

use crate::config::{Config, Leak};
use crate::data::{BoxF, Episode};
use crate::metrics::{map50, st_iou, Detection, GroundTruth};
use crate::model::FewShotModel;
use crate::episode::{episode_losses, Forward};
use profiler_api::Marker;

/// The seed's validation lists, one entry per query sample. Like the seed's (lists of
/// `.cpu().numpy()` arrays) they hold host copies, flat, row-major.
#[derive(Default)]
pub struct Accumulators {
    /// Frames per sample (T) and boxes per frame (G).
    pub frames: usize,
    /// Boxes per frame (G).
    pub boxes_per_frame: usize,
    /// ST-IoU of the top box per frame against the ground-truth tube.
    pub st_ious: Vec<f64>,
    /// Every predicted box, `[T, G, 4]` per sample.
    pub pred_bboxes: Vec<Vec<f32>>,
    /// Objectness of every box, `[T, G]`.
    pub pred_scores: Vec<Vec<f32>>,
    /// Predicted class of every box, `[T, G]`.
    pub pred_classes: Vec<Vec<i64>>,
    /// Ground-truth box per frame, `[T, 4]`.
    pub gt_bboxes: Vec<Vec<f32>>,
    /// Ground-truth class, `[1]`.
    pub gt_classes: Vec<Vec<i64>>,
}

impl Accumulators {
    /// Bytes of array data held.
    pub fn bytes(&self) -> u64 {
        let f32s: usize = [&self.pred_bboxes, &self.pred_scores, &self.gt_bboxes].iter().flat_map(|l| l.iter()).map(|a| a.len() * 4).sum();
        let i64s: usize = [&self.pred_classes, &self.gt_classes].iter().flat_map(|l| l.iter()).map(|a| a.len() * 8).sum();
        (f32s + i64s + self.st_ious.len() * 8) as u64
    }
}


/// Bytes of a tensor's data.
pub fn tensor_bytes(t: &Tensor) -> u64 {
    (t.numel() * t.kind().elt_size_in_bytes()) as u64
}

/// What leaks keep alive across epochs.
#[derive(Default)]
pub struct Retained {
    /// validation-accumulators: every epoch's lists.
    pub accumulators: Vec<Accumulators>,
    /// autograd-graph: one loss per epoch with its graph.
    pub loss_history: Vec<Tensor>,
    /// gpu-tensors: validation outputs left on the device.
    pub device_outputs: Vec<Tensor>,
}

/// Validation results of one epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValMetrics {
    /// Mean loss.
    pub loss: f64,
    /// Mean spatio-temporal IoU.
    pub st_iou: f64,
    /// mAP at IoU 0.5.
    pub map50: f64,
}

/// The seed's root cause: the lists outlive validation.
#[inline(never)]
pub fn keep_validation_accumulators(acc: Accumulators, retained: &mut Retained) {
    retained.accumulators.push(acc);
}

/// A loss kept without detaching: its graph and saved activations stay alive.
#[inline(never)]
pub fn record_val_loss_with_graph(loss: Tensor, retained: &mut Retained) {
    retained.loss_history.push(loss);
}

/// Validation outputs kept on the GPU.
#[inline(never)]
pub fn keep_outputs_on_device(scores: &Tensor, boxes: &Tensor, retained: &mut Retained) {
    retained.device_outputs.push(scores.copy());
    retained.device_outputs.push(boxes.copy());
}

fn to_boxes(t: &Tensor) -> Vec<BoxF> {
    boxes_of(&Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().view([-1])).unwrap_or_default())
}

fn boxes_of(flat: &[f32]) -> Vec<BoxF> {
    flat.chunks_exact(4).map(|c| BoxF { x0: c[0], y0: c[1], x1: c[2], y1: c[3] }).collect()
}

/// Predictions per frame kept for mAP: the top few boxes by score.
const TOP_K: usize = 3;

/// Validate one epoch. Marks `validation_start`, and `validation_end` while the
/// accumulators are still alive (validation's peak).
pub fn validate_epoch(
    model: &FewShotModel,
    cfg: &Config,
    episodes: impl Iterator<Item = Episode>,
    epoch: u32,
    marker: &mut dyn Marker,
    retained: &mut Retained,
) -> ValMetrics {
    marker.validation_start(epoch);
    let mut acc = Accumulators::default();
    let mut loss_sum = 0.0;
    let mut n = 0;
    let device = cfg.device();
    for episode in episodes {
        let last = n + 1 == cfg.val_episodes;
        // The autograd-graph leak forgets no_grad on the epoch's last episode.
        let keep_graph = last && cfg.has_leak(Leak::AutogradGraph);
        let fwd = if keep_graph {
            Forward::run(model, &episode, device)
        } else {
            tch::no_grad(|| Forward::run(model, &episode, device))
        };
        let losses = episode_losses(&fwd, &episode, device);
        loss_sum += losses.total.double_value(&[]);
        if keep_graph {
            record_val_loss_with_graph(losses.total, retained);
        }
        if cfg.has_leak(Leak::GpuTensors) {
            keep_outputs_on_device(&fwd.detections.scores, &fwd.detections.boxes, retained);
        }

        let pred_way = fwd.logits.detach().argmax(1, false).to_device(tch::Device::Cpu);
        let scores = fwd.detections.scores.detach().sigmoid().to_device(tch::Device::Cpu);
        let boxes = fwd.detections.boxes.detach().to_device(tch::Device::Cpu);
        for (i, &gt_class) in episode.query_classes.iter().enumerate() {
            let i = i as i64;
            let way = pred_way.int64_value(&[i]);
            let class = episode.way_classes[way as usize];
            let (s, b) = (scores.get(i), boxes.get(i)); // [T, G], [T, G, 4]
            let gt = episode.query_boxes.get(i);
            let top = s.argmax(1, false); // [T]
            let (frames, per_frame) = (s.size()[0], s.size()[1]);
            let top_boxes = to_boxes(&b.gather(1, &top.view([frames, 1, 1]).expand([frames, 1, 4], false), false));
            let pred_tube: Vec<Option<BoxF>> = top_boxes.into_iter().map(Some).collect();
            let gt_tube: Vec<Option<BoxF>> = to_boxes(&gt).into_iter().map(Some).collect();
            acc.st_ious.push(st_iou(&pred_tube, &gt_tube));
            (acc.frames, acc.boxes_per_frame) = (frames as usize, per_frame as usize);
            // Host copies made here, in the loop (as the seed's lists were filled), so
            // that a kept list is blamed on validate_epoch.
            acc.pred_bboxes.push(Vec::<f32>::try_from(b.contiguous().view([-1])).expect("f32 boxes"));
            acc.pred_scores.push(Vec::<f32>::try_from(s.contiguous().view([-1])).expect("f32 scores"));
            acc.pred_classes.push(vec![class; (frames * per_frame) as usize]);
            acc.gt_bboxes.push(Vec::<f32>::try_from(gt.to_kind(Kind::Float).contiguous().view([-1])).expect("f32 boxes"));
            acc.gt_classes.push(vec![gt_class]);
        }
        n += 1;
    }
    let metrics = ValMetrics {
        loss: loss_sum / n.max(1) as f64,
        st_iou: acc.st_ious.iter().sum::<f64>() / acc.st_ious.len().max(1) as f64,
        map50: map_from_accumulators(&acc),
    };
    marker.validation_end(epoch);
    if cfg.has_leak(Leak::ValidationAccumulators) {
        keep_validation_accumulators(acc, retained);
    }
    metrics
}

/// mAP@0.5 over every frame of every accumulated sample, top boxes per frame.
fn map_from_accumulators(acc: &Accumulators) -> f64 {
    let mut dets = Vec::new();
    let mut gts = Vec::new();
    let (frames, g) = (acc.frames, acc.boxes_per_frame);
    for (sample, scores) in acc.pred_scores.iter().enumerate() {
        let gt_class = acc.gt_classes[sample][0];
        let gt_boxes = boxes_of(&acc.gt_bboxes[sample]);
        let pred_boxes = boxes_of(&acc.pred_bboxes[sample]);
        for t in 0..frames {
            let image = sample * frames + t;
            gts.push(GroundTruth { image, class: gt_class, bbox: gt_boxes[t] });
            let row = &scores[t * g..(t + 1) * g];
            let mut by_score: Vec<usize> = (0..g).collect();
            by_score.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let class = acc.pred_classes[sample][t * g];
            for &k in by_score.iter().take(TOP_K) {
                dets.push(Detection { image, class, score: row[k], bbox: pred_boxes[t * g + k] });
            }
        }
    }
    map50(&dets, &gts)
}
