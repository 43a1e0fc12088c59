//! The ledger: an [`Analysis`] read out in plain sentences (what grows, where, why, and
//! what was not looked at). The analyzer decides; this module only words its decisions,
//! so a change of wording never changes a verdict.

use super::*;

/// Read the ledger (RSS vs allocator vs live heap vs GPU) in plain words.
pub(super) fn explain(a: &Analysis) -> Vec<String> {
    let grows = |c: &str| a.class_of(c) == Some(Class::Growing);
    let mut lines = Vec::new();
    explain_evidence(a, &mut lines);
    if grows("je_allocated_bytes") || grows("heap_exact_bytes") {
        let hint = if a.sites.is_empty() { " Run with --attribute to see which call site holds them." } else { "" };
        lines.push(format!("Live heap allocations grow: objects (Rust values or libtorch CPU tensors) are kept alive across epochs.{hint}"));
    }
    for s in a.sites.iter().filter(|s| s.class == Class::Growing).take(3) {
        let slope = s.slope_bytes_per_epoch.unwrap_or(0.0);
        lines.push(format!("{} retains {}/epoch, growing.", s.name(), crate::format::signed_bytes(slope)));
    }
    if !a.sites.is_empty() && !a.sites.iter().any(|s| s.class == Class::Growing) {
        lines.push("No call site's live heap grows.".into());
    }
    if let (Some(crate::heap::StackSource::DhatExact), Some(heap)) = (a.sites_source, a.series("je_allocated_bytes")) {
        // dhat sees Rust allocations only; say so when jemalloc's count grows beyond them.
        let explained: f64 = a.sites.iter().filter(|s| s.class == Class::Growing).filter_map(|s| s.slope_bytes_per_epoch).sum();
        let total = heap.slope_bytes_per_epoch.unwrap_or(0.0);
        if heap.class == Class::Growing && explained < 0.5 * total {
            lines.push(format!(
                "dhat's growing call sites hold {}/epoch of the {}/epoch by which live allocations grow: the rest is outside the Rust heap that dhat sees (C++ allocations: libtorch tensors, autograd graphs). Run with --attribute (jemalloc sampling sees both) to name its call site.",
                crate::format::signed_bytes(explained), crate::format::signed_bytes(total)
            ));
        }
    }
    let in_use_measured = a.series("rss_in_use_bytes").is_some();
    if grows("rss_bytes") && in_use_measured && !grows("rss_in_use_bytes") {
        lines.push("RSS grows but RSS in use does not: the growth is pages the allocator holds free and returns on its own schedule (jemalloc decay). Not a leak.".into());
    } else if grows("rss_bytes") && !grows("je_allocated_bytes") {
        if grows("je_active_bytes") {
            lines.push("RSS grows while live allocations are flat: the allocator holds more pages (fragmentation, or freed pages not yet returned to the OS). Not a leak of objects.".into());
        } else {
            lines.push("RSS grows outside the heap allocator: thread stacks, memory-mapped files, GPU driver host memory, or a library with its own allocator.".into());
        }
    }
    if let Some(g) = &a.gpu_allocator {
        gpu::explain(g, a.censuses.as_ref(), &mut lines);
    } else if a.class_of("gpu_reserved_bytes") == Some(Class::Growing) && !grows("gpu_allocated_bytes") {
        lines.push("GPU reserved grows while GPU allocated is flat: libtorch's caching allocator keeps freed blocks for reuse. That is caching, not a leak (emptying the cache returns them).".into());
    }
    if a.gpu_unrecorded && a.gpu_allocator.is_none() {
        lines.push("--gpu-sites: nothing was recorded. CUDA was never initialised in the command's first Python process (no torch.cuda use there), so there is no allocator to read.".into());
    }
    if grows("gpu_allocated_bytes") && a.gpu_allocator.is_none() {
        lines.push("GPU allocated grows: tensors accumulate on the device across epochs.".into());
    }
    explain_tree(a, &mut lines);
    explain_native_sites(a, &mut lines);
    explain_objects(a, &mut lines);
    explain_ranks(a, &mut lines);
    explain_processes(a, &mut lines);
    // Retained and mapped memory is virtual, not resident: its saturation is not news;
    // nor is the whole machine's (other processes come and go): never given a cause.
    let told = |s: &SeriesVerdict| s.cause.is_some() || matches!(s.column.as_str(), "je_retained_bytes" | "je_mapped_bytes") || MACHINE_WIDE.contains(&s.column.as_str());
    let bounded: Vec<&str> = a.series.iter().filter(|s| !told(s) && s.class == Class::Bounded).map(|s| s.name.as_str()).collect();
    if !bounded.is_empty() {
        lines.push(format!("{} rose and levelled off (bounded, at least 3 epoch ends at the plateau): a cache filling to capacity, not a leak.", list_words(&bounded)));
    }
    let machine: Vec<&str> = a.series.iter().filter(|s| MACHINE_WIDE.contains(&s.column.as_str()) && s.class == Class::Growing).map(|s| s.name.as_str()).collect();
    if !machine.is_empty() {
        lines.push(format!("{} rose: that is the whole machine's, moved by every process on it, not this run's alone (not part of the verdict).", list_words(&machine)));
    }
    if a.verdict == "flat" && lines.is_empty() {
        lines.push("Memory is flat after warm-up: no series grows beyond its noise tolerance.".into());
    }
    if a.verdict == "insufficient" {
        lines.push(format!("Too few epoch ends to judge ({}): a verdict needs 3 after warm-up, or 2 after warm-up with boundaries inside the epochs to pair. The verdict is insufficient, neither flat nor growing.", a.epochs));
    }
    if let Some(why) = gpu_empty_reason(&a.gpu) {
        lines.push(format!("GPU columns are empty: {why}."));
    }
    if a.incomplete {
        lines.push("The run did not finish (killed or crashed): this report covers the rows written before it stopped.".into());
    }
    explain_end(a, &mut lines);
    lines
}

