//! The README documents every timeline and processes.csv column and every leak.

#[test]
fn readme_documents_every_column_and_leak() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (column, _) in profiler::timeline::COLUMNS {
        assert!(readme.contains(&format!("| `{column}` |")), "README lacks column {column}");
    }
    for (column, _) in profiler::watch::PROCESS_COLUMNS {
        assert!(readme.contains(&format!("| `{column}` |")), "README lacks processes.csv column {column}");
    }
    use clap::ValueEnum;
    for leak in reference_trainer::Leak::value_variants() {
        assert!(readme.contains(&format!("| `{}` |", leak.name())), "README lacks leak {}", leak.name());
    }
}
