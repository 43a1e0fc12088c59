//! Validation: run the model over `val_episodes` episodes, accumulate per-sample
//! predictions and ground truth (as the seed's trainer did), then compute mean ST-IoU and
//! mAP@0.5. The accumulators are released when validation ends, unless a leak keeps them.

use tch::{Kind, Tensor};

use crate::config::{Config, Leak};
use crate::data::{BoxF, Episode};
use crate::metrics::{map50, st_iou, Detection, GroundTruth};
use crate::model::FewShotModel;
use crate::train::{episode_losses, Forward};
use profiler_api::Marker;

/// The seed's validation lists, one entry per query sample.
#[derive(Default)]
pub struct Accumulators {
    /// ST-IoU of the top box per frame against the ground-truth tube.
    pub st_ious: Vec<f64>,
    /// Every predicted box, `[T, G, 4]` per sample.
    pub pred_bboxes: Vec<Tensor>,
    /// Objectness of every box, `[T, G]`.
    pub pred_scores: Vec<Tensor>,
    /// Predicted class of every box, `[T, G]` (int64).
    pub pred_classes: Vec<Tensor>,
    /// Ground-truth box per frame, `[T, 4]`.
    pub gt_bboxes: Vec<Tensor>,
    /// Ground-truth class, `[1]`.
    pub gt_classes: Vec<Tensor>,
}

impl Accumulators {
    /// Bytes of tensor data held.
    pub fn bytes(&self) -> u64 {
        let lists = [&self.pred_bboxes, &self.pred_scores, &self.pred_classes, &self.gt_bboxes, &self.gt_classes];
        let tensors: u64 = lists.iter().flat_map(|l| l.iter()).map(tensor_bytes).sum();
        tensors + (self.st_ious.len() * 8) as u64
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
    let v = Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().view([-1])).unwrap_or_default();
    v.chunks_exact(4).map(|c| BoxF { x0: c[0], y0: c[1], x1: c[2], y1: c[3] }).collect()
}

/// Predictions per frame kept for mAP: the top few boxes by score.
const TOP_K: i64 = 3;

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
            let frames = s.size()[0];
            let top_boxes = to_boxes(&b.gather(1, &top.view([frames, 1, 1]).expand([frames, 1, 4], false), false));
            let pred_tube: Vec<Option<BoxF>> = top_boxes.into_iter().map(Some).collect();
            let gt_tube: Vec<Option<BoxF>> = to_boxes(&gt).into_iter().map(Some).collect();
            acc.st_ious.push(st_iou(&pred_tube, &gt_tube));
            acc.pred_bboxes.push(b.copy());
            acc.pred_scores.push(s.copy());
            acc.pred_classes.push(Tensor::full(s.size(), class, (Kind::Int64, tch::Device::Cpu)));
            acc.gt_bboxes.push(gt.copy());
            acc.gt_classes.push(Tensor::from_slice(&[gt_class]));
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
    for (sample, scores) in acc.pred_scores.iter().enumerate() {
        let frames = scores.size()[0];
        let gt_class = acc.gt_classes[sample].int64_value(&[0]);
        let gt_boxes = to_boxes(&acc.gt_bboxes[sample]);
        for t in 0..frames {
            let image = sample * frames as usize + t as usize;
            gts.push(GroundTruth { image, class: gt_class, bbox: gt_boxes[t as usize] });
            let (top_scores, top_idx) = scores.get(t).topk(TOP_K, 0, true, true);
            let boxes = to_boxes(&acc.pred_bboxes[sample].get(t).index_select(0, &top_idx));
            let class = acc.pred_classes[sample].int64_value(&[t, 0]);
            for (k, bbox) in boxes.into_iter().enumerate() {
                dets.push(Detection { image, class, score: top_scores.double_value(&[k as i64]) as f32, bbox });
            }
        }
    }
    map50(&dets, &gts)
}
