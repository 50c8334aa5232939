//! The text `kiln check` prints for a plan.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};

use super::{Base, BuildPlan};

impl Display for BuildPlan {
    /// One block per stage: a header with index, name, base and platform,
    /// then each step as `  [i/n] INSTRUCTION` with BuildKit's step-number
    /// padding. Steps from a base stage's ONBUILD triggers say so.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let names: BTreeMap<usize, &str> = self
            .stages
            .iter()
            .filter_map(|s| Some((s.index, s.name.as_deref()?)))
            .collect();
        let label = |index: usize| match names.get(&index) {
            Some(n) => format!("stage {index} {n:?}"),
            None => format!("stage {index}"),
        };
        for stage in &self.stages {
            let base = match &stage.base {
                Base::Image(r) => format!("image {r}"),
                Base::Stage(i) => label(*i),
                Base::Scratch => "scratch".to_string(),
            };
            writeln!(f, "{} from {base} ({})", label(stage.index), stage.platform)?;
            let total = stage.steps.len();
            let width = total.to_string().len();
            for (i, step) in stage.steps.iter().enumerate() {
                write!(f, "  [{:>width$}/{total}] {}", i + 1, step.command)?;
                if let Some(from) = step.onbuild_from {
                    write!(f, " (ONBUILD trigger of {})", label(from))?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}