/// The ledger of a watched process tree: who grows, and whether it is copy-on-write.
fn explain_tree(a: &Analysis, lines: &mut Vec<String>) {
    use crate::format::{human_bytes, signed_bytes};
    let slope = |s: &SeriesVerdict| signed_bytes(s.slope_bytes_per_epoch.unwrap_or(0.0));
    if let (Some(rss), Some(pss)) = (a.series("tree_rss_bytes"), a.series("tree_pss_bytes")) {
        if rss.last_bytes as f64 > 1.2 * pss.last_bytes as f64 {
            lines.push(format!(
                "Summed RSS of the tree ({}) is {:.1}x its PSS ({}): RSS counts a page shared between its processes once per process, and the libraries' code and files read, which PSS here leaves out (other processes map them too). PSS splits what the processes own among its sharers: the verdict reads PSS.",
                human_bytes(rss.last_bytes as f64), rss.last_bytes as f64 / pss.last_bytes.max(1) as f64, human_bytes(pss.last_bytes as f64)
            ));
        }
    }
    let grows = |c: &str| a.series(c).is_some_and(|s| s.class == Class::Growing && s.cause.is_none());
    if let Some(s) = a.series("main_uss_bytes").filter(|_| grows("main_uss_bytes")) {
        // What holds it is the census's to say; without one, no guess.
        // Native call sites that hold most of it have said what holds it.
        let named = a.native_sites_asked && native_growth(a) >= 0.75 * s.slope_bytes_per_epoch.unwrap_or(0.0);
        // A process watched by pid gets no injected census; one that started its own
        // watcher (diagnose_memory.watching(), the pytest plugin) takes it in-process.
        let how = if a.attached { "diagnose_memory.watching(python_objects=True), or @pytest.mark.flat_memory(python_objects=True)" } else { "diagnose watch --python-objects -- <the same command>" };
        let next = if a.censuses.is_some() || named { String::new() } else { format!(" To see which Python objects hold it, and whether they do at all, rerun with a census: {how}.") };
        lines.push(format!("The main process grows: its private memory (USS) {}/epoch.{next}", slope(s)));
    }
    // With ranks, the workers are the ranks: the ranks' line names which one grows.
    if let Some(s) = a.series("workers_uss_bytes").filter(|_| grows("workers_uss_bytes") && a.ranks.is_empty()) {
        let main = if grows("main_uss_bytes") { "" } else { " The main process does not grow." };
        lines.push(format!("The workers grow: their private memory (USS) {}/epoch in all, and their RSS with it. Memory is kept inside the DataLoader workers (e.g. a per-worker cache in persistent workers).{main}", slope(s)));
    }
    let cow: Vec<&SeriesVerdict> = a.series.iter().filter(|s| s.cause.as_deref() == Some(COPY_ON_WRITE)).collect();
    if !cow.is_empty() {
        let what = cow.iter().map(|s| format!("{} {}/epoch", s.name, slope(s))).collect::<Vec<_>>().join(", ");
        let slowing = if cow.iter().any(|s| s.levelling_off == Some(true)) {
            "It slows down epoch after epoch as fewer shared pages are left to copy: bounded."
        } else {
            "It has not slowed down yet, but it is bounded all the same: pages can turn private only once."
        };
        let ceiling = cow.iter().find(|s| s.column == "tree_pss_bytes").or(cow.first()).and_then(|s| Some((s.name.clone(), s.ceiling_bytes?)));
        let ceiling = ceiling.map_or(String::new(), |(name, c)| format!(" Ceiling: {name} reaches at most {} if every process copies all it shares.", human_bytes(c as f64)));
        lines.push(format!(
            "Copy-on-write, not a leak: {what}, while RSS stays. Pages shared with the main process turn private as the workers write to them (Python's reference counts write to every object read, pytorch/pytorch#13246). {slowing}{ceiling} The usual cure: hold the dataset's items in numpy arrays or one serialized buffer (bytes, Arrow) instead of lists of Python objects."
        ));
    }
    // "0.5 s", "60 s": windows and short epochs are said exactly.
    let window = |w: f64| if w < 120.0 { format!("{} s", (w * 10.0).round() / 10.0) } else { crate::format::human_seconds(w) };
    if a.tree_pss_from_cgroup {
        lines.push("The tree's PSS is the count of its memory cgroup, made for the command (anon + shmem: each page the tree owns counted once, as a sum of PSS counts it), read at every sample for no page walk; --no-own-cgroup sums each process's PSS instead.".into());
    }
    if let (n @ 1.., Some(budget)) = (a.rss_only_epoch_ends, a.pss_budget) {
        let epochs_of = a.seconds_per_epoch.map_or(String::new(), |s| format!(" (epochs of {})", window(s)));
        let (read, epochs, first, share) = (a.epochs.saturating_sub(n), a.epochs, budget.always_full_epoch_ends, budget.cpu_share * 100.0);
        lines.push(if a.tree_pss_from_cgroup {
            let (look_back, after) = (crate::watch::MOVEMENT_EPOCHS, crate::watch::MOVEMENT_EPOCHS - 1);
            format!("Each process's USS (and a rank's PSS) was read at {read} of {epochs} epoch ends{epochs_of}: reading it walks the process's page tables, so after the first {first} a watch reads it where memory moved (by over 1 MiB or 0.5 % of the tree within {look_back} epoch ends, and the {after} epoch ends after) or while that takes under {share} % of a core. Per-process trends rest on the epoch ends read in full.")
        } else {
            format!("PSS and USS were read at {read} of {epochs} epoch ends{epochs_of}: reading them walks each process's page tables (about 7 ms per torch process), so after the first {first} a watch reads them only while that takes under {share} % of a core, and RSS alone at the others. Their trends rest on the epoch ends read in full.")
        });
    }
    let per_epoch = if a.attached {
        // Under --pid neither log lines nor markers reach us.
        "For a per-epoch verdict, watch the command from its start (diagnose watch -- CMD): its DataLoader passes, markers and log lines then mark epochs."
    } else {
        "For a per-epoch verdict, call diagnose_markers.epoch_end(N) (python/diagnose_markers.py), or print \"Epoch N\" lines (matched by --epoch-pattern)."
    };
    match (a.window_s, a.windows_after_s) {
        (Some(w), Some(after)) => lines.push(format!(
            "No epoch boundary came in the first {}: from then on fixed windows of {} stood in for epochs (the verdict is per window, and windows cut across epochs and validation). {per_epoch}",
            window(after), window(w)
        )),
        (Some(w), None) => lines.push(format!("Boundaries are fixed windows of {} (--window): the verdict is per window, not per epoch, and windows cut across epochs and validation. {per_epoch}", window(w))),
        (None, _) if a.recorder == "watch" && a.epochs == 0 && a.attached => lines.push("No epoch boundary was seen: a process watched with --pid sends no log lines, and markers only to a --marker-socket it was told of (diagnose_memory.watching() does that). Pass --window 60s for a verdict per window.".into()),
        (None, _) if a.recorder == "watch" && a.epochs == 0 => lines.push("No epoch boundary was seen: no DataLoader was iterated twice, no marker arrived and no output line matched --epoch-pattern. Call diagnose_markers.epoch_end(N) (python/diagnose_markers.py), print \"Epoch N\" lines, or pass --window 60s.".into()),
        _ => {}
    }
}

