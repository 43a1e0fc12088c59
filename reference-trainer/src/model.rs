//! The few-shot model: a small per-frame CNN backbone, a prototype classification head
//! (distance to each class's mean support embedding) and a dense detection head (an
//! objectness score and a box per grid cell per frame), plus an internal cache of
//! per-class support features that the trainer clears every epoch.

use std::collections::HashMap;

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Channels of the backbone's last feature map.
pub const FEATURE_CHANNELS: i64 = 32;
/// Embedding size of the prototype head.
pub const EMBED_DIM: i64 = 64;

/// Backbone, heads and the prototype cache.
pub struct FewShotModel {
    /// The parameters (for the optimiser).
    pub vs: nn::VarStore,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    conv3: nn::Conv2D,
    detect_head: nn::Conv2D,
    embed: nn::Linear,
    /// Support features per dataset class, for prototype refinement across episodes.
    cache: HashMap<i64, Vec<Tensor>>,
    cache_bytes: u64,
}

/// Dense detections for a batch of clips.
pub struct Detections {
    /// Objectness logits, `[N, T, G]`.
    pub scores: Tensor,
    /// Boxes (x0, y0, x1, y1, normalised), `[N, T, G, 4]`.
    pub boxes: Tensor,
}

impl FewShotModel {
    /// A freshly initialised model on `device`.
    pub fn new(device: tch::Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let conv = |stride| nn::ConvConfig { stride, padding: 1, ..Default::default() };
        FewShotModel {
            conv1: nn::conv2d(&root / "conv1", 3, 16, 3, conv(2)),
            conv2: nn::conv2d(&root / "conv2", 16, 32, 3, conv(2)),
            conv3: nn::conv2d(&root / "conv3", 32, FEATURE_CHANNELS, 3, conv(1)),
            detect_head: nn::conv2d(&root / "detect", FEATURE_CHANNELS, 5, 1, Default::default()),
            embed: nn::linear(&root / "embed", FEATURE_CHANNELS, EMBED_DIM, Default::default()),
            vs,
            cache: HashMap::new(),
            cache_bytes: 0,
        }
    }

    /// Per-frame feature maps: `[N, T, 3, H, W]` → `[N*T, C, H/4, W/4]`.
    pub fn features(&self, clips: &Tensor) -> Tensor {
        let s = clips.size();
        let x = clips.view([s[0] * s[1], s[2], s[3], s[4]]);
        let x = self.conv1.forward(&x).relu();
        let x = self.conv2.forward(&x).relu();
        self.conv3.forward(&x).relu()
    }

    /// Clip embeddings `[N, D]` from features of `n` clips.
    pub fn embed(&self, features: &Tensor, n: i64) -> Tensor {
        let pooled = features.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        let per_clip = pooled.view([n, -1, FEATURE_CHANNELS]).mean_dim([1i64].as_slice(), false, Kind::Float);
        self.embed.forward(&per_clip)
    }

    /// Dense detections from features of `n` clips.
    pub fn detect(&self, features: &Tensor, n: i64) -> Detections {
        let out = self.detect_head.forward(features); // [N*T, 5, h, w]
        let s = out.size();
        let (h, w) = (s[2], s[3]);
        let t = s[0] / n;
        let out = out.view([n, t, 5, h * w]);
        let scores = out.select(2, 0);
        let offsets = out.narrow(2, 1, 4).sigmoid(); // [N, T, 4, G]
        // Cell centres + offsets -> box centre; sizes in 0..1 of the image.
        let dev = features.device();
        let gx = Tensor::arange(w, (Kind::Float, dev)).repeat([h]);
        let gy = Tensor::arange(h, (Kind::Float, dev)).repeat_interleave_self_int(w, None, None);
        let cx = (offsets.select(2, 0) + &gx) / w as f64;
        let cy = (offsets.select(2, 1) + &gy) / h as f64;
        let bw = offsets.select(2, 2) * 0.6;
        let bh = offsets.select(2, 3) * 0.6;
        let boxes = Tensor::stack(&[&cx - &bw / 2.0, &cy - &bh / 2.0, &cx + &bw / 2.0, &cy + &bh / 2.0], 3);
        Detections { scores, boxes }
    }

    /// Remember detached support features per dataset class (mean over frames).
    #[inline(never)]
    pub fn cache_prototypes(&mut self, way_classes: &[i64], support_features: &Tensor, views_per_way: i64) {
        let s = support_features.size(); // [S*T, C, h, w]
        let per_way = support_features.detach().view([way_classes.len() as i64, views_per_way, -1, s[1], s[2], s[3]]);
        let per_way = per_way.mean_dim([2i64].as_slice(), false, Kind::Float);
        for (i, class) in way_classes.iter().enumerate() {
            let entry = per_way.get(i as i64).copy();
            self.cache_bytes += (entry.numel() * 4) as u64;
            self.cache.entry(*class).or_default().push(entry);
        }
    }

    /// Bytes held by the prototype cache.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_bytes
    }

    /// Drop the prototype cache (called every epoch).
    pub fn clear_cache(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
    }
}
