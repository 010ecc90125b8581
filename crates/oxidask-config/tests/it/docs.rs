//! `docs/CONFIG.md` documents every key of the schema with its default, so the two cannot
//! drift apart.

use oxidask_config::schema::SCHEMA;

#[test]
fn config_md_lists_every_key_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");
    let doc = std::fs::read_to_string(path).expect("docs/CONFIG.md");
    let defaults = oxidask_config::Config::defaults();
    for (key, value, _) in defaults.effective() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/CONFIG.md has no row for `{key}`"));
        assert!(
            row.contains(&format!("| `{value}` |")),
            "docs/CONFIG.md gives `{key}` another default than `{value}`: {row}"
        );
    }
    let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(
        rows,
        SCHEMA.len(),
        "docs/CONFIG.md has rows for keys the schema lacks"
    );
}

#[test]
fn config_md_example_file_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");
    let doc = std::fs::read_to_string(path).expect("docs/CONFIG.md");
    let start = doc.find("```yaml\n").expect("a YAML example") + "```yaml\n".len();
    let end = start + doc[start..].find("```").expect("the end of the example");
    let sb = crate::Sandbox::new();
    sb.write("etc/example.yaml", &doc[start..end]);
    let c = sb.load().expect("the example loads");
    assert_eq!(c.fraction("distributed.worker.memory.target"), Some(0.5));
    assert_eq!(
        c.size("distributed.worker.memory.max-spill"),
        Some(100 << 30)
    );
    assert_eq!(
        c.duration("distributed.comm.timeouts.connect"),
        Some(std::time::Duration::from_secs(60))
    );
}