/// Which ranks grow.
fn explain_ranks(a: &Analysis, lines: &mut Vec<String>) {
    if a.ranks.is_empty() {
        return;
    }
    let growing: Vec<String> = a
        .ranks
        .iter()
        .filter(|r| r.class == Class::Growing)
        .map(|r| {
            let since = r.growing_since.map(|e| format!(" since epoch {e}")).unwrap_or_default();
            format!("rank {} ({}/epoch{since})", r.rank, crate::format::signed_bytes(r.slope_bytes_per_epoch.unwrap_or(0.0)))
        })
        .collect();
    let rest: Vec<String> = a.ranks.iter().filter(|r| r.class != Class::Growing).map(|r| format!("rank {} {}", r.rank, r.class.as_str())).collect();
    if growing.is_empty() {
        lines.push(format!("Ranks: no rank grows ({}).", rest.join(", ")));
    } else {
        let others = if rest.is_empty() { String::new() } else { format!("; {}", rest.join(", ")) };
        lines.push(format!("Ranks: {} grow{} (PSS of each rank's processes at epoch ends){others}.", growing.join(", "), if growing.len() == 1 { "s" } else { "" }));
    }
}

/// The C and C++ functions whose native memory grows (`watch --native-sites`).
fn explain_native_sites(a: &Analysis, lines: &mut Vec<String>) {
    if a.native_sites_asked {
        lines.push("--native-sites replaced the command's allocator: its processes ran on the preloaded sampling jemalloc, not glibc's malloc. jemalloc returns freed memory sooner and fragments differently, so RSS and USS levels and slopes here can be well below the same job's without it, and an out-of-memory projection later: judge the leak's size on a run without --native-sites.".into());
    }
    if a.native_sites.is_empty() {
        if a.native_sites_asked {
            lines.push("--native-sites: no heap dump came. Dumps are taken by the helper in the command's first Python process, at epoch ends (none here, or it is not Python, or it was started without our LD_PRELOAD).".into());
        }
        return;
    }
    let growing: Vec<&SiteVerdict> = a.native_sites.iter().filter(|s| s.class == Class::Growing).collect();
    let native = native_growth(a);
    for s in growing.iter().take(3) {
        // C++ names run to hundreds of characters: shortened here, whole in the CSV.
        lines.push(format!(
            "{} {}/epoch of native memory kept (the main process's C/C++ allocations, jemalloc samples; native_sites.csv).",
            s.short_name(),
            crate::format::signed_bytes(s.slope_bytes_per_epoch.unwrap_or(0.0))
        ));
    }
    if growing.is_empty() {
        lines.push("No native call site grows (the main process's C/C++ allocations, jemalloc samples; native_sites.csv).".into());
    }
    // How much of the main process's growth went through the preloaded jemalloc: what a
    // library allocates past it is not sampled, and must not read as "native is clean".
    let Some(uss) = a.series("main_uss_bytes").filter(|s| s.class == Class::Growing) else { return };
    let process = uss.slope_bytes_per_epoch.unwrap_or(0.0);
    let low = uss.slope_interval.map_or(process, |i| i.0.min(process));
    let signed = crate::format::signed_bytes;
    if native >= process {
        lines.push(format!("Native call sites account for all of the main process's growth ({} of {}/epoch, USS).", signed(native), signed(process)));
    } else if native >= 0.75 * low {
        lines.push(format!("Native call sites account for {} of the main process's {}/epoch (USS).", signed(native), signed(process)));
    } else if process - native >= f64::from(1u32 << 20) {
        lines.push(format!(
            "Native call sites account for {} of the main process's {}/epoch (USS). The other {}/epoch did not go through the preloaded jemalloc's sampled allocations: a library that binds glibc's malloc directly (ctypes.CDLL(\"libc.so.6\").malloc), its own mmap, thread stacks, or pages jemalloc holds free.",
            signed(native), signed(process), signed(process - native)
        ));
    }
    if a.censuses.as_ref().is_some_and(|c| c.objects.iter().any(|o| o.kind != "type" && o.class == Class::Growing)) && native > 0.0 {
        lines.push("The native and Python views overlap: a numpy array's or a tensor's storage is native memory (PyDataMem_*, libtorch's allocations) that a Python container holds, so the same bytes can be named in both.".into());
    }
}

