//! The data pipeline: a synthetic video dataset drawn on the fly (deterministic by seed),
//! a frame cache in front of "decoding", and data-loader workers filling bounded
//! prefetch queues with episodes.
//!
//! Each clip shows one object of its class (a class-coloured rectangle of class-specific
//! size) moving in a straight line over a textured background, with its box per frame.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

/// An axis-aligned box in normalised image coordinates (0..1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxF {
    /// Left.
    pub x0: f32,
    /// Top.
    pub y0: f32,
    /// Right.
    pub x1: f32,
    /// Bottom.
    pub y1: f32,
}

/// Mix integers into one seed (splitmix64 finaliser).
pub fn mix(parts: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for &p in parts {
        h ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15).wrapping_add(h << 6).wrapping_add(h >> 2);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// The synthetic dataset: `num_classes × videos_per_class` clips of `frames` frames.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Seed of all content.
    pub seed: u64,
    /// Classes.
    pub num_classes: u32,
    /// Videos per class.
    pub videos_per_class: u32,
    /// Frames per clip.
    pub frames: u32,
    /// Frame side in pixels.
    pub size: u32,
}

/// Identifies one decoded frame.
pub type FrameKey = (u32, u32, u32); // (class, video, frame)

impl Dataset {
    fn class_colour(class: u32) -> [f32; 3] {
        // Evenly spaced hues, full saturation.
        let h = class as f32 / 16.0 * 6.0;
        let x = 1.0 - ((h % 2.0) - 1.0).abs();
        let (r, g, b) = match h as u32 % 6 {
            0 => (1.0, x, 0.0),
            1 => (x, 1.0, 0.0),
            2 => (0.0, 1.0, x),
            3 => (0.0, x, 1.0),
            4 => (x, 0.0, 1.0),
            _ => (1.0, 0.0, x),
        };
        let dim = if class >= 16 { 0.6 } else { 1.0 };
        [r * dim, g * dim, b * dim]
    }

    /// The object's box in every frame of a video.
    pub fn boxes(&self, class: u32, video: u32) -> Vec<BoxF> {
        let mut rng = StdRng::seed_from_u64(mix(&[self.seed, 1, class as u64, video as u64]));
        let w = 0.18 + 0.12 * ((class % 4) as f32 / 3.0) + rng.gen_range(-0.03..0.03);
        let h = 0.18 + 0.12 * (((class / 4) % 4) as f32 / 3.0) + rng.gen_range(-0.03..0.03);
        let (x, y) = (rng.gen_range(0.0..1.0 - w), rng.gen_range(0.0..1.0 - h));
        let (vx, vy) = (rng.gen_range(-0.05..0.05), rng.gen_range(-0.05..0.05));
        (0..self.frames)
            .map(|t| {
                let x0 = (x + vx * t as f32).clamp(0.0, 1.0 - w);
                let y0 = (y + vy * t as f32).clamp(0.0, 1.0 - h);
                BoxF { x0, y0, x1: x0 + w, y1: y0 + h }
            })
            .collect()
    }

    /// "Decode" one frame: draw it as RGB bytes, channel-major (3 × size × size).
    pub fn decode_frame(&self, (class, video, frame): FrameKey) -> Vec<u8> {
        let s = self.size as usize;
        let b = self.boxes(class, video)[frame as usize];
        let colour = Self::class_colour(class);
        let mut rng = StdRng::seed_from_u64(mix(&[self.seed, 2, class as u64, video as u64, frame as u64]));
        let tint: f32 = rng.gen_range(0.15..0.35);
        let mut out = vec![0u8; 3 * s * s];
        for yy in 0..s {
            for xx in 0..s {
                let (u, v) = ((xx as f32 + 0.5) / s as f32, (yy as f32 + 0.5) / s as f32);
                let inside = u >= b.x0 && u < b.x1 && v >= b.y0 && v < b.y1;
                for (c, col) in colour.iter().enumerate() {
                    let background = tint + 0.1 * ((u * 7.0 + v * 3.0 + c as f32).sin()) + rng.gen_range(-0.05..0.05);
                    let value = if inside { 0.2 + 0.8 * col } else { background };
                    out[c * s * s + yy * s + xx] = (value.clamp(0.0, 1.0) * 255.0) as u8;
                }
            }
        }
        out
    }
}

