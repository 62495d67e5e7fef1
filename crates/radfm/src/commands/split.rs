//! `radfm split`.

use crate::cli::{SplitArgs, SplitUnit};

pub fn run(a: SplitArgs) -> anyhow::Result<()> {
    // patients are the only unit: no patient may appear in two splits
    let SplitUnit::Patient = a.by;
    let c = radfm_data::split::assign(&a.dataset, a.train, a.val, a.test, a.seed)?;
    println!("train {} patients, val {}, test {}", c.train, c.val, c.test);
    Ok(())
}