/// Bytes per epoch by which the growing native call sites grow, together.
fn native_growth(a: &Analysis) -> f64 {
    a.native_sites.iter().filter(|s| s.class == Class::Growing).filter_map(|s| s.slope_bytes_per_epoch).sum()
}

/// The Python objects that grow, named by what keeps them alive; how much of the main
/// process's growth they account for, and, for the rest, whether native code uses it or
/// the C allocator holds it free. What a failed or partial census could not see is said,
/// never read as "nothing grows".
fn explain_objects(a: &Analysis, lines: &mut Vec<String>) {
    use crate::format::{human_bytes, signed_bytes};
    let Some(c) = &a.censuses else { return };
    let per_epoch = |b: Option<f64>| format!("{}/epoch", signed_bytes(b.unwrap_or(0.0)));
    let growing: Vec<&ObjectVerdict> = c.objects.iter().filter(|o| o.kind != "type" && o.kind != "line" && o.class == Class::Growing).collect();
    for o in growing.iter().take(3) {
        // issue 25: arrays held as a value that grows, hooks piling up (objects.rs).
        if let Some(line) = objects::special_line(o) {
            lines.push(line);
            continue;
        }
        let last = o.by_epoch.last().map_or(0, |p| p.1);
        let at = match o.allocated_at.as_deref().map(|a| a.split_once(' ').unwrap_or(("", a))) {
            Some(("item", at)) => format!(" Its newest item was allocated at {at}."),
            Some((_, at)) => format!(" It was made at {at} (its items are not traced: made in C++)."),
            None => String::new(),
        };
        let slope = o.slope_bytes_per_epoch.unwrap_or(0.0);
        let graph = o.graph_bytes_per_epoch.filter(|g| *g > 0.25 * slope && slope > 0.0);
        if o.kind == "tensor" {
            lines.push(format!(
                "Python: {} is one tensor whose autograd graph grows: {:+.0} graph nodes/epoch keeping {} of tensors saved for backward ({} at the last census). A loss or output was accumulated with its graph (`total += loss`): accumulate `loss.item()` or `loss.detach()` instead.",
                o.name, o.graph_nodes_per_epoch.unwrap_or(0.0), per_epoch(o.graph_bytes_per_epoch), human_bytes(last as f64)
            ));
        } else if let Some(g) = graph {
            lines.push(format!(
                "Python: {} ({}, {:+.0} items/epoch, {}) keeps growing, and its tensors keep their autograd graphs alive: {} of it are tensors saved for backward ({:+.0} graph nodes/epoch), {} the tensors themselves; it holds {} at the last census. Keep `.detach()`ed tensors (or `.item()` for a number), or run validation under `torch.no_grad()` / `torch.inference_mode()`.{at}",
                o.name, o.type_name, o.items_per_epoch.unwrap_or(0.0), per_epoch(Some(slope)), per_epoch(Some(g)), o.graph_nodes_per_epoch.unwrap_or(0.0), per_epoch(Some(slope - g)), human_bytes(last as f64)
            ));
        } else {
            // Graphs whose saved tensors backward has freed still hold their nodes.
            let nodes = match o.graph_nodes_per_epoch.filter(|n| *n >= 1.0) {
                Some(n) => format!(" Its tensors keep their autograd graphs too ({n:+.0} graph nodes/epoch; backward has freed their saved tensors): keep `.detach()`ed tensors, or `.item()` for a number."),
                None => String::new(),
            };
            lines.push(format!(
                "Python: {} ({}, {:+.0} items/epoch, {}) keeps growing; it holds {} at the last census.{nodes}{at}",
                o.name, o.type_name, o.items_per_epoch.unwrap_or(0.0), per_epoch(Some(slope)), human_bytes(last as f64)
            ));
        }
    }
    let all_failed = c.count > 0 && c.failed == c.count;
    let partial = c.failed > 0 || c.worker_failed > 0 || c.skipped_objects > 0;
    // Objects of a type that grow though no container found holds them.
    let types: Vec<String> = c
        .objects
        .iter()
        .filter(|o| o.kind == "type" && o.class == Class::Growing && o.slope_bytes_per_epoch.unwrap_or(0.0) >= 64.0 * 1024.0)
        .take(3)
        .map(|o| format!("{} {}", o.name, per_epoch(o.slope_bytes_per_epoch)))
        .collect();
    if all_failed {
        lines.push(format!("Python: every census of the main process failed ({} of {}): nothing is known of its objects, growing or not.", c.failed, c.count));
    } else if growing.is_empty() && !types.is_empty() {
        lines.push(format!(
            "Python: objects grow though no container the census follows holds them: {}. It searched {}; something keeps them where it cannot name (a C extension's reference, a container it has not named yet).",
            types.join(", "), c.searched()
        ));
    } else if growing.is_empty() && !partial {
        lines.push("Python: no container of the main process or its persistent workers grows from census to census.".into());
    } else if growing.is_empty() {
        lines.push("Python: no container that the censuses could inspect grows; what they could not see is below.".into());
    }
    if !all_failed {
        explain_accounting(a, c, lines);
    }
    lines.extend(c.notes());
    let workers = match (c.worker_count, c.light_worker_count) {
        (0, _) => String::new(),
        (n, l) if l == n => format!(" (and {n} light ones in forked DataLoader workers: their datasets' containers only)"),
        (n, l) => format!(" (and {} full ones in forked DataLoader workers, --python-objects-workers: each worker copies the pages it shares with the trainer at its first, its USS stepping up once{})", n - l, if l > 0 { format!("; {l} light ones") } else { String::new() }),
    };
    lines.push(format!(
        "Python object census: {} censuses{workers}, the longest {:.2} s with {} live gc-tracked objects (objects.csv).",
        c.count, c.max_seconds, c.max_objects
    ));
    if c.failed > 0 || c.worker_failed > 0 {
        let workers = if c.worker_failed > 0 { format!(" and {} of {} in workers", c.worker_failed, c.worker_count) } else { String::new() };
        lines.push(format!("Censuses failed: {} of {} of the main process{workers}; the first: {}.", c.failed, c.count, c.errors.join("; ")));
    }
    if c.skipped_objects > 0 {
        lines.push(format!(
            "A census could not inspect {} object(s) (their class raised when asked; types: {}): they are not counted.",
            c.skipped_objects,
            if c.skipped_types.is_empty() { "unknown".to_string() } else { c.skipped_types.join(", ") }
        ));
    }
}