/// A decoded frame on the host (`[3, H, W]` bytes), as a Python loader's frame cache
/// holds numpy arrays; shared with readers without copying.
pub type Frame = Arc<[u8]>;

/// An LRU cache of decoded frames, shared by the workers.
pub struct FrameCache {
    capacity: usize,
    unbounded: bool,
    entries: HashMap<FrameKey, (Frame, u64)>,
    by_age: BTreeMap<u64, FrameKey>,
    clock: u64,
    frame_bytes: u64,
}

impl FrameCache {
    /// A cache of `capacity` frames; with `unbounded` (the frame-cache leak) it never evicts.
    pub fn new(capacity: usize, unbounded: bool, frame_bytes: u64) -> Self {
        FrameCache { capacity, unbounded, entries: HashMap::new(), by_age: BTreeMap::new(), clock: 0, frame_bytes }
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held beyond the configured capacity (what the frame-cache leak retains).
    pub fn bytes_over_capacity(&self) -> u64 {
        self.entries.len().saturating_sub(self.capacity) as u64 * self.frame_bytes
    }

    /// The cached frame, marking it recently used.
    pub fn get(&mut self, key: &FrameKey) -> Option<Frame> {
        self.clock += 1;
        let clock = self.clock;
        let (frame, stamp) = self.entries.get_mut(key)?;
        self.by_age.remove(stamp);
        *stamp = clock;
        self.by_age.insert(clock, *key);
        Some(frame.clone())
    }

    /// Store a frame, evicting the least recently used beyond capacity.
    pub fn insert(&mut self, key: FrameKey, frame: Frame) {
        if self.unbounded {
            self.insert_unbounded(key, frame);
        } else {
            self.insert_bounded(key, frame);
        }
    }

    fn insert_bounded(&mut self, key: FrameKey, frame: Frame) {
        self.put(key, frame);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else { break };
            self.entries.remove(&oldest);
        }
    }

    /// The frame-cache leak: the capacity is never enforced.
    #[inline(never)]
    fn insert_unbounded(&mut self, key: FrameKey, frame: Frame) {
        self.put(key, frame);
    }

    fn put(&mut self, key: FrameKey, frame: Frame) {
        self.clock += 1;
        if let Some((_, old)) = self.entries.insert(key, (frame, self.clock)) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(self.clock, key);
    }
}

/// A clip as the model sees it.
pub struct Clip {
    /// Frames, float 0..1, `[T, 3, H, W]`.
    pub frames: Tensor,
    /// The object's box per frame.
    pub boxes: Vec<BoxF>,
}

/// Decode a frame missing from the cache and store it there.
#[inline(never)]
fn decode_into_cache(ds: &Dataset, cache: &Mutex<FrameCache>, key: FrameKey) -> Frame {
    // The cache's block is allocated here (moving the decoded bytes into an Arc), so a
    // cache that never evicts is blamed on this function.
    let frame: Frame = ds.decode_frame(key).into();
    cache.lock().unwrap().insert(key, frame.clone());
    frame
}

/// Load a clip through the frame cache.
pub fn load_clip(ds: &Dataset, cache: &Mutex<FrameCache>, class: u32, video: u32) -> Clip {
    let s = ds.size as i64;
    let frames: Vec<Tensor> = (0..ds.frames)
        .map(|t| {
            let key = (class, video, t);
            // Bind first: a guard in the match scrutinee would be held across the
            // insert below, which locks again.
            let cached = cache.lock().unwrap().get(&key);
            let frame = cached.unwrap_or_else(|| decode_into_cache(ds, cache, key));
            Tensor::from_slice(&frame).view([3, s, s])
        })
        .collect();
    let frames = Tensor::stack(&frames, 0).to_kind(Kind::Float) / 255.0;
    Clip { frames, boxes: ds.boxes(class, video) }
}

/// One augmented view: random horizontal flip, brightness and noise.
pub fn augment(frames: &Tensor, rng: &mut StdRng) -> Tensor {
    let mut x = if rng.gen_bool(0.5) { frames.flip([3]) } else { frames.shallow_clone() };
    x = x * rng.gen_range(0.8..1.2);
    // Noise from the episode's own generator keeps episodes reproducible across workers.
    let noise: Vec<f32> = (0..frames.numel()).map(|_| rng.gen_range(-0.05f32..0.05)).collect();
    x = x + Tensor::from_slice(&noise).view_as(frames);
    x.clamp(0.0, 1.0)
}

