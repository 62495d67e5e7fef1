//! `radfm split`.

use anyhow::bail;

use crate::cli::SplitArgs;

pub fn run(a: SplitArgs) -> anyhow::Result<()> {
    if a.by != "patient" {
        bail!(
            "--by {}: only 'patient' is supported (no patient may appear in two splits)",
            a.by
        );
    }
    let c = radfm_data::split::assign(&a.dataset, a.train, a.val, a.test, a.seed)?;
    println!("train {} patients, val {}, test {}", c.train, c.val, c.test);
    Ok(())
}
