//! The object census survives any program: tests/python/census_corpus.py takes two
//! censuses in a process that has used numpy (numpy.random's Cython metatype answers
//! `__module__` with a descriptor), pandas, the standard library's odd corners, objects
//! that raise from every special method or lie about their class, metaclasses with
//! properties, recursive containers, a dict of 1 M entries, torch (tensors, views,
//! modules, an optimizer, a DataLoader iterator with workers, graphs), Lightning and the
//! Hugging Face Trainer's classes. Every census completes, says what it skipped, names
//! what grew, and lets none of its own warnings reach the program.

use crate::common::*;

#[test]
fn every_census_of_the_corpus_completes() {
    let _turn = serial();
    let o = std::process::Command::new(python()).arg(py_script("census_corpus.py")).output().expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().last().unwrap_or_default();
    let censuses: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}\n{}", stderr(&o)));
    assert!(o.status.success(), "a census failed or warned: {line}\n{}", stderr(&o));
    let censuses = censuses.as_array().unwrap();
    assert_eq!(censuses.len(), 2);
    for c in censuses {
        assert!(c["error"].is_null(), "{c}");
        assert!(c["warnings"].as_array().unwrap().is_empty(), "{c}");
        assert!(c["objects"].as_u64().unwrap() > 100_000, "{c}");
        assert_eq!(c["types"], 40, "{c}");
        // No cycle collection ran during the census (without gc.disable: 11 young ones,
        // promoting its temporaries), at most one young one as it ends (what it returns),
        // and the collector is on again after.
        let runs: Vec<u64> = c["collections_during"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        assert!(runs[0] <= 1 && runs[1] == 0 && runs[2] == 0, "{c}");
        assert_eq!(c["gc_enabled_after"], true, "{c}");
    }
    // What grew between the two censuses is named, hostile items and all.
    let named: Vec<&str> = censuses[1]["containers"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for n in ["__main__.RECURSIVE", "Holder.hostile"] {
        assert!(named.contains(&n), "{n} not named: {named:?}");
    }
    // Issue 25's shapes: untracked dicts (in attributes and slots), an array grown as a
    // value, a hook's closure, a partial's arguments, a generator's frame, a thread's
    // target, hook dicts; the census took the autograd gate.
    for n in [
        "NumpyCache.cache",
        "SlotHolder.held",
        "NumpyCache.val_probs",
        "Conv2d._forward_hooks: install_tap.<locals>.on_forward → store",
        "__main__.PARTIAL: partial(holders.<locals>.<lambda>) → args[0]",
        "__main__.GEN: gen_keeper() → kept",
        "Thread('keeper')._target: holders.<locals>.<lambda> → thread_buf",
        "__main__.BOUND_APPEND: list.append → __self__",
        "Sequential.0._forward_hooks",
    ] {
        assert!(named.iter().any(|x| x.starts_with(n) || *x == n), "{n} not named: {named:?}");
    }
    assert_eq!(censuses[1]["graph_gate"], "ok", "{}", censuses[1]);
    assert_eq!(censuses[1]["searched"]["untracked"], true, "{}", censuses[1]);
}