/// What an episode asks for.
#[derive(Clone, Debug)]
pub struct EpisodeSpec {
    /// Classes per episode.
    pub n_way: u32,
    /// Support samples per class.
    pub k_shot: u32,
    /// Query samples per class.
    pub n_query: u32,
    /// Augmented views per support sample.
    pub num_aug: u32,
    /// Probability of a triplet batch with the episode (0 for validation).
    pub triplet_ratio: f64,
    /// Triples per triplet batch.
    pub triplet_batch_size: u32,
}

/// Anchor, positive and negative clips, `[B, T, 3, H, W]` each.
pub struct TripletBatch {
    /// Anchors.
    pub anchor: Tensor,
    /// Same class as the anchor, another video.
    pub positive: Tensor,
    /// Another class.
    pub negative: Tensor,
}

/// One few-shot episode.
pub struct Episode {
    /// Index within its stream.
    pub index: u64,
    /// Support clips (each sample followed by its augmented views), `[S, T, 3, H, W]`.
    pub support: Tensor,
    /// Episode-local label (0..n_way) of each support clip.
    pub support_labels: Tensor,
    /// Query clips, `[Q, T, 3, H, W]`.
    pub query: Tensor,
    /// Episode-local label of each query clip.
    pub query_labels: Tensor,
    /// Ground-truth boxes of each query clip, `[Q, T, 4]` (x0, y0, x1, y1).
    pub query_boxes: Tensor,
    /// Dataset class of each query clip.
    pub query_classes: Vec<i64>,
    /// Dataset class of each way.
    pub way_classes: Vec<i64>,
    /// A triplet batch, for some training episodes.
    pub triplet: Option<TripletBatch>,
}

// Tensors are moved between threads whole; libtorch tensors are thread-safe to move.
unsafe impl Send for Episode {}

fn boxes_tensor(boxes: &[BoxF]) -> Tensor {
    let flat: Vec<f32> = boxes.iter().flat_map(|b| [b.x0, b.y0, b.x1, b.y1]).collect();
    Tensor::from_slice(&flat).view([boxes.len() as i64, 4])
}

