//! `radfm card`: a classifier directory's model card.

use crate::cli::CardArgs;

pub fn run(a: CardArgs) -> anyhow::Result<()> {
    let clf = crate::classifier::open_for_use(&a.model, &burn::tensor::Device::flex())?;
    let c = clf.card();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("{} {}", s(&c["name"]), s(&c["version"]));
    println!("sha256        {}", s(&c["sha256"]));
    println!("kind          {} {}", s(&c["kind"]), s(&c["method"]));
    let arch = &c["architecture"];
    println!(
        "encoder       ViT, {} layers, hidden {}, {} px, patch {}",
        s(&arch["layers"]),
        s(&arch["hidden_size"]),
        s(&arch["image_size"]),
        s(&arch["patch_size"])
    );
    println!(
        "labels        {} (uncertain: {})",
        s(&c["training"]["labels"]),
        s(&c["training"]["uncertain"])
    );
    println!("input         {}", s(&c["input"]["accepts"]));
    println!("output        {}", s(&c["output"]));
    println!("intended use  {}", s(&c["intended_use"]));
    println!();
    println!(
        "{:<28} {:>9}  {:>8}  {:>8}  chosen by",
        "observation", "threshold", "val sens", "val spec"
    );
    if let Some(obs) = c["observations"].as_object() {
        for (o, v) in obs {
            let f = |x: &serde_json::Value| x.as_f64().map_or("-".into(), |x| format!("{x:.3}"));
            println!(
                "{:<28} {:>9}  {:>8}  {:>8}  {}",
                o,
                f(&v["threshold"]),
                f(&v["val_sensitivity"]),
                f(&v["val_specificity"]),
                s(&v["chosen_by"])
            );
        }
    }
    println!();
    println!("limitations:");
    for l in c["limitations"].as_array().into_iter().flatten() {
        println!("  - {}", s(l));
    }
    Ok(())
}
