//! Makes N `link.get("lo")` calls.

use netsh_guest::{Manifest, Recipe, Result, link};

struct CallBench;

impl Recipe for CallBench {
    fn manifest() -> Manifest {
        Manifest::new("callbench", "makes N link.get(\"lo\") calls").usage("callbench N")
    }

    fn run(args: Vec<String>) -> Result<()> {
        let n: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
        for _ in 0..n {
            link::get(None, "lo")?;
        }
        Ok(())
    }
}

netsh_guest::export_recipe!(CallBench);