/// Build episode `index` of stream `stream`; the same arguments give the same episode.
pub fn make_episode(ds: &Dataset, cache: &Mutex<FrameCache>, spec: &EpisodeSpec, stream: u64, index: u64) -> Episode {
    let mut rng = StdRng::seed_from_u64(mix(&[ds.seed, 3, stream, index]));
    let mut classes: Vec<u32> = (0..ds.num_classes).collect();
    for i in 0..spec.n_way as usize {
        let j = rng.gen_range(i..classes.len());
        classes.swap(i, j);
    }
    classes.truncate(spec.n_way as usize);

    let (mut support, mut support_labels) = (Vec::new(), Vec::new());
    let (mut query, mut query_labels, mut query_boxes, mut query_classes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (way, &class) in classes.iter().enumerate() {
        for _ in 0..spec.k_shot {
            let clip = load_clip(ds, cache, class, rng.gen_range(0..ds.videos_per_class));
            for _ in 0..spec.num_aug {
                support.push(augment(&clip.frames, &mut rng));
                support_labels.push(way as i64);
            }
            support.push(clip.frames);
            support_labels.push(way as i64);
        }
        for _ in 0..spec.n_query {
            let clip = load_clip(ds, cache, class, rng.gen_range(0..ds.videos_per_class));
            query.push(clip.frames);
            query_labels.push(way as i64);
            query_boxes.push(boxes_tensor(&clip.boxes));
            query_classes.push(class as i64);
        }
    }
    let triplet = (spec.triplet_ratio > 0.0 && rng.gen_bool(spec.triplet_ratio)).then(|| {
        let (mut a, mut p, mut n) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..spec.triplet_batch_size {
            let ca = rng.gen_range(0..ds.num_classes);
            let cn = (ca + rng.gen_range(1..ds.num_classes)) % ds.num_classes;
            a.push(load_clip(ds, cache, ca, rng.gen_range(0..ds.videos_per_class)).frames);
            p.push(load_clip(ds, cache, ca, rng.gen_range(0..ds.videos_per_class)).frames);
            n.push(load_clip(ds, cache, cn, rng.gen_range(0..ds.videos_per_class)).frames);
        }
        TripletBatch { anchor: Tensor::stack(&a, 0), positive: Tensor::stack(&p, 0), negative: Tensor::stack(&n, 0) }
    });
    Episode {
        index,
        support: Tensor::stack(&support, 0),
        support_labels: Tensor::from_slice(&support_labels),
        query: Tensor::stack(&query, 0),
        query_labels: Tensor::from_slice(&query_labels),
        query_boxes: Tensor::stack(&query_boxes, 0),
        query_classes,
        way_classes: classes.iter().map(|&c| c as i64).collect(),
        triplet,
    }
}

/// Data-loader workers: worker `w` builds episodes `w, w + W, ...` into its own bounded
/// queue, and [`Loader::next`] takes them round-robin, so the order is deterministic.
pub struct Loader {
    queues: Vec<Receiver<Episode>>,
    workers: Vec<JoinHandle<()>>,
    next: u64,
    count: u64,
}

/// Episodes each worker may have ready ahead of the trainer.
pub const PREFETCH_PER_WORKER: usize = 2;

impl Loader {
    /// Start `workers` threads producing `count` episodes of `stream`.
    pub fn start(ds: Arc<Dataset>, cache: Arc<Mutex<FrameCache>>, spec: EpisodeSpec, stream: u64, count: u64, workers: u32) -> Self {
        let workers = workers.max(1) as u64;
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        for w in 0..workers {
            let (tx, rx) = sync_channel(PREFETCH_PER_WORKER);
            let (ds, cache, spec) = (ds.clone(), cache.clone(), spec.clone());
            handles.push(std::thread::spawn(move || {
                let _guard = tch::no_grad_guard();
                let mut i = w;
                while i < count {
                    if tx.send(make_episode(&ds, &cache, &spec, stream, i)).is_err() {
                        return; // the trainer stopped early
                    }
                    i += workers;
                }
            }));
            queues.push(rx);
        }
        Loader { queues, workers: handles, next: 0, count }
    }
}

impl Iterator for Loader {
    type Item = Episode;
    fn next(&mut self) -> Option<Episode> {
        if self.next >= self.count {
            return None;
        }
        let q = (self.next % self.queues.len() as u64) as usize;
        self.next += 1;
        self.queues[q].recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.queues.clear(); // unblocks workers waiting to send
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> Dataset {
        Dataset { seed: 7, num_classes: 16, videos_per_class: 10, frames: 3, size: 16 }
    }

    #[test]
    fn frames_are_deterministic_and_boxes_inside() {
        let d = ds();
        assert_eq!(d.decode_frame((3, 4, 1)), d.decode_frame((3, 4, 1)));
        assert_ne!(d.decode_frame((3, 4, 1)), d.decode_frame((3, 5, 1)));
        for b in d.boxes(5, 2) {
            assert!(b.x0 >= 0.0 && b.x1 <= 1.0 + 1e-6 && b.x0 < b.x1 && b.y0 < b.y1);
        }
    }

    #[test]
    fn lru_evicts_oldest_and_unbounded_does_not() {
        let mut c = FrameCache::new(2, false, 10);
        for v in 0..3 {
            c.insert((0, v, 0), vec![0u8; 10].into());
            if v == 1 {
                assert!(c.get(&(0, 0, 0)).is_some()); // touch 0 so 1 is oldest
            }
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&(0, 1, 0)).is_none() && c.get(&(0, 0, 0)).is_some());
        let mut u = FrameCache::new(2, true, 10);
        for v in 0..5 {
            u.insert((0, v, 0), vec![0u8; 10].into());
        }
        assert_eq!((u.len(), u.bytes_over_capacity()), (5, 30));
    }

    #[test]
    fn loader_order_does_not_depend_on_workers() {
        let d = Arc::new(ds());
        let spec = EpisodeSpec { n_way: 2, k_shot: 1, n_query: 2, num_aug: 1, triplet_ratio: 0.5, triplet_batch_size: 2 };
        let run = |workers| {
            let cache = Arc::new(Mutex::new(FrameCache::new(50, false, 1)));
            Loader::start(d.clone(), cache, spec.clone(), 0, 5, workers)
                .map(|e| (e.index, e.way_classes.clone(), e.query.sum(Kind::Double).double_value(&[])))
                .collect::<Vec<_>>()
        };
        let one = run(1);
        assert_eq!(one.len(), 5);
        assert_eq!(one.iter().map(|e| e.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(one, run(3));
    }
}
