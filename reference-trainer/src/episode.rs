//! One episode's forward pass and losses, shared by training (which steps the optimizer
//! on them) and validation (which only reads them). Both loops use this module; neither
//! uses the other's internals, so `train` uses `validate` and never the reverse.

use tch::{Device, Kind, Reduction, Tensor};

use crate::data::Episode;
use crate::model::{Detections, FewShotModel};

/// The model's outputs for one episode.
pub struct Forward {
    /// Query-to-prototype logits, `[Q, n_way]`.
    pub logits: Tensor,
    /// Dense detections on the query clips.
    pub detections: Detections,
    /// Support features (for the prototype cache).
    pub support_features: Tensor,
}

impl Forward {
    /// Run the model on an episode.
    pub fn run(model: &FewShotModel, ep: &Episode, device: Device) -> Forward {
        let support = ep.support.to_device(device);
        let query = ep.query.to_device(device);
        let (n_s, n_q) = (support.size()[0], query.size()[0]);
        let n_way = ep.way_classes.len() as i64;
        let support_features = model.features(&support);
        let emb_s = model.embed(&support_features, n_s);
        let protos = emb_s.view([n_way, n_s / n_way, -1]).mean_dim([1i64].as_slice(), false, Kind::Float);
        let query_features = model.features(&query);
        let emb_q = model.embed(&query_features, n_q);
        let dists = (emb_q.unsqueeze(1) - protos.unsqueeze(0)).pow_tensor_scalar(2).sum_dim_intlist([2i64].as_slice(), false, Kind::Float);
        Forward { logits: -dists, detections: model.detect(&query_features, n_q), support_features }
    }
}

/// The losses of one episode.
pub struct Losses {
    /// Prototype classification (cross-entropy).
    pub class: Tensor,
    /// Objectness (BCE) + box regression (smooth L1) at the ground-truth cell.
    pub detection: Tensor,
    /// Their sum.
    pub total: Tensor,
}

/// Losses of a forward pass against the episode's labels and boxes.
pub fn episode_losses(fwd: &Forward, ep: &Episode, device: Device) -> Losses {
    let labels = ep.query_labels.to_device(device);
    let class = fwd.logits.cross_entropy_for_logits(&labels);

    let gt = ep.query_boxes.to_device(device); // [Q, T, 4]
    let scores = &fwd.detections.scores; // [Q, T, G]
    let (q, t, g) = (scores.size()[0], scores.size()[1], scores.size()[2]);
    let side = (g as f64).sqrt() as i64;
    let cx = (gt.select(2, 0) + gt.select(2, 2)) / 2.0;
    let cy = (gt.select(2, 1) + gt.select(2, 3)) / 2.0;
    let gx = (cx * side as f64).floor().clamp(0, side - 1);
    let gy = (cy * side as f64).floor().clamp(0, side - 1);
    let cell = (gy * side as f64 + gx).to_kind(Kind::Int64); // [Q, T]
    let target = Tensor::zeros([q, t, g], (Kind::Float, device)).scatter_value(2, &cell.unsqueeze(2), 1.0);
    let pos_weight = Tensor::from_slice(&[(g - 1) as f32]).to_device(device);
    let objectness = scores.binary_cross_entropy_with_logits(&target, None::<&Tensor>, Some(&pos_weight), Reduction::Mean);
    let at_cell = fwd.detections.boxes.gather(2, &cell.view([q, t, 1, 1]).expand([q, t, 1, 4], false), false).squeeze_dim(2);
    let regression = at_cell.smooth_l1_loss(&gt, Reduction::Mean, 0.05) * 10.0;
    let detection = objectness * 0.1 + regression;
    let total = &class + &detection;
    Losses { class, detection, total }
}