/// How much of the main process's growth the censuses account for, and the rest by
/// glibc's malloc counters: native code using it, or the allocator holding it free.
fn explain_accounting(a: &Analysis, c: &Censuses, lines: &mut Vec<String>) {
    use crate::format::signed_bytes;
    let Some(uss) = a.series("main_uss_bytes").filter(|s| s.class == Class::Growing) else { return };
    let (Some(acc), Some(process)) = (c.accounting, uss.slope_bytes_per_epoch) else { return };
    let python = acc.python_bytes_per_epoch.max(0.0);
    if python >= process {
        lines.push(format!("Python objects account for all of the main process's growth ({} of {}/epoch, USS).", signed_bytes(python), signed_bytes(process)));
        return;
    }
    lines.push(format!(
        "Python objects account for {} of the main process's {}/epoch (USS).",
        signed_bytes(python), signed_bytes(process)
    ));
    let rest = process - python;
    // Against the lowest growth the interval allows, so that a noisy slope is not read as
    // unexplained growth; a rest under a quarter of it, or under 1 MiB, is not told.
    let low = uss.slope_interval.map_or(process, |i| i.0.min(process));
    if python >= 0.75 * low || rest < f64::from(1u32 << 20) {
        return;
    }
    let free = acc.malloc_free_bytes_per_epoch.unwrap_or(0.0);
    let objects_grow = c.objects.iter().any(|o| o.class == Class::Growing && o.slope_bytes_per_epoch.unwrap_or(0.0) >= 64.0 * 1024.0);
    // Tensors' and arrays' storage is in malloc too, and already counted as Python's.
    let native = acc.malloc_in_use_bytes_per_epoch.map(|u| u - acc.array_bytes_per_epoch);
    match native {
        None => lines.push(format!(
            "The other {}/epoch is native memory; glibc's malloc counters could not be read (another allocator, or glibc before 2.33), so whether native code uses it or the allocator holds it free is unknown.",
            signed_bytes(rest)
        )),
        // Kept objects pin the freed blocks between them: then the leak above is the cause.
        Some(_) if free >= 0.5 * rest && objects_grow => lines.push(format!(
            "Of the {}/epoch no Python object explains, glibc's malloc holds {}/epoch free in its arenas: fragmentation, the freed blocks pinned between what the growing objects above keep. A leak of objects all the same: stop keeping them and this goes too.",
            signed_bytes(rest), signed_bytes(free)
        )),
        Some(_) if free >= 0.5 * rest => lines.push(format!(
            "The C allocator holds it free: glibc's malloc keeps {}/epoch of freed memory in its arenas (fragmentation), of the {}/epoch no Python object explains. No Python object the census searched ({}) holds it. Cures: MALLOC_ARENA_MAX=2, calling malloc_trim(0) (ctypes) after each epoch, or jemalloc/tcmalloc through LD_PRELOAD.",
            signed_bytes(free), signed_bytes(rest), c.searched()
        )),
        Some(n) if n >= 0.5 * rest => lines.push(format!(
            "Native code uses it: glibc's malloc has {}/epoch more in use that no Python object the census searched holds (a C extension's buffers, or libtorch memory no tensor reaches), of the {}/epoch no Python object explains. It searched {}; what native code keeps, a census cannot name.",
            signed_bytes(n), signed_bytes(rest), c.searched()
        )),
        Some(_) => lines.push(format!(
            "The other {}/epoch is outside glibc's malloc: memory-mapped files, thread stacks, or a library with an allocator of its own.",
            signed_bytes(rest)
        )),
    }
}

