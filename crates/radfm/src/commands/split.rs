//! `radfm split`.

use crate::cli::{SplitArgs, SplitUnit};

pub fn run(a: SplitArgs) -> anyhow::Result<()> {
    // patients are the only unit: no patient may appear in two splits
    let SplitUnit::Patient = a.by;
    let c = radfm_data::split::assign_holding_out(
        &a.dataset,
        a.train,
        a.val,
        a.test,
        a.seed,
        a.hold_out_site.as_deref(),
    )?;
    match &a.hold_out_site {
        Some(site) => println!(
            "train {} patients, val {}, test {} ({} of them from the held-out {site})",
            c.train, c.val, c.test, c.held_out
        ),
        None => println!("train {} patients, val {}, test {}", c.train, c.val, c.test),
    }
    Ok(())
}