/// How a watched command ended, and whether it passed --max-memory.
fn explain_end(a: &Analysis, lines: &mut Vec<String>) {
    let after = |e: Option<u32>| e.map_or("before the first epoch ended".to_string(), |e| format!("after epoch {e}"));
    if let Some(m) = &a.max_memory {
        lines.push(format!("The tree's memory passed --max-memory ({}) at {:.1} s, {}.", m.label, m.t_s, after(m.epoch)));
    }
    let Some(end) = &a.end else { return };
    let projected = a.oom.as_ref().map_or(String::new(), |p| format!(" The projection from the epochs before it said epoch {:.1}.", p.at_epoch));
    if end.oom_killed {
        lines.push(format!("The command was killed by the OOM killer (SIGKILL while its cgroup's OOM-kill counter rose) {}, at {:.1} s.{projected}", after(end.last_epoch), end.t_s));
    } else if let Some(sig) = end.signal.filter(|s| a.stopped_by.is_some() && matches!(s, 9 | 15)) {
        let how = if sig == 15 { "SIGTERM" } else { "SIGKILL" };
        lines.push(format!("diagnose stopped the command ({}; {how}) {}, at {:.1} s.", a.stopped_by.as_deref().unwrap_or(""), after(end.last_epoch), end.t_s));
    } else if let Some(sig) = end.signal {
        lines.push(format!("The command was killed by signal {sig} {}, at {:.1} s.", after(end.last_epoch), end.t_s));
    } else if let Some(code) = end.code.filter(|c| *c != 0) {
        lines.push(format!("The command exited with code {code} {}, at {:.1} s.", after(end.last_epoch), end.t_s));
    } else if end.detached {
        lines.push(format!("The watch was stopped at {:.1} s while the process ran on: this report covers what was seen until then.", end.t_s));
    }
}

/// Series of the whole machine, not of the run: judged and drawn, never a cause.
pub(super) const MACHINE_WIDE: &[&str] = &["system_used_bytes", "shm_used_bytes"];

/// "A", "A and B", "A, B and C".
fn list_words(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// What the verdict rests on, when that is not a trend of epoch ends: pairs of points
/// inside the first epochs, or two rising epoch ends ("growing so far").
fn explain_evidence(a: &Analysis, lines: &mut Vec<String>) {
    use crate::format::signed_bytes;
    let primary = || PRIMARY_SERIES.iter().chain(["rss_bytes"].iter()).filter_map(|c| a.series(c));
    let paired = || primary().filter_map(|s| Some((s, s.paired?)));
    if let Some((s, p)) = paired().find(|(s, _)| s.class == Class::Growing).or_else(|| paired().next()) {
        let (lo, hi) = p.interval;
        if let Some(e) = p.steady_ends {
            lines.push(format!(
                "Judged from the first epochs: {}'s epoch ends rose by the same amount at each of {} steps (epochs {}→{}: {} to {} a step), above its {} tolerance: {}/epoch, growing. The epoch ends decide where they rise alike; the {} pairs of boundaries at the same point of consecutive epochs read {}/epoch [{}, {}].",
                s.name,
                e.steps,
                e.epochs.0,
                e.epochs.1,
                signed_bytes(e.interval.0),
                signed_bytes(e.interval.1),
                crate::format::human_bytes(s.tolerance_bytes_per_epoch),
                signed_bytes(e.bytes_per_epoch),
                p.pairs,
                signed_bytes(p.bytes_per_epoch),
                signed_bytes(lo),
                signed_bytes(hi),
            ));
            return;
        }
        lines.push(format!(
            "Judged from the first epochs: {} pairs of boundaries at the same point of consecutive epochs (epochs {}→{}, {} step{}), since {} epoch end(s) are too few for a trend. {}: {}/epoch [{}, {}] ({}).{}",
            p.pairs,
            p.epochs.0,
            p.epochs.1,
            p.steps,
            if p.steps == 1 { "" } else { "s" },
            a.epochs,
            s.name,
            signed_bytes(p.bytes_per_epoch),
            signed_bytes(lo),
            signed_bytes(hi),
            match (s.class, s.slope_bytes_per_epoch) {
                // The pairs rose, the quiet points did not: the class is the epoch ends'.
                (Class::Flat, Some(ends)) if lo > 0.0 => format!(
                    "flat: its epoch ends moved {}/epoch, within the {} tolerance; points inside epochs rose, as they do where DataLoader workers are made anew",
                    signed_bytes(ends),
                    crate::format::human_bytes(s.tolerance_bytes_per_epoch)
                ),
                (class, _) => class.as_str().to_string(),
            },
            // A summed RSS counts a page once per process that maps it: memory the main
            // process kept before forking its workers counts once per worker too.
            if p.on == "tree_rss_bytes" && a.series("workers_uss_bytes").is_some() {
                " Read between boundaries on the tree's summed RSS, which counts a page once per process that maps it (memory the main process kept before forking its workers, once per worker too): the slope is an upper bound; the epoch ends' trend says the rate once there are 3 after warm-up."
            } else {
                ""
            }
        ));
        return;
    }
    let so_far = primary().any(|s| s.class == Class::Growing && s.slope_interval.is_none());
    if so_far {
        lines.push(format!("Only {} epoch end(s) recorded: growing so far on two rising epoch ends, not yet confirmed by a trend (that needs 3 after warm-up).", a.epochs));
    }
}

/// The processes that grow on their own, named with role, rank and pid, beside the rest.
fn explain_processes(a: &Analysis, lines: &mut Vec<String>) {
    let growing: Vec<String> = a
        .processes
        .iter()
        .filter(|p| p.leaks())
        .map(|p| p.growth())
        .collect();
    if growing.is_empty() {
        return;
    }
    let others = a.processes.iter().filter(|p| !p.leaks()).count();
    let rest = match others {
        0 => String::new(),
        1 => "; the other process judged is not growing".to_string(),
        n => format!("; the other {n} processes judged are not growing"),
    };
    lines.push(format!("Per process (USS at epoch ends, each on its own): {}{rest}.", growing.join(", ")));
}
